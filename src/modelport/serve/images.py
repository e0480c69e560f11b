"""What the protocols share for image models: base64 images, multipart uploads, decoding off the
event loop, top-k, and the error that says which form of input a model takes."""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from ..artifact import Manifest
from ..errors import InvalidInput
from ..runtime import Prediction, image
from .context import Call, ServerContext
from .models import LoadedModel

DEFAULT_TOP_K = 5


def from_base64(value: Any, position: str) -> bytes:
    """An encoded image file from a base64 string, a ``data:`` URL or ``{"b64": "..."}``."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        value = value["b64"]
    if not isinstance(value, str):
        raise InvalidInput(
            f"{position} is {_kind(value)}; send each image as a base64 string, a data: URL or "
            '{"b64": "<base64>"} holding the encoded file (JPEG, PNG, WebP ...).'
        )
    if value.startswith("data:"):
        _, _, value = value.partition(",")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        # wrapped lines (base64 without -w0), the URL-safe alphabet, padding left off
        text = "".join(value.split()).replace("-", "+").replace("_", "/")
        try:
            data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(
                f"{position} is not valid base64. Encode the image file's bytes as base64 "
                "(e.g. base64 -w0 photo.jpg), optionally as a data: URL."
            ) from None
    if not data:
        raise InvalidInput(f"{position} is empty: send the whole image file, base64-encoded.")
    return data


def _kind(value: Any) -> str:
    return "null" if value is None else f"a JSON {type(value).__name__}"


async def predict(
    ctx: ServerContext, call: Call, model: LoadedModel, images: list[Any]
) -> Prediction:
    """Predict images given as file bytes or base64 forms (see :func:`from_base64`), a chunk
    of at most the batcher's size at a time: a CNN's memory grows with its batch (the labeller
    needs ~650 MB more for 64 images), so a large request must not become one call. Chunks are
    decoded in a worker thread: a photo takes milliseconds, which on the event loop would stall
    every other request."""
    if not images:
        raise InvalidInput("There are no images to predict: the list is empty. Send at least one.")
    ctx.check_rows(len(images))  # before decoding any
    size, parts, seconds = model.batcher.max_size, [], 0.0
    for start in range(0, len(images), size):
        chunk = images[start : start + size]
        feeds = await asyncio.to_thread(_encode, model, chunk, start, len(images))
        parts.append(await ctx.predict(call, model, feeds))
        seconds += call.compute_seconds
    call.rows, call.compute_seconds = len(images), seconds
    return Prediction.concatenate(parts)


def _encode(model: LoadedModel, images: list[Any], first: int, count: int) -> dict[str, np.ndarray]:
    """The feeds for images ``first ...`` of a request of ``count`` (errors name their place in
    the whole request, not in the chunk)."""
    spec = model.predictor.image_spec
    assert spec is not None
    batch = np.empty((len(images), spec.size, spec.size, 3), dtype=np.uint8)
    for i, item in enumerate(images):
        name = image.position(first + i, count)
        data = item if isinstance(item, bytes) else from_base64(item, name)
        batch[i] = image.prepare_one(data, spec, name)
    return {model.manifest.inputs[0].onnx_name or "image": batch}


def top_k(value: Any, classes: int) -> int:
    """The ``top_k`` a request asks for (None: the default), as a positive int."""
    if value is None:
        return min(DEFAULT_TOP_K, classes)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(
            f"top_k must be a positive integer (how many labels to return per image), not "
            f"{value!r}."
        )
    return min(value, classes)


def flag(value: Any, name: str) -> bool:
    """A yes/no request option, from JSON (true/false) or a form field ("true", "1" ...)."""
    if value is None:
        return False
    if isinstance(value, str):
        value = {"true": True, "1": True, "false": False, "0": False}.get(value.strip().lower())
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be true or false.")
    return value


def classes(manifest: Manifest) -> int:
    return len(manifest.class_labels or []) or 1


def ranked(prediction: Prediction, k: int) -> list[list[dict[str, Any]]]:
    """The ``k`` best labels per image, ``[{"label", "score"}]``; empty lists for a model
    without probabilities."""
    return prediction.top_k(k) or [[] for _ in range(len(prediction))]


def wrong_form(manifest: Manifest, images_sent: bool, how: str) -> InvalidInput:
    """The 400 for rows sent to an image model, or images to a tabular one; ``how`` shows the
    form the model takes in the caller's protocol."""
    if images_sent:
        return InvalidInput(
            f"Model '{manifest.name}' takes rows of the columns {', '.join(manifest.columns)}, "
            f"not images. Send {how}."
        )
    return InvalidInput(f"Model '{manifest.name}' takes images, not rows. Send {how}.")


@dataclass
class Form:
    """A multipart/form-data body: the files it holds (in order) and its text fields."""

    files: list[bytes]
    fields: dict[str, str]

    @classmethod
    async def parse(cls, headers: Headers, body: bytes, max_files: int, known: set[str]) -> Form:
        """Parse a body already read within the size limit; text fields other than ``known``
        are refused (``-F image=photo.jpg`` without ``@`` sends the name, not the file)."""

        async def stream() -> AsyncIterator[bytes]:
            yield body

        try:
            form = await MultiPartParser(headers, stream(), max_files=max_files).parse()
        except MultiPartException as exc:
            raise InvalidInput(
                f"The multipart form cannot be read: {exc.message}. Send image files as form "
                "fields, e.g. curl -F image=@photo.jpg."
            ) from None
        files, fields = [], {}
        try:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    files.append(await value.read())
                elif name in known:
                    fields[name] = value
                else:
                    raise InvalidInput(
                        f"The form field '{name}' holds text, not a file. Attach image files "
                        f"(with curl, put @ before the path: -F {name}=@photo.jpg); the only text "
                        f"fields are {', '.join(sorted(known))}."
                    )
        finally:
            await form.close()
        return cls(files, fields)
