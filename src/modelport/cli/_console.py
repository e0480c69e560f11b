"""Shared consoles and the store the commands work on."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

from ..store import Store

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def open_store() -> Store:
    """The store under MODELPORT_HOME (default ~/.modelport)."""
    return Store()


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else on it."""
    print(json.dumps(data, indent=2, default=str))
