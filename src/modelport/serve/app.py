"""The ASGI app: protocol routes over one context, background refresh and metering loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ..config import Settings
from .context import ServerContext
from .dataplane import json_response
from .errors import handle
from .openapi import SPEC, docs_page
from .routes import oip, simple, tfserving

log = logging.getLogger("modelport.serve")


async def metrics(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    return Response(ctx.metrics.render(), media_type="text/plain; version=0.0.4")


async def openapi(request: Request) -> Response:
    return json_response(SPEC)


async def docs(request: Request) -> Response:
    return HTMLResponse(docs_page())


def create_app(settings: Settings | None = None) -> Starlette:
    """The modelport server for the store ``settings`` names (default: from MODELPORT_*)."""
    ctx = ServerContext(settings or Settings())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(ctx.auth.reload)
        if ctx.settings.load == "eager":
            await ctx.models.load_all()
        ctx.ready = True
        tasks = [
            asyncio.create_task(_every(ctx.settings.poll_interval, _refresh, ctx)),
            asyncio.create_task(_every(ctx.settings.meter_flush_seconds, _flush, ctx)),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.to_thread(ctx.meter.flush)

    routes = [
        *oip.routes,
        *tfserving.routes,
        *simple.routes,
        Route("/metrics", metrics),
        Route("/openapi.json", openapi),
        Route("/docs", docs),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: handle})
    app.state.ctx = ctx
    return app


async def _refresh(ctx: ServerContext) -> None:
    await asyncio.to_thread(ctx.auth.reload)
    await ctx.models.refresh()


async def _flush(ctx: ServerContext) -> None:
    await asyncio.to_thread(ctx.meter.flush)


async def _every(seconds: float, job, ctx: ServerContext) -> None:  # type: ignore[no-untyped-def]
    while True:
        await asyncio.sleep(seconds)
        try:
            await job(ctx)
        except Exception:  # a failed poll must not stop the next one
            log.exception("background job %s failed", job.__name__)
