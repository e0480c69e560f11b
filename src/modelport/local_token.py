"""The local admin token: what lets the machine's own user make admin calls to a keyless server.

A server without API keys answers predictions and training from loopback to anyone, but admin
calls (usage, jobs that run your own code) need a credential, or any web page in the user's
browser could make them. The token is a random secret in ``<home>/local-token`` (mode 0600), made
by the first server that uses the home; whoever can read the file can already read the store. The
CLI sends it to loopback servers by itself, as Jupyter's token does. Delete the file and restart
the server to rotate it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
from pathlib import Path

from ._secrets import create_once

FILE = "local-token"
PREFIX = "mp_local_"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address) is this machine."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def for_server(url: str, home: Path) -> str | None:
    """The token to send to ``url`` when it is a server on this machine (else None: the token
    never leaves the machine)."""
    from urllib.parse import urlsplit

    host = urlsplit(url if "//" in url else f"http://{url}").hostname or ""
    return read(home) if is_loopback(host) else None


def default_home() -> Path:
    """``MODELPORT_HOME``, or ``~/.modelport`` (what the settings default to)."""
    return Path(os.environ.get("MODELPORT_HOME") or Path.home() / ".modelport")


def path(home: Path) -> Path:
    return Path(home) / FILE


def read(home: Path) -> str | None:
    """The token, or None when no server has made one in ``home``."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        return path(home).read_text().strip() or None
    return None


def load_or_create(home: Path) -> str:
    """The token of ``home``, made (0600, never overwritten) on first use."""
    return read(home) or create_once(path(home), PREFIX + secrets.token_urlsafe(32))
