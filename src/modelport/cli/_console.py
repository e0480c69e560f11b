"""Shared consoles and the store the commands work on."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from ..errors import InvalidParameter
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


def check_output(output: Path) -> None:
    """Refuse an --output that is a directory or in a folder that does not exist (nothing is
    created: a typo must not make directories)."""
    if output.is_dir():
        raise InvalidParameter(
            f"--output '{output}' is a directory. Give the name of a file in it."
        )
    folder = output.parent
    if not folder.is_dir():
        raise InvalidParameter(
            f"The folder of --output '{output}' does not exist ({folder}); nothing was written. "
            f"Create it first (mkdir -p {folder}) or write to an existing folder."
        )
