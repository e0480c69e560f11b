"""THE mapping from exceptions to HTTP responses: a status and ``{"error": message}``."""

from __future__ import annotations

import logging
from http import HTTPStatus

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ..errors import ModelportError, RateLimited

log = logging.getLogger("modelport.serve")
ERROR_CODE_HEADER = "X-Modelport-Error"


def error_response(exc: BaseException) -> Response:
    """The response for any exception; 5xx bodies stay generic and the detail goes to the log."""
    headers = {}
    if isinstance(exc, ModelportError):
        status, message = int(exc.status), exc.message
        headers[ERROR_CODE_HEADER] = exc.code  # the client SDK re-raises the same class
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(max(1, round(exc.retry_after + 0.5)))
        if status >= 500 and status != HTTPStatus.SERVICE_UNAVAILABLE:
            log.error("internal error: %s", message)
            message = "Internal server error; the server log has the details."
    elif isinstance(exc, ClientDisconnect):  # nothing was kept; the client is gone anyway
        status, message = 400, "The request body was cut off before it ended; send it again."
    elif isinstance(exc, HTTPException):
        status, message = exc.status_code, exc.detail or HTTPStatus(exc.status_code).phrase
        if status == HTTPStatus.NOT_FOUND:
            message = "No such endpoint. See /docs for the API."
    else:
        log.exception("unexpected error", exc_info=exc)
        status, message = 500, "Internal server error; the server log has the details."
    return Response(
        orjson.dumps({"error": message}), status, headers, media_type="application/json"
    )


async def handle(_request: Request, exc: Exception) -> Response:
    """Starlette exception handler (routing errors such as 404/405)."""
    return error_response(exc)
