"""Crash-safe file writes: temp name in the same directory, fsync, rename, fsync the directory."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

SECRET_SUFFIXES = (".pem", ".key")
"""Key material: written readable by its owner only, whatever the caller says."""


@contextlib.contextmanager
def atomic_writer(path: Path, private: bool = False) -> Iterator[BinaryIO]:
    """Yield a file that replaces ``path`` only once it is completely written and synced.

    The file gets the mode any new file gets (0666 less the umask, so 0644 under the usual 022),
    unless it is ``private`` or key material (``*.pem``, ``*.key``): then it is 0600 from the
    moment it exists, never readable by others even briefly.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = private or path.suffix.lower() in SECRET_SUFFIXES
    fd, tmp = _create_temp(path, 0o600 if secret else 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes, private: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (``private``: mode 0600, see :func:`atomic_writer`)."""
    with atomic_writer(path, private=private) as handle:
        handle.write(data)


def _create_temp(path: Path, mode: int) -> tuple[int, str]:
    """A new ``.<name>.<random>.tmp`` beside ``path``, opened for writing with ``mode`` (less the
    umask, which the kernel applies). ``tempfile.mkstemp`` would always make it 0600."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"No free temporary name beside {path}")


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
