"""What every route shares: settings, store, models, auth, metering, metrics; and the endpoint
wrapper that gives every route the same error mapping, metrics, usage records and access log."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .. import local_token
from ..config import Settings
from ..errors import PayloadTooLarge, Unavailable, UnsupportedMediaType
from ..refs import ModelRef
from ..runtime import Prediction
from ..signing import SigningKey
from ..store import Store
from ..train.runner import JobRunner
from .access_log import AccessLog
from .auth import Authenticator
from .dataplane import JSON, parse_json
from .errors import error_response
from .keys import KeyInfo, KeyStore
from .metering import Meter
from .metrics import Metrics
from .models import LoadedModel, ModelManager


@dataclass(slots=True)
class Call:
    """Facts about one request, filled in by the route, read by the wrapper."""

    key: KeyInfo | None = None
    ref: ModelRef | None = None
    """The model the URL names, for routes that declare one (checked against the key)."""
    model: str | None = None
    rows: int = 0
    compute_seconds: float = 0.0


class ServerContext:
    """The objects one server process shares between requests."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings)
        self.metrics = Metrics()
        self.models = ModelManager(self.store, settings, self.metrics)
        self.auth = Authenticator(
            KeyStore(self.store.engine), settings, local_token.load_or_create(settings.home)
        )
        self.meter = Meter(self.store.engine)
        self.signing = SigningKey.load_or_create(settings.home)
        self.runner = JobRunner(self.store, settings)
        self.access_log = AccessLog() if settings.access_log else None
        self.ready = False
        self._flushing = asyncio.Lock()

    async def read_body(self, request: Request) -> bytes:
        """The body, refusing more than ``max_body_bytes`` (413) before reading it all."""
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(int(declared), limit)
        chunks, size, more = [], 0, True
        while more:  # the ASGI messages themselves: Request.stream() costs ~10 µs more per call
            message = await request.receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(size, limit)
            chunks.append(chunk)
            more = message.get("more_body", False)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def read_json(self, request: Request) -> Any:
        """The body parsed as JSON; 415 unless it was sent as application/json."""
        check_content_type(request)
        return parse_json(await self.read_body(request))

    async def flush_usage(self) -> None:
        """Write buffered usage; the buffer is swapped here, on the loop, where requests record.

        One flush at a time: a reader of usage (GET /api/v1/usage) that flushes first must also
        wait for a background flush already writing, or it reads the database before it lands.
        """
        async with self._flushing:
            batch = self.meter.take()
            try:
                await asyncio.to_thread(self.meter.write, batch)
            except Exception:
                self.meter.give_back(batch)  # written with the next flush
                raise

    def check_rows(self, rows: int) -> None:
        if rows > self.settings.max_batch_rows:
            raise PayloadTooLarge(
                f"The request has {rows} rows; this server accepts at most "
                f"{self.settings.max_batch_rows} per request. Split it into smaller requests."
            )

    async def predict(self, call: Call, model: LoadedModel, feeds: dict) -> Prediction:
        """Run the model (through its batcher) within the request timeout."""
        rows = len(next(iter(feeds.values()))) if feeds else 0
        self.check_rows(rows)
        call.rows = rows
        started = time.perf_counter()
        try:
            result = await model.batcher.run(feeds)
        except TimeoutError:
            raise Unavailable(
                f"The prediction took longer than {self.settings.request_timeout:g} s and was "
                "abandoned. Send fewer rows per request or raise MODELPORT_REQUEST_TIMEOUT."
            ) from None
        call.compute_seconds = time.perf_counter() - started
        return result


def check_content_type(request: Request, types: tuple[str, ...] = (JSON,)) -> None:
    """415 unless the body's Content-Type is one of ``types`` ("" admits a request without one).

    A web page can send text/plain, form or multipart bodies to any server without asking
    (no CORS preflight), so bodies that act must say what they are.
    """
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in types:
        raise UnsupportedMediaType(
            f"Send the body with 'Content-Type: application/json', not "
            f"'{media or 'no Content-Type'}' (with curl: -H 'Content-Type: application/json' "
            "or --json)."
        )


def _too_large(size: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is {size:,} bytes; this server accepts at most {limit:,}. Send fewer "
        "rows or smaller images per request, or raise MODELPORT_MAX_BODY_BYTES."
    )


Handler = Callable[[ServerContext, Request, Call], Awaitable[Response]]
Target = Callable[[Request], ModelRef]
PUBLIC = None
"""The scope of routes anyone may call (health, server metadata, the API description)."""


def endpoint(
    route: str, scope: str | None, target: Target | None = None
) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a route: the caller must hold ``scope`` (and may use the model ``target`` reads from
    the URL) before the handler runs; errors become ``{"error"}`` responses; metrics, usage and
    access log."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def run(request: Request) -> Response:
            ctx: ServerContext = request.app.state.ctx
            call = Call()
            started = time.perf_counter()
            try:
                if scope is not PUBLIC:
                    call.ref = target(request) if target is not None else None
                    call.key = ctx.auth.check(
                        request.headers,
                        scope,
                        call.ref.name if call.ref is not None else None,
                        request.scope.get("client"),
                    )
                response = await handler(ctx, request, call)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON error
                response = error_response(exc)
            elapsed = time.perf_counter() - started
            status = response.status_code
            model = call.model or ""
            ctx.metrics.requests.observe(route, model, status, elapsed)
            if call.model is not None:
                ctx.meter.record(
                    call.key.id if call.key else None,
                    call.model,
                    status,
                    call.rows,
                    call.compute_seconds,
                )
            if ctx.access_log is not None:
                ctx.access_log.record(
                    route,
                    request.scope["method"],
                    request.scope["path"],
                    status,
                    elapsed,
                    call.model,
                    call.rows,
                    call.key.id if call.key else None,
                )
            return response

        run.scope = scope  # type: ignore[attr-defined]  # read by the route-scope tests and docs
        return run

    return wrap
