"""The ASGI app: protocol routes over one context, background refresh and metering loops."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..config import Settings
from .access_log import FLUSH_SECONDS
from .context import PUBLIC, Call, ServerContext, endpoint
from .dataplane import JSONBytes, json_response
from .errors import handle
from .guard import BrowserGuard
from .openapi import SPEC, docs_page
from .routes import oip, simple, tfserving, training

log = logging.getLogger("modelport.serve")


@endpoint("metrics", "metrics")
async def metrics(ctx: ServerContext, request: Request, call: Call) -> Response:
    """Prometheus metrics (a key with scope metrics when MODELPORT_METRICS_REQUIRE_KEY)."""
    return Response(ctx.metrics.render(), media_type="text/plain; version=0.0.4")


@endpoint("openapi", PUBLIC)
async def openapi(ctx: ServerContext, request: Request, call: Call) -> Response:
    return json_response(SPEC)


@endpoint("docs", PUBLIC)
async def docs(ctx: ServerContext, request: Request, call: Call) -> Response:
    return HTMLResponse(docs_page())


def create_app(settings: Settings | None = None) -> BrowserGuard:
    """The modelport server for the store ``settings`` names (default: from MODELPORT_*)."""
    ctx = ServerContext(settings or Settings())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(ctx.auth.reload)
        if ctx.settings.load == "eager":
            await ctx.models.load_all()
        await asyncio.to_thread(ctx.runner.start)
        ctx.ready = True
        # The objects of the imported libraries (~100,000) never become garbage: leave them out
        # of the collector's full scans, which would otherwise pause the requests in flight.
        gc.freeze()
        tasks = [
            asyncio.create_task(_every(ctx.settings.poll_interval, _refresh, ctx)),
            asyncio.create_task(_every(ctx.settings.meter_flush_seconds, _flush, ctx)),
        ]
        if ctx.access_log is not None:
            tasks.append(asyncio.create_task(_every(FLUSH_SECONDS, _write_access_log, ctx)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if ctx.access_log is not None:
                ctx.access_log.flush()
            await asyncio.to_thread(ctx.meter.flush)
            await asyncio.to_thread(ctx.runner.stop)

    routes = [
        *oip.routes,
        *tfserving.routes,
        *simple.routes,
        *training.routes,
        Route("/metrics", metrics),
        Route("/openapi.json", openapi),
        Route("/docs", docs),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: handle})
    app.state.ctx = ctx
    return BrowserGuard(PredictFastPath(app), ctx.settings)


class PredictFastPath:
    """The outermost ASGI app: prediction requests go straight to their handler.

    Starlette's middleware, router and request wrapper cost ~100 µs per request, as much as the
    prediction itself (profiled with py-spy under `hey`); the handlers already map their own
    errors, so predictions skip them. Everything else is served by the Starlette app.
    """

    FAST = (
        (re.compile(r"/api/v1/models/(?P<ref>[^/]+)/predict"), simple.predict),
        (
            re.compile(r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer"),
            oip.infer,
        ),
        (re.compile(r"/v1/models/(?P<tail>[^:]+:predict)"), tfserving.predict),
    )

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.state = app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            for pattern, handler in self.FAST:
                match = pattern.fullmatch(scope["path"])
                if match is not None:
                    params = {k: v for k, v in match.groupdict().items() if v is not None}
                    scope = {**scope, "app": self.app, "path_params": params}
                    response = await handler(PredictRequest(scope, receive))
                    if type(response) is JSONBytes:  # Response.__call__'s checks, skipped
                        await send(
                            {
                                "type": "http.response.start",
                                "status": response.status_code,
                                "headers": response.raw_headers,
                            }
                        )
                        await send({"type": "http.response.body", "body": response.body})
                    else:
                        await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


class PredictRequest(Request):
    """A Request whose headers are found in a dict: a prediction reads five or six of them, and
    Starlette's Headers scans its list for each."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        super().__init__(scope, receive)
        self._headers = IndexedHeaders(scope=scope)  # read by Request.headers


class IndexedHeaders(Headers):
    """Headers with a dict of names (the first of a repeated name wins, as in Headers)."""

    def __init__(self, scope: Scope) -> None:
        self._list = scope["headers"]
        self._index = dict(reversed(self._list))

    def get(self, key: str, default: Any = None) -> Any:
        value = self._index.get(key.lower().encode("latin-1"))
        return default if value is None else value.decode("latin-1")

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: Any) -> bool:
        return self._index.get(key.lower().encode("latin-1")) is not None


async def _refresh(ctx: ServerContext) -> None:
    await asyncio.to_thread(ctx.auth.reload)
    await ctx.models.refresh()


async def _flush(ctx: ServerContext) -> None:
    await ctx.flush_usage()


async def _write_access_log(ctx: ServerContext) -> None:
    assert ctx.access_log is not None
    ctx.access_log.flush()


async def _every(seconds: float, job, ctx: ServerContext) -> None:  # type: ignore[no-untyped-def]
    while True:
        await asyncio.sleep(seconds)
        try:
            await job(ctx)
        except Exception:  # a failed poll must not stop the next one
            log.exception("background job %s failed", job.__name__)
