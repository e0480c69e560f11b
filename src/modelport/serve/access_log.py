"""The access log: one JSON line per request, written in batches.

A ``logging`` call per request cost ~30 µs, half of onnxruntime's own call for one row
(bench/profile_request.py, RESULTS.md), so, like nginx's ``access_log ... buffer= flush=``,
lines wait in memory and go out as one record of the ``modelport.access`` logger at most
``FLUSH_SECONDS`` later, or as soon as ``BATCH_LINES`` are waiting. Each line carries its own
time; the default log configuration writes the record as it is (one JSON object per line).
"""

from __future__ import annotations

import logging
import time

import orjson

log = logging.getLogger("modelport.access")
FLUSH_SECONDS = 1.0
BATCH_LINES = 512


class AccessLog:
    """Buffers access lines on the event loop; :meth:`flush` writes them."""

    def __init__(self) -> None:
        self._lines: list[bytes] = []
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
        line = {
            "time": self._time(),
            "route": route,
            "method": method,
            "path": path,
            "status": status,
            "ms": round(seconds * 1000, 3),
            "model": model,
            "rows": rows,
            "key": key,
        }
        self._lines.append(orjson.dumps(line))
        if len(self._lines) >= BATCH_LINES:
            self.flush()

    def flush(self) -> None:
        """Write the waiting lines as one log record."""
        if self._lines:
            lines, self._lines = self._lines, []
            log.info(b"\n".join(lines).decode())

    def _time(self) -> str:
        """UTC ISO 8601 with milliseconds; the formatted second is reused within it."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1000):03d}Z"
