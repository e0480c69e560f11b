"""The Ray job backend: each server job is a Ray task, its AutoML trials more tasks on the cluster.

The job task needs no CPU of its own (it coordinates; its trials take the CPUs), gets the dataset
through Ray's object store, so it runs on any node, and sends progress back through a Ray queue.
It returns the artifact's bytes or the failure with its traceback; the server registers the model,
as with local jobs, so a cancelled task (``ray.cancel(force=True)``) leaves nothing behind.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import ModelportError
from .handle import JobFailed
from .ray_search import ensure_ray


class RayBackend:
    """Starts jobs as Ray tasks on ``MODELPORT_RAY_ADDRESS`` (or a local Ray)."""

    def __init__(self, settings: Settings) -> None:
        self.address = settings.ray_address

    def prepare(self) -> None:
        """Connect now and warm one worker per CPU (imports), so the first job starts at once."""
        ray = ensure_ray(self.address)
        from .ray_search import cluster_cpus

        warm = ray.remote(num_cpus=1)(_warm_up)
        ray.get([warm.remote() for _ in range(cluster_cpus())])

    def __call__(
        self, job: Any, data_path: Path, kind: str, log_path: Path, work_dir: Path
    ) -> RayJob:
        ray = ensure_ray(self.address)
        from ray.util.queue import Queue

        queue = Queue()
        try:
            task = ray.remote(num_cpus=0, max_retries=0)(_run_on_ray)
            data = ray.put(data_path.read_bytes())
            ref = task.remote(job.spec, data, data_path.suffix, kind, queue)
        except BaseException:
            ray.kill(queue.actor)
            raise
        return RayJob(ray, ref, queue, rewarm=self._rewarm)

    def _rewarm(self) -> None:
        """A cancel kills the job's workers: warm new ones for the next job."""
        threading.Thread(target=self.prepare, name="ray-warm-up", daemon=True).start()

    def close(self) -> None:
        """Disconnect; a local Ray stops with its agents (they outlive a plain exit)."""
        import ray

        if ray.is_initialized():
            ray.shutdown()


class RayJob:
    """A job running as a Ray task."""

    def __init__(self, ray: Any, ref: Any, queue: Any, rewarm: Callable[[], None]) -> None:
        self._ray = ray
        self._ref = ref
        self._queue = queue
        self._rewarm = rewarm
        self._done = False

    @property
    def where(self) -> str:
        return f"Ray task {self._ref.task_id().hex()[:16]}"

    def poll(self, timeout: float) -> list[dict[str, Any]]:
        ready, _ = self._ray.wait([self._ref], timeout=timeout)
        self._done = bool(ready)
        size = self._queue.qsize()
        return list(self._queue.get_nowait_batch(size)) if size else []

    @property
    def finished(self) -> bool:
        return self._done

    def result(self) -> bytes:
        try:
            outcome, payload, details = self._ray.get(self._ref)
        except Exception as exc:  # the task died: out of memory, node lost, cancelled
            raise JobFailed(f"The Ray task failed: {type(exc).__name__}: {exc}") from None
        finally:
            self._ray.kill(self._queue.actor)
        if outcome == "failed":
            raise JobFailed(payload, details)
        return payload

    def kill(self) -> None:
        self._ray.cancel(self._ref, force=True, recursive=True)
        self._ray.kill(self._queue.actor)
        self._rewarm()


def _warm_up() -> None:
    from .jobs import warm_up

    warm_up()


def _run_on_ray(
    spec: dict[str, Any], data: bytes, suffix: str, kind: str, queue: Any
) -> tuple[str, Any, str]:
    """The Ray task: the same ``run_job`` as a local worker, on a copy of the dataset file."""
    import tempfile

    from .handle import failure_message
    from .jobs import run_job
    from .spec import JobSpec

    try:
        with tempfile.TemporaryDirectory(prefix="modelport-ray-job-") as folder:
            path = Path(folder) / f"data{suffix}"
            path.write_bytes(data)
            artifact = run_job(JobSpec(**spec), path, kind, queue.put, backend="ray")
        return "done", artifact.to_bytes(), ""
    except BaseException as exc:  # noqa: BLE001 - reported to the server, which fails the job
        details = "" if isinstance(exc, ModelportError) else traceback.format_exc()
        return "failed", failure_message(exc), details
