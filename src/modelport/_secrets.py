"""Secret files (keys, tokens): made once with mode 0600, never overwritten, never half-written."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from ._fs import fsync_dir


def create_once(path: Path, text: str) -> str:
    """Write ``text`` to ``path`` (0600) unless the file exists; returns what the file holds.

    The text goes to a private temp file that is hard-linked into place: the link appears whole
    or not at all and fails if another process made the file first, whose content then wins.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    fsync_dir(path.parent)
    return path.read_text().strip()
