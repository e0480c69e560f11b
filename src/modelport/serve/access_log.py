"""The access log: one JSON line per request, written in batches.

A ``logging`` call per request cost ~30 µs, half of onnxruntime's own call for one row
(bench/profile_request.py, RESULTS.md), so, like nginx's ``access_log ... buffer= flush=``,
lines wait in memory (as tuples: formatting them waits too) and go out as one record of the
``modelport.access`` logger at most ``FLUSH_SECONDS`` later, or as soon as ``BATCH_LINES`` are
waiting. Each line carries its own time; the default log configuration writes the record as it
is (one JSON object per line).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

log = logging.getLogger("modelport.access")
FLUSH_SECONDS = 1.0
BATCH_LINES = 512


FIELDS = ("route", "method", "path", "status", "ms", "model", "rows", "key")


class AccessLog:
    """Buffers access lines on the event loop as tuples; :meth:`flush` formats and writes them."""

    def __init__(self) -> None:
        self._lines: list[tuple[Any, ...]] = []
        self._second = -1
        self._stamp = ""

    def record(
        self,
        route: str,
        method: str,
        path: str,
        status: int,
        seconds: float,
        model: str | None,
        rows: int,
        key: str | None,
    ) -> None:
        """Keep one request's line (never its keys or input data)."""
        self._lines.append((time.time(), route, method, path, status, seconds, model, rows, key))
        if len(self._lines) >= BATCH_LINES:
            self.flush()

    def flush(self) -> None:
        """Write the waiting lines as one log record."""
        if self._lines:
            lines, self._lines = self._lines, []
            log.info("\n".join(map(self._format, lines)))

    def _format(self, line: tuple[Any, ...]) -> str:
        when, *values = line
        values[4] = round(values[4] * 1000, 3)  # seconds -> ms
        return orjson.dumps(
            {"time": self._time(when), **dict(zip(FIELDS, values, strict=True))}
        ).decode()

    def _time(self, now: float) -> str:
        """UTC ISO 8601 with milliseconds; the formatted second is reused within it."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1000):03d}Z"
