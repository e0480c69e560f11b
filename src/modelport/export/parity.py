"""Parity: the original model and the ONNX graph in onnxruntime must agree on held-out rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import ExportError
from ..runtime import Prediction

PROBABILITY_TOLERANCE = 1e-3
RELATIVE_TOLERANCE = 1e-4


@dataclass
class ParityReport:
    """How far apart the original model and ONNX were on ``rows`` rows."""

    rows: int
    max_abs_diff: float
    label_mismatches: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_classifier(
    expected_labels: np.ndarray, expected_proba: np.ndarray | None, onnx: Prediction, what: str
) -> ParityReport:
    """Same labels on every row and probabilities within 1e-3, or ExportError."""
    mismatches = int(
        (np.asarray(expected_labels).astype(str) != onnx.predictions.astype(str)).sum()
    )
    diff = 0.0
    if expected_proba is not None and onnx.probabilities is not None:
        diff = float(np.max(np.abs(np.asarray(expected_proba) - onnx.probabilities), initial=0.0))
    report = ParityReport(len(onnx), diff, mismatches)
    if mismatches or diff > PROBABILITY_TOLERANCE:
        raise ExportError(
            f"The ONNX version of {what} disagrees with the original on {report.rows} held-out "
            f"rows: {mismatches} different labels, probabilities up to {diff:.2g} apart (the rule "
            f"is 0 and {PROBABILITY_TOLERANCE:g}). The model is not registered; report the model "
            "type, or try another estimator."
        )
    return report


def check_regressor(expected: np.ndarray, onnx: Prediction, what: str) -> ParityReport:
    """Values within 1e-3 absolute or 1e-4 relative (float32 precision), or ExportError."""
    expected = np.asarray(expected, dtype=np.float64).reshape(-1)
    diff = np.abs(expected - onnx.predictions)
    allowed = PROBABILITY_TOLERANCE + RELATIVE_TOLERANCE * np.abs(expected)
    report = ParityReport(len(onnx), float(np.max(diff, initial=0.0)))
    if np.any(diff > allowed):
        raise ExportError(
            f"The ONNX version of {what} disagrees with the original on held-out rows: values up "
            f"to {report.max_abs_diff:.3g} apart (the rule is {PROBABILITY_TOLERANCE:g} plus "
            f"{RELATIVE_TOLERANCE:g} of the value). The model is not registered."
        )
    return report
