"""One training job, as a worker runs it: read the dataset, train, return the artifact.

The same function runs in a local worker process and in a Ray task; it never touches the store,
so killing it (cancel, out of memory) cannot leave anything half-registered. Progress goes out
through ``emit`` as plain dicts.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..artifact import ModelArtifact
from ..data import check_target, read_table
from ..data.datasets import read_jsonl, unpack_images
from .spec import JobSpec

Emit = Callable[[dict[str, Any]], None]


def run_job(
    spec: JobSpec, data_path: Path, kind: str, emit: Emit, backend: str = "local"
) -> ModelArtifact:
    """Train what ``spec`` asks for on the dataset file at ``data_path``."""
    emit({"stage": "loading", "progress": 0.0, "message": "Reading the dataset"})
    if spec.script is not None:
        return _run_script(spec, data_path, kind, emit)
    from .tabular import TabularAutoML, TrainingEvent

    def forward(event: TrainingEvent) -> None:
        emit(
            {
                "stage": event.stage,
                "progress": event.progress,
                "message": event.message,
                "leaderboard": [row.to_dict() for row in event.leaderboard],
            }
        )

    if kind == "images":
        from .image import run_image_job

        return run_image_job(spec, data_path, forward)
    frame = read_table(data_path)
    assert spec.target is not None
    check_target(frame, spec.target, spec.task)
    automl = TabularAutoML(
        task=spec.task,
        time_budget=spec.time_budget,
        metric=spec.metric,
        seed=spec.seed,
        estimators=tuple(spec.estimators) if spec.estimators else None,
        backend=backend,
        callback=forward,
    )
    automl.fit(frame.drop(columns=[spec.target]), frame[spec.target])
    return automl.to_artifact(spec.name, description=f"AutoML job on dataset {spec.dataset}")


def warm_up() -> None:
    """Import what training needs, so a waiting worker starts a job at once."""
    from flaml import AutoML  # noqa: F401

    from . import script, tabular  # noqa: F401


def _run_script(spec: JobSpec, data_path: Path, kind: str, emit: Emit) -> ModelArtifact:
    from .script import run_script

    assert spec.script is not None
    emit({"stage": "train", "progress": 0.05, "message": "Running your training code"})
    with tempfile.TemporaryDirectory(prefix="modelport-job-") as folder:
        data: Any
        if kind == "images":
            data = unpack_images(data_path, Path(folder))
        elif kind == "text" and data_path.suffix == ".jsonl":
            data = read_jsonl(data_path)
        else:
            data = read_table(data_path)
        artifact = run_script(spec.script, spec.entry, data, spec.target, spec.name)
    emit({"stage": "export", "progress": 0.95, "message": "Exported and checked"})
    return artifact
