"""Content-addressed model files, written atomically and verified on read."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from .._fs import atomic_write
from ..artifact import SHA256, sha256_hex
from ..errors import IntegrityError, ModelNotFound

STALE_TEMP_SECONDS = 3600


class BlobStore:
    """Files named by the SHA-256 of their bytes under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not SHA256.fullmatch(sha256):  # a name from outside must not reach the file system
            raise IntegrityError(f"{sha256[:80]!r} is not a SHA-256 (64 lowercase hex digits).")
        return self.root / sha256[:2] / f"{sha256}.onnx"

    def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        target = self.path(digest)
        if target.exists():
            os.utime(target)  # fresh again: garbage collection leaves young files alone
        else:
            atomic_write(target, data)
        return digest

    def is_young(self, sha256: str, seconds: float = STALE_TEMP_SECONDS) -> bool:
        try:
            return self.path(sha256).stat().st_mtime > time.time() - seconds
        except FileNotFoundError:
            return False

    def get(self, sha256: str, origin: str) -> bytes:
        try:
            data = self.path(sha256).read_bytes()
        except FileNotFoundError as exc:
            raise ModelNotFound(
                f"The model file of {origin} is missing from {self.root}. The database knows the "
                "version but its file is gone: restore the blob directory from a backup or delete "
                f"the version with `modelport models delete {origin}`."
            ) from exc
        if sha256_hex(data) != sha256:
            raise IntegrityError(
                f"The model file of {origin} ({self.path(sha256)}) is corrupted: its SHA-256 does "
                "not match the one recorded at registration. Restore the file from a backup, or "
                f"delete the version with `modelport models delete {origin}` and register it again."
            )
        return data

    def delete(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(sha256).unlink()

    def digests(self) -> Iterator[str]:
        for path in self.root.glob("*/*.onnx"):
            yield path.stem

    def remove_stale_temps(self, older_than: float = STALE_TEMP_SECONDS) -> int:
        """Delete temp files left by writers that crashed; returns how many."""
        cutoff = time.time() - older_than
        removed = 0
        for path in self.root.glob("*/.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed
