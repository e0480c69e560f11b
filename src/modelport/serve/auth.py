"""Who is calling: API keys from the Authorization header, checked against a cached key table."""

from __future__ import annotations

import time
from collections.abc import Mapping

from ..errors import Forbidden, RateLimited, Unauthorized
from .keys import KeyInfo, KeyStore, hash_secret

BEARER = "bearer "


class Authenticator:
    """Checks keys, scopes, model lists and per-key rate limits (token buckets)."""

    def __init__(self, keys: KeyStore, allow_anonymous: bool) -> None:
        self.keys = keys
        self.allow_anonymous = allow_anonymous
        self._by_hash: dict[str, KeyInfo] = {}
        self._keys_exist = False
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, last refill)

    def reload(self) -> None:
        """Re-read the key table (new keys and revocations take effect within a poll interval)."""
        self._by_hash = self.keys.active()
        self._keys_exist = self._keys_exist or self.keys.any()

    @property
    def required(self) -> bool:
        """Keys are required once any was created (revoking the last one does not open the
        server), unless anonymous access was allowed."""
        return self._keys_exist and not self.allow_anonymous

    def check(
        self, headers: Mapping[str, str], scope: str, model: str | None = None
    ) -> KeyInfo | None:
        """The caller's key, or None for an allowed anonymous call; raises 401/403/429."""
        secret = _secret(headers)
        if secret is None:
            if self.required or (scope == "admin" and self.allow_anonymous):
                raise Unauthorized(
                    "This server needs an API key: send the header 'Authorization: Bearer <key>'. "
                    "An administrator creates keys with `modelport keys create NAME`."
                )
            return None
        key = self._by_hash.get(hash_secret(secret))
        if key is None:
            raise Unauthorized(
                "The API key is not valid: it is unknown or was revoked. Ask for a new key "
                "(`modelport keys create NAME`)."
            )
        if not key.allows(scope):
            raise Forbidden(
                f"The API key '{key.name}' has scope '{key.scope}', which does not allow "
                f"{scope} requests. Use a key with scope "
                + (f"'{scope}' or 'admin'." if scope != "admin" else "'admin'.")
            )
        if model is not None and not key.covers(model):
            raise Forbidden(
                f"The API key '{key.name}' may not use model '{model}' (it is limited to "
                f"{', '.join(key.models or ())})."
            )
        if key.rate is not None:
            self._take(key)
        return key

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


def _secret(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization")
    if value and value[:7].lower() == BEARER:
        return value[7:].strip() or None
    return headers.get("x-api-key") or None
