"""What a training job asks for, checked when it is submitted (not minutes later in the worker)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..data.tabular import TASKS
from ..errors import InvalidParameter, InvalidTarget
from ..refs import LATEST, check_alias, check_name
from .metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS

ESTIMATOR_NAMES = ("lgbm", "xgboost", "rf", "extra_tree", "linear")
DEFAULT_ENTRY = "train"
TYPE_NAMES = {str: "string", int: "whole number"}


@dataclass
class JobSpec:
    """A job: AutoML on a table (``target`` set), or the user's own ``script`` on any dataset."""

    dataset: str
    name: str
    target: str | None = None
    task: str = "auto"
    time_budget: float = 60.0
    metric: str = "auto"
    seed: int = 0
    estimators: list[str] | None = None
    aliases: list[str] = field(default_factory=list)
    script: str | None = None
    """Python source defining ``train(data, target)`` that returns a fitted model or ONNX bytes."""
    entry: str = DEFAULT_ENTRY

    @classmethod
    def from_request(cls, body: Any, max_time_budget: float) -> JobSpec:
        """Build and check a spec from a JSON body; every fault is one clear 400."""
        allowed = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(body, dict):
            raise InvalidParameter(
                'The body must be a JSON object such as {"dataset": "ds_...", '
                '"target": "column", "name": "credit"}.'
            )
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise InvalidParameter(
                f"Unknown field(s) {unknown}. A job takes: {', '.join(sorted(allowed))}."
            )
        for required in ("dataset", "name"):
            if not isinstance(body.get(required), str) or not body[required]:
                raise InvalidParameter(f"The job needs '{required}' (a string).")
        try:
            spec = cls(**body)
        except TypeError as exc:
            raise InvalidParameter(f"The job is not valid: {exc}.") from None
        spec.check(max_time_budget)
        return spec

    def check(self, max_time_budget: float) -> None:
        _check_type("dataset", self.dataset, str)
        _check_type("name", self.name, str)
        check_name(self.name)
        _check_strings("aliases", self.aliases)
        for alias in self.aliases:
            check_alias(alias)
            if alias == LATEST:
                raise InvalidParameter(
                    f"'{LATEST}' always means the newest version; it cannot be set."
                )
        for field_name in ("target", "script"):
            if getattr(self, field_name) is not None:
                _check_type(field_name, getattr(self, field_name), str)
        _check_type("task", self.task, str)
        _check_type("metric", self.metric, str)
        _check_type("entry", self.entry, str)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InvalidParameter(f"seed must be an integer, not {self.seed!r}.")
        if self.estimators is not None:
            _check_strings("estimators", self.estimators)
        budget = self.time_budget
        if (
            isinstance(budget, bool)
            or not isinstance(budget, (int, float))
            or not math.isfinite(budget)
            or not 0 < budget <= max_time_budget
        ):
            raise InvalidParameter(
                f"time_budget must be a number of seconds above 0 and at most {max_time_budget:g} "
                f"(MODELPORT_MAX_TIME_BUDGET), not {budget!r}."
            )
        if self.task not in TASKS:
            raise InvalidParameter(f"task must be one of {', '.join(TASKS)}, not {self.task!r}.")
        metrics = ("auto", *CLASSIFICATION_METRICS, *REGRESSION_METRICS)
        if self.metric not in metrics:
            raise InvalidParameter(f"metric must be one of {', '.join(metrics)}.")
        unknown = [e for e in self.estimators or () if e not in ESTIMATOR_NAMES]
        if unknown:
            raise InvalidParameter(
                f"Unknown estimator(s) {unknown}. Choose from: {', '.join(ESTIMATOR_NAMES)}."
            )

    def check_dataset(self, kind: str, columns: list[dict[str, str]]) -> None:
        """The dataset must fit the job: AutoML needs a table that holds the target, of a type
        that fits the task and the metric, or photos (whose classes are their folders)."""
        if self.script is not None:
            return
        if kind == "images":
            if self.target not in (None, "label"):
                raise InvalidTarget(
                    "An image dataset's classes are its folders, so it has no columns to pick: "
                    "leave 'target' out."
                )
            return
        if kind != "table":
            raise InvalidParameter(
                f"AutoML trains on tables and photos; this dataset holds {kind}. Submit your own "
                "training code for it ('script'), or upload a CSV/Parquet table."
            )
        if self.target is None:
            raise InvalidTarget(
                "The job needs 'target': the column to predict (or a 'script' with your own "
                "training code)."
            )
        types = {c["name"]: c["dtype"] for c in columns}
        if self.target not in types:
            raise InvalidTarget(
                f"The dataset has no column '{self.target}'. Its columns: {', '.join(types)}."
            )
        task = self.task
        if task == "regression" and types[self.target] == "string":
            raise InvalidTarget(
                f"The target '{self.target}' holds text, so it cannot be predicted by regression. "
                'Use "task": "classification" or "auto".'
            )
        if task == "auto" and types[self.target] == "string":
            task = "classification"
        wrong = REGRESSION_METRICS if task == "classification" else CLASSIFICATION_METRICS
        if task != "auto" and self.metric in wrong:
            raise InvalidParameter(
                f"The metric '{self.metric}' does not fit a {task} task. Use \"auto\" or one "
                f"of: {', '.join(CLASSIFICATION_METRICS if task == 'classification' else REGRESSION_METRICS)}."
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_type(name: str, value: Any, kind: type) -> None:
    if not isinstance(value, kind):
        raise InvalidParameter(f"{name} must be a {TYPE_NAMES[kind]}, not {value!r}.")


def _check_strings(name: str, value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter(f'{name} must be a list of strings, e.g. ["a", "b"], not {value!r}.')
