"""Who is calling and what they may do: API keys (or the local admin token) against route scopes.

Each route declares its scope where it is declared (see ``endpoint`` in context.py); this is the
one place that decides. Without a credential a caller may predict and train only while the server
needs no keys (no key was ever created, or ``allow_anonymous``), and only from loopback unless
``allow_anonymous``; admin calls always need an admin key or the local admin token.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime

from ..config import Settings
from ..errors import Forbidden, RateLimited, Unauthorized
from ..local_token import is_loopback
from .keys import KeyInfo, KeyStore, hash_secret

BEARER = "bearer "
ANONYMOUS_SCOPES = frozenset({"predict", "train"})
"""What a caller without a key may do on a server that needs no keys."""


class Authenticator:
    """Checks credentials, scopes, model lists and per-key rate limits (token buckets)."""

    def __init__(self, keys: KeyStore, settings: Settings, local_token: str) -> None:
        self.keys = keys
        self.allow_anonymous = settings.allow_anonymous
        self.metrics_open = not settings.metrics_require_key
        self.local = KeyInfo("local", "local admin token", "admin", None, None, datetime.now(UTC))
        self._local_hash = hash_secret(local_token)
        self._by_hash: dict[str, KeyInfo] = {}
        self._by_secret: dict[str, KeyInfo] = {}
        """Keys already found by their secret since the last reload (saves hashing each time)."""
        self._keys_exist = False
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, last refill)
        self._loopback: dict[str, bool] = {}

    def reload(self) -> None:
        """Re-read the key table (new keys and revocations take effect within a poll interval)."""
        keys = self.keys.active()
        keys[self._local_hash] = self.local
        self._by_hash = keys
        self._by_secret = {}
        self._keys_exist = self._keys_exist or self.keys.any()

    @property
    def required(self) -> bool:
        """Keys are required once any was created (revoking the last one does not open the
        server), unless anonymous access was allowed."""
        return self._keys_exist and not self.allow_anonymous

    def check(
        self,
        headers: Mapping[str, str],
        scope: str,
        model: str | None = None,
        client: tuple[str, int] | None = None,
    ) -> KeyInfo | None:
        """The caller's key, or None for an allowed anonymous call; raises 401/403/429."""
        if scope == "metrics" and self.metrics_open:
            return None  # open to every caller, whatever key it sends
        secret = _secret(headers)
        if secret is None:
            self._check_anonymous(scope, client)
            return None
        known = self._by_secret  # reload() replaces it after the keys: a stale entry dies with it
        key = known.get(secret)
        if key is None:
            key = self._by_hash.get(hash_secret(secret))
        if key is None:
            raise Unauthorized(
                "The API key is not valid: it is unknown or was revoked. Ask for a new key "
                "(`modelport keys create NAME`)."
            )
        known[secret] = key  # valid keys only: as many entries as keys
        self.require(key, scope)
        if model is not None:
            self.check_model(key, model)
        if key.rate is not None:
            self._take(key)
        return key

    def require(self, key: KeyInfo | None, scope: str) -> None:
        """Raise 401/403 unless the caller already checked (``key``) also holds ``scope``: for
        requests whose body asks for more than their route's scope (a job with a script)."""
        if key is None:
            if scope == "admin":  # anonymous callers never hold it
                self._check_anonymous(scope, None)
            return
        if not key.allows(scope):
            raise Forbidden(
                f"The API key '{key.name}' has scope '{key.scope}', which does not allow "
                f"{scope} requests. Use a key with scope "
                + (f"'{scope}' or 'admin'." if scope != "admin" else "'admin'.")
            )

    def _check_anonymous(self, scope: str, client: tuple[str, int] | None) -> None:
        if scope == "admin":
            raise Unauthorized(
                "Admin requests need a credential, even on a server without API keys: send an "
                "admin key ('Authorization: Bearer <key>'), or the local admin token from the "
                "file local-token in the server's MODELPORT_HOME (the modelport CLI sends it "
                "to a server on this machine by itself)."
            )
        if scope not in ANONYMOUS_SCOPES or self.required:
            raise Unauthorized(
                "This server needs an API key: send the header 'Authorization: Bearer <key>'. "
                "An administrator creates keys with `modelport keys create NAME`."
            )
        if not self.allow_anonymous and not self._is_loopback(client):
            raise Unauthorized(
                "This server has no API keys, so it answers calls from its own machine only. "
                "Create a key (`modelport keys create NAME`) and send it as "
                "'Authorization: Bearer <key>'."
            )

    def _is_loopback(self, client: tuple[str, int] | None) -> bool:
        if client is None:
            return False
        known = self._loopback.get(client[0])
        if known is None:
            if len(self._loopback) > 4096:
                self._loopback.clear()
            known = self._loopback[client[0]] = is_loopback(client[0])
        return known

    def check_model(self, key: KeyInfo | None, model: str, action: str = "use") -> None:
        """Raise 403 unless ``key`` may ``action`` (use, write) the model ``model``."""
        if key is not None and not key.covers(model):
            raise Forbidden(
                f"The API key '{key.name}' may not {action} model '{model}' (it is limited to "
                f"{', '.join(key.models or ())})."
            )

    def _take(self, key: KeyInfo) -> None:
        assert key.rate is not None
        burst = max(1.0, key.rate)
        now = time.monotonic()
        tokens, last = self._buckets.get(key.id, (burst, now))
        tokens = min(burst, tokens + (now - last) * key.rate)
        if tokens < 1.0:
            self._buckets[key.id] = (tokens, now)
            wait = (1.0 - tokens) / key.rate
            raise RateLimited(
                f"The API key '{key.name}' is limited to {key.rate:g} requests per second; "
                f"retry in {wait:.2f} s.",
                retry_after=wait,
            )
        self._buckets[key.id] = (tokens - 1.0, now)


def owner(key: KeyInfo | None) -> str:
    """Who owns what a caller creates (datasets, jobs): the key's id, or "" when anonymous."""
    return key.id if key is not None else ""


def visible_owner(key: KeyInfo | None) -> str | None:
    """Whose datasets and jobs the caller sees and acts on: its own, or everyone's (None) for
    admin credentials."""
    return None if key is not None and key.scope == "admin" else owner(key)


def _secret(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization")
    if value and value[:7].lower() == BEARER:
        return value[7:].strip() or None
    return headers.get("x-api-key") or None
