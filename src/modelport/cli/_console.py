"""Shared consoles and the store the commands work on."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

from ..store import Store

# NOTE: piped output is not cut at 80 columns (Rich's default without a terminal).
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)


def open_store() -> Store:
    """The store under MODELPORT_HOME (default ~/.modelport)."""
    return Store()


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else on it."""
    print(json.dumps(data, indent=2, default=str))
