"""Turn photos (encoded bytes, file paths, PIL images, arrays) into the tensor image models take.

This is the one place images are decoded and resized, for training, the CLI, the server and the
device, so all of them feed a graph the same pixels. The steps are recorded in the manifest
(``preprocessing["image"]``, see :class:`ImageSpec`): decode (JPEG, PNG, WebP, BMP, TIFF, still
GIF), turn by the EXIF orientation, make RGB (alpha over white, 16-bit scaled to 8), resize the
shorter side to ``size / crop_fraction`` and cut the centre ``size`` x ``size``. The graph takes
those pixels as uint8 ``[n, size, size, 3]`` and normalises them itself.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInput, MissingDependency, PayloadTooLarge

MAX_PIXELS = 100_000_000
"""Larger images are refused before they are decoded (a 20,000 x 20,000 PNG is 1.2 GB of pixels)."""
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


@dataclass(frozen=True)
class ImageSpec:
    """How an image model's input pixels are made; stored as ``manifest.preprocessing["image"]``."""

    size: int = 224
    crop_fraction: float = 0.875
    resample: str = "bilinear"
    mean: float = 127.0
    std: float = 128.0
    """Normalisation ``(pixel - mean) / std``, applied inside the graph (recorded for reference)."""

    def __post_init__(self) -> None:
        if not (16 <= self.size <= 1024 and 0 < self.crop_fraction <= 1):
            raise InvalidInput(
                f"An image spec needs 16 <= size <= 1024 and 0 < crop_fraction <= 1; got size "
                f"{self.size}, crop_fraction {self.crop_fraction}."
            )

    @classmethod
    def from_manifest(cls, preprocessing: dict[str, Any]) -> ImageSpec:
        try:
            return cls(**preprocessing["image"])
        except (KeyError, TypeError) as exc:
            raise InvalidInput(
                f"The manifest of this image model has no valid preprocessing['image'] ({exc}); "
                "re-export the model with modelport."
            ) from exc

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow is a base dependency
        raise MissingDependency(
            "Image models need Pillow to decode photos: pip install pillow"
        ) from exc
    return Image


def is_image_like(value: Any) -> bool:
    """True for one image (not a batch): bytes, a path, a PIL image, or an array of rank 2 or 3."""
    Image = _pil()
    if isinstance(value, bytes | bytearray | memoryview | str | os.PathLike | Image.Image):
        return True
    return isinstance(value, np.ndarray) and value.ndim in (2, 3)


def prepare(images: Any, spec: ImageSpec) -> np.ndarray:
    """One image or a batch of them -> uint8 ``[n, size, size, 3]``."""
    if is_image_like(images):
        images = [images]
    elif not isinstance(images, Sequence | np.ndarray) or isinstance(images, str):
        raise InvalidInput(
            f"Cannot read images from a {type(images).__name__}. Pass JPEG/PNG/WebP bytes, a "
            "file path, a PIL image, an array of shape (height, width, 3), or a list of these."
        )
    if isinstance(images, np.ndarray) and images.ndim != 4:
        raise InvalidInput(
            f"An array of shape {images.shape} is neither an image (height, width[, 3 or 4]) nor "
            "a batch of them (n, height, width, 3). Reshape it, or pass a list of images."
        )
    if len(images) == 0:
        raise InvalidInput("There are no images to predict: the list is empty. Send at least one.")
    batch = np.empty((len(images), spec.size, spec.size, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        name = _describe(image, i, len(images))
        if not is_image_like(image) and not isinstance(image, np.ndarray):
            raise InvalidInput(
                f"Got a {type(image).__name__} where an image was expected: this model takes "
                "images, not rows. Pass JPEG/PNG/WebP bytes, a file path, a PIL image or an array "
                "of shape (height, width, 3), or a list of these."
            )
        batch[i] = prepare_one(image, spec, name=name)
    return batch


def prepare_one(image: Any, spec: ImageSpec, name: str = "the image") -> np.ndarray:
    """One image -> uint8 ``[size, size, 3]``; InvalidInput names ``name`` when it is unusable."""
    picture = to_rgb(image, name, draft=spec.size / spec.crop_fraction)
    return _resize_crop(picture, spec)


def to_rgb(image: Any, name: str = "the image", draft: float | None = None) -> Any:
    """A decoded, upright, 8-bit RGB PIL image. ``draft`` (pixels on the shorter side) lets a JPEG
    decode at a reduced scale that still has at least that many."""
    Image = _pil()
    from PIL import ImageOps

    if isinstance(image, np.ndarray):
        return _from_array(image, name)
    picture = image if isinstance(image, Image.Image) else _open(image, name)
    if getattr(picture, "is_animated", False):
        raise InvalidInput(
            f"{name} is an animated image ({picture.n_frames} frames). Send a single still "
            "frame as JPEG or PNG."
        )
    width, height = picture.size
    if width * height > MAX_PIXELS:
        raise PayloadTooLarge(
            f"{name} is {width} x {height} pixels, more than the {MAX_PIXELS:,} pixels modelport "
            "decodes. Scale it down before sending it."
        )
    if draft and picture.format == "JPEG":
        side = int(np.ceil(draft))
        picture.draft(None, (side, side))
    try:
        picture.load()
        picture = ImageOps.exif_transpose(picture)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidInput(
            f"{name} cannot be decoded ({exc}): the file is corrupt or truncated. Send the "
            "whole file."
        ) from exc
    return _rgb(picture)


def _open(source: Any, name: str) -> Any:
    Image = _pil()
    if isinstance(source, str | os.PathLike):
        try:
            handle: Any = open(source, "rb")  # noqa: SIM115 - PIL reads lazily; load() closes it
        except OSError as exc:
            raise InvalidInput(f"Cannot read the image file {source}: {exc.strerror}.") from exc
    else:
        handle = io.BytesIO(bytes(source))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(handle, formats=FORMATS)
    except Image.DecompressionBombError as exc:  # PIL's own limit, about twice modelport's
        raise PayloadTooLarge(
            f"{name} is larger than the {MAX_PIXELS:,} pixels modelport decodes. Scale it down "
            "before sending it."
        ) from exc
    except Image.UnidentifiedImageError as exc:  # its text holds the repr of a file object
        raise InvalidInput(
            f"{name} is not an image: it holds no JPEG, PNG, WebP, BMP, TIFF or GIF data. Send "
            "a photo in one of those formats."
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInput(
            f"{name} cannot be decoded ({exc}): the file is corrupt or truncated. Send the "
            "whole file."
        ) from exc


def _rgb(picture: Any) -> Any:
    """8-bit RGB from any mode: transparency over white, 16-bit and float scaled to 0..255."""
    Image = _pil()
    mode = picture.mode
    if mode == "RGB":
        return picture
    if mode in SIXTEEN_BIT or mode == "F":
        scale = 1.0 if mode == "F" else 257.0
        pixels = np.clip(np.asarray(picture, dtype=np.float64) / scale, 0, 255)
        return Image.fromarray(np.round(pixels).astype(np.uint8), "L").convert("RGB")
    if mode == "P" and "transparency" in picture.info:
        picture, mode = picture.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = picture.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return picture.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def _from_array(array: np.ndarray, name: str) -> Any:
    """An array of shape (h, w), (h, w, 1), (h, w, 3) or (h, w, 4): uint8, uint16 or floats in 0..1."""
    Image = _pil()
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InvalidInput(
            f"{name} is an array of shape {array.shape}; an image array has shape (height, "
            "width), (height, width, 3) or (height, width, 4)."
        )
    if array.size == 0:
        raise InvalidInput(f"{name} is an empty array.")
    if array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise PayloadTooLarge(
            f"{name} has more than the {MAX_PIXELS:,} pixels modelport decodes; scale it down."
        )
    if array.dtype == np.uint16:
        array = np.round(array / 257.0).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise InvalidInput(
                f"{name} is a float array with values outside 0..1; pass floats in 0..1 or "
                "uint8 pixels in 0..255."
            )
        array = np.round(array * 255.0).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise InvalidInput(
            f"{name} is an array of {array.dtype}; pass uint8 pixels (0..255), uint16 or floats "
            "in 0..1."
        )
    return _rgb(Image.fromarray(np.ascontiguousarray(array)))


def _resize_crop(picture: Any, spec: ImageSpec) -> np.ndarray:
    """Resize the shorter side to ``size / crop_fraction`` and cut the centre square, in one
    resampling (PIL's ``box`` resizes only the region that is kept)."""
    Image = _pil()
    width, height = picture.size
    side = min(width, height) * spec.crop_fraction  # the kept square, in source pixels
    left, top = (width - side) / 2, (height - side) / 2
    resampled = picture.resize(
        (spec.size, spec.size),
        Image.Resampling.BILINEAR,
        box=(left, top, left + side, top + side),
    )
    return np.asarray(resampled, dtype=np.uint8)


def _describe(image: Any, index: int, count: int) -> str:
    if isinstance(image, str | os.PathLike):
        return f"The image {os.fspath(image)}"
    return position(index, count)


def position(index: int, count: int) -> str:
    """How an error names an image given without a file name: its place in the request."""
    return "The file" if count == 1 else f"Image {index + 1} of {count}"
