"""What an uploaded dataset is: a table, labelled text or a zip of image folders, checked in full.

Every reader here refuses bad input with an :class:`InvalidDataset` that says what to fix, and a
zip is read member by member under a byte budget, so path traversal and zip bombs are refused
before anything is unpacked.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import InvalidDataset, PayloadTooLarge
from .tabular import MIN_ROWS, read_table, scan_table

TABLE_SUFFIXES = (".csv", ".tsv", ".txt")
TEXT_FIELDS = ("text", "label")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"}
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"RIFF")
SKIPPED_PREFIXES = ("__MACOSX/", ".")
CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    """How much a zip may unpack to, and how many files it may hold."""

    max_unpacked_bytes: int
    max_files: int


@dataclass
class DatasetInfo:
    """What reading a dataset found."""

    kind: str
    """"table", "text" (labelled text) or "images" (a zip of one folder per class)."""
    format: str
    rows: int
    details: dict[str, Any] = field(default_factory=dict)


def sniff_format(head: bytes, filename: str) -> str:
    """The file format from its first bytes, then its name (CSV when nothing else fits)."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"PAR1"):
        return "parquet"
    suffix = PurePosixPath(filename).suffix.lower()
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if suffix in (".jsonl", ".ndjson") or (suffix not in TABLE_SUFFIXES and text.startswith(b"{")):
        return "jsonl"
    return "csv"


def inspect(path: Path, fmt: str, limits: Limits) -> DatasetInfo:
    """Read the whole dataset once and describe it; raises InvalidDataset on any fault."""
    if fmt == "zip":
        return _inspect_images(path, limits)
    if fmt == "jsonl":
        return _inspect_jsonl(path)
    if fmt == "csv":
        _check_complete(path)
    rows, types = scan_table(path)  # the file's suffix names its format
    if rows < MIN_ROWS:
        raise InvalidDataset(f"The table has {rows} row(s); training needs at least {MIN_ROWS}.")
    if sorted(name.lower() for name in types) == sorted(TEXT_FIELDS):
        frame = read_table(path)
        labels = frame[[c for c in frame.columns if str(c).lower() == "label"][0]]
        return DatasetInfo("text", fmt, rows, {"classes": _counts(labels.astype(str))})
    columns = [{"name": name, "dtype": dtype} for name, dtype in types.items()]
    return DatasetInfo("table", fmt, rows, {"columns": columns})


def _check_complete(path: Path) -> None:
    """A last line cut off mid-row (an interrupted upload) must not pass as a row with gaps."""
    with path.open("rb") as handle:
        header = handle.readline()
        handle.seek(max(0, path.stat().st_size - 65536))
        tail = handle.read()
    if tail.endswith((b"\n", b"\r")):
        return
    last = tail.splitlines()[-1] if tail.strip() else b""
    separator = max((b",", b";", b"\t", b"|"), key=header.count)
    if last and last != header.rstrip(b"\r\n") and last.count(separator) < header.count(separator):
        raise InvalidDataset(
            "The last line of the CSV has fewer fields than the header and no line end: the file "
            "looks cut off (an interrupted upload or copy). Upload the complete file."
        )


def _counts(labels: Any) -> dict[str, int]:
    return dict(Counter(labels).most_common())


def _inspect_jsonl(path: Path) -> DatasetInfo:
    labels: list[str] = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise InvalidDataset(
                    f"Line {number} of the JSONL file is not valid JSON (the upload may be "
                    'truncated). Each line must be an object like {"text": "...", "label": "..."}.'
                ) from None
            if not isinstance(record, dict) or not all(k in record for k in TEXT_FIELDS):
                raise InvalidDataset(
                    f"Line {number} of the JSONL file lacks 'text' or 'label'. Labelled text "
                    'needs one object per line: {"text": "...", "label": "..."}.'
                )
            labels.append(str(record["label"]))
    _check_classes(labels, "texts")
    return DatasetInfo("text", "jsonl", len(labels), {"classes": _counts(labels)})


def _inspect_images(path: Path, limits: Limits) -> DatasetInfo:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            for member in members:
                check_member(member)
            _check_budget(members, limits)
            images = [m for m in members if _is_image(m.filename)]
            root = _common_root(images)
            labels = []
            unpacked = 0
            for member in images:
                parts = PurePosixPath(member.filename).parts[len(root) :]
                if len(parts) < 2:
                    raise InvalidDataset(
                        f"The image '{member.filename}' is not inside a class folder. Put each "
                        "class's images in a folder named after it: cats/1.jpg, dogs/2.jpg ..."
                    )
                unpacked += _check_image(archive, member, limits.max_unpacked_bytes - unpacked)
                labels.append(parts[0])
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise InvalidDataset(
            f"The zip file is damaged, incomplete or uses a compression this server cannot read "
            f"({exc}); the upload may have been cut off. Upload it again, zipped with plain "
            "deflate (the default of most tools)."
        ) from None
    _check_classes(labels, "images")
    return DatasetInfo("images", "zip", len(labels), {"classes": _counts(labels)})


def check_member(member: zipfile.ZipInfo) -> None:
    """Refuse members that would land outside the target folder, links and encrypted files."""
    name = member.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise InvalidDataset(
            f"The zip holds the path '{name}', which points outside the archive's folder. Zip the "
            "class folders themselves, with relative paths."
        )
    if (member.external_attr >> 16) & 0o170000 == 0o120000:
        raise InvalidDataset(f"The zip holds a symbolic link ('{name}'); links are not accepted.")
    if member.flag_bits & 0x1:
        raise InvalidDataset(f"The zip member '{name}' is encrypted; upload an unencrypted zip.")


def _check_budget(members: list[zipfile.ZipInfo], limits: Limits) -> None:
    declared = sum(m.file_size for m in members)
    if len(members) > limits.max_files or declared > limits.max_unpacked_bytes:
        raise PayloadTooLarge(
            f"The zip unpacks to {len(members):,} files and {declared:,} bytes; this server "
            f"accepts at most {limits.max_files:,} files and {limits.max_unpacked_bytes:,} bytes "
            "(MODELPORT_MAX_ARCHIVE_FILES, MODELPORT_MAX_UNPACKED_BYTES)."
        )


def _check_image(archive: zipfile.ZipFile, member: zipfile.ZipInfo, budget: int) -> int:
    """Read the member (its CRC is checked at the end) within ``budget`` bytes; return its size."""
    size = 0
    with archive.open(member) as handle:
        head = handle.read(16)
        if not head.startswith(IMAGE_MAGIC) or (head.startswith(b"RIFF") and head[8:12] != b"WEBP"):
            raise InvalidDataset(
                f"'{member.filename}' is not a JPEG, PNG, GIF, BMP or WebP image (its first bytes "
                "do not match). Remove it or convert it."
            )
        size = len(head)
        while chunk := handle.read(CHUNK):
            size += len(chunk)
            if size > budget:  # the header's sizes can lie: count what really comes out
                raise PayloadTooLarge(
                    "The zip unpacks to more bytes than its header declares and than this server "
                    "accepts (MODELPORT_MAX_UNPACKED_BYTES); it looks like a zip bomb."
                )
    return size


def _is_image(name: str) -> bool:
    path = PurePosixPath(name)
    return path.suffix.lower() in IMAGE_SUFFIXES and not any(
        part.startswith(SKIPPED_PREFIXES) or part == "__MACOSX" for part in path.parts
    )


def _common_root(images: list[zipfile.ZipInfo]) -> tuple[str, ...]:
    """A single top folder all class folders sit in (``flowers/daisy/1.jpg``) is not a class."""
    paths = [PurePosixPath(m.filename).parts for m in images]
    if paths and all(len(p) >= 3 for p in paths) and len({p[0] for p in paths}) == 1:
        return paths[0][:1]
    return ()


def _check_classes(labels: list[str], what: str) -> None:
    counts = Counter(labels)
    if len(labels) < MIN_ROWS or len(counts) < 2:
        raise InvalidDataset(
            f"The dataset has {len(labels)} {what} in {len(counts)} class(es); training needs at "
            f"least {MIN_ROWS} {what} in at least 2 classes."
        )


def read_jsonl(path: Path) -> Any:
    """Labelled text from JSON lines as a DataFrame (``text``, ``label`` and any other fields)."""
    import pandas as pd

    return pd.read_json(path, lines=True, dtype=False)


def unpack_images(path: Path, into: Path) -> Path:
    """Unpack a checked image zip under ``into``; returns the folder holding the class folders."""
    with zipfile.ZipFile(path) as archive:
        images = [m for m in archive.infolist() if not m.is_dir() and _is_image(m.filename)]
        for member in images:
            check_member(member)
            archive.extract(member, into)
    return into.joinpath(*_common_root(images))
