"""AES-256-GCM for models at rest on devices: encrypted on disk, decrypted only in memory.

A sealed file is ``MPENC1`` + a 12-byte nonce + the ciphertext (with its tag); the model's name is
bound in as associated data, so a file cannot be passed off as another model's.
"""

from __future__ import annotations

import os
import secrets

from .errors import IntegrityError

MAGIC = b"MPENC1"
ALGORITHM = "aes-256-gcm"
NONCE_BYTES = 12


def new_key() -> bytes:
    return secrets.token_bytes(32)


def is_sealed(data: bytes) -> bool:
    return data.startswith(MAGIC)


def seal(key: bytes, data: bytes, name: str) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(NONCE_BYTES)
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, data, name.encode())


def open_sealed(key: bytes, sealed: bytes, name: str) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    start = len(MAGIC)
    nonce, ciphertext = sealed[start : start + NONCE_BYTES], sealed[start + NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, name.encode())
    except (InvalidTag, ValueError) as exc:
        raise IntegrityError(
            f"The encrypted copy of '{name}' cannot be decrypted with its key: the file is "
            "damaged or the key is wrong. Sync again while online to replace it."
        ) from exc
