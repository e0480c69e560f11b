"""Which signing key a device trusts: the one given at setup, or the first one it saw."""

from __future__ import annotations

from pathlib import Path

from ..artifact import Manifest
from ..errors import IntegrityError
from ..signing import Delivery, verify
from .cache import write_file
from .remote import Remote

PINNED_FILE = "signing-key.pub"


class Trust:
    """Verifies artifacts against a pinned Ed25519 public key (trust on first use by default)."""

    def __init__(self, cache_dir: Path, public_key: str | None, remote: Remote | None) -> None:
        self.file = cache_dir / PINNED_FILE
        self.given = public_key
        self.remote = remote

    def public_key(self) -> str:
        if self.given is not None:
            return self.given
        if self.file.exists():
            return self.file.read_text().strip()
        if self.remote is None:
            raise IntegrityError("No signing key is pinned and there is no server to ask for one.")
        key = str(self.remote.signing_key())
        write_file(self.file, key.encode())  # pinned from now on
        return key

    def check(self, manifest: Manifest, delivery: Delivery, signature: str | None) -> None:
        verify(self.public_key(), manifest, delivery, signature)
