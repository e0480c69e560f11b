"""Where a device keeps the keys of its encrypted models. Pluggable: anything with get/put."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from .cache import write_file


class KeyStore(Protocol):
    """Keys by model name (an app may back this with the OS keychain or keystore)."""

    def get(self, name: str) -> bytes | None: ...

    def put(self, name: str, key: bytes) -> None: ...


class FileKeyStore:
    """The default: one file per model, readable only by its owner (mode 0600)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def get(self, name: str) -> bytes | None:
        try:
            return (self.directory / f"{name}.key").read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def put(self, name: str, key: bytes) -> None:
        path = self.directory / f"{name}.key"
        write_file(path, key)
        os.chmod(path, 0o600)
