"""Dynamic batching: concurrent requests to one model merged into one onnxruntime call.

The batcher measures its model. Calls faster than ``inline_below_ms`` (a 1-row tabular
prediction takes ~40 µs) run on the event loop, since a thread hop costs more than they do
(measured: it halved the server's requests/s); but not one by one: the requests that reach the
model in the same turn of the event loop (those of every connection whose bytes arrived together)
are answered by one call at the end of that turn, which costs little more than one row. Under
load (the last turn merged several), a turn waits ``GATHER_SECONDS`` (0.3 ms) for more: the
event loop then sleeps in epoll and reads many connections at once instead of polling in a busy
loop. A lone request is answered at once. Slower models queue: a worker thread answers
everything queued so far (up to ``max_size`` rows) with one call, waiting at most
``max_wait_ms`` for more. Either way batches grow with load and cost nothing without it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .predictor import Prediction, Predictor

SMOOTHING = 0.2
GATHER_SECONDS = 0.0003
"""How long a turn waits for more requests under load (see the module's docstring)."""


@dataclass(slots=True)
class _Pending:
    feeds: dict[str, np.ndarray]
    rows: int
    future: asyncio.Future[Prediction] = field(repr=False)


class Batcher:
    """Answers predictions for one model: inline when cheap, merged in a thread when not.

    Queued calls raise TimeoutError after ``timeout`` seconds (None: no limit).
    """

    def __init__(
        self,
        predictor: Predictor,
        max_size: int = 64,
        max_wait_ms: float = 0.0,
        on_batch: Callable[[int], None] | None = None,
        inline_below_ms: float = 1.0,
        timeout: float | None = None,
    ) -> None:
        self.predictor = predictor
        self.max_size = max_size
        self.max_wait = max_wait_ms / 1000
        self.on_batch = on_batch
        self.inline_below = inline_below_ms / 1000
        self.timeout = timeout
        self.call_seconds = 0.0
        """Smoothed time of one call; decides between inline and batched."""
        self._queue: list[_Pending] = []
        self._draining = False
        self._turn: list[_Pending] = []
        self._busy = False
        """Whether the last turn had several requests: then the next one waits to gather more."""

    async def run(self, feeds: dict[str, np.ndarray]) -> Prediction:
        rows = len(next(iter(feeds.values()))) if feeds else 0
        loop = asyncio.get_running_loop()
        pending = _Pending(feeds, rows, loop.create_future())
        if self.call_seconds < self.inline_below and not self._queue and rows < self.max_size:
            if not self._turn:
                if self._busy:  # more are coming: gather them, the loop sleeps meanwhile
                    loop.call_later(GATHER_SECONDS, self._answer_turn)
                else:
                    loop.call_soon(self._answer_turn)
            self._turn.append(pending)
            return await pending.future  # never long: answered at the end of this turn
        self._queue.append(pending)
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        # NOTE: only queued calls can time out: an inline call never waits.
        async with asyncio.timeout(self.timeout):
            return await pending.future

    def _answer_turn(self) -> None:
        """Answer the requests of this turn of the event loop, ``max_size`` rows per call."""
        turn, self._turn = self._turn, []
        self._busy = len(turn) > 1
        while turn:
            self._answer(*_take(turn, self.max_size))

    def _answer(self, batch: list[_Pending], size: int) -> None:
        """One call for ``batch`` on this thread; if it fails, each request alone, so that one
        request's failure is its own."""
        try:
            feeds = _concat([p.feeds for p in batch]) if len(batch) > 1 else batch[0].feeds
            _settle(batch, self._timed(feeds, size))
        except Exception as exc:
            if len(batch) > 1:
                for pending in batch:
                    self._answer([pending], pending.rows)
            elif not batch[0].future.done():
                batch[0].future.set_exception(exc)

    def _timed(self, feeds: dict[str, np.ndarray], rows: int) -> Prediction:
        if self.on_batch is not None:
            self.on_batch(rows)
        started = time.perf_counter()
        result = self.predictor.run(feeds)
        elapsed = time.perf_counter() - started
        self.call_seconds += SMOOTHING * (elapsed - self.call_seconds)
        return result

    async def _drain(self) -> None:
        try:
            while self._queue:
                if self.max_wait:
                    await asyncio.sleep(self.max_wait)
                batch, size = _take(self._queue, self.max_size)
                feeds = _concat([p.feeds for p in batch]) if len(batch) > 1 else batch[0].feeds
                try:
                    result = await asyncio.to_thread(self._timed, feeds, size)
                except Exception as exc:  # the same failure belongs to every merged request
                    for pending in batch:
                        if not pending.future.done():  # a timed-out caller cancelled it
                            pending.future.set_exception(exc)
                    continue
                _settle(batch, result)
        finally:
            self._draining = False


def _take(queue: list[_Pending], max_size: int) -> tuple[list[_Pending], int]:
    """The first requests of ``queue`` (removed from it) up to ``max_size`` rows (at least one),
    and their rows."""
    batch = [queue.pop(0)]
    size = batch[0].rows
    while queue and size + queue[0].rows <= max_size:
        batch.append(queue.pop(0))
        size += batch[-1].rows
    return batch, size


def _settle(batch: list[_Pending], result: Prediction) -> None:
    """Give each request of ``batch`` its rows of ``result`` (unless it gave up waiting)."""
    start = 0
    for pending in batch:
        if not pending.future.done():
            pending.future.set_result(_slice(result, start, start + pending.rows))
        start += pending.rows


def _concat(feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([f[name] for f in feeds]) for name in feeds[0]}


def _slice(result: Prediction, start: int, end: int) -> Prediction:
    probabilities = result.probabilities[start:end] if result.probabilities is not None else None
    extras = {k: v[start:end] for k, v in result.extras.items()} if result.extras else {}
    return Prediction(result.predictions[start:end], probabilities, result.class_labels, extras)
