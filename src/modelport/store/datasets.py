"""Uploaded datasets: one file per SHA-256 under ``<home>/datasets``, described in the database.

The same bytes are stored once, whoever uploads them; each dataset has a random id (its content
hash would let anyone guess it) and a list of owners: the keys that uploaded it. A caller sees
and deletes only the datasets it owns (admin credentials: all); the file goes with its last owner.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from .._fs import fsync_dir
from ..errors import InvalidDataset, NotFound, PayloadTooLarge
from .db import DatasetOwnerRow, DatasetRow, as_utc, from_row, transaction

ID_PREFIX = "ds_"


@dataclass(frozen=True)
class Dataset:
    """A stored dataset (the same bytes, uploaded again, are the same dataset)."""

    id: str
    sha256: str
    filename: str
    kind: str
    format: str
    size_bytes: int
    rows: int
    details: dict[str, Any]
    created: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "filename": self.filename,
            "kind": self.kind,
            "format": self.format,
            "rows": self.rows,
            **self.details,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "created": as_utc(self.created).isoformat(),
        }


class IncomingFile:
    """An upload being written to a temp file, hashed and counted as it arrives."""

    def __init__(self, directory: Path, filename: str, limit: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, suffix=".part")
        self.handle = os.fdopen(fd, "wb")
        self.path = Path(name)
        self.filename = filename
        self.limit = limit
        self.size = 0
        self.hash = hashlib.sha256()

    @staticmethod
    def check_size(size: int, limit: int) -> None:
        if size > limit:
            raise PayloadTooLarge(
                f"The dataset is larger than this server accepts ({limit:,} bytes). Upload a "
                "sample, or raise MODELPORT_MAX_DATASET_BYTES."
            )

    def check_total(self, size: int) -> None:
        """Refuse a request (e.g. a multipart form) that grows beyond the limit."""
        self.check_size(size, self.limit + 64 * 1024)  # room for the form's own headers

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.check_size(self.size, self.limit)
        self.hash.update(chunk)
        self.handle.write(chunk)

    def close(self) -> None:
        if not self.handle.closed:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()


class DatasetStore:
    """Add, list, read and delete datasets; the same bytes uploaded twice are stored once."""

    def __init__(
        self, engine: Engine, root: Path, max_bytes: int, max_unpacked_bytes: int, max_files: int
    ) -> None:
        self.engine = engine
        self.root = root
        self.max_bytes = max_bytes
        self.max_unpacked_bytes = max_unpacked_bytes
        self.max_files = max_files

    @contextlib.contextmanager
    def incoming(self, filename: str) -> Iterator[IncomingFile]:
        """A temp file for an upload; removed afterwards unless :meth:`add` kept it."""
        upload = IncomingFile(self.root / ".incoming", filename, self.max_bytes)
        try:
            yield upload
        finally:
            upload.handle.close()
            upload.path.unlink(missing_ok=True)

    def add(self, upload: IncomingFile, owner: str = "") -> tuple[Dataset, bool]:
        """Check and keep the upload for ``owner``; returns the dataset and whether it is new
        to that owner."""
        from ..data.datasets import Limits, inspect, sniff_format  # pandas: only when needed

        upload.close()
        sha256 = upload.hash.hexdigest()
        existing = self._find(sha256)
        if existing is not None:
            return existing, self._own(existing.id, owner)
        with upload.path.open("rb") as handle:
            fmt = sniff_format(handle.read(64), upload.filename)
        named = upload.path.with_suffix(f".{fmt}")  # the readers go by suffix
        os.replace(upload.path, named)
        upload.path = named
        try:
            info = inspect(named, fmt, Limits(self.max_unpacked_bytes, self.max_files))
        except InvalidDataset as exc:  # name the user's file, not our temp file
            raise InvalidDataset(exc.message.replace(str(named), upload.filename)) from None
        target = self._file(sha256, fmt)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(named, target)
        fsync_dir(target.parent)
        row = DatasetRow(
            id=ID_PREFIX + secrets.token_hex(8),
            sha256=sha256,
            filename=upload.filename[:255],
            kind=info.kind,
            format=fmt,
            size_bytes=upload.size,
            rows=info.rows,
            details=info.details,
        )
        try:
            with transaction(self.engine) as session:
                session.add(row)
                session.flush()
                session.add(DatasetOwnerRow(dataset_id=row.id, owner=owner))
        except DBIntegrityError:  # the same bytes were uploaded at the same moment
            found = self._find(sha256)
            assert found is not None
            return found, self._own(found.id, owner)
        return _dataset(row), True

    def get(self, dataset_id: str, owner: str | None = None) -> Dataset:
        """The dataset; with ``owner``, only if that owner uploaded it (else as if unknown)."""
        with transaction(self.engine) as session:
            row = session.get(DatasetRow, dataset_id)
            if row is None or (owner is not None and not _owns(session, dataset_id, owner)):
                raise NotFound(
                    f"There is no dataset '{dataset_id}'. Upload it with POST /api/v1/datasets "
                    "and use the id it returns; GET /api/v1/datasets lists them."
                )
            return _dataset(row)

    def list(self, owner: str | None = None) -> list[Dataset]:
        """Every dataset, or ``owner``'s, newest first."""
        query = select(DatasetRow).order_by(DatasetRow.created.desc())
        if owner is not None:
            query = query.join(DatasetOwnerRow).where(DatasetOwnerRow.owner == owner)
        with transaction(self.engine) as session:
            return [_dataset(r) for r in session.scalars(query)]

    def delete(self, dataset_id: str, owner: str | None = None) -> Dataset:
        """Forget ``owner``'s dataset (``None``: everyone's); the file goes with its last owner.

        The row is removed first, then the file, so a crash in between leaves only a file.
        """
        dataset = self.get(dataset_id, owner)
        with transaction(self.engine) as session:
            if owner is not None:
                session.execute(
                    delete(DatasetOwnerRow).where(
                        DatasetOwnerRow.dataset_id == dataset_id, DatasetOwnerRow.owner == owner
                    )
                )
                if session.scalars(
                    select(DatasetOwnerRow).where(DatasetOwnerRow.dataset_id == dataset_id)
                ).first():
                    return dataset  # others still use the bytes
            row = session.get(DatasetRow, dataset_id)
            if row is not None:
                session.delete(row)
        self.path(dataset).unlink(missing_ok=True)
        return dataset

    def path(self, dataset: Dataset) -> Path:
        return self._file(dataset.sha256, dataset.format)

    def _file(self, sha256: str, fmt: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.{fmt}"

    def _find(self, sha256: str) -> Dataset | None:
        with transaction(self.engine) as session:
            row = session.scalars(select(DatasetRow).where(DatasetRow.sha256 == sha256)).first()
            return _dataset(row) if row is not None else None

    def _own(self, dataset_id: str, owner: str) -> bool:
        """Add ``owner`` to the dataset's owners; False when it already was one."""
        try:
            with transaction(self.engine) as session:
                if _owns(session, dataset_id, owner):
                    return False
                session.add(DatasetOwnerRow(dataset_id=dataset_id, owner=owner))
        except DBIntegrityError:  # the same owner sent the same bytes at the same moment
            return False
        return True


def _owns(session: Any, dataset_id: str, owner: str) -> bool:
    return session.get(DatasetOwnerRow, (dataset_id, owner)) is not None


def _dataset(row: DatasetRow) -> Dataset:
    return from_row(Dataset, row)
