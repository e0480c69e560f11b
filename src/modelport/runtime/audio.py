"""Audio for sound and speech models: WAV files decoded to mono float32 at the model's rate.

numpy and the standard library only, so the device decodes audio exactly as the server does.
Python's ``wave`` module reads only integer PCM; this reads what recorders and phones write:
RIFF, RIFX (big-endian) and RF64 files of integer PCM (8 to 64 bits, any container) or floats,
plain or WAVE_FORMAT_EXTENSIBLE, any number of channels (averaged to one). Compressed audio
(MP3, FLAC, Ogg, AAC, mu-law, ADPCM) is refused with the command that converts it. The header is
read first, so a recording longer than the limit is refused before its samples are decoded.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInput

MAX_SECONDS = 600.0
"""The longest recording a model takes by default (a limit, said in the error, not a cut)."""
CONVERT = "convert it to WAV, e.g. `ffmpeg -i input -ac 1 -ar 16000 output.wav`"
PCM, FLOAT, EXTENSIBLE = 1, 3, 0xFFFE
OTHER_CODECS = {2: "MS ADPCM", 6: "A-law", 7: "mu-law", 17: "IMA ADPCM", 85: "MP3"}
CONTAINERS = {  # magic bytes of files people send instead of WAV
    b"ID3": "an MP3 file",
    b"\xff\xfb": "an MP3 file",
    b"\xff\xf3": "an MP3 file",
    b"fLaC": "a FLAC file",
    b"OggS": "an Ogg file",
}


@dataclass(frozen=True)
class WavFormat:
    """What a WAV header says about its samples."""

    rate: int
    channels: int
    width: int
    """Bytes per sample (the container: 20-bit audio is stored in 3 bytes)."""
    floats: bool
    big_endian: bool
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.rate


def load_audio(data: bytes, rate: int, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """The samples of a WAV file as mono float32 in [-1, 1] at ``rate`` Hz."""
    samples, found = read_wav(data, max_seconds)
    return resample(samples, found, rate)


def read_wav(data: bytes, max_seconds: float = MAX_SECONDS) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] (channels averaged) and their sample rate."""
    form, start = parse_header(data)
    if form.seconds > max_seconds:
        raise InvalidInput(
            f"The recording lasts {form.seconds:,.0f} s; this model takes at most "
            f"{max_seconds:,.0f} s. Cut it into shorter parts."
        )
    raw = data[start : start + form.frames * form.channels * form.width]
    return _decode(raw, form).reshape(form.frames, form.channels).mean(axis=1), form.rate


def parse_header(data: bytes) -> tuple[WavFormat, int]:
    """The format of a WAV file and where its samples start; InvalidInput for anything else."""
    head = bytes(data[:12])
    if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RIFX", b"RF64"):
        raise InvalidInput(f"The audio is {_kind(head)}, not a WAV file: {CONVERT}.")
    order = ">" if head[:4] == b"RIFX" else "<"
    fmt: tuple[int, ...] | None = None
    big_size = None  # RF64 keeps the data size in its ds64 chunk
    offset = 12
    while offset + 8 <= len(data):
        chunk, size = (
            data[offset : offset + 4],
            struct.unpack(order + "I", data[offset + 4 : offset + 8])[0],
        )
        body = offset + 8
        if chunk == b"ds64":
            big_size = struct.unpack("<Q", data[body + 8 : body + 16])[0]
        elif chunk == b"fmt ":
            fmt = _fmt(data[body : body + size], order)
        elif chunk == b"data":
            if fmt is None:
                raise InvalidInput(
                    f"The WAV file has no format chunk before its samples: {CONVERT}."
                )
            if big_size is not None and size == 0xFFFFFFFF:
                size = big_size
            return _format(fmt, order, size, len(data) - body), body
        offset = body + size + (size & 1)
    raise InvalidInput("The WAV file holds no audio samples (no data chunk): it may be cut short.")


def _fmt(chunk: bytes, order: str) -> tuple[int, ...]:
    if len(chunk) < 16:
        raise InvalidInput(f"The WAV file's format chunk is damaged: {CONVERT}.")
    tag, channels, rate, _, align, bits = struct.unpack(order + "HHIIHH", chunk[:16])
    if tag == EXTENSIBLE and len(chunk) >= 28:
        tag = struct.unpack(order + "I", chunk[24:28])[0]  # the sub-format GUID's first field
    return tag, channels, rate, align, bits


def _format(fmt: tuple[int, ...], order: str, size: int, available: int) -> WavFormat:
    tag, channels, rate, align, bits = fmt
    if tag not in (PCM, FLOAT):
        codec = OTHER_CODECS.get(tag, f"format {tag}")
        raise InvalidInput(f"The WAV file is compressed ({codec}); {CONVERT}.")
    if not channels or not rate or not align or align % channels:
        raise InvalidInput(f"The WAV file's format chunk is damaged: {CONVERT}.")
    width = align // channels
    if width > 8 or (tag == FLOAT and width not in (4, 8)):
        raise InvalidInput(f"The WAV file has {bits}-bit samples, which cannot be read: {CONVERT}.")
    if size > available:
        raise InvalidInput(
            f"The WAV file is cut short: it declares {size:,} bytes of audio but holds "
            f"{max(available, 0):,}. Send the whole file."
        )
    frames = size // align
    if not frames:
        raise InvalidInput("The WAV file holds no audio samples.")
    return WavFormat(rate, channels, width, tag == FLOAT, order == ">", frames)


def _decode(raw: bytes, form: WavFormat) -> np.ndarray:
    """Samples as float32 in [-1, 1]: integers of any width are scaled by their container."""
    order = ">" if form.big_endian else "<"
    if form.floats:
        return np.frombuffer(raw, dtype=f"{order}f{form.width}").astype(np.float32)
    if form.width == 1:  # 8-bit WAV is unsigned
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128) / 128
    bytes_ = np.frombuffer(raw, dtype=np.uint8).reshape(-1, form.width)
    if form.big_endian:
        bytes_ = bytes_[:, ::-1]
    wide = np.zeros((len(bytes_), 8), dtype=np.uint8)  # the sample in the top bytes of an int64
    wide[:, 8 - form.width :] = bytes_
    return (wide.view("<i8").reshape(-1) / 2.0**63).astype(np.float32)


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``samples`` at ``target`` Hz, band-limited (by FFT: frequencies above both Nyquist
    limits are dropped, none are folded back)."""
    if rate == target or not len(samples):
        return samples.astype(np.float32, copy=False)
    size = max(1, round(len(samples) * target / rate))
    spectrum = np.fft.rfft(samples.astype(np.float64))
    kept = np.zeros(size // 2 + 1, dtype=complex)
    bins = min(len(kept), len(spectrum))
    kept[:bins] = spectrum[:bins]
    return (np.fft.irfft(kept, size) * (size / len(samples))).astype(np.float32)


def _kind(head: bytes) -> str:
    for magic, kind in CONTAINERS.items():
        if head.startswith(magic):
            return kind
    if head[4:8] == b"ftyp":
        return "an MP4/M4A file"
    return "empty" if not head else "not a recognised audio file"


def recording(item: Any, rate: int, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """One recording as mono float32 at ``rate`` Hz: WAV bytes, the path of a WAV file, or
    ``(samples, sample_rate)`` (1-D, or [frames, channels] averaged; floats in [-1, 1] or
    integers)."""
    if isinstance(item, bytes | bytearray | memoryview):
        return load_audio(bytes(item), rate, max_seconds)
    if isinstance(item, str | os.PathLike):
        try:
            data = Path(item).read_bytes()
        except OSError as exc:
            raise InvalidInput(f"Cannot read the recording {item}: {exc.strerror}.") from exc
        return load_audio(data, rate, max_seconds)
    if is_samples(item):
        samples, found = np.asarray(item[0]), int(item[1])
        if samples.ndim == 2:
            samples = samples.mean(axis=1)  # channels averaged, as for WAV files
        if samples.ndim != 1 or samples.dtype.kind not in "if" or found <= 0:
            raise InvalidInput(
                "Give samples as (array, sample_rate): a 1-D array (or [frames, channels]) "
                "of floats in [-1, 1] or integers, and a positive rate in Hz."
            )
        if len(samples) > max_seconds * found:
            raise InvalidInput(
                f"The recording lasts {len(samples) / found:,.0f} s; this model takes at most "
                f"{max_seconds:,.0f} s. Cut it into shorter parts."
            )
        if samples.dtype.kind == "i":
            samples = samples / (np.iinfo(samples.dtype).max + 1.0)
        return resample(samples.astype(np.float32), found, rate)
    raise InvalidInput(
        f"A recording is WAV bytes, the path of a WAV file or (samples, sample_rate), not "
        f"{type(item).__name__}."
    )


def is_samples(item: Any) -> bool:
    """True for ``(samples, sample_rate)``."""
    return isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], int | np.integer)


def is_recording(item: Any) -> bool:
    """True for one recording as :func:`recording` reads it: bytes of a WAV file, the path of a
    ``.wav`` file, or ``(samples, sample_rate)``."""
    if isinstance(item, bytes | bytearray | memoryview):
        return bytes(item[:4]) in (b"RIFF", b"RIFX", b"RF64") and bytes(item[8:12]) == b"WAVE"
    if isinstance(item, str | os.PathLike):
        return str(item).lower().endswith(".wav")
    return is_samples(item)


def peak_dbfs(samples: np.ndarray) -> float:
    """The loudest sample, in dB below full scale (-inf for digital silence)."""
    peak = float(np.abs(samples).max()) if len(samples) else 0.0
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def trim(samples: np.ndarray, rate: int, top_db: float, frame_seconds: float) -> np.ndarray:
    """``samples`` from the first to the last frame whose RMS is within ``top_db`` of the
    loudest frame's (quiet lead-in and tail cut off)."""
    frame = max(1, round(frame_seconds * rate))
    count = len(samples) // frame
    if count < 2:
        return samples
    frames = samples[: count * frame].reshape(count, frame).astype(np.float64)
    rms = np.sqrt((frames**2).mean(axis=1))
    loud = np.flatnonzero(rms >= rms.max() * 10 ** (-top_db / 20))
    return samples[loud[0] * frame : (loud[-1] + 1) * frame]


def fit_window(samples: np.ndarray, length: int) -> np.ndarray:
    """``samples`` centred in ``length``: padded with silence on both sides, or cropped."""
    if len(samples) >= length:
        start = (len(samples) - length) // 2
        return samples[start : start + length]
    out = np.zeros(length, dtype=np.float32)
    start = (length - len(samples)) // 2
    out[start : start + len(samples)] = samples
    return out


def to_wav(samples: np.ndarray, rate: int) -> bytes:
    """Mono float32 samples as a 32-bit float WAV file (what :func:`read_wav` reads back
    exactly)."""
    data = np.asarray(samples, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", FLOAT, 1, rate, rate * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body
