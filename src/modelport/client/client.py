"""Client: the entry point of the device SDK."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from ..refs import ModelRef
from .cache import ModelCache
from .keys import FileKeyStore, KeyStore
from .model import Model, SyncEvent
from .remote import Remote
from .trust import Trust


def default_cache_dir() -> Path:
    return Path(os.environ.get("MODELPORT_CACHE_DIR", Path.home() / ".cache" / "modelport"))


class Client:
    """Models from a modelport server, usable offline from a verified local cache.

    Args:
        url: the server, e.g. "https://models.example.com" (None: local cache only).
        api_key: sent as ``Authorization: Bearer <key>``.
        cache_dir: where downloaded models live (default ``~/.cache/modelport`` or
            ``MODELPORT_CACHE_DIR``).
        timeout: seconds per server call before falling back.
        key_store: where keys of encrypted models are kept (default: 0600 files in the cache).
        public_key: the server's signing key (``modelport keys signing``) to pin; without it the
            key is fetched on first use and pinned from then on.

    Example:
        >>> client = Client("http://127.0.0.1:8000", api_key=KEY)       # doctest: +SKIP
        >>> model = client.model("credit", mode="prefer_local")          # doctest: +SKIP
        >>> model.predict([{"age": 30, "plan": "basic"}]).served_by      # doctest: +SKIP
        'local'
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        cache_dir: str | Path | None = None,
        timeout: float = 5.0,
        public_key: str | None = None,
        key_store: KeyStore | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.remote = Remote(url, api_key, timeout, transport=transport) if url else None
        self.trust = Trust(self.cache_dir, public_key, self.remote)
        self.keys = key_store if key_store is not None else FileKeyStore(self.cache_dir / "keys")

    def model(
        self,
        ref: str,
        mode: str = "prefer_local",
        update: str = "background",
        on_sync: Callable[[SyncEvent], None] | None = None,
        variant: str | None = None,
    ) -> Model:
        """A model by reference (``name``, ``name:3``, ``name@production``); see :class:`Model`."""
        parsed = ModelRef.parse(ref)
        return Model(
            str(parsed),
            ModelCache(self.cache_dir, parsed.name, self.keys),
            self.remote,
            mode,
            update,
            on_sync,
            self.trust,
            variant,
        )

    def close(self) -> None:
        if self.remote is not None:
            self.remote.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
