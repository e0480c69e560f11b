"""Frozen backbone features of photos, computed once and cached by what the photo is.

A photo's features depend only on its bytes and on the backbone (graph and preprocessing), so the
cache key is the SHA-256 of the file's bytes under a folder per backbone: training again on the
same photos, renamed or moved or in another dataset, skips the backbone. Photos are decoded by
``runtime/image.py`` and embedded by the runtime's :class:`Predictor`, the same code that serves
and runs the model on devices.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .._fs import atomic_write
from ..artifact import ModelArtifact
from ..errors import InvalidDataset, InvalidInput
from ..runtime import Predictor
from ..runtime.image import prepare
from ..runtime.predictor import IMAGE_BATCH

Progress = Callable[[int, int], None]
"""Called with (photos done, photos in all)."""


class FeatureCache:
    """``<folder>/<backbone key>/<ab>/<sha256>.npy``: one float32 vector per photo."""

    def __init__(self, folder: Path, backbone: ModelArtifact) -> None:
        manifest = backbone.manifest
        what = {"sha256": manifest.sha256, "image": manifest.preprocessing.get("image")}
        key = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:24]
        self.folder = folder / key

    def path(self, digest: str) -> Path:
        return self.folder / digest[:2] / f"{digest}.npy"

    def get(self, digest: str) -> np.ndarray | None:
        try:
            return np.load(self.path(digest), allow_pickle=False)
        except (OSError, ValueError):  # absent, or a partial file from a killed run
            return None

    def put(self, digest: str, vector: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, vector.astype(np.float32), allow_pickle=False)
        self.path(digest).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path(digest), buffer.getvalue())


class FeatureExtractor:
    """The backbone's ``embedding`` of photo files, through a :class:`FeatureCache`."""

    def __init__(self, backbone: ModelArtifact, cache_folder: Path) -> None:
        self.backbone = backbone
        self.predictor = Predictor(backbone)
        assert self.predictor.image_spec is not None
        self.spec = self.predictor.image_spec
        self.cache = FeatureCache(cache_folder, backbone)
        self.hits = 0
        self.digests: list[str] = []
        """SHA-256 of each photo of the last call."""

    def __call__(
        self, paths: Sequence[Path], progress: Progress | None = None, names: Sequence[str] = ()
    ) -> np.ndarray:
        """float32 [len(paths), d]; ``names`` name the photos in errors (default: their paths)."""
        self.digests = digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
        found = [self.cache.get(d) for d in digests]
        self.hits = sum(v is not None for v in found)
        todo = [i for i, v in enumerate(found) if v is None]
        done = len(paths) - len(todo)
        for start in range(0, len(todo), IMAGE_BATCH):
            chunk = todo[start : start + IMAGE_BATCH]
            pixels = np.stack([self._pixels(paths[i], names[i] if names else None) for i in chunk])
            vectors = self.predictor.embed({self._input: pixels})
            for i, vector in zip(chunk, vectors, strict=True):
                self.cache.put(digests[i], vector)
                found[i] = vector
            done += len(chunk)
            if progress:
                progress(done, len(paths))
        return np.stack([np.asarray(v, dtype=np.float32) for v in found])

    @property
    def _input(self) -> str:
        return self.backbone.manifest.inputs[0].onnx_name or "image"

    def _pixels(self, path: Path, name: str | None) -> np.ndarray:
        try:
            return prepare(path, self.spec)[0]
        except InvalidInput as exc:
            raise InvalidDataset(
                f"The photo {name or path} cannot be used ({exc.message}) Remove or replace it "
                "in the dataset, then train again; nothing was registered."
            ) from exc
