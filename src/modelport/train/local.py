"""The local job backend: each job in its own spawned process, so it can be killed cleanly.

The child never touches the store: it writes its output (stdout, stderr, tracebacks) to the job
log, sends progress over a pipe and leaves the finished artifact in a file; the server registers
it. A kill (cancel, out of memory, server shutdown) therefore loses nothing but the job itself.
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
from pathlib import Path
from typing import Any

from .handle import JobFailed

CONTEXT = multiprocessing.get_context("spawn")  # forking a threaded server is unsafe
KILL_GRACE = 3.0
JOB_NICENESS = 10
"""Jobs yield the CPU to the server's requests (measured in bench/RESULTS.md)."""


class LocalJob:
    """A job running in a child process of this server."""

    def __init__(
        self,
        spec: dict[str, Any],
        data_path: Path,
        kind: str,
        log_path: Path,
        work_dir: Path,
        memory_mb: int,
    ) -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        self.result_path = work_dir / "model.zip"
        self.log_path = log_path
        self._conn, child = CONTEXT.Pipe(duplex=False)
        self._process = CONTEXT.Process(
            target=_child_main,
            args=(
                spec,
                str(data_path),
                kind,
                str(log_path),
                str(self.result_path),
                child,
                memory_mb,
            ),
            name=f"modelport-job-{spec.get('name')}",
            daemon=True,
        )
        self._process.start()
        child.close()
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
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=KILL_GRACE)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
        self._conn.close()


def _exit_with_parent(parent: int) -> None:
    """A job whose server died (SIGKILL) stops too, instead of training for nobody."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(3)


def _child_main(
    spec: dict[str, Any],
    data_path: str,
    kind: str,
    log_path: str,
    result_path: str,
    conn: Connection,
    memory_mb: int,
) -> None:
    """The worker process: output to the job log, progress to the pipe, the model to a file."""
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    os.nice(JOB_NICENESS)
    if memory_mb > 0:
        import resource

        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from .handle import failure_message
    from .jobs import run_job
    from .spec import JobSpec

    try:
        artifact = run_job(
            JobSpec(**spec), Path(data_path), kind, lambda e: conn.send(("event", e))
        )
        artifact.to_file(result_path)
        conn.send(("done", result_path))
    except BaseException as exc:  # noqa: BLE001 - everything is reported, then the process ends
        traceback.print_exc()
        conn.send(("failed", failure_message(exc)))
    finally:
        conn.close()
        sys.stdout.flush()
        sys.stderr.flush()
