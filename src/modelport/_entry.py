"""The `modelport` command's entry point: says which extra to install when the CLI's are missing."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from .cli import main as cli_main
    except ImportError as exc:
        sys.exit(
            f"The modelport command needs its extras ({exc.name} is missing): "
            "pip install 'modelport[all]' (or 'modelport[cli]' for the store and predictions only)."
        )
    cli_main()
