"""Bring your own training code: the user's function trains, modelport exports and checks.

The script defines ``train(data, target)`` (the name is configurable). ``data`` is a pandas
DataFrame for tables and labelled text, or the folder of an unpacked image zip. At prediction time
a missing text value arrives as "" (numbers as NaN), so code should train on that representation. It returns a fitted
scikit-learn / LightGBM / XGBoost model, or an ONNX graph (bytes or a path to a ``.onnx`` file);
the result goes through the same ONNX export and parity check as AutoML and ``modelport import``.
"""

from __future__ import annotations

import inspect
import linecache
from pathlib import Path
from typing import Any

import pandas as pd

from ..artifact import ModelArtifact
from ..errors import ExportError, InvalidParameter
from ..export.importers import import_estimator, import_onnx
from .versions import library_versions

SAMPLE_ROWS = 500


class UserCodeError(Exception):
    """The user's training code raised; the job log holds its traceback."""


def load_entry(source: str, entry: str, filename: str = "train.py") -> Any:
    """Run the script's top level and return its function ``entry``."""
    # the source goes into linecache so that tracebacks in the job log show the user's lines
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": "modelport_user_script", "__file__": filename}
    try:
        exec(compile(source, filename, "exec"), namespace)
    except Exception as exc:
        raise UserCodeError(f"Your script failed while loading: {_describe(exc)}") from exc
    function = namespace.get(entry)
    if not callable(function):
        raise InvalidParameter(
            f"The script defines no function '{entry}'. Define `def {entry}(data, target):` that "
            "returns a fitted model or an ONNX file."
        )
    return function


def run_script(
    source: str, entry: str, data: pd.DataFrame | Path, target: str | None, name: str
) -> ModelArtifact:
    """Call the user's function and turn what it returns into a checked artifact."""
    function = load_entry(source, entry)
    takes_target = len(inspect.signature(function).parameters) >= 2
    try:
        result = function(data, target) if takes_target else function(data)
    except Exception as exc:
        raise UserCodeError(f"Your training code raised {_describe(exc)}") from exc
    artifact = to_artifact(result, name, _sample(data, target))
    artifact.manifest.source = {**artifact.manifest.source, "kind": "script", "entry": entry}
    artifact.manifest.library_versions = library_versions()
    return artifact


def to_artifact(result: Any, name: str, sample: pd.DataFrame | None) -> ModelArtifact:
    """ONNX bytes or file, or a fitted estimator (which needs ``sample`` rows for parity)."""
    if isinstance(result, (bytes, bytearray)):
        return import_onnx(bytes(result), name, sample)
    if isinstance(result, (str, Path)) and str(result).endswith(".onnx"):
        return import_onnx(Path(result).read_bytes(), name, sample)
    if result is None or isinstance(result, (str, Path, int, float, dict, list, tuple)):
        raise ExportError(
            f"The training function returned {type(result).__name__}; it must return a fitted "
            "scikit-learn, LightGBM or XGBoost model, or an ONNX model (bytes or a .onnx path)."
        )
    if sample is None:
        raise ExportError(
            "A model trained on images must be returned as ONNX (bytes or a .onnx path): there "
            "are no table rows to check a converted estimator against."
        )
    return import_estimator(result, name, sample)


def _sample(data: pd.DataFrame | Path, target: str | None) -> pd.DataFrame | None:
    """Rows for the parity check, as the runtime will present them: missing text is ""."""
    if not isinstance(data, pd.DataFrame):
        return None
    features = data.drop(columns=[target]) if target in data.columns else data
    sample = features.head(SAMPLE_ROWS).reset_index(drop=True)
    texts = [c for c in sample.columns if not pd.api.types.is_numeric_dtype(sample[c])]
    sample[texts] = sample[texts].astype(object).where(sample[texts].notna(), "")
    return sample


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
