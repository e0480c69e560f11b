"""Tabular AutoML: FLAML searches estimators within a time budget; the winner ships as ONNX."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..artifact import ColumnSpec, ModelArtifact
from ..data import tabular as data
from ..errors import (
    ExportError,
    InvalidDataset,
    InvalidParameter,
    ModelportError,
    SchemaMismatch,
    Unavailable,
)
from ..export import parity
from ..export.convert import sklearn_to_onnx
from ..export.quantize import int8_variant
from ..runtime import Predictor, text
from ..runtime.tabular import encode_column
from .leaderboard import LeaderboardRow, snapshot
from .linear import NAME as LINEAR
from .metrics import class_recall, resolve_metric, test_scores
from .versions import library_versions

# NOTE: "linear" is our own learner (standardised logistic / ridge regression, see linear.py), not
# FLAML's lrl1: its saga trials on `adult` took 3-4 s each, could not be interrupted and overran
# 10 s budgets by 30 %.
ESTIMATORS: dict[str, tuple[str, ...]] = {
    "classification": ("lgbm", "xgboost", "rf", "extra_tree", LINEAR),
    "regression": ("lgbm", "xgboost", "rf", "extra_tree", LINEAR),
}
TEXT_ESTIMATORS = (LINEAR,)
"""The default search on free text alone (thousands of sparse TF-IDF columns): the linear model,
fast and strong on words. LightGBM won FLAML's search on sms_spam yet scored 0.80-0.84 spam F1 on
the test rows against the linear model's 0.94-0.95. Beside other columns, LightGBM joins it
(numbers and categories want trees); forests are slow on sparse columns."""
TEXT_CV_ROWS = 20_000
"""Up to this many rows, text models are compared by 5-fold cross-validation: FLAML's holdout
(its choice for thousands of TF-IDF columns) is too few rows to rank them (sms_spam: LightGBM
won on 180 held-out rows with 0.95 macro F1, then scored 0.84 spam F1 on the test rows)."""
NGRAMS = (1, 2)
"""TF-IDF over words and word pairs."""
TEXT_STEPS = (
    "normalised in the runtime (lowercase, accents folded); TF-IDF in the graph over tokens "
    f"{text.TOKEN_PATTERN} and their pairs, vocabulary of the training rows"
)
BACKENDS = ("local", "ray")
EXPORT_RESERVE = (1.0, 0.05)
"""Seconds + share of the budget kept from the search for the refit, ONNX export and parity
check (measured on `adult`: 0.7 s at a 10 s budget, 1.5 s at 60 s)."""
TEST_SHARE = 0.2
MAX_PARITY_ROWS = 2000
LATENCY_RUNS = 30
REFIT_FACTOR = 3.0
"""A runner-up is refitted (to measure its ONNX latency) only if ~3x its trial time is left."""


@dataclass
class TrainingEvent:
    """Progress of a training run, sent to the ``callback`` of :class:`TabularAutoML`."""

    stage: str
    """"search", "export" or "done"."""
    progress: float
    elapsed: float
    leaderboard: list[LeaderboardRow] = field(default_factory=list)
    message: str = ""


Callback = Callable[[TrainingEvent], None]


def check_time_budget(budget: object) -> None:
    """A trainer's time budget must be a finite number of seconds above 0 (not a bool)."""
    if (
        isinstance(budget, bool)
        or not isinstance(budget, int | float)
        or not np.isfinite(budget)
        or budget <= 0
    ):
        raise InvalidParameter(
            f"The time budget must be a positive number of seconds, but got {budget!r}. "
            "Use e.g. --time-budget 60."
        )


class TabularAutoML:
    """AutoML for tables, with the scikit-learn estimator API, producing an ONNX artifact.

    Args:
        task: "auto", "classification" or "regression".
        time_budget: seconds for the whole run (search, refit, export and parity check).
        metric: the search metric, or "auto" (log_loss for classification, r2 for regression).
        seed: random seed for the split and the search.
        estimators: FLAML estimator names to search; default: LightGBM, XGBoost, random forest,
            extra trees and a linear model.
        callback: called with a :class:`TrainingEvent` as the search progresses.
        backend: "local" (trials one after another, each using every core) or "ray" (trials in
            parallel on the Ray cluster ``MODELPORT_RAY_ADDRESS`` names, or a local Ray).
        text_columns: columns of free text (TF-IDF of words and word pairs), besides those found
            by their values (strings of 3+ words on average, mostly distinct).

    Example:
        >>> automl = TabularAutoML(time_budget=10).fit(X, y)   # doctest: +SKIP
        >>> automl.leaderboard_[0].model, automl.predict(X[:3])  # doctest: +SKIP
        >>> automl.to_artifact("credit").to_file("credit.zip")   # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        task: str = "auto",
        time_budget: float = 60.0,
        metric: str = "auto",
        seed: int = 0,
        estimators: tuple[str, ...] | None = None,
        callback: Callback | None = None,
        backend: str = "local",
        text_columns: tuple[str, ...] = (),
    ) -> None:
        self.task = task
        self.time_budget = time_budget
        self.metric = metric
        self.seed = seed
        self.estimators = estimators
        self.callback = callback
        self.backend = backend
        self.text_columns = text_columns

    # -- fitting -------------------------------------------------------------------------------

    def fit(self, X: pd.DataFrame, y: pd.Series | np.ndarray | list[Any]) -> TabularAutoML:
        """Search, refit the best convertible estimator, export it to ONNX and check parity."""
        started = time.monotonic()
        self._check_params()
        target = str(getattr(y, "name", None) or "target")
        frame = pd.DataFrame(X).reset_index(drop=True).copy()
        frame[target] = np.asarray(y)
        rows_given = len(frame)
        frame, self.task_ = data.check_target(frame, target, self.task)
        self.unlabelled_rows_ = rows_given - len(frame)
        self.schema_ = data.infer_schema(frame, target, tuple(self.text_columns))
        self.target_ = target
        self.data_fingerprint_ = data.fingerprint(frame)
        features = encoded_frame(self.schema_.columns, frame)
        _check_has_text(self.schema_.columns, features)
        labels = frame[target].to_numpy()
        y_encoded = self._encode_target(labels)
        n_classes = len(self.classes_) if self.classes_ is not None else 0
        rarest = np.bincount(y_encoded).min() / len(y_encoded) if n_classes else 1.0
        self.metric_ = resolve_metric(self.metric, self.task_, n_classes, rarest)
        X_train, X_test, y_train, y_test = self._split(features, y_encoded)
        preprocessor = build_preprocessor(self.schema_.columns).fit(X_train)
        matrix = preprocessor.transform(X_train)
        deadline = started + self.time_budget
        reserve = EXPORT_RESERVE[0] + EXPORT_RESERVE[1] * self.time_budget
        search_budget = deadline - time.monotonic() - reserve
        automl, self.leaderboard_ = self._search(matrix, y_train, started, search_budget)
        self._emit("export", started, "Converting the best model to ONNX and checking parity")
        self._export(automl, preprocessor, matrix, y_train, X_test, y_test, deadline)
        self.fit_seconds_ = time.monotonic() - started
        self._emit("done", started, f"Done in {self.fit_seconds_:.1f} s")
        return self

    def _check_params(self) -> None:
        if self.backend not in BACKENDS:
            raise InvalidParameter(
                f"Unknown backend {self.backend!r}. Choose from: {', '.join(BACKENDS)}."
            )
        if self.backend == "ray":
            _require_ray()
        check_time_budget(self.time_budget)
        if self.estimators is not None:
            known = set(ESTIMATORS["classification"]) | set(ESTIMATORS["regression"])
            unknown = [e for e in self.estimators if e not in known]
            if unknown:
                raise InvalidParameter(
                    f"Unknown estimator(s) {unknown}. Choose from: {', '.join(sorted(known))}."
                )

    def _words(self) -> bool:
        """Whether the table has free-text columns."""
        return any(c.dtype == "text" for c in self.schema_.columns)

    def _encode_target(self, labels: np.ndarray) -> np.ndarray:
        if self.task_ == "regression":
            self.classes_ = None
            return labels.astype(np.float64)
        classes, encoded = np.unique(
            labels.astype(str) if labels.dtype == object else labels, return_inverse=True
        )
        self.classes_ = classes
        return encoded.astype(np.int64)

    def _split(self, features: pd.DataFrame, y: np.ndarray) -> tuple[Any, Any, Any, Any]:
        from sklearn.model_selection import train_test_split

        stratify = y if self.task_ == "classification" else None
        test_size = (
            max(TEST_SHARE, len(np.unique(y)) / len(y)) if stratify is not None else TEST_SHARE
        )
        return train_test_split(
            features, y, test_size=test_size, random_state=self.seed, stratify=stratify
        )

    def _search(
        self, matrix: np.ndarray, y: np.ndarray, started: float, budget: float
    ) -> tuple[Any, list[LeaderboardRow]]:
        budget = max(1.0, budget)
        default = ESTIMATORS[self.task_]
        if self._words():
            only_text = all(c.dtype == "text" for c in self.schema_.columns)
            default = TEXT_ESTIMATORS if only_text else (*TEXT_ESTIMATORS, "lgbm")
        estimators = self.estimators or default
        estimators = tuple(e for e in estimators if e in ESTIMATORS[self.task_])
        if not estimators:
            raise InvalidParameter(
                f"None of the estimators {list(self.estimators or ())} can do {self.task_}. "
                f"Choose from: {', '.join(ESTIMATORS[self.task_])}."
            )
        options = {
            "task": self.task_,
            "metric": self.metric_,
            "time_budget": budget,
            "seed": self.seed,
            "verbose": 0,
            "retrain_full": "budget",
        }
        if self._words() and len(y) <= TEXT_CV_ROWS:
            options["eval_method"] = "cv"
        try:
            if self.backend == "ray":
                from .ray_search import search_on_ray

                def report(rows: list[LeaderboardRow], searching: bool) -> None:
                    if searching:
                        self._emit("search", started, "Searching on Ray", rows)
                    else:
                        self._emit("starting", started, "Starting the Ray workers")

                return search_on_ray(matrix, y, options, estimators, self.metric_, report)
            return self._search_here(matrix, y, options, estimators, started)
        except ModelportError:
            raise
        except Exception as exc:  # FLAML raises plain errors for data it cannot use
            if self.backend == "ray":  # ... and Ray for workers or nodes it lost
                raise Unavailable(
                    f"The AutoML search on Ray failed: {type(exc).__name__}: {exc}. Check the "
                    "cluster (MODELPORT_RAY_ADDRESS) and the data."
                ) from exc
            raise InvalidParameter(
                f"The AutoML search failed: {exc}. Check the data and the options."
            ) from exc

    def _search_here(
        self,
        matrix: np.ndarray,
        y: np.ndarray,
        options: dict[str, Any],
        estimators: tuple[str, ...],
        started: float,
    ) -> tuple[Any, list[LeaderboardRow]]:
        """Trials one after another in this process, each with every core."""
        from flaml import AutoML

        from .linear import LinearLearner

        automl = AutoML()
        automl.add_learner(LINEAR, LinearLearner)
        stop = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(automl, stop, started), daemon=True)
        watcher.start()
        try:
            automl.fit(matrix, y, estimator_list=list(estimators), n_jobs=-1, **options)
        finally:
            stop.set()
            watcher.join()
        return automl, snapshot(automl, self.metric_)

    def _watch(self, automl: Any, stop: threading.Event, started: float) -> None:
        while not stop.wait(0.25):
            self._emit("search", started, "Searching", snapshot(automl, self.metric_))

    def _emit(
        self,
        stage: str,
        started: float,
        message: str,
        leaderboard: list[LeaderboardRow] | None = None,
    ) -> None:
        if self.callback is None:
            return
        elapsed = time.monotonic() - started
        progress = 1.0 if stage == "done" else min(elapsed / self.time_budget, 0.99)
        rows = leaderboard if leaderboard is not None else getattr(self, "leaderboard_", [])
        self.callback(TrainingEvent(stage, progress, elapsed, rows, message))

    def _export(
        self,
        automl: Any,
        preprocessor: Any,
        matrix: np.ndarray,
        y_train: np.ndarray,
        X_test: pd.DataFrame,
        y_test: np.ndarray,
        deadline: float,
    ) -> None:
        """Take the best candidate that converts and passes parity; note why others did not."""
        from sklearn.pipeline import Pipeline

        parity_rows = X_test.iloc[:MAX_PARITY_ROWS]
        chosen = None
        for row in self.leaderboard_:
            if chosen is not None and time.monotonic() + REFIT_FACTOR * row.fit_seconds > deadline:
                row.note = "ONNX latency not measured (time budget spent)"
                continue
            try:
                estimator = self._fitted(automl, row.model, matrix, y_train)
                pipeline = Pipeline([("preprocess", preprocessor), ("model", estimator)])
                artifact = self._convert(pipeline)
                predictor = Predictor(artifact)
                row.onnx_latency_us = _latency_us(predictor, parity_rows.iloc[:1])
                if chosen is None:
                    report = self._check_parity(pipeline, predictor, parity_rows, row.model)
                    chosen = (row, pipeline, artifact, predictor, report)
                held_out = self._held_out(predictor, X_test)
                if self.classes_ is not None:
                    row.recall = class_recall(y_test, held_out[0], self.classes_.tolist())
                if chosen[0] is row:
                    self.metrics_ = test_scores(self.task_, y_test, *held_out)
            except ExportError as exc:
                row.note = f"not exportable: {exc.message}"
                if chosen is None:
                    self._emit("export", deadline - self.time_budget, row.note)
        if chosen is None:
            raise ExportError(
                "None of the searched models could be exported to ONNX with matching predictions ("
                + "; ".join(f"{r.model}: {r.note}" for r in self.leaderboard_)
                + "). Try other estimators (e.g. --estimators rf,extra_tree) or another --seed, "
                "and report the data shape if it persists."
            )
        row, self.best_estimator_, self.onnx_artifact_, predictor, self.parity_ = chosen
        self.best_model_name_ = row.model
        if row is not self.leaderboard_[0]:
            self.fallback_reason_ = (
                f"The best model ({self.leaderboard_[0].model}) was {self.leaderboard_[0].note}; "
                f"{row.model} was exported instead."
            )
        else:
            self.fallback_reason_ = None
        truth = self.classes_[y_test] if self.classes_ is not None else y_test
        self.int8_ = int8_variant(self.onnx_artifact_, X_test, truth)

    def _held_out(
        self, predictor: Predictor, X_test: pd.DataFrame
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The exported model's predictions on the test rows (class indices, for classifiers)
        and probabilities."""
        result = predictor.predict(X_test)
        predicted = result.predictions
        if self.classes_ is not None:
            predicted = np.searchsorted(self.classes_, predicted.astype(self.classes_.dtype))
        return predicted, result.probabilities

    def _fitted(self, automl: Any, learner: str, matrix: np.ndarray, y: np.ndarray) -> Any:
        if learner == automl.best_estimator:
            return automl.model.estimator
        wrapper = automl.best_model_for_estimator(learner)
        wrapper.fit(matrix, y)
        return wrapper.estimator

    def _convert(self, pipeline: Any) -> ModelArtifact:
        classifier = self.task_ == "classification"
        labels = self.classes_.tolist() if self.classes_ is not None else None
        converted = sklearn_to_onnx(pipeline, self.schema_.columns, "columns", classifier, labels)
        columns = [
            dataclasses.replace(c, onnx_name=onnx_name)
            for c, onnx_name in zip(self.schema_.columns, converted.input_names, strict=False)
        ]
        self.columns_ = columns
        return ModelArtifact.create(
            converted.onnx,
            name="model",
            task=self.task_,
            inputs=columns,
            outputs=converted.outputs,
            class_labels=labels,
            label_is_index=classifier,
        )

    def _check_parity(
        self, pipeline: Any, predictor: Predictor, rows: pd.DataFrame, what: str
    ) -> parity.ParityReport:
        onnx = predictor.predict(rows)
        if self.task_ == "regression":
            return parity.check_regressor(pipeline.predict(rows), onnx, what)
        assert self.classes_ is not None
        expected = self.classes_[pipeline.predict(rows)]
        return parity.check_classifier(expected, pipeline.predict_proba(rows), onnx, what)

    # -- using the fitted model ----------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "best_estimator_"):
            raise ModelportError(
                "This TabularAutoML is not fitted yet. Call 'fit' with training data first."
            )

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted labels (classification) or values (regression) of the original model."""
        self._check_fitted()
        raw = self.best_estimator_.predict(encoded_frame(self.schema_.columns, X))
        return self.classes_[raw] if self.classes_ is not None else raw

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``."""
        self._check_fitted()
        if self.classes_ is None:
            raise InvalidParameter(
                "predict_proba needs a classification model; this is regression."
            )
        return self.best_estimator_.predict_proba(encoded_frame(self.schema_.columns, X))

    def to_artifact(self, name: str = "model", description: str = "") -> ModelArtifact:
        """The ONNX artifact of the exported model, with its full manifest."""
        self._check_fitted()
        manifest = dataclasses.replace(
            self.onnx_artifact_.manifest,
            name=name,
            description=description,
            metrics=dict(self.metrics_),
            data_fingerprint=self.data_fingerprint_,
            library_versions=library_versions(),
            preprocessing={
                "kind": "tabular",
                "numeric": "float32; missing values imputed with the training median",
                "categorical": "one-hot over training categories; unseen or missing -> all zeros",
                **({"text": TEXT_STEPS} if self._words() else {}),
                "dropped_columns": self.schema_.dropped,
                "target": self.target_,
            },
            source={
                "kind": "automl",
                "estimator": self.best_model_name_,
                "metric": self.metric_,
                "time_budget": self.time_budget,
                "fit_seconds": round(self.fit_seconds_, 2),
                "parity": self.parity_.to_dict(),
                "leaderboard": [r.to_dict() for r in self.leaderboard_],
                "note": self.fallback_reason_,
            },
        )
        if self.int8_ is None:
            return ModelArtifact(self.onnx_artifact_.onnx, manifest)
        manifest.variants = {"int8": self.int8_.report}
        return ModelArtifact(self.onnx_artifact_.onnx, manifest, {"int8": self.int8_.onnx})


def encoded_frame(columns: list[ColumnSpec], frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as the model sees it: the runtime's encoding of each feature column."""
    missing = [c.name for c in columns if c.name not in frame.columns]
    if missing:
        raise SchemaMismatch(
            f"The input lacks the column(s) {', '.join(map(repr, missing))}. The model expects "
            f"{', '.join(c.name for c in columns)}."
        )
    return pd.DataFrame(
        {c.name: encode_column(c, frame[c.name].to_numpy()).ravel() for c in columns}
    )


def build_preprocessor(columns: list[ColumnSpec]) -> Any:
    """Median imputation for numbers, one-hot encoding for categories, TF-IDF for free text (all
    convert to ONNX); the result is sparse when there is text.

    No scaling here: trees need none and lose ONNX parity with it; the linear learner scales its
    own inputs.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    numeric = [c.name for c in columns if c.dtype == "number"]
    categorical = [c.name for c in columns if c.dtype == "string"]
    parts = []
    if numeric:
        imputer = SimpleImputer(strategy="median", keep_empty_features=True)
        parts.append(("numeric", imputer, numeric))
    if categorical:
        parts.append(
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32),
                categorical,
            )
        )
    texts = [c.name for c in columns if c.dtype == "text"]
    parts += [(f"text_{i}", _tfidf(), name) for i, name in enumerate(texts)]
    return ColumnTransformer(parts, sparse_threshold=1.0 if texts else 0.0)


def _tfidf() -> Any:
    """TF-IDF that skl2onnx converts exactly: the runtime lowercases (the graph's StringNormalizer
    needs an OS locale), tokens are an explicit ASCII pattern (skl2onnx rewrites the default one),
    no sublinear tf (its ONNX copy differs by up to 0.04) and no character n-grams (unsupported).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        lowercase=False, token_pattern=text.TOKEN_PATTERN, ngram_range=NGRAMS, dtype=np.float32
    )


def _check_has_text(columns: list[ColumnSpec], features: pd.DataFrame) -> None:
    """A table of text alone needs text in every row: the model could not predict without it."""
    if not columns or any(c.dtype != "text" for c in columns):
        return
    empty = np.flatnonzero(text.textless([features[c.name].to_numpy() for c in columns]))
    if len(empty):
        rows = ", ".join(str(i + 1) for i in empty[:5])
        raise InvalidDataset(
            f"{len(empty)} labelled row(s) have no text in {', '.join(repr(c.name) for c in columns)} "
            f"(e.g. row(s) {rows}, counting labelled rows from 1). The model reads only text: "
            "fill them in or drop those rows."
        )


def _latency_us(predictor: Predictor, row: pd.DataFrame) -> float:
    """Median time of a 1-row prediction in onnxruntime, after one warm-up call."""
    predictor.predict(row)
    timings = []
    for _ in range(LATENCY_RUNS):
        start = time.perf_counter()
        predictor.predict(row)
        timings.append(time.perf_counter() - start)
    return round(float(np.median(timings)) * 1e6, 1)


def _require_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        from ..errors import MissingDependency

        raise MissingDependency(
            "The Ray backend needs Ray: pip install 'modelport[ray]'."
        ) from None
