"""The online server: OIP v2, TF-Serving REST and simple JSON over the one runtime."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # the app pulls in Starlette, the runtime and the job runner: only load it when asked, so
    # `modelport keys ...` (which imports serve.keys) stays quick
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
