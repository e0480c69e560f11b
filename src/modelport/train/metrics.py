"""Metric names, their direction, and test-set scores for a finished model."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidParameter

CLASSIFICATION_METRICS = (
    "accuracy",
    "roc_auc",
    "roc_auc_ovr",
    "log_loss",
    "f1",
    "micro_f1",
    "macro_f1",
    "ap",
)
BINARY_ONLY = ("roc_auc", "f1", "ap")
REGRESSION_METRICS = ("r2", "rmse", "mae", "mse", "mape")
LOWER_IS_BETTER = ("log_loss", "rmse", "mae", "mse", "mape")


def resolve_metric(metric: str, task: str, n_classes: int) -> str:
    """The search metric for ``task``; 'auto' is log_loss (classification) or r2 (regression).

    log_loss, a proper scoring rule, rewards calibrated probabilities: a model tuned for roc_auc
    alone can rank well yet put every row on one side of 0.5 (seen on titanic).
    """
    if metric == "auto":
        return "r2" if task == "regression" else "log_loss"
    allowed = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    if metric not in allowed:
        raise InvalidParameter(
            f"The metric '{metric}' does not fit a {task} task. Use 'auto' or one of: "
            f"{', '.join(allowed)}."
        )
    if metric in BINARY_ONLY and n_classes > 2:
        raise InvalidParameter(
            f"The metric '{metric}' needs two classes, but the target has {n_classes}. Use "
            "'roc_auc_ovr', 'macro_f1', 'log_loss' or 'accuracy'."
        )
    return metric


def score_from_loss(metric: str, loss: float) -> float:
    """FLAML minimises a loss; turn it back into the metric users know."""
    return loss if metric in LOWER_IS_BETTER else 1.0 - loss


def test_scores(
    task: str, y_true: np.ndarray, predicted: np.ndarray, proba: np.ndarray | None
) -> dict[str, float]:
    """Scores of the exported model on the held-out test rows."""
    from sklearn import metrics

    if task == "regression":
        return {
            "r2": float(metrics.r2_score(y_true, predicted)),
            "rmse": float(np.sqrt(metrics.mean_squared_error(y_true, predicted))),
            "mae": float(metrics.mean_absolute_error(y_true, predicted)),
        }
    scores = {
        "accuracy": float(metrics.accuracy_score(y_true, predicted)),
        "macro_f1": float(metrics.f1_score(y_true, predicted, average="macro")),
    }
    if proba is not None and len(np.unique(y_true)) == proba.shape[1]:
        labels = np.arange(proba.shape[1])
        scores["log_loss"] = float(metrics.log_loss(y_true, proba, labels=labels))
        if proba.shape[1] == 2:
            scores["roc_auc"] = float(metrics.roc_auc_score(y_true, proba[:, 1]))
        else:
            scores["roc_auc_ovr"] = float(
                metrics.roc_auc_score(y_true, proba, multi_class="ovr", labels=labels)
            )
    return scores
