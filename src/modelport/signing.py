"""Ed25519 signatures over an artifact's whole manifest (which carries its graph's SHA-256) and
how it is delivered.

The server signs every model it hands out; devices verify with a public key they pinned, so a
tampered file (caught by the SHA-256) and a forged manifest (caught by the signature) are both
rejected. What is signed also binds the *delivery*: the store's release number when it was served
(it only grows, so a device refuses an older answer replayed to it) and whether the device must
keep the model encrypted (so stripping that flag breaks the signature). The private key never
leaves the server's home directory (file mode 0600).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ._fs import atomic_write
from .artifact import Manifest
from .errors import IntegrityError, InvalidInput

DOMAIN = b"modelport-artifact-v2"


@dataclass(frozen=True)
class Delivery:
    """How a model was handed out, signed together with its manifest."""

    release: int
    """The store's generation when it was served: grows with every change to the store."""
    encryption: str | None = None
    """The algorithm the device must keep the model encrypted with, or None."""


def message(manifest: Manifest, delivery: Delivery) -> bytes:
    """What is signed: the SHA-256 of the canonical manifest JSON, which holds the graph's SHA-256
    (so labels, schema and outputs are covered as well as the bytes), and the delivery."""
    canonical = json.dumps(manifest.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return b"\n".join(
        [
            DOMAIN,
            digest.encode(),
            b"release=%d" % delivery.release,
            b"encryption=" + (delivery.encryption or "none").encode(),
        ]
    )


class SigningKey:
    """The server's Ed25519 key, kept as PEM in ``<home>/signing/ed25519.pem``."""

    def __init__(self, private: object) -> None:
        self._private = private

    @classmethod
    def path(cls, home: Path) -> Path:
        return home / "signing" / "ed25519.pem"

    @classmethod
    def load_or_create(cls, home: Path, rotate: bool = False) -> SigningKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        path = cls.path(home)
        if path.exists() and not rotate:
            return cls(serialization.load_pem_private_key(path.read_bytes(), password=None))
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, pem, private=True)
        return cls(private)

    def sign(self, manifest: Manifest, delivery: Delivery) -> str:
        signature = self._private.sign(message(manifest, delivery))  # type: ignore[attr-defined]
        return base64.b64encode(signature).decode()

    @property
    def public_key(self) -> str:
        """The public key as base64 of its 32 raw bytes (what clients pin)."""
        from cryptography.hazmat.primitives import serialization

        raw = self._private.public_key().public_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.b64encode(raw).decode()


def verify(public_key: str, manifest: Manifest, delivery: Delivery, signature: str | None) -> None:
    """Raise IntegrityError unless ``signature`` is the server's signature of ``manifest`` as
    ``delivery`` says it was delivered."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not signature:
        raise IntegrityError(
            f"Model {manifest.name}:{manifest.version} arrived without a signature, but this "
            "client pins a signing key. The server must sign its models (it does once "
            "`modelport keys signing` has created its key)."
        )
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
    except ValueError as exc:
        raise InvalidInput(
            f"The public key {public_key!r} is not an Ed25519 key in base64 (32 bytes). Copy it "
            "from `modelport keys signing`."
        ) from exc
    try:
        key.verify(base64.b64decode(signature), message(manifest, delivery))
    except (InvalidSignature, ValueError) as exc:
        raise IntegrityError(
            f"The signature of model {manifest.name}:{manifest.version} does not match the pinned "
            "public key: the file or its delivery headers (release, encryption) were altered, or "
            "the server's key changed. The download is rejected and the current version keeps "
            "serving."
        ) from exc
