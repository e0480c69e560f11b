"""WAV decoding and resampling (runtime/audio.py) on generated tones and scipy's test files."""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from modelport.errors import InvalidInput
from modelport.runtime.audio import load_audio, read_wav, resample


def tone(rate: int, seconds: float = 1.0, hz: float = 440.0, channels: int = 1) -> bytes:
    """A 16-bit PCM WAV of a sine (the same in every channel), written by the stdlib."""
    t = np.arange(int(rate * seconds)) / rate
    samples = (0.5 * np.sin(2 * np.pi * hz * t) * 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(samples, channels).tobytes())
    return out.getvalue()


def float_wav(samples: np.ndarray, rate: int) -> bytes:
    """A 32-bit float WAV (format 3), which the stdlib cannot write."""
    data = samples.astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * rate / len(samples))


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_tones_at_any_rate_become_16khz_mono_with_their_pitch(rate, channels):
    samples = load_audio(tone(rate, channels=channels), 16000)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert len(samples) == 16000
    assert abs(peak_hz(samples, 16000) - 440) <= 1.0
    assert 0.45 < np.abs(samples).max() < 0.55


def test_float_samples_are_read_as_written():
    written = np.sin(np.linspace(0, 20, 800)).astype(np.float32) * 0.9
    samples, rate = read_wav(float_wav(written, 8000))
    assert rate == 8000
    np.testing.assert_array_equal(samples, written)


def test_resampling_keeps_length_and_drops_what_the_new_rate_cannot_hold():
    rate = 48000
    t = np.arange(rate) / rate
    low, high = np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 12000 * t)
    out = resample((low + high).astype(np.float32), rate, 16000)
    assert len(out) == 16000
    expected = np.sin(2 * np.pi * 300 * np.arange(16000) / 16000)
    assert np.abs(out - expected).max() < 1e-3  # 12 kHz is above 8 kHz: dropped, not folded


def scipy_files() -> list[Path]:
    scipy = pytest.importorskip("scipy")
    folder = Path(scipy.__file__).parent / "io" / "tests" / "data"
    return sorted(folder.glob("*.wav"))


def test_the_wav_variants_scipy_tests_with_decode_as_scipy_reads_them():
    from scipy.io import wavfile

    compared = 0
    for path in scipy_files():
        try:
            rate, expected = wavfile.read(path)
        except Exception:  # noqa: BLE001 - files scipy itself refuses: checked below
            continue
        if "ulaw" in path.name or "early-eof" in path.name:
            continue  # read by scipy (with a warning when cut short), refused here: tested below
        if expected.dtype == np.uint8:
            expected = (expected.astype(np.float64) - 128) / 128
        elif expected.dtype.kind == "i":
            expected = expected / 2.0 ** (8 * expected.dtype.itemsize - 1)
        expected = expected.reshape(len(expected), -1).mean(axis=1)
        samples, found = read_wav(path.read_bytes())
        assert found == rate, path.name
        np.testing.assert_allclose(samples, expected, atol=1e-6, err_msg=path.name)
        compared += 1
    assert compared >= 12


def test_compressed_cut_short_and_foreign_files_get_a_clear_error():
    files = {p.name: p.read_bytes() for p in scipy_files()}
    with pytest.raises(InvalidInput, match="compressed \\(mu-law\\).*ffmpeg"):
        read_wav(files["test-8000Hz-le-1ch-1byte-ulaw.wav"])
    with pytest.raises(InvalidInput, match="cut short"):
        read_wav(files["test-44100Hz-le-1ch-4bytes-early-eof.wav"])
    with pytest.raises(InvalidInput, match="an MP3 file, not a WAV file.*ffmpeg"):
        read_wav(b"ID3\x04\x00" + bytes(100))
    with pytest.raises(InvalidInput, match="is empty, not a WAV file"):
        read_wav(b"")
    with pytest.raises(InvalidInput, match="no audio samples"):
        read_wav(tone(8000, seconds=0))


def test_a_recording_over_the_limit_is_refused_before_decoding():
    with pytest.raises(InvalidInput, match="lasts 3 s; this model takes at most 2 s"):
        read_wav(tone(8000, seconds=3), max_seconds=2)
