"""The master key: it wraps each model's encryption key, so a copy of the database alone does not
give away the keys that protect models on devices.

Model keys are kept wrapped with AES key wrap (RFC 3394) under a 256-bit master key: the setting
``MODELPORT_MASTER_KEY`` (base64, e.g. from a secret manager), or else the file
``<home>/master.key`` (mode 0600), made on first use. Rotation rewraps every model key in one
transaction (`modelport keys rotate-master`):

- file: a new key is written to ``master.key.next``, every model key is rewrapped under it, then
  it replaces ``master.key``. Until that rename both keys unwrap, so a crash at any point loses
  nothing; running the command again finishes the job.
- setting: set ``MODELPORT_MASTER_KEY`` to the new key and ``MODELPORT_MASTER_KEY_PREVIOUS`` to the
  old one, run the command, then drop the previous key.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from .._fs import fsync_dir
from .._secrets import create_once
from ..config import Settings
from ..errors import IntegrityError, InvalidParameter

FILE = "master.key"
NEXT = "master.key.next"
WRAPPED = "w1:"
"""Prefix of a wrapped model key; a stored key without it is a plain one from before wrapping."""


class MasterKey:
    """Wraps and unwraps model keys; unwraps with any key it knows (current first)."""

    def __init__(self, current: bytes, others: tuple[bytes, ...] = ()) -> None:
        self.current = current
        self.others = others

    @classmethod
    def from_settings(cls, settings: Settings) -> MasterKey:
        if settings.master_key is not None:
            previous = settings.master_key_previous
            return cls(
                _decode(settings.master_key.get_secret_value(), "MODELPORT_MASTER_KEY"),
                (_decode(previous.get_secret_value(), "MODELPORT_MASTER_KEY_PREVIOUS"),)
                if previous is not None
                else (),
            )
        home = settings.home
        pending = _read(home / NEXT)  # a rotation that did not finish: its key may be in use
        return cls(_read(home / FILE) or _create(home / FILE), (pending,) if pending else ())

    def wrap(self, key: bytes) -> str:
        from cryptography.hazmat.primitives.keywrap import aes_key_wrap

        return WRAPPED + base64.b64encode(aes_key_wrap(self.current, key)).decode()

    def unwrap(self, stored: str, name: str) -> bytes:
        """The model key ``stored`` holds (a plain one from before wrapping is taken as it is)."""
        if not stored.startswith(WRAPPED):
            return base64.b64decode(stored)
        for master in (self.current, *self.others):
            key = _unwrap_with(master, stored)
            if key is not None:
                return key
        raise IntegrityError(
            f"The encryption key of model '{name}' cannot be unwrapped with the master key: it "
            "was wrapped under another one. Set MODELPORT_MASTER_KEY (or restore "
            "<home>/master.key) to the key in use when it was made."
        )

    def is_current(self, stored: str) -> bool:
        """Whether ``stored`` is wrapped under the current master key."""
        return stored.startswith(WRAPPED) and _unwrap_with(self.current, stored) is not None


def _unwrap_with(master: bytes, stored: str) -> bytes | None:
    """The key a ``w1:`` value holds if ``master`` wrapped it, else None."""
    from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

    try:
        return aes_key_unwrap(master, base64.b64decode(stored.removeprefix(WRAPPED)))
    except InvalidUnwrap:
        return None


def rotation(settings: Settings) -> tuple[MasterKey, Path | None]:
    """The key to rewrap under (with the old ones to unwrap) and, for the file, the new key's
    file that replaces ``master.key`` once every model key is rewrapped."""
    old = MasterKey.from_settings(settings)
    if settings.master_key is not None:
        return old, None  # the setting already names the new key
    pending = settings.home / NEXT
    new = _read(pending) or _create(pending)
    return MasterKey(new, (old.current, *old.others)), pending


def finish_rotation(pending: Path) -> None:
    os.replace(pending, pending.with_name(FILE))
    fsync_dir(pending.parent)


def _decode(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise InvalidParameter(
            f"{where} must be 32 random bytes in base64 (44 characters), e.g. the output of "
            "`python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())'`."
        )
    return key


def _read(path: Path) -> bytes | None:
    try:
        return _decode(path.read_text(), str(path))
    except FileNotFoundError:
        return None


def _create(path: Path) -> bytes:
    """A new random key in ``path`` (0600); an existing file wins (another process was first)."""
    return _decode(create_once(path, base64.b64encode(secrets.token_bytes(32)).decode()), str(path))
