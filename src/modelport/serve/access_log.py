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


LINE = (
    '{"time":"%s","route":%s,"method":%s,"path":%s,"status":%d,"ms":%s,"model":%s,"rows":%d,'
    '"key":%s}'
)
"""One access line; the strings in it are JSON-encoded (and kept: routes, paths, models and keys
repeat), the numbers formatted as numbers."""


class AccessLog:
    """Buffers access lines on the event loop as tuples; :meth:`flush` formats and writes them."""

    def __init__(self) -> None:
        self._lines: list[tuple[Any, ...]] = []
        self._millis = self._second = -1
        self._day_time = self._stamp = ""
        self._json: dict[str | None, str] = {}

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
            if len(self._json) > 4096:  # distinct paths are few, unless a client invents them
                self._json.clear()

    def _format(self, line: tuple[Any, ...]) -> str:
        when, route, method, path, status, seconds, model, rows, key = line
        text = self._text
        return LINE % (
            self._time(when),
            text(route),
            text(method),
            text(path),
            status,
            round(seconds * 1000, 3),
            text(model),
            rows,
            text(key),
        )

    def _text(self, value: str | None) -> str:
        """``value`` as JSON (a string or null)."""
        found = self._json.get(value)
        if found is None:
            found = self._json[value] = orjson.dumps(value).decode()
        return found

    def _time(self, now: float) -> str:
        """UTC ISO 8601 with milliseconds, made once per millisecond (and its date and time of
        day once per second): lines of the same millisecond share it."""
        millis = int(now * 1000)
        if millis != self._millis:
            self._millis = millis
            second, fraction = divmod(millis, 1000)
            if second != self._second:
                self._second = second
                self._day_time = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._stamp = f"{self._day_time}.{fraction:03d}Z"
        return self._stamp
