"""What a browser may do: the outermost check of every request, before any route runs.

A page in the user's browser can send requests to a server on the user's machine: cross-origin
(the browser sends them, only hiding the answer) or, through DNS rebinding, as if same-origin
under a name the attacker controls. So every request must name this server in ``Host`` (an IP
address, ``localhost`` or a configured name: a rebinding page can only send its own name), and a
request that carries an ``Origin`` must come from this server's own origin or from one the CORS
allow-list names. Allowed origins get CORS headers (preflights included) from Starlette's
CORSMiddleware; everything else is refused before it reaches a route.
"""

from __future__ import annotations

import ipaddress

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from ..config import Settings
from ..errors import Forbidden, InvalidInput, ModelportError
from .errors import error_response

REQUEST_HEADERS = ["Authorization", "Content-Type", "If-None-Match", "X-Api-Key"]
EXPOSED_HEADERS = [
    "ETag",
    "Retry-After",
    "Location",
    "Inference-Header-Content-Length",
    "X-Model-Version",
    "X-Modelport-Error",
    "X-Modelport-Signature",
    "X-Modelport-Encryption",
    "X-Modelport-Release",
]


class BrowserGuard:
    """Refuses foreign ``Host`` names and origins the CORS allow-list does not name."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.state = getattr(app, "state", None)  # the app's state (its ServerContext) for tools
        self.hosts = [h.lower() for h in settings.allowed_hosts]
        self.any_host = "*" in self.hosts
        self._seen: dict[str, bool] = {}  # Host header -> allowed (a few distinct values)
        self.origins = set(settings.cors_origins)
        self.any_origin = "*" in self.origins
        self.app = (
            CORSMiddleware(
                app,
                allow_origins=list(self.origins),
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=REQUEST_HEADERS,
                expose_headers=EXPOSED_HEADERS,
                max_age=600,
            )
            if self.origins
            else app
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = self.problem(scope["headers"])
            if problem is not None:
                await error_response(problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def problem(self, headers: list[tuple[bytes, bytes]]) -> ModelportError | None:
        """Why the request must be refused, or None."""
        host = origin = fetch_site = fetch_mode = None
        for name, value in headers:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"sec-fetch-site":
                fetch_site = value
            elif name == b"sec-fetch-mode":
                fetch_mode = value
        if host is not None and not self.host_allowed(host):
            return InvalidInput(
                f"This server does not answer to the host name in 'Host: {host}'. Call it by its "
                "IP address or localhost, or add the name to MODELPORT_ALLOWED_HOSTS."
            )
        if origin is not None:
            if origin in (f"http://{host}", f"https://{host}"):
                return None
            if self.any_origin or origin in self.origins:
                return None
            return Forbidden(
                f"Requests from web pages of {origin} are refused: it is not this server's own "
                "origin. If that site is yours, add it to MODELPORT_CORS_ORIGINS."
            )
        if fetch_site == b"cross-site" and fetch_mode != b"navigate":
            return Forbidden(
                "Requests that another web site's page makes are refused (Sec-Fetch-Site: "
                "cross-site). Add the site to MODELPORT_CORS_ORIGINS if it is yours."
            )
        return None

    def host_allowed(self, host: str) -> bool:
        allowed = self._seen.get(host)
        if allowed is None:
            if len(self._seen) > 1024:
                self._seen.clear()
            allowed = self._seen[host] = self._check_host(host)
        return allowed

    def _check_host(self, host: str) -> bool:
        name = _hostname(host)
        if self.any_host or name == "localhost" or _is_ip(name):
            return True
        return any(name == h or (h.startswith(".") and name.endswith(h)) for h in self.hosts)


def _hostname(host: str) -> str:
    """The name in a Host header, without the port (IPv6 literals keep no brackets)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
