"""Photos as the server's simple JSON API takes them: base64 strings of encoded files.

Encoded files (bytes, paths, PIL images whose pixels are not read yet) are sent as they are, so
the server decodes exactly what the device would; other PIL images and arrays are sent as
lossless PNG of their upright RGB pixels.
"""

from __future__ import annotations

import base64
import io
import os
from typing import Any

import numpy as np

from ..errors import InvalidInput
from ..runtime import image


def looks_like_images(inputs: Any) -> bool:
    """True for one image or a non-empty batch of them (a list, or a 4-D array); rows (dicts, a
    DataFrame, columns) are not images."""
    if image.is_image_like(inputs):
        return True
    if isinstance(inputs, np.ndarray):
        return inputs.ndim == 4
    return (
        isinstance(inputs, list | tuple)
        and len(inputs) > 0
        and all(image.is_image_like(item) for item in inputs)
    )


def as_base64(images: Any) -> list[str]:
    """One base64 string per image, for ``{"images": [...]}``."""
    if image.is_image_like(images):
        images = [images]
    if not looks_like_images(images):
        raise InvalidInput(
            f"Cannot read images from a {type(images).__name__}. Pass JPEG/PNG/WebP bytes, a "
            "file path, a PIL image, an array of shape (height, width, 3), or a list of these."
        )
    return [
        base64.b64encode(_encoded(item, f"Image {i + 1} of {len(images)}")).decode("ascii")
        for i, item in enumerate(images)
    ]


def _encoded(item: Any, name: str) -> bytes:
    if isinstance(item, bytes | bytearray | memoryview):
        return bytes(item)
    if isinstance(item, str | os.PathLike):
        try:
            with open(item, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise InvalidInput(f"Cannot read the image file {item}: {exc.strerror}.") from exc
    original = _unread_file(item)
    if original is not None:
        return original
    buffer = io.BytesIO()
    image.to_rgb(item, name).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _unread_file(item: Any) -> bytes | None:
    """The file a PIL image was opened from, while its pixels are still unread: the device may
    decode such a JPEG at a reduced scale, so the server gets the same file to do the same."""
    handle = getattr(item, "fp", None)  # PIL's ImageFile: its file, and tiles still to decode
    if handle is None or not getattr(item, "tile", None):
        return None
    position = handle.tell()
    handle.seek(0)
    data = handle.read()
    handle.seek(position)
    return data
