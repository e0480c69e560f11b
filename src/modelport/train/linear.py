"""A FLAML learner for linear models that standardises its own inputs.

Scaling lives inside this learner, not in the shared preprocessing: trees need none, and a scaler
in front of them made their ONNX copies disagree (float32 scaling moves values across split
thresholds; a user saw 1 in 4 LightGBM runs fail the parity check). Linear models have no
thresholds, so their float32 copies match to ~1e-7.
"""

from __future__ import annotations

from typing import Any

from flaml import tune
from flaml.automl.model import SKLearnEstimator
from scipy.sparse import issparse

NAME = "linear"


def scaled_logistic(
    C: float = 1.0,
    n_jobs: int | None = None,
    random_state: int | None = None,
    sparse: bool = False,
) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    weights = "balanced" if sparse else None  # text: rare classes are what users look for
    model = LogisticRegression(C=C, max_iter=500, random_state=random_state, class_weight=weights)
    return make_pipeline(_scaler(sparse), model)


def scaled_ridge(
    alpha: float = 1.0,
    n_jobs: int | None = None,
    random_state: int | None = None,
    sparse: bool = False,
) -> Any:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline

    return make_pipeline(_scaler(sparse), Ridge(alpha=alpha))


def _scaler(sparse: bool) -> Any:
    """Standardisation; for sparse input (TF-IDF of text) scaling by the largest value instead,
    which keeps zeros zero and TF-IDF's weights in proportion (bench/text_training.py measures
    the result on sms_spam)."""
    from sklearn.preprocessing import MaxAbsScaler, StandardScaler

    return MaxAbsScaler() if sparse else StandardScaler()


class LinearLearner(SKLearnEstimator):
    """Standardised logistic regression (classification) or ridge regression, tuned by FLAML."""

    def __init__(self, task: Any = "binary", **config: Any) -> None:
        super().__init__(task, **config)
        self.params.setdefault("random_state", 0)
        classify = self._task.is_classification()
        self.estimator_class = scaled_logistic if classify else scaled_ridge
        if classify:
            self.params.pop("alpha", None)
        else:
            self.params.pop("C", None)

    def _fit(self, X_train: Any, y_train: Any, **kwargs: Any) -> float:
        self.params["sparse"] = issparse(X_train)
        return super()._fit(X_train, y_train, **kwargs)

    @classmethod
    def search_space(cls, data_size: Any, task: Any, **params: Any) -> dict[str, Any]:
        name = "C" if task.is_classification() else "alpha"
        return {name: {"domain": tune.loguniform(lower=1e-3, upper=1e3), "init_value": 1.0}}
