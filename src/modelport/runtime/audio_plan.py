"""One plan per audio classifier: recordings in any form become the graph's input, the same on the
device and on the server.

The graph (see export/audio_graph.py) takes raw 16 kHz audio of a fixed length and computes its
log-mel features itself; what stays here is what ``manifest.preprocessing["audio"]`` records
(:class:`AudioSpec`): decode the WAV (runtime/audio.py), mix down to mono, resample, refuse
silence, trim the quiet lead-in and tail by energy, scale the peak to 1 and centre the sound in
the window (padded with silence, or cropped). A request is *packed* into ``{"audio": float32
[n, samples]}``, which the server's batcher concatenates like any other block.

Where recordings come from decides what a string is: given directly (``predict("a.wav")``,
a list of them) a string is a file's path; inside rows, columns or wire tensors (what the
server's JSON carries) it is the base64 of a WAV file, so a request can never name a file on
the server.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..artifact import Manifest
from ..errors import InvalidInput, SchemaMismatch
from .audio import (
    MAX_SECONDS,
    fit_window,
    is_recording,
    is_samples,
    peak_dbfs,
    recording,
    to_wav,
    trim,
)

Packed = dict[str, np.ndarray]
AUDIO = "audio"


@dataclass(frozen=True)
class AudioSpec:
    """How recordings are prepared for an audio classifier's graph."""

    sample_rate: int = 16000
    window_seconds: float = 1.0
    """The length of audio the graph takes; longer sounds are cropped around their centre."""
    trim_top_db: float = 40.0
    """Frames quieter than the loudest by more than this are cut from the start and the end."""
    trim_frame_seconds: float = 0.01
    silence_dbfs: float = -60.0
    """A recording whose loudest sample is below this level is refused as silent."""
    peak_normalize: bool = True
    """Whether the trimmed sound is scaled so that its loudest sample is 1 (recording level
    then does not matter)."""
    max_seconds: float = MAX_SECONDS

    @property
    def samples(self) -> int:
        return round(self.window_seconds * self.sample_rate)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_manifest(cls, preprocessing: Mapping[str, Any], name: str = "") -> AudioSpec:
        spec = preprocessing.get("audio")
        known = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(spec, dict) or not set(spec) <= known:
            raise InvalidInput(
                f"Model '{name}' prepares audio as {spec!r}, which this version of modelport "
                "does not know. Upgrade modelport."
            )
        return cls(**spec)

    def prepare(self, samples: np.ndarray, name: str = "The recording") -> np.ndarray:
        """Mono samples at :attr:`sample_rate` -> float32 [samples] as the graph takes them."""
        return fit_window(self.sound(samples, name), self.samples)

    def sound(self, samples: np.ndarray, name: str = "The recording") -> np.ndarray:
        """The sound in ``samples``: silence refused, quiet ends trimmed, the peak scaled."""
        level = peak_dbfs(samples)
        if level < self.silence_dbfs:
            shown = "digital silence" if level == -np.inf else f"peaks at {level:.0f} dBFS"
            raise InvalidInput(
                f"{name} is silent ({shown}; sound starts at {self.silence_dbfs:g} dBFS): "
                "there is nothing to classify. Check the microphone or the file."
            )
        sound = trim(samples, self.sample_rate, self.trim_top_db, self.trim_frame_seconds)
        if self.peak_normalize:
            sound = sound / np.abs(sound).max()
        return sound.astype(np.float32, copy=False)

    def load(self, item: Any, name: str = "The recording") -> np.ndarray:
        """One recording (see :func:`.audio.recording`) prepared for the graph."""
        return self.prepare(recording(item, self.sample_rate, self.max_seconds), name)


class AudioPlan:
    """How one audio model's inputs are read, built once from its manifest."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.column = manifest.inputs[0].name
        self.input = manifest.inputs[0].onnx_name or self.column
        self.spec = AudioSpec.from_manifest(manifest.preprocessing, manifest.name)

    def pack(self, rows: Any) -> Packed:
        """Pack one recording or a list of them (WAV bytes, paths, ``(samples, rate)``), rows
        ``{"audio": <base64 WAV>}``, ``{"audio": [...]}`` or an array of base64 strings."""
        return self.pack_recordings(self._recordings(rows))

    def pack_tensors(self, tensors: Mapping[str, np.ndarray]) -> Packed:
        """Pack named wire tensors (OIP v2, TF-Serving columns): the audio input, [n] or [n, 1],
        each element a WAV file (bytes, or base64 text)."""
        if set(tensors) != {self.column}:
            raise SchemaMismatch(
                f"Model '{self.manifest.name}' takes one input, '{self.column}' (BYTES, shape "
                f"[n] or [n, 1], one WAV file per element, base64 in JSON); got "
                f"{', '.join(map(repr, tensors))}."
            )
        tensor = np.asarray(tensors[self.column])
        if tensor.ndim > 2 or (tensor.ndim == 2 and tensor.shape[1] != 1):
            raise SchemaMismatch(
                f"Input '{self.column}' must have shape [n] or [n, 1], not {list(tensor.shape)}."
            )
        return self.pack_recordings(_wire(tensor.reshape(-1).tolist()))

    def pack_blocks(self, blocks: list[tuple[tuple[str, ...], np.ndarray]]) -> Packed | None:
        """Packed from wire columns gathered by type, when they are this model's one input;
        None otherwise (:meth:`pack_tensors` says what is wrong)."""
        if len(blocks) != 1 or blocks[0][0] != (self.column,) or blocks[0][1].dtype != object:
            return None
        return self.pack_recordings(_wire(blocks[0][1].reshape(-1).tolist()))

    def pack_recordings(self, items: list[Any]) -> Packed:
        if not items:
            raise InvalidInput(
                "There are no recordings to predict: the list is empty. Send at least one."
            )
        audio = np.empty((len(items), self.spec.samples), dtype=np.float32)
        for i, item in enumerate(items):
            where = "The recording" if len(items) == 1 else f"Recording {i + 1} of {len(items)}"
            if isinstance(item, str):
                where = f"{where} ({item})"
            try:
                audio[i] = self.spec.load(item, where)
            except InvalidInput as exc:
                if exc.message.startswith(where):
                    raise
                raise InvalidInput(f"{where}: {exc.message}") from None
        return {AUDIO: audio}

    def feeds(self, packed: Packed) -> dict[str, np.ndarray]:
        return {self.input: packed[AUDIO]}

    def _recordings(self, rows: Any) -> list[Any]:
        if isinstance(rows, bytes | bytearray | memoryview | str | os.PathLike) or is_samples(rows):
            return [rows]
        if isinstance(rows, dict):
            value = _field(rows, self.column, self.manifest.name)
            return _wire(list(value) if isinstance(value, list | tuple) else [value])
        if isinstance(rows, np.ndarray) and rows.dtype == object:
            return _wire(rows.reshape(-1).tolist())
        if isinstance(rows, list | tuple):
            return [
                _wire([_field(row, self.column, self.manifest.name)])[0]
                if isinstance(row, dict)
                else row
                for row in rows
            ]
        raise InvalidInput(
            f"Model '{self.manifest.name}' classifies recordings: pass WAV bytes, the path of a "
            f"WAV file, (samples, sample_rate), a list of these, or rows "
            f'{{"{self.column}": "<base64 of a WAV file>"}}, not a {type(rows).__name__}.'
        )


def looks_like_recordings(inputs: Any) -> bool:
    """True for one recording or a non-empty list of them (what an audio model takes)."""
    if is_recording(inputs):
        return True
    return isinstance(inputs, list | tuple) and bool(inputs) and all(map(is_recording, inputs))


def as_rows(inputs: Any, column: str) -> list[dict[str, Any]]:
    """Recordings as the rows the JSON API takes, ``{column: <base64 of a WAV file>}`` each
    (row dicts stay as they are): files are sent as they are, so the server decodes what the
    device would; samples are sent as a float WAV at their own rate, which reads back exactly."""
    items = [inputs] if is_recording(inputs) else list(inputs)
    return [
        item if isinstance(item, dict) else {column: base64.b64encode(_wav(item)).decode("ascii")}
        for item in items
    ]


def _wav(item: Any) -> bytes:
    if isinstance(item, bytes | bytearray | memoryview):
        return bytes(item)
    if is_samples(item):
        rate = int(item[1])
        return to_wav(recording(item, rate, math.inf), rate)
    try:
        return Path(item).read_bytes()
    except (OSError, TypeError) as exc:
        raise InvalidInput(f"Cannot read the recording {item}: {exc}.") from exc


def _wire(values: list[Any]) -> list[Any]:
    """Values from JSON or wire tensors: strings are base64 (never paths); bytes stay."""
    return [_base64(v, i, len(values)) if isinstance(v, str) else v for i, v in enumerate(values)]


def _base64(value: str, i: int, n: int) -> bytes:
    where = "The recording" if n == 1 else f"Recording {i + 1} of {n}"
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(
            f"{where} is a string that is not base64. Send the WAV file's bytes base64-encoded "
            "(e.g. base64 -w0 clip.wav)."
        ) from None
    if not data:
        raise InvalidInput(f"{where} is empty: send the whole WAV file, base64-encoded.")
    return data


def _field(row: dict[str, Any], column: str, model: str) -> Any:
    try:
        return row[column]
    except KeyError:
        raise SchemaMismatch(
            f"Model '{model}' reads a recording from the field '{column}', which this row lacks "
            f'(it has {", ".join(map(repr, row)) or "nothing"}). Send {{"{column}": "<base64 '
            'of a WAV file>"}.'
        ) from None
