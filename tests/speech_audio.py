"""Spoken test audio made on the spot by espeak-ng: from the espeakng-loader wheel (no system
package), else the ``espeak-ng`` command (apt), else none (tests that need it skip)."""

from __future__ import annotations

import ctypes
import functools
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from modelport.runtime.audio import to_wav

SYNCHRONOUS, UTF8, RATE_PARAMETER = 2, 1, 1  # espeak_AUDIO_OUTPUT, espeakCHARS_UTF8, espeakRATE
_lock = threading.Lock()


def speak(text: str, voice: str = "en-us", rate: int = 130) -> bytes:
    """``text`` spoken as a mono WAV file (at espeak-ng's own 22,050 Hz)."""
    engine = _engine()
    if engine is None:
        raise RuntimeError("espeak-ng is not available: pip install espeakng-loader")
    with _lock:
        return engine(text, voice, rate)


def available() -> bool:
    return _engine() is not None


@functools.cache
def _engine() -> Callable[[str, str, int], bytes] | None:
    try:
        import espeakng_loader
    except ImportError:
        return _command if shutil.which("espeak-ng") else None
    library = ctypes.CDLL(espeakng_loader.get_library_path())
    chunks: list[np.ndarray] = []
    callback_type = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
    )

    def collect(samples, count, _events):  # type: ignore[no-untyped-def]
        if count > 0:
            chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0

    callback = callback_type(collect)
    data = espeakng_loader.get_data_path().encode()
    rate = library.espeak_Initialize(SYNCHRONOUS, 0, data, 0)
    library.espeak_SetSynthCallback(callback)

    def synthesise(text: str, voice: str, words_per_minute: int) -> bytes:
        library.espeak_SetVoiceByName(voice.encode())
        library.espeak_SetParameter(RATE_PARAMETER, words_per_minute, 0)
        chunks.clear()
        encoded = text.encode() + b"\0"
        library.espeak_Synth(encoded, len(encoded), 0, 0, 0, UTF8, None, None)
        library.espeak_Synchronize()
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return to_wav(samples / np.float32(32768), rate)

    synthesise.keep = callback  # type: ignore[attr-defined]  # the C side holds a pointer to it
    return synthesise


def _command(text: str, voice: str, rate: int) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"  # -w: --stdout writes no sizes in its header
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(path), text], check=True
        )
        return path.read_bytes()
