"""The local job backend: each job in its own spawned process, so it can be killed cleanly.

The child never touches the store: it writes its output (stdout, stderr, tracebacks) to the job
log, sends progress over a pipe and leaves the finished artifact in a file; the server registers
it. A kill (cancel, out of memory, server shutdown) therefore loses nothing but the job itself.

One spare worker is kept started, with the training stack already imported (pandas, scikit-learn,
FLAML: ~2-4 s here), so a job starts training at once; each job takes the spare and a new one is
started behind it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from ..errors import ModelportError
from .handle import JobFailed

CONTEXT = multiprocessing.get_context("spawn")  # forking a threaded server is unsafe
KILL_GRACE = 3.0
JOB_NICENESS = 10
"""Jobs yield the CPU to the server's requests (measured in bench/RESULTS.md)."""


class _Worker:
    """A started worker process waiting on its pipe for one job."""

    def __init__(self) -> None:
        self.conn, child = CONTEXT.Pipe(duplex=True)
        # NOTE: not a daemon: joblib (scikit-learn's parallel loops) refuses to start workers in
        # a daemonic process and falls back to one core, with a warning per fit in the job log.
        # The runner kills these processes itself, and they exit when the server dies.
        self.process = CONTEXT.Process(target=_worker_main, args=(child,), name="modelport-job")
        self.process.start()
        child.close()


class LocalBackend:
    """Starts jobs in worker processes, keeping one warm spare when ``warm`` is set."""

    def __init__(self, memory_mb: int, warm: bool = True) -> None:
        self.memory_mb = memory_mb
        self.warm = warm
        self._spare: _Worker | None = None
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Start the spare worker (it imports in its own process, so this returns at once)."""
        if self.warm:
            self._refill()

    def __call__(
        self, job: Any, data_path: Path, kind: str, log_path: Path, work_dir: Path
    ) -> LocalJob:
        with self._lock:
            worker, self._spare = self._spare, None
        if worker is None or not worker.process.is_alive():
            worker = _Worker()
        self.prepare()
        work_dir.mkdir(parents=True, exist_ok=True)
        result_path = work_dir / "model.zip"
        payload = (job.spec, str(data_path), kind, str(log_path), str(result_path), self.memory_mb)
        try:
            worker.conn.send(payload)
        except OSError:  # the spare died after the check above: use a fresh one
            _stop(worker.process)
            worker = _Worker()
            worker.conn.send(payload)
        return LocalJob(worker.process, worker.conn, result_path)

    def close(self) -> None:
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            _stop(spare.process)

    def _refill(self) -> None:
        with self._lock:
            if self._spare is not None and self._spare.process.is_alive():
                return
            self._spare = _Worker()


class LocalJob:
    """A job running in a worker process of this server."""

    def __init__(self, process: BaseProcess, conn: Connection, result_path: Path) -> None:
        self._process = process
        self._conn = conn
        self.result_path = result_path
        self._outcome: tuple[str, str] | None = None

    @property
    def where(self) -> str:
        return f"local worker process {self._process.pid}"

    def poll(self, timeout: float) -> list[dict[str, Any]]:
        """Progress events received within ``timeout`` seconds (empty when none came)."""
        events: list[dict[str, Any]] = []
        try:
            ready = self._conn.poll(timeout)
            while ready:
                kind, payload = self._conn.recv()
                if kind == "event":
                    events.append(payload)
                else:
                    self._outcome = (kind, payload)
                ready = self._conn.poll(0)
        except (EOFError, OSError):
            self._process.join(timeout=KILL_GRACE)
        return events

    @property
    def finished(self) -> bool:
        return self._outcome is not None or not self._process.is_alive()

    def result(self) -> bytes:
        """The artifact zip; raises JobFailed with the reason when the job did not succeed."""
        self._process.join(timeout=KILL_GRACE)
        if self._outcome is not None and self._outcome[0] == "done":
            return self.result_path.read_bytes()
        if self._outcome is not None:
            raise JobFailed(self._outcome[1])
        code = self._process.exitcode
        if code is not None and code < 0:
            reason = f"killed by signal {signal.Signals(-code).name}"
        else:
            reason = f"exit code {code}"
        hint = " It probably ran out of memory." if code == -signal.SIGKILL else ""
        raise JobFailed(
            f"The training process stopped unexpectedly ({reason}).{hint} The job log has its "
            "last output."
        )

    def kill(self) -> None:
        _stop(self._process)
        self._conn.close()


def _stop(process: BaseProcess) -> None:
    if process.is_alive():
        process.terminate()
        process.join(timeout=KILL_GRACE)
        if process.is_alive():
            process.kill()
            process.join()


def _exit_with_parent(parent: int) -> None:
    """A job whose server died (SIGKILL) stops too, instead of training for nobody."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(3)


def _worker_main(conn: Connection) -> None:
    """The worker: import the training stack, wait for a job, run it, report, exit."""
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    os.nice(JOB_NICENESS)
    from .handle import failure_message

    try:  # a broken install must reach the job log, not only the server's stderr
        from .jobs import run_job, warm_up
        from .spec import JobSpec

        warm_up()
        broken = None
    except Exception as exc:  # noqa: BLE001 - reported once a job arrives
        broken = exc
    try:
        spec, data_path, kind, log_path, result_path, memory_mb = conn.recv()
    except EOFError:  # the server stopped before giving this spare a job
        return
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    if memory_mb > 0:
        import resource

        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        if broken is not None:
            raise broken
        artifact = run_job(
            JobSpec(**spec), Path(data_path), kind, lambda e: conn.send(("event", e))
        )
        artifact.to_file(result_path)
        conn.send(("done", result_path))
    except BaseException as exc:  # noqa: BLE001 - everything is reported, then the process ends
        if isinstance(exc, ModelportError):  # a user error: its message says it all
            print(f"error: {exc.message}", file=sys.stderr)
        else:
            traceback.print_exc()
        conn.send(("failed", failure_message(exc)))
    finally:
        conn.close()
        sys.stdout.flush()
        sys.stderr.flush()
