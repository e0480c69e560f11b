"""Loaded models: lazy or eager loading, zero-downtime swaps, unloading of idle models.

Requests resolve a reference ("credit", "credit:3", "credit@production") through a cache. A
background poll of the store's generation notices new versions and moved aliases; the new version
is loaded beside the old one and swapped in with one dict assignment, so no request waits or
fails. A version that fails to load leaves the old one serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from ..artifact import Manifest
from ..config import Settings
from ..errors import ModelNotFound, ModelportError, Unavailable
from ..runtime import Predictor
from ..runtime.batching import Batcher
from ..runtime.predictor import IMAGE_BATCH
from ..store import Store
from .metrics import Metrics

log = logging.getLogger("modelport.serve")


@dataclass
class LoadedModel:
    """One model version ready to predict."""

    manifest: Manifest
    predictor: Predictor
    batcher: Batcher
    last_used: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> tuple[str, int]:
        return self.manifest.name, self.manifest.version or 0


class ModelManager:
    """Maps references to loaded versions and keeps that map current."""

    def __init__(self, store: Store, settings: Settings, metrics: Metrics) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self._by_ref: dict[str, LoadedModel] = {}
        self._by_version: dict[tuple[str, int], LoadedModel] = {}
        self._loading: dict[str, asyncio.Task[LoadedModel]] = {}
        self.generation = -1
        self.failures: dict[tuple[str, int], str] = {}

    async def get(self, ref: str) -> LoadedModel:
        """The loaded version ``ref`` resolves to, loading it on first use."""
        model = self._by_ref.get(ref)
        if model is None:
            task = self._loading.get(ref)
            if task is None:
                task = self._loading[ref] = asyncio.create_task(self._load_ref(ref))
                task.add_done_callback(lambda _: self._loading.pop(ref, None))
            model = await asyncio.shield(task)
        model.last_used = time.monotonic()
        return model

    async def _load_ref(self, ref: str) -> LoadedModel:
        manifest = await asyncio.to_thread(self.store.manifest, ref)
        model = await self._load_version(manifest)
        self._by_ref[ref] = model
        return model

    async def _load_version(self, manifest: Manifest) -> LoadedModel:
        key = (manifest.name, manifest.version or 0)
        loaded = self._by_version.get(key)
        if loaded is not None:
            return loaded
        try:
            artifact = await asyncio.to_thread(self.store.get, f"{key[0]}:{key[1]}")
            predictor = await asyncio.to_thread(Predictor, artifact, self.settings.serve_threads)
        except ModelportError as exc:
            self.failures[key] = exc.message
            self.metrics.load_failures.labels(manifest.name).inc()
            log.error("model %s:%s failed to load: %s", *key, exc.message)
            raise Unavailable(f"Model {key[0]}:{key[1]} cannot be loaded: {exc.message}") from exc
        batching = {
            **self._batching(manifest),
            **self.settings.batch_per_model.get(manifest.name, {}),
        }
        batcher = Batcher(
            predictor,
            int(batching["max_size"]),
            batching["max_wait_ms"],
            on_batch=self.metrics.batch_rows.labels(manifest.name).observe,
            inline_below_ms=batching["inline_below_ms"],
            timeout=self.settings.request_timeout,
        )
        loaded = LoadedModel(manifest, predictor, batcher)
        self._by_version[key] = loaded
        self.metrics.loaded.set(len(self._by_version))
        log.info("loaded model %s:%s", *key)
        return loaded

    def _batching(self, manifest: Manifest) -> dict[str, float]:
        """The batching settings of a model before MODELPORT_BATCH_PER_MODEL's.

        Image models always run in the batcher's thread (one image takes milliseconds, so even
        their first call, before the batcher has timed one, must not hold the event loop), in
        batches of at most IMAGE_BATCH: a CNN on CPU gains little per image from batching
        (the labeller: 18 ms for 1, 25 ms per image at 8, 27 at 32) while its memory grows with
        the batch (+430 MB at 32, +650 MB at 64).
        """
        settings = self.settings
        image = manifest.is_image
        return {
            "max_size": min(settings.batch_max_size, IMAGE_BATCH)
            if image
            else settings.batch_max_size,
            "max_wait_ms": settings.batch_max_wait_ms,
            "inline_below_ms": 0.0 if image else settings.batch_inline_below_ms,
        }

    async def load_all(self) -> None:
        """Eager loading: every model's default version."""
        for summary in await asyncio.to_thread(self.store.list_models):
            try:
                await self.get(summary.name)
            except ModelportError as exc:
                log.error("model %s not loaded at start: %s", summary.name, exc.message)

    async def refresh(self) -> None:
        """Follow the store: swap in new versions, drop deleted ones, unload idle ones."""
        generation = await asyncio.to_thread(self.store.generation)
        if generation != self.generation:
            followed = [
                await self._follow(ref, current) for ref, current in list(self._by_ref.items())
            ]
            if all(followed):  # otherwise the next poll tries again
                self.generation = generation
        self._unload_idle()
        self._forget_unreferenced()

    async def _follow(self, ref: str, current: LoadedModel) -> bool:
        """Point ``ref`` at what it resolves to now; False if that could not be done."""
        try:
            manifest = await asyncio.to_thread(self.store.manifest, ref)
        except ModelNotFound:
            self._by_ref.pop(ref, None)
            return True
        except Exception as exc:  # a database hiccup: keep serving, retry at the next poll
            log.error("cannot re-resolve %s: %s", ref, exc)
            return False
        if (manifest.name, manifest.version) == current.key:
            return True
        if (manifest.name, manifest.version or 0) in self.failures:
            return True  # a file that failed to load will not load on retry: keep the old one
        try:
            self._by_ref[ref] = await self._load_version(manifest)
            log.info("%s now serves version %s", ref, manifest.version)
            return True
        except ModelportError:
            return False  # logged in _load_version; the old version keeps serving

    def _unload_idle(self) -> None:
        if self.settings.unload_after <= 0:
            return
        cutoff = time.monotonic() - self.settings.unload_after
        for ref, model in list(self._by_ref.items()):
            if model.last_used < cutoff:
                del self._by_ref[ref]

    def _forget_unreferenced(self) -> None:
        used = {model.key for model in self._by_ref.values()}
        for key in [k for k in self._by_version if k not in used]:
            del self._by_version[key]
            log.info("unloaded model %s:%s", *key)
        self.metrics.loaded.set(len(self._by_version))

    def loaded(self) -> list[LoadedModel]:
        return list(self._by_version.values())
