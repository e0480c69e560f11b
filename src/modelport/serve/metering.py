"""Usage metering: every request counted per key, model and status, written in batches.

The hot path only adds to a dict; a background task writes the totals per minute in one
transaction every few seconds, so metering costs no database round trip per request.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from ..errors import InvalidParameter
from ..store.db import ApiKeyRow, UsageRow, as_utc

Bucket = tuple[datetime, str | None, str, int]


class Meter:
    """Buffers request counts in memory; :meth:`flush` writes them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._buffer: dict[Bucket, list[float]] = defaultdict(lambda: [0, 0, 0.0])
        self._minute = (-1, datetime.now(UTC))

    def record(
        self, key_id: str | None, model: str, status: int, rows: int, seconds: float
    ) -> None:
        totals = self._buffer[(self._this_minute(), key_id, model, status)]
        totals[0] += 1
        totals[1] += rows
        totals[2] += seconds

    def _this_minute(self) -> datetime:
        """The current UTC minute (made once per minute, not per request)."""
        number = int(time.time() // 60)
        if number != self._minute[0]:
            self._minute = (number, datetime.fromtimestamp(number * 60, UTC))
        return self._minute[1]

    def take(self) -> dict[Bucket, list[float]]:
        """Hand over what is buffered (call on the event loop, where ``record`` runs)."""
        batch, self._buffer = self._buffer, defaultdict(lambda: [0, 0, 0.0])
        return batch

    def write(self, batch: dict[Bucket, list[float]]) -> None:
        """Write a batch from :meth:`take` (in a worker thread); raises if the database fails."""
        if not batch:
            return
        with Session(self.engine) as session, session.begin():
            session.add_all(
                UsageRow(
                    minute=minute,
                    key_id=key_id,
                    model=model,
                    status=status,
                    requests=int(t[0]),
                    rows=int(t[1]),
                    compute_seconds=t[2],
                )
                for (minute, key_id, model, status), t in batch.items()
            )

    def give_back(self, batch: dict[Bucket, list[float]]) -> None:
        """Return an unwritten batch to the buffer, so no usage is lost (event loop)."""
        for bucket, totals in batch.items():
            mine = self._buffer[bucket]
            for i, value in enumerate(totals):
                mine[i] += value

    def flush(self) -> None:
        """Take and write in one go (for a stopped server, where nothing records meanwhile)."""
        batch = self.take()
        try:
            self.write(batch)
        except Exception:
            self.give_back(batch)
            raise


def parse_since(text: str | None) -> datetime | None:
    """An ISO date or time (UTC unless it says otherwise), or a clear 400."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidParameter(
            f"'since' must be an ISO date such as 2026-11-30 or 2026-11-30T08:00, not {text!r}."
        ) from None
    return as_utc(moment)  # a date without a zone means UTC


@dataclass
class UsageTotal:
    """Totals for one key and model over the period asked for."""

    key_id: str | None
    key_name: str | None
    model: str
    requests: int
    rows: int
    errors: int
    compute_seconds: float
    cost: float


def usage_totals(
    engine: Engine, price_per_1000: float, key: str | None = None, since: datetime | None = None
) -> list[UsageTotal]:
    """Requests, rows, errors, compute time and cost per key and model."""
    errors = func.sum(UsageRow.requests).filter(UsageRow.status >= 400)
    query = (
        select(
            UsageRow.key_id,
            ApiKeyRow.name,
            UsageRow.model,
            func.sum(UsageRow.requests),
            func.sum(UsageRow.rows),
            errors,
            func.sum(UsageRow.compute_seconds),
        )
        .outerjoin(ApiKeyRow, ApiKeyRow.id == UsageRow.key_id)
        .group_by(UsageRow.key_id, ApiKeyRow.name, UsageRow.model)
        .order_by(UsageRow.model, UsageRow.key_id)
    )
    if key is not None:
        query = query.where((UsageRow.key_id == key) | (ApiKeyRow.name == key))
    if since is not None:
        query = query.where(UsageRow.minute >= since)
    with Session(engine) as session:
        return [
            UsageTotal(
                key_id,
                name,
                model,
                int(n),
                int(rows),
                int(errs or 0),
                float(secs),
                round(int(n) * price_per_1000 / 1000, 6),
            )
            for key_id, name, model, n, rows, errs, secs in session.execute(query)
        ]
