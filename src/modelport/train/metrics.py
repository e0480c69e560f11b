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
IMBALANCED = 0.2
"""A target whose rarest class has a smaller share of the rows than this is imbalanced."""


def resolve_metric(metric: str, task: str, n_classes: int, rarest_share: float = 1.0) -> str:
    """The search metric for ``task``; 'auto' is log_loss (classification), macro_f1 when the
    rarest class has less than IMBALANCED of the rows, or r2 (regression).

    log_loss, a proper scoring rule, rewards calibrated probabilities: a model tuned for roc_auc
    alone can rank well yet put every row on one side of 0.5 (seen on titanic). On an imbalanced
    target it is dominated by the common class; macro F1 weighs each class's errors alike (on
    sms_spam, 13 % spam, a model that always says "ham" scores 0.87 accuracy but 0.46 macro F1).
    """
    if metric == "auto":
        if task == "regression":
            return "r2"
        return "macro_f1" if rarest_share < IMBALANCED else "log_loss"
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


def class_recall(y_true: np.ndarray, predicted: np.ndarray, labels: list[str]) -> dict[str, float]:
    """The share of each class's held-out rows predicted as that class (``labels`` by index)."""
    return {
        str(label): round(float(np.mean(predicted[y_true == i] == i)), 4)
        for i, label in enumerate(labels)
        if np.any(y_true == i)
    }


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
