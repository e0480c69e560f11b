"""Dynamic batching: concurrent requests to one model merged into one onnxruntime call.

A request that finds the model idle runs at once, alone: batching costs nothing at low load. While
calls are in flight, arriving requests queue; the next call takes everything queued (up to
``max_size`` rows), waiting at most ``max_wait_ms`` for more, and the results are split back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .predictor import Prediction, Predictor


@dataclass
class _Pending:
    feeds: dict[str, np.ndarray]
    rows: int
    future: asyncio.Future[Prediction] = field(repr=False)


class Batcher:
    """Runs a predictor off the event loop, merging requests that arrive while it is busy."""

    def __init__(
        self,
        predictor: Predictor,
        max_size: int = 64,
        max_wait_ms: float = 1.0,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.predictor = predictor
        self.max_size = max_size
        self.max_wait = max_wait_ms / 1000
        self.on_batch = on_batch
        self._queue: list[_Pending] = []
        self._busy = 0
        self._workers = 2  # onnxruntime releases the GIL: two calls overlap on two cores

    async def run(self, feeds: dict[str, np.ndarray]) -> Prediction:
        rows = len(next(iter(feeds.values()))) if feeds else 0
        if self._busy < self._workers or rows >= self.max_size:
            return await self._predict(feeds, rows)
        pending = _Pending(feeds, rows, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        if len(self._queue) == 1:
            asyncio.get_running_loop().create_task(self._drain())
        return await pending.future

    async def _predict(self, feeds: dict[str, np.ndarray], rows: int) -> Prediction:
        self._busy += 1
        try:
            if self.on_batch is not None:
                self.on_batch(rows)
            return await asyncio.to_thread(self.predictor.run, feeds)
        finally:
            self._busy -= 1

    async def _drain(self) -> None:
        while self._queue:
            if self.max_wait and self._queued_rows() < self.max_size:
                await asyncio.sleep(self.max_wait)
            batch, size = [self._queue.pop(0)], 0
            size = batch[0].rows
            while self._queue and size + self._queue[0].rows <= self.max_size:
                batch.append(self._queue.pop(0))
                size += batch[-1].rows
            feeds = _concat([p.feeds for p in batch]) if len(batch) > 1 else batch[0].feeds
            try:
                result = await self._predict(feeds, size)
            except Exception as exc:  # the same failure belongs to every merged request
                for pending in batch:
                    if not pending.future.done():  # a timed-out caller cancelled it
                        pending.future.set_exception(exc)
                continue
            start = 0
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_result(_slice(result, start, start + pending.rows))
                start += pending.rows

    def _queued_rows(self) -> int:
        return sum(p.rows for p in self._queue)


def _concat(feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([f[name] for f in feeds]) for name in feeds[0]}


def _slice(result: Prediction, start: int, end: int) -> Prediction:
    probabilities = result.probabilities[start:end] if result.probabilities is not None else None
    return Prediction(result.predictions[start:end], probabilities, result.class_labels)
