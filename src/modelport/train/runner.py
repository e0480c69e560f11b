"""The server's job runner: takes queued jobs, runs them on a backend, registers their models.

Up to ``job_workers`` jobs run at once per server process; the rest wait in the database queue.
Each running job has a thread here that forwards progress to the database (at most every
``PROGRESS_INTERVAL`` seconds), watches for a cancel, and registers the model once the job is done.
Registration is one store transaction and happens only here, after the last cancel check.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..artifact import ModelArtifact
from ..config import Settings
from ..errors import ModelportError, NotFound
from ..store import Store
from ..store.jobs import CANCELLED, FAILED, SUCCEEDED, Job, runner_id
from .handle import JobFailed, JobHandle

log = logging.getLogger("modelport.jobs")
PROGRESS_INTERVAL = 0.5
STARTING = ("loading", "starting")
"""Stages before training proper: reading data, starting (Ray) workers."""
POLL = 0.25
RECOVER_EVERY = 10.0


class Backend(Protocol):
    """Starts jobs somewhere: ``(job, dataset file, dataset kind, log file, work dir)``."""

    def prepare(self) -> None: ...

    def __call__(
        self, job: Job, data_path: Path, kind: str, log_path: Path, work_dir: Path
    ) -> JobHandle: ...

    def close(self) -> None: ...


class JobRunner:
    """Runs the job queue in background threads of a server process."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.datasets = store.datasets
        self.jobs = store.jobs
        self.settings = settings
        self.id = runner_id()
        self.backend = make_backend(settings)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._running: dict[str, JobHandle] = {}
        self._registering: set[str] = set()
        self._owned: set[str] = set()
        self._prepared = False
        """Jobs claimed by this process whose thread has not ended."""
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._scheduler: threading.Thread | None = None

    def start(self) -> None:
        for job_id in self.jobs.recover():
            log.warning("job %s was running when its server stopped; marked failed", job_id)
        self._scheduler = threading.Thread(target=self._schedule, name="job-scheduler", daemon=True)
        self._scheduler.start()

    def expect_jobs(self) -> None:
        """Training is being used (a dataset upload, a job): get the backend ready, once, in the
        background. A server that only serves never starts a spare worker or a Ray cluster."""
        with self._lock:
            if self._prepared:
                return
            self._prepared = True
        threading.Thread(target=self._prepare, name="job-backend", daemon=True).start()

    def _prepare(self) -> None:
        try:
            self.backend.prepare()
        except Exception:  # jobs will fail with the reason; serving goes on
            log.exception("preparing the %s job backend", self.settings.train_backend)

    def wake(self) -> None:
        """A job was queued: look now instead of at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Stop taking jobs; kill running ones and mark them failed (nothing is registered).

        A job already registering its model finishes that first (it takes well under a second).
        """
        self._stop.set()
        self._wake.set()
        with self._lock:
            handles = [(i, h) for i, h in self._running.items() if i not in self._registering]
        for job_id, handle in handles:
            handle.kill()
            self.jobs.finish(job_id, FAILED, error="The server stopped while the job ran.")
        for thread in self._threads:
            thread.join(timeout=5)
        self.backend.close()

    def _schedule(self) -> None:
        last_recover = time.monotonic()
        while not self._stop.is_set():
            try:
                while self._free_slots() > 0 and not self._stop.is_set():
                    job = self.jobs.claim(self.id)
                    if job is None:
                        break
                    self._launch(job)
                if time.monotonic() - last_recover > RECOVER_EVERY:
                    with self._lock:
                        owned = set(self._owned)
                    self.jobs.recover(self.id, owned)
                    last_recover = time.monotonic()
            except Exception:  # a database hiccup must not stop the queue
                log.exception("job scheduler")
            self._wake.wait(POLL * 2)
            self._wake.clear()

    def _free_slots(self) -> int:
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            return self.settings.job_workers - len(self._threads)

    def _launch(self, job: Job) -> None:
        thread = threading.Thread(target=self._run, args=(job,), name=f"job-{job.id}", daemon=True)
        with self._lock:
            self._threads.append(thread)
            self._owned.add(job.id)
        thread.start()

    def _run(self, job: Job) -> None:
        try:
            self._start_and_follow(job)
        finally:
            with self._lock:
                self._owned.discard(job.id)

    def _start_and_follow(self, job: Job) -> None:
        log_path = self.jobs.log_path(job.id)
        work_dir = self.settings.home / "jobs" / job.id
        note = _Log(log_path)
        clock = _Timings(job)  # start-up counts from here: a backend may take time to start
        try:
            dataset = self.datasets.get(job.spec["dataset"])
            handle = self.backend(
                job, self.datasets.path(dataset), dataset.kind, log_path, work_dir
            )
        except Exception as exc:  # noqa: BLE001 - e.g. the dataset was deleted meanwhile
            message = exc.message if isinstance(exc, ModelportError) else repr(exc)
            if isinstance(exc, NotFound):
                message = f"The dataset {job.spec['dataset']} was deleted before the job started."
            note(f"failed to start: {message}")
            self.jobs.finish(job.id, FAILED, runner=self.id, error=message)
            return
        note(f"started on {handle.where}")
        with self._lock:
            self._running[job.id] = handle
        try:
            self._follow(job, handle, note, clock)
        except Exception as exc:  # a bug or a lost database must not leave it "running"
            log.exception("job %s", job.id)
            handle.kill()
            note(f"failed: the job runner stopped with {exc!r}")
            error = "The job runner failed; the server log has the details."
            self.jobs.finish(job.id, FAILED, runner=self.id, error=error)
        finally:
            with self._lock:
                self._running.pop(job.id, None)
            shutil.rmtree(work_dir, ignore_errors=True)

    def _follow(
        self, job: Job, handle: JobHandle, note: Callable[[str], None], clock: _Timings
    ) -> None:
        pending: dict[str, Any] = {}
        written = 0.0
        allowed = time_limit(float(job.spec.get("time_budget") or 60))
        limit = time.monotonic() + allowed
        while not handle.finished:
            for event in handle.poll(POLL):
                pending.update(_fields(event))
                clock.saw(event)
            if self._stop.is_set():
                return
            if time.monotonic() > limit:
                handle.kill()
                message = (
                    f"The job ran {allowed:.0f} s, well past its time "
                    "budget, and was stopped; nothing was registered. Give it a larger time_budget."
                )
                note(f"failed: {message}")
                self.jobs.finish(job.id, FAILED, runner=self.id, error=message)
                return
            if time.monotonic() - written >= PROGRESS_INTERVAL:  # also the heartbeat
                if not self.jobs.update(job.id, self.id, **pending):
                    return self._stopped(job, handle, note)
                pending, written = {}, time.monotonic()
        for event in handle.poll(0):
            pending.update(_fields(event))
        try:
            data = handle.result()
        except JobFailed as exc:
            note(f"failed: {exc}\n{exc.details}".rstrip())
            fields = _leaderboard(pending)
            self.jobs.finish(job.id, FAILED, runner=self.id, error=str(exc), **fields)
            return
        clock.mark("training")
        with self._lock:
            self._registering.add(job.id)
        try:
            if not (
                self.jobs.update(job.id, self.id, **_leaderboard(pending))
                and self.jobs.begin_registering(job.id, self.id)
            ):
                return self._stopped(job, handle, note)
            self._register(job, data, note, clock)
        finally:
            with self._lock:
                self._registering.discard(job.id)

    def _register(
        self, job: Job, data: bytes, note: Callable[[str], None], clock: _Timings
    ) -> None:
        try:
            artifact = ModelArtifact.from_bytes(data, origin=f"the model of job {job.id}")
            manifest = self.store.register(
                artifact, name=job.spec["name"], aliases=tuple(job.spec.get("aliases") or ())
            )
        except ModelportError as exc:
            note(f"failed to register: {exc.message}")
            self.jobs.finish(job.id, FAILED, runner=self.id, error=exc.message)
            return
        reference = f"{manifest.name}:{manifest.version}"
        clock.mark("registering")
        note(f"registered {reference} (seconds: {clock.spent})")
        self.jobs.finish(
            job.id,
            SUCCEEDED,
            runner=self.id,
            model=reference,
            message=f"Registered {reference}",
            timings=clock.spent,
        )

    def _stopped(self, job: Job, handle: JobHandle, note: Callable[[str], None]) -> None:
        """Cancelled, or taken from this server (recovered as failed elsewhere): stop it."""
        handle.kill()
        if self.jobs.get(job.id).cancel_requested:
            note("cancelled; nothing registered")
            message = "Cancelled; nothing was registered"
            self.jobs.finish(job.id, CANCELLED, runner=self.id, message=message)
        else:
            note("stopped: another server marked this job failed; nothing registered")


def time_limit(budget: float) -> float:
    """How long a job may run before it is stopped: its budget and a generous margin (start-up,
    export; user scripts have no budget of their own to keep)."""
    return budget + max(60.0, 0.25 * budget)


def _fields(event: dict[str, Any]) -> dict[str, Any]:
    """The job columns a progress event updates."""
    fields = {k: event[k] for k in ("stage", "progress", "message") if k in event}
    if "message" in fields:
        fields["message"] = str(fields["message"])[:500]
    if event.get("leaderboard"):
        fields["leaderboard"] = event["leaderboard"]
    return fields


def _leaderboard(fields: dict[str, Any]) -> dict[str, Any]:
    """The last leaderboard of a job that ended: its stage and message are set by how it ended."""
    return {k: v for k, v in fields.items() if k == "leaderboard"}


class _Timings:
    """Where a job's time went: queued, starting the worker, training, registering."""

    def __init__(self, job: Job) -> None:
        self.spent = {"queued": round(job.waited, 3)}
        self._last = time.monotonic()

    def saw(self, event: dict[str, Any]) -> None:
        if "startup" not in self.spent and event.get("stage") not in (None, *STARTING):
            self.mark("startup")  # the worker is up and has read the data

    def mark(self, phase: str) -> None:
        now = time.monotonic()
        self.spent[phase] = round(now - self._last, 3)
        self._last = now


class _Log:
    """Appends the runner's own lines to the job log, next to the worker's output."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, line: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with self.path.open("a") as handle:
            handle.write(f"[modelport {stamp}] {line}\n")


def make_backend(settings: Settings) -> Backend:
    """The backend the settings name: a local worker process per job, or a Ray task."""
    if settings.train_backend == "ray":
        from .ray_backend import RayBackend

        return RayBackend(settings)

    from .local import LocalBackend

    return LocalBackend(settings.job_memory_mb, warm=settings.warm_job_worker)
