"""API keys: created once and shown once; only a SHA-256 of the secret is stored.

Keys are 192-bit random secrets, so a plain SHA-256 (not a slow password hash) is enough to keep
a stolen database from yielding usable keys, and keeps the per-request check O(1).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ..errors import InvalidParameter, NotFound
from ..store.db import ApiKeyRow

SCOPES = ("predict", "train", "metrics", "admin")
IMPLIES = {
    "admin": set(SCOPES),
    "train": {"train", "predict"},
    "predict": {"predict"},
    "metrics": {"metrics"},
}
"""What each scope may do: a train key uploads datasets, runs jobs and uses their models; a
metrics key only reads /metrics (for a Prometheus scraper)."""
PREFIX = "mp_"
RATE_PATTERN = re.compile(r"(\d+(?:\.\d+)?)\s*/\s*(s|sec|m|min|h|hour)")
PER_SECOND = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600}


@dataclass(frozen=True)
class KeyInfo:
    """What the server knows about a key (never the secret)."""

    id: str
    name: str
    scope: str
    rate: float | None
    models: tuple[str, ...] | None
    created: datetime
    revoked: datetime | None = None

    def allows(self, scope: str) -> bool:
        return scope in IMPLIES.get(self.scope, ())

    def covers(self, model: str) -> bool:
        return self.models is None or model in self.models


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_rate(text: str | None) -> float | None:
    """'10/s', '600/min', '5/h' -> requests per second."""
    if text is None:
        return None
    match = RATE_PATTERN.fullmatch(text.strip())
    if not match or float(match.group(1)) <= 0:
        raise InvalidParameter(
            f"The rate '{text}' is not valid. Write a positive number of requests per second, "
            "minute or hour: '10/s', '600/min', '5000/h'."
        )
    return float(match.group(1)) / PER_SECOND[match.group(2)]


class KeyStore:
    """API keys in the metadata database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(
        self,
        name: str,
        scope: str = "predict",
        rate: float | None = None,
        models: list[str] | None = None,
    ) -> tuple[KeyInfo, str]:
        """A new key and its secret; the secret is not stored and cannot be shown again."""
        if scope not in SCOPES:
            raise InvalidParameter(
                f"The scope '{scope}' is not known. Use one of: {', '.join(SCOPES)}."
            )
        key_id = secrets.token_hex(4)
        secret = f"{PREFIX}{key_id}_{secrets.token_urlsafe(24)}"
        row = ApiKeyRow(
            id=key_id,
            name=name,
            secret_sha256=hash_secret(secret),
            scope=scope,
            rate=rate,
            models=models or None,
            created=datetime.now(UTC),
        )
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            session.add(row)
        return _info(row), secret

    def list(self) -> list[KeyInfo]:
        with Session(self.engine) as session:
            return [
                _info(r) for r in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created))
            ]

    def revoke(self, id_or_name: str) -> KeyInfo:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            rows = list(
                session.scalars(
                    select(ApiKeyRow).where(
                        (ApiKeyRow.id == id_or_name) | (ApiKeyRow.name == id_or_name),
                        ApiKeyRow.revoked.is_(None),
                    )
                )
            )
            if len(rows) != 1:
                raise NotFound(
                    f"{'No' if not rows else 'More than one'} active key has the id or name "
                    f"'{id_or_name}'. See them with `modelport keys list`; revoke by id."
                )
            rows[0].revoked = datetime.now(UTC)
            return _info(rows[0])

    def any(self) -> bool:
        """Whether any key was ever created (revoked ones included)."""
        with Session(self.engine) as session:
            return session.scalars(select(ApiKeyRow.id).limit(1)).first() is not None

    def active(self) -> dict[str, KeyInfo]:
        """Active keys by the SHA-256 of their secret."""
        with Session(self.engine) as session:
            rows = session.scalars(select(ApiKeyRow).where(ApiKeyRow.revoked.is_(None)))
            return {r.secret_sha256: _info(r) for r in rows}


def _info(row: ApiKeyRow) -> KeyInfo:
    return KeyInfo(
        row.id,
        row.name,
        row.scope,
        row.rate,
        tuple(row.models) if row.models else None,
        row.created,
        row.revoked,
    )
