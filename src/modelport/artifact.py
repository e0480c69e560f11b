"""ModelArtifact and Manifest: what a model is, on disk and on the wire.

An artifact is an ONNX graph plus a JSON manifest. It round-trips to a directory
(``model.onnx`` + ``manifest.json``) and to a single zip file with the same two entries;
loading always verifies the SHA-256 of the ONNX bytes against the manifest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ._fs import atomic_write, atomic_writer
from .errors import IntegrityError, InvalidInput

FORMAT_VERSION = 1
ONNX_NAME = "model.onnx"
MANIFEST_NAME = "manifest.json"
VARIANTS = ("fp32", "int8")
"""The graphs a model may carry; their names become file names, so no other name is taken."""
SHA256 = re.compile(r"[0-9a-f]{64}")

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class ColumnSpec:
    """One input column: its name in the data, its ONNX input name, its type."""

    name: str
    dtype: Literal["number", "string", "text", "image"]
    """"string": a category; "text": free text (words), normalised as ``normalize`` says."""
    onnx_name: str | None = None
    categorical: bool = False
    categories: list[str] | None = None
    normalize: str | None = None
    """How the runtime normalises a text column before the graph sees it (see runtime/text.py)."""

    def to_dict(self) -> dict[str, Any]:
        """The manifest's entry; without ``normalize`` unless it is set, so manifests of models
        without text stay readable by modelport versions that predate it."""
        data = dataclasses.asdict(self)
        if data["normalize"] is None:
            del data["normalize"]
        return data


@dataclass
class Manifest:
    """Everything needed to use, check and describe the ONNX graph of an artifact."""

    name: str
    task: Task
    inputs: list[ColumnSpec]
    outputs: dict[str, str]
    """Output role ("label", "probabilities", "value", "embedding") -> ONNX output name."""
    sha256: str
    size_bytes: int
    version: int | None = None
    input_layout: Literal["columns", "matrix", "image", "audio", "text"] = "columns"
    """"columns": one ONNX input per column; "matrix": one float input of shape [n, len(inputs)];
    "image": one uint8 input of shape [n, height, width, 3], made by ``preprocessing["image"]``;
    "audio": one recording (WAV) per row; "text": one text per row (the one input column),
    tokenised into the graph's inputs as ``preprocessing["text"]`` says."""
    matrix_input: str | None = None
    class_labels: list[Any] | None = None
    label_is_index: bool = False
    """True when the ONNX label output is an index into ``class_labels``."""
    preprocessing: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    data_fingerprint: str | None = None
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    library_versions: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    variant: str = "fp32"
    """Which graph this artifact holds: "fp32" (as trained) or a smaller one such as "int8"."""
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Other graphs of the same model: SHA-256, size and held-out score of each."""
    skipped_variants: dict[str, str] = field(default_factory=dict)
    """Variants that could not be made, and why, e.g. {"int8": "onnxruntime could not ..."}."""
    backend: Literal["onnxruntime", "pocketsphinx"] = "onnxruntime"
    """What runs the model file: onnxruntime (an ONNX graph) or pocketsphinx (a JSON config of
    the speech decoder, whose acoustic model and dictionary come from the pocketsphinx wheel)."""
    format: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"inputs": [c.to_dict() for c in self.inputs]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        try:
            fields = {f.name for f in dataclasses.fields(cls)}
            values = {k: v for k, v in data.items() if k in fields}
            values["inputs"] = [ColumnSpec(**c) for c in data["inputs"]]
            return _checked(cls(**values))
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidInput(
                f"The manifest is not valid: {exc}. A manifest needs at least name, task, inputs, "
                "outputs, sha256 and size_bytes; re-export the model with modelport."
            ) from exc

    def for_variant(self, name: str) -> Manifest:
        """The manifest of one variant's graph (its hash and size in place of fp32's)."""
        if name == self.variant:
            return self
        info = self.variants.get(name)
        if info is None:
            known = ", ".join([self.variant, *self.variants])
            why = self.skipped_variants.get(name)
            note = f"; {name} was not made: {why}" if why else ""
            raise InvalidInput(
                f"Model '{self.name}' has no variant '{name}' (it has {known}{note})."
            )
        return dataclasses.replace(
            self, sha256=info["sha256"], size_bytes=info["size_bytes"], variant=name, variants={}
        )

    def device_variant(self) -> str:
        """What devices get by default: int8 when it is recommended, else the trained graph."""
        return "int8" if self.variants.get("int8", {}).get("recommended") else self.variant

    @property
    def is_image(self) -> bool:
        return self.input_layout == "image"

    @property
    def is_text(self) -> bool:
        return self.input_layout == "text"

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.inputs]


def _checked(manifest: Manifest) -> Manifest:
    """Refuse a manifest whose variant names or digests could name files outside a store."""
    graphs = {manifest.variant: manifest.sha256} | {
        name: info["sha256"] for name, info in manifest.variants.items()
    }
    for name, digest in graphs.items():
        if name not in VARIANTS:
            raise InvalidInput(
                f"The manifest names a variant {name!r}; a model's graphs are "
                f"{' and '.join(VARIANTS)}. The file was not made by modelport, or was altered."
            )
        if not isinstance(digest, str) or not SHA256.fullmatch(digest):
            raise InvalidInput(
                f"The manifest's SHA-256 of the {name} graph, {str(digest)[:80]!r}, is not 64 "
                "lowercase hex digits. The file was not made by modelport, or was altered."
            )
    return manifest


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class ModelArtifact:
    """An ONNX graph and its manifest; the unit that is stored, served and shipped to devices."""

    onnx: bytes
    manifest: Manifest
    variants: dict[str, bytes] = field(default_factory=dict)
    """Bytes of the graphs ``manifest.variants`` describes (e.g. "int8")."""

    @classmethod
    def create(cls, onnx: bytes, **manifest_fields: Any) -> ModelArtifact:
        """Build an artifact, filling in the ONNX bytes' SHA-256 and size."""
        manifest = Manifest(sha256=sha256_hex(onnx), size_bytes=len(onnx), **manifest_fields)
        return cls(onnx=onnx, manifest=manifest)

    def verify(self, origin: str = "the artifact") -> ModelArtifact:
        """Raise IntegrityError unless every graph matches the SHA-256 the manifest records."""
        missing = set(self.manifest.variants) - set(self.variants)
        if missing:
            raise IntegrityError(
                f"The manifest of {origin} lists the variant(s) {', '.join(sorted(missing))}, "
                "but their model files are not there. Export the model again."
            )
        expected = {"": self.manifest.sha256} | {
            name: info["sha256"] for name, info in self.manifest.variants.items()
        }
        for name, digest in expected.items():
            actual = sha256_hex(self.variants[name] if name else self.onnx)
            if actual != digest:
                raise IntegrityError(
                    f"The {name + ' ' if name else ''}model file of {origin} is corrupted: its "
                    f"SHA-256 is {actual[:16]}..., but the manifest records {digest[:16]}.... A "
                    "model file must match its recorded hash. Restore it from a backup or "
                    "register the model again."
                )
        return self

    def variant(self, name: str) -> ModelArtifact:
        """The artifact of one variant: that graph, with the manifest's hash and size for it."""
        if name == self.manifest.variant:
            return self
        manifest = self.manifest.for_variant(name)
        return ModelArtifact(self.variants[name], manifest).verify(f"variant {name}")

    def to_dir(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        atomic_write(path / ONNX_NAME, self.onnx)
        for name, onnx in self.variants.items():
            atomic_write(path / f"model.{name}.onnx", onnx)
        atomic_write(path / MANIFEST_NAME, self.manifest.to_json().encode())
        return path

    def to_file(self, path: str | Path) -> Path:
        """Write a single zip file holding ``model.onnx`` and ``manifest.json``."""
        path = Path(path)
        with atomic_writer(path) as handle, zipfile.ZipFile(handle, "w") as archive:
            self._write_zip(archive)
        return path

    def _write_zip(self, archive: zipfile.ZipFile) -> None:
        archive.writestr(MANIFEST_NAME, self.manifest.to_json())
        archive.writestr(ONNX_NAME, self.onnx)
        for name, onnx in self.variants.items():
            archive.writestr(f"model.{name}.onnx", onnx)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            self._write_zip(archive)
        return buffer.getvalue()

    @classmethod
    def load(cls, path: str | Path) -> ModelArtifact:
        """Load from a directory or a zip file and verify the SHA-256."""
        path = Path(path)
        if path.is_dir():
            try:
                onnx = (path / ONNX_NAME).read_bytes()
                manifest = json.loads((path / MANIFEST_NAME).read_text())
                variants = {
                    name: (path / f"model.{name}.onnx").read_bytes()
                    for name in manifest.get("variants", {})
                    if (path / f"model.{name}.onnx").exists()
                }
            except (OSError, json.JSONDecodeError) as exc:
                raise InvalidInput(
                    f"{path} is not a modelport artifact directory ({exc}). It must hold "
                    f"{ONNX_NAME} and {MANIFEST_NAME}; create one with `modelport export --bundle`."
                ) from exc
            return cls(onnx, Manifest.from_dict(manifest), variants).verify(str(path))
        try:
            return cls.from_bytes(path.read_bytes(), origin=str(path))
        except FileNotFoundError as exc:
            raise InvalidInput(f"{path} does not exist. Give the path of an artifact.") from exc

    @classmethod
    def from_bytes(cls, data: bytes, origin: str = "the artifact") -> ModelArtifact:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                manifest = json.loads(archive.read(MANIFEST_NAME))
                onnx = archive.read(ONNX_NAME)
                names = set(archive.namelist())
                variants = {
                    name: archive.read(f"model.{name}.onnx")
                    for name in manifest.get("variants", {})
                    if f"model.{name}.onnx" in names
                }
        except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
            raise InvalidInput(
                f"{origin} is not a modelport artifact file ({exc}). An artifact file is a zip with "
                f"{ONNX_NAME} and {MANIFEST_NAME}; create one with `modelport export --bundle`."
            ) from exc
        return cls(onnx, Manifest.from_dict(manifest), variants).verify(origin)
