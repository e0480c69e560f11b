"""Training jobs in the database: the queue, their progress and their end, safe across restarts.

A server process *claims* a queued job with one conditional UPDATE, so several server processes
never run the same job; it writes a heartbeat while the job runs, so a job whose server died is
found and marked failed instead of staying "running" forever.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from ..errors import Conflict, InvalidParameter, NotFound, RateLimited
from .db import JobRow, as_utc, from_row, transaction

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
FINISHED = (SUCCEEDED, FAILED, CANCELLED)
REGISTERING = "registering"
MAX_TEXT = 2000
STALE_AFTER = timedelta(seconds=60)
"""A running job whose server has not written a heartbeat for this long is marked failed."""


@dataclass(frozen=True)
class Job:
    """One training job as the API shows it."""

    id: str
    status: str
    spec: dict[str, Any]
    stage: str
    progress: float
    message: str
    leaderboard: list[dict[str, Any]]
    model: str | None
    error: str | None
    timings: dict[str, float]
    cancel_requested: bool
    owner: str | None
    """The id of the key that submitted it ("" or None: an anonymous local caller)."""
    created: datetime
    started: datetime | None
    finished: datetime | None

    @property
    def done(self) -> bool:
        return self.status in FINISHED

    @property
    def waited(self) -> float:
        """Seconds from submission to start (or until now, while queued)."""
        end = self.started or datetime.now(UTC)
        return max(0.0, (as_utc(end) - as_utc(self.created)).total_seconds())

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        end = self.finished or datetime.now(UTC)
        return max(0.0, (as_utc(end) - as_utc(self.started)).total_seconds())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "stage": self.stage,
            "progress": round(self.progress, 4),
            "elapsed": round(self.elapsed, 2),
            "message": self.message,
            "leaderboard": self.leaderboard,
            "model": self.model,
            "error": self.error,
            "timings": self.timings,
            "spec": self.spec,
            "owner": self.owner or None,
            "created": as_utc(self.created).isoformat(),
            "started": as_utc(self.started).isoformat() if self.started else None,
            "finished": as_utc(self.finished).isoformat() if self.finished else None,
        }


def runner_id() -> str:
    """Who runs jobs in this process: host, pid and a nonce (pids are reused after restarts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class JobStore:
    """Submit, claim, update, finish, cancel and recover jobs; logs live next to the database."""

    def __init__(self, engine: Engine, log_dir: Path) -> None:
        self.engine = engine
        self.log_dir = log_dir

    def submit(self, spec: dict[str, Any], max_queued: int, owner: str = "") -> Job:
        with transaction(self.engine) as session:
            queued = session.scalar(select(func.count()).where(JobRow.status == QUEUED)) or 0
            if queued >= max_queued:
                raise RateLimited(
                    f"{queued} jobs are already waiting; this server queues at most {max_queued} "
                    "(MODELPORT_MAX_QUEUED_JOBS). Retry when some have finished.",
                    retry_after=30,
                )
            row = JobRow(
                id="job_" + secrets.token_hex(6),
                status=QUEUED,
                spec=spec,
                leaderboard=[],
                owner=owner,
            )
            session.add(row)
            session.flush()
            return _job(row)

    def get(self, job_id: str, owner: str | None = None) -> Job:
        """The job; with ``owner``, only if it is that owner's (else as if it did not exist)."""
        with transaction(self.engine) as session:
            return _job(self._row(session, job_id, owner))

    def list(
        self, limit: int = 100, status: str | None = None, owner: str | None = None
    ) -> list[Job]:
        if status is not None and status not in (QUEUED, RUNNING, *FINISHED):
            raise InvalidParameter(
                f"status must be one of {', '.join((QUEUED, RUNNING, *FINISHED))}, not {status!r}."
            )
        query = select(JobRow).order_by(JobRow.created.desc()).limit(limit)
        if status:
            query = query.where(JobRow.status == status)
        if owner is not None:
            query = query.where(_owned_by(owner))
        with transaction(self.engine) as session:
            return [_job(r) for r in session.scalars(query)]

    def claim(self, runner: str) -> Job | None:
        """Mark the oldest queued job running for ``runner``; None when the queue is empty."""
        with transaction(self.engine) as session:
            candidates = session.scalars(
                select(JobRow.id).where(JobRow.status == QUEUED).order_by(JobRow.created).limit(5)
            ).all()
            for job_id in candidates:
                now = datetime.now(UTC)
                claimed = session.execute(
                    update(JobRow)
                    .where(JobRow.id == job_id, JobRow.status == QUEUED)
                    .values(status=RUNNING, runner=runner, started=now, heartbeat=now)
                )
                if claimed.rowcount == 1:
                    return _job(self._row(session, job_id))
        return None

    def update(self, job_id: str, runner: str, **fields: Any) -> bool:
        """Record progress and a heartbeat; False when the job should stop: a cancel was asked
        for, or it is no longer this runner's (marked failed by another server's recovery)."""
        with transaction(self.engine) as session:
            written = session.execute(
                update(JobRow)
                .where(
                    JobRow.id == job_id,
                    JobRow.runner == runner,
                    JobRow.status == RUNNING,
                    JobRow.cancel_requested.is_(False),
                )
                .values(heartbeat=datetime.now(UTC), **fields)
            )
            return written.rowcount == 1

    def begin_registering(self, job_id: str, runner: str) -> bool:
        """The point of no return: from here a cancel is refused (409) and the model registers.

        False when the job was cancelled (or lost) first; then nothing may be registered.
        """
        return self.update(job_id, runner, stage=REGISTERING, message="Registering the model")

    def finish(self, job_id: str, status: str, runner: str | None = None, **fields: Any) -> Job:
        """End the job (once; only by ``runner`` when given), with texts cut to a sane size."""
        assert status in FINISHED
        with transaction(self.engine) as session:
            row = self._row(session, job_id)
            if row.status in FINISHED or (runner is not None and row.runner != runner):
                return _job(row)
            for name in ("error", "message"):
                if isinstance(fields.get(name), str):
                    fields[name] = fields[name][:MAX_TEXT]
            row.status, row.stage = status, status
            row.finished = datetime.now(UTC)
            row.message = {FAILED: "Failed", CANCELLED: "Cancelled"}.get(status, row.message)
            if status == SUCCEEDED:
                row.progress, row.stage = 1.0, "done"
            for name, value in fields.items():
                setattr(row, name, value)
            return _job(row)

    def cancel(self, job_id: str, owner: str | None = None) -> Job:
        """A queued job is cancelled at once; a running one when its runner next looks."""
        with transaction(self.engine) as session:
            row = self._row(session, job_id, owner)
            if row.status in FINISHED:
                raise Conflict(
                    f"Job {job_id} has already ended ({row.status}); there is nothing to cancel."
                )
            if row.stage == REGISTERING:
                raise Conflict(
                    f"Job {job_id} has finished training and is registering its model; it is too "
                    "late to cancel. Delete the model version instead if you do not want it."
                )
            row.cancel_requested = True
            if row.status == QUEUED:
                row.status, row.stage = CANCELLED, CANCELLED
                row.finished, row.message = datetime.now(UTC), "Cancelled"
            return _job(row)

    def recover(
        self, runner: str | None = None, owned: set[str] | frozenset = frozenset()
    ) -> list[str]:
        """Fail running jobs whose server is gone (a dead process on this host, or no heartbeat),
        and jobs of ``runner`` (this process) that it no longer follows (``owned``)."""
        host = socket.gethostname()
        cutoff = datetime.now(UTC) - STALE_AFTER
        failed = []
        with transaction(self.engine) as session:
            for row in session.scalars(select(JobRow).where(JobRow.status == RUNNING)):
                if runner is not None and row.runner == runner:
                    if row.id in owned:
                        continue
                    dead = True  # its thread ended without finishing it
                else:
                    runner_host, pid = _host_pid(row.runner)
                    # our own pid under another runner id is an earlier life of this process
                    dead = runner_host == host and (pid == os.getpid() or not _pid_alive(pid))
                if dead or row.heartbeat is None or as_utc(row.heartbeat) < cutoff:
                    row.status, row.finished = FAILED, datetime.now(UTC)
                    row.error = (
                        "The server running this job stopped before it finished (restart or "
                        "crash); nothing was registered. Submit the job again."
                    )
                    failed.append(row.id)
        return failed

    def using(self, dataset_id: str, owner: str | None = None) -> list[str]:
        """Queued and running jobs (of ``owner``, when given) that will read ``dataset_id``."""
        query = select(JobRow).where(JobRow.status.in_((QUEUED, RUNNING)))
        if owner is not None:
            query = query.where(_owned_by(owner))
        with transaction(self.engine) as session:
            rows = session.scalars(query)
            return [row.id for row in rows if row.spec.get("dataset") == dataset_id]

    def log_path(self, job_id: str) -> Path:
        return self.log_dir / f"{job_id}.log"

    def _row(self, session: Session, job_id: str, owner: str | None = None) -> JobRow:
        row = session.get(JobRow, job_id)
        if row is None or (owner is not None and (row.owner or "") != owner):
            raise NotFound(f"There is no job '{job_id}'. GET /api/v1/jobs lists the jobs.")
        return row


def _owned_by(owner: str) -> Any:
    """The condition "belongs to ``owner``" ("" also matches rows from before owners existed)."""
    return JobRow.owner.is_(None) | (JobRow.owner == "") if owner == "" else JobRow.owner == owner


def _job(row: JobRow) -> Job:
    return from_row(Job, row, leaderboard=row.leaderboard or [], timings=row.timings or {})


def _host_pid(runner: str | None) -> tuple[str, int]:
    host, _, rest = (runner or "").partition(":")
    pid = rest.partition(":")[0]
    return host, int(pid) if pid.isdigit() else -1


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
