"""Bad and odd photos: the one decoder (runtime/image.py) refuses what it cannot read with one
paragraph and reads every odd-but-valid photo the way the model expects, directly and through
`modelport predict`."""

from __future__ import annotations

import hashlib
import io
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_sample_images

from modelport.errors import InvalidInput, PayloadTooLarge
from modelport.runtime import Predictor
from modelport.runtime.image import ImageSpec, prepare, to_rgb

from .conftest import zoo_model

SPEC = ImageSpec(size=224)  # the labeller's
RED, BLUE, GREEN, WHITE = (255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 255)


def encoded(image: Image.Image, format: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def photo_jpeg() -> bytes:
    return encoded(Image.fromarray(load_sample_images().images[0]), "JPEG", quality=90)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` RGB pixels and holds a few bytes of them."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (32, 32), colour) for colour in (RED, BLUE, GREEN)]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def halves(left: tuple[int, ...], right: tuple[int, ...], mode: str = "RGB") -> Image.Image:
    """A 320 x 160 landscape: ``left`` on the left half, ``right`` on the right."""
    image = Image.new(mode, (320, 160), right)
    image.paste(left, (0, 0, 160, 160))
    return image


# --- refused ----------------------------------------------------------------------------------

BAD = {
    "corrupt.jpg": (lambda: b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8, "is not an image"),
    "truncated.jpg": (lambda: photo_jpeg()[: len(photo_jpeg()) // 2], "corrupt or truncated"),
    "notes.jpg": (lambda: b"these are my notes, not a photo\n" * 20, "is not an image"),
    "animated.gif": (animated_gif, "is an animated image (3 frames)"),
    "huge.png": (lambda: png_header_only(20_000, 20_000), "than the 100,000,000 pixels"),
}


@pytest.mark.parametrize("name", BAD)
def test_unreadable_photos_are_refused_with_one_paragraph(name, tmp_path):
    make, says = BAD[name]
    path = tmp_path / name
    path.write_bytes(make())
    for source in (path.read_bytes(), path, str(path)):
        error = PayloadTooLarge if name == "huge.png" else InvalidInput
        with pytest.raises(error) as raised:
            prepare(source, SPEC)
        assert says in str(raised.value) and "\n" not in str(raised.value)
        assert "<_io" not in str(raised.value)  # no object reprs in a message for people
    assert str(path) in str(raised.value)  # a path is named in its error


@pytest.mark.parametrize("width, height", [(20_000, 20_000), (12_000, 10_000)])
def test_a_huge_image_is_refused_before_it_is_decoded(width, height):
    # 400 MP is over PIL's own bomb limit; 120 MP is between its warning and modelport's limit
    start = time.perf_counter()
    with pytest.raises(PayloadTooLarge, match="than the 100,000,000 pixels modelport decodes"):
        prepare(png_header_only(width, height), SPEC)
    assert time.perf_counter() - start < 1
    with pytest.raises(PayloadTooLarge):  # an array that large is refused before it is resized
        prepare(np.broadcast_to(np.uint8(0), (height, width)), SPEC)


@pytest.mark.parametrize(
    "value, says",
    [
        ([], "the list is empty"),
        (np.zeros((0, 0, 3), np.uint8), "empty array"),
        (np.zeros((8, 8, 2), np.uint8), "shape (8, 8, 2)"),
        (np.zeros(5), "shape (5,)"),
        (np.full((8, 8, 3), 1.5), "outside 0..1"),
        (np.full((8, 8, 3), -0.1), "outside 0..1"),
        (np.full((8, 8, 3), np.nan), "outside 0..1"),
        (np.zeros((8, 8, 3), np.int64), "array of int64"),
        (42, "Cannot read images from a int"),
        ("no/such/photo.jpg", "Cannot read the image file no/such/photo.jpg"),
    ],
    ids=repr,
)
def test_inputs_that_are_not_images_are_refused(value, says):
    with pytest.raises(InvalidInput) as raised:
        prepare(value, SPEC)
    assert says in str(raised.value)


# --- read correctly ---------------------------------------------------------------------------


def test_grayscale_becomes_three_equal_channels():
    ramp = np.tile(np.arange(256, dtype=np.uint8), (16, 1))
    rgb = np.asarray(to_rgb(encoded(Image.fromarray(ramp, "L"))))
    assert rgb.shape == (16, 256, 3) and (rgb == ramp[:, :, None]).all()
    assert (np.asarray(to_rgb(ramp)) == rgb).all()  # the same from an (h, w) array


def test_a_cmyk_jpeg_becomes_rgb():
    red = Image.new("CMYK", (64, 64), (0, 255, 255, 0))
    pixels = prepare(encoded(red, "JPEG", quality=95), SPEC)
    assert np.abs(pixels.astype(int) - RED).max() <= 8


def test_sixteen_bit_is_scaled_to_eight():
    levels = np.array([[0, 257 * 100, 32768, 65535]], dtype=np.uint16).repeat(4, axis=0)
    data = encoded(Image.fromarray(levels))
    assert Image.open(io.BytesIO(data)).mode in ("I;16", "I")  # a real 16-bit PNG
    gray = np.asarray(to_rgb(data))[:, :, 0]
    assert (gray == [0, 100, 128, 255]).all()  # 65535 * 0.5 -> 128, not 255 or 0
    assert (prepare(np.full((8, 8), 32768, np.uint16), SPEC) == 128).all()
    assert (np.asarray(to_rgb(np.stack([levels] * 3, axis=2)))[:, :, 1] == gray).all()


@pytest.mark.parametrize(
    "rgba, expected",
    [((0, 0, 0, 0), WHITE), ((255, 0, 0, 128), (255, 127, 127)), ((0, 0, 255, 255), BLUE)],
)
def test_transparency_is_laid_over_white(rgba, expected):
    image = Image.new("RGBA", (64, 64), rgba)
    for source in (encoded(image), image, np.asarray(image)):
        assert np.abs(prepare(source, SPEC).astype(int) - expected).max() <= 1


def test_a_palette_png_with_a_transparent_entry():
    image = Image.new("P", (320, 160), 1)
    image.putpalette([0, 0, 0, *GREEN] + [0] * 762)
    image.paste(0, (0, 0, 160, 160))
    rgb = np.asarray(to_rgb(encoded(image, transparency=0)))
    assert (rgb[:, :160] == WHITE).all() and (rgb[:, 160:] == GREEN).all()


@pytest.mark.parametrize(
    "orientation, upright",
    [
        (6, Image.Transpose.ROTATE_270),
        (8, Image.Transpose.ROTATE_90),
        (3, Image.Transpose.ROTATE_180),
    ],
)
def test_an_exif_rotated_jpeg_is_turned_upright(orientation, upright):
    landscape = halves(RED, BLUE)
    landscape.paste(GREEN, (0, 0, 40, 40))  # a corner tells a turn from a mirror
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(landscape, "JPEG", quality=95, exif=exif.tobytes())
    picture = to_rgb(data)
    expected = np.asarray(landscape.transpose(upright), dtype=int)
    assert picture.size == landscape.transpose(upright).size
    assert np.abs(np.asarray(picture, dtype=int) - expected).mean() < 3
    if orientation == 6:  # turned a quarter clockwise: the left half is now on top
        pixels = prepare(data, SPEC)[0].astype(int)
        assert np.abs(pixels[:100] - RED).max() < 30 and np.abs(pixels[-100:] - BLUE).max() < 30


def test_arrays_and_pil_images_match_their_encoded_photo():
    rgb = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    expected = prepare(encoded(Image.fromarray(rgb)), SPEC)
    assert (prepare(rgb, SPEC) == expected).all()
    assert (prepare(Image.fromarray(rgb), SPEC) == expected).all()
    assert (prepare(rgb / 255.0, SPEC) == expected).all()  # floats in 0..1
    assert (prepare(rgb.astype(np.uint16) * 257, SPEC) == expected).all()
    assert (prepare(rgb[:, :, :1], SPEC) == prepare(rgb[:, :, 0], SPEC)).all()
    batch = prepare(np.stack([rgb, rgb[::-1], rgb[:, ::-1]]), SPEC)  # a 4-D batch
    assert batch.shape == (3, 224, 224, 3) and (batch[0] == expected[0]).all()
    assert (batch[2] == prepare(np.ascontiguousarray(rgb[:, ::-1]), SPEC)[0]).all()
    with pytest.raises(InvalidInput, match="animated"):
        prepare(Image.open(io.BytesIO(animated_gif())), SPEC)


def test_decoding_is_deterministic_across_processes():
    data = photo_jpeg()
    pixels = prepare(data, SPEC)
    assert (prepare(data, SPEC) == pixels).all()
    script = (
        "import sys, hashlib; from modelport.runtime.image import ImageSpec, prepare; "
        "print(hashlib.sha256(prepare(sys.stdin.buffer.read(), ImageSpec()).tobytes()).hexdigest())"
    )
    other = subprocess.run([sys.executable, "-c", script], input=data, capture_output=True)
    assert other.stdout.decode().strip() == hashlib.sha256(pixels.tobytes()).hexdigest()


def test_jpeg_draft_decoding_labels_a_big_photo_like_full_decoding():
    # a 2560 x 1708 JPEG: draft mode decodes it at 1/4 scale (640 x 427), still >= 256 px
    china = Image.fromarray(load_sample_images().images[0])
    big = encoded(china.resize((2560, 1708), Image.Resampling.LANCZOS), "JPEG", quality=92)
    start = time.perf_counter()
    draft = prepare(big, SPEC)
    draft_seconds = time.perf_counter() - start
    start = time.perf_counter()
    full = prepare(Image.open(io.BytesIO(big)).convert("RGB"), SPEC)  # no draft: decoded whole
    full_seconds = time.perf_counter() - start
    assert np.abs(draft.astype(int) - full).mean() < 3
    predictor = Predictor(zoo_model("image-labeler"))
    a, b = predictor.run({"image": draft}), predictor.run({"image": full})
    assert a.predictions[0] == b.predictions[0] == "palace"
    difference = np.abs(a.probabilities - b.probabilities).max()
    assert difference < 0.05
    print(
        f"draft {draft_seconds * 1000:.0f} ms vs full {full_seconds * 1000:.0f} ms; "
        f"max probability difference {difference:.4f}"
    )


# --- through `modelport predict` --------------------------------------------------------------


def test_the_cli_labels_odd_photos_and_refuses_bad_ones(modelport, store, tmp_path):
    store.register(zoo_model("image-labeler"), name="labeler")
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "gray.png").write_bytes(encoded(halves(0, 255, "L")))
    (odd / "cmyk.jpg").write_bytes(encoded(Image.new("CMYK", (64, 64), (0, 255, 255, 0)), "JPEG"))
    (odd / "deep.png").write_bytes(encoded(Image.fromarray(np.full((64, 64), 40000, np.uint16))))
    (odd / "clear.png").write_bytes(encoded(Image.new("RGBA", (64, 64), (0, 0, 0, 0))))
    exif = Image.Exif()
    exif[0x0112] = 6
    (odd / "turned.jpg").write_bytes(encoded(halves(RED, BLUE), "JPEG", exif=exif.tobytes()))
    modelport("predict", "labeler", "odd", "--output", "odd.csv")
    assert len((tmp_path / "odd.csv").read_text().splitlines()) == 1 + 5

    for name, (make, says) in BAD.items():
        (tmp_path / name).write_bytes(make())
        result = modelport("predict", "labeler", name, "--output", "out.csv", check=False)
        message = " ".join(result.stderr.split())
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert message.startswith("error: ") and says in message and name in message
        assert not (tmp_path / "out.csv").exists()
