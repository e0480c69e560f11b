"""Class labels survive the trip to ONNX: one-tree LightGBM models and boolean targets.

onnxruntime labels a two-class tree ensemble whose leaf weights are all positive with "score >
0.5", a rule for forests of probabilities; a LightGBM model of one tree (FLAML's trials stop after
one when time runs short) keeps the average log-odds of a mostly positive target in every leaf,
so every row with log-odds in (0, 0.5] came out as the negative class while the probabilities
matched: hosted jobs on breast-cancer failed parity 1 run in 3 with "43 different labels".
"""

import io

import lightgbm
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from modelport.export.importers import import_estimator
from modelport.runtime import Predictor
from modelport.train import TabularAutoML

ONE_TREE = {"n_estimators": 1, "verbose": -1}
TARGETS = {
    "int": lambda y: y,
    "bool": lambda y: y.astype(bool),
    "str": lambda y: y.map({0: "no", 1: "yes"}),
}


@pytest.fixture(scope="module")
def cancer():
    """The table as a hosted job reads it: a CSV through pandas (an int64 target)."""
    csv = load_breast_cancer(as_frame=True).frame.to_csv(index=False)
    frame = pd.read_csv(io.StringIO(csv))
    frame.columns = [c.replace(" ", "_") for c in frame.columns]  # LightGBM's own feature names
    return frame.drop(columns="target"), frame["target"]


def _triggers_the_05_rule(model, X) -> bool:
    """All leaves positive (onnxruntime's 0.5 rule applies) and rows with log-odds in (0, 0.5]."""
    trees = model.booster_.trees_to_dataframe()
    positive = bool((trees[trees.split_feature.isna()]["value"] > 0).all())
    return positive and bool((model.predict(X, raw_score=True) <= 0.5).any())


@pytest.mark.parametrize("kind", sorted(TARGETS))
def test_trainer_exports_a_one_tree_lightgbm(cancer, monkeypatch, kind):
    """The AutoML export path (preprocessing pipeline, label indices) with a fixed one-tree model."""
    X, y = cancer
    y = TARGETS[kind](y)
    models = []

    def one_tree(self, automl, learner, matrix, y_train):
        models.append(lightgbm.LGBMClassifier(**ONE_TREE).fit(matrix, y_train))
        return models[-1]

    monkeypatch.setattr(TabularAutoML, "_fitted", one_tree)
    trainer = TabularAutoML(time_budget=2, estimators=("lgbm",), seed=0).fit(X, y)
    assert _triggers_the_05_rule(models[0], trainer.best_estimator_[0].transform(X))
    assert trainer.parity_.label_mismatches == 0
    onnx = Predictor(trainer.to_artifact("cancer")).predict(X)
    assert [str(v) for v in onnx.predictions] == [str(v) for v in trainer.predict(X)]


@pytest.mark.parametrize("kind", sorted(TARGETS))
def test_imported_one_tree_lightgbm(cancer, kind):
    X, y = cancer
    model = lightgbm.LGBMClassifier(**ONE_TREE).fit(X, TARGETS[kind](y))
    assert _triggers_the_05_rule(model, X)
    artifact = import_estimator(model, "one-tree", X)
    assert artifact.manifest.source["parity"]["label_mismatches"] == 0
    onnx = Predictor(artifact).predict(X)
    assert [str(v) for v in onnx.predictions] == [str(v) for v in model.predict(X)]


def test_imported_one_tree_lightgbm_booster(cancer):
    X, y = cancer
    booster = lightgbm.train({"objective": "binary", "verbose": -1}, lightgbm.Dataset(X, y), 1)
    artifact = import_estimator(booster, "booster", X)
    assert (booster.predict(X, raw_score=True) <= 0.5).any()
    expected = (booster.predict(X) > 0.5).astype(int)
    assert (Predictor(artifact).predict(X).predictions == expected).all()


@pytest.mark.parametrize(
    "model",
    [LogisticRegression(max_iter=5000), RandomForestClassifier(n_estimators=5, random_state=0)],
    ids=["logistic", "forest"],
)
def test_imported_model_with_a_boolean_target(cancer, model):
    """skl2onnx writes False/True as 0/1: the artifact reads them back as the booleans."""
    X, y = cancer
    model.fit(X, y.astype(bool))
    artifact = import_estimator(model, "bool", X)
    assert artifact.manifest.class_labels == [False, True]
    onnx = Predictor(artifact).predict(X)
    assert onnx.predictions.tolist() == model.predict(X).tolist()
    assert np.abs(onnx.probabilities - model.predict_proba(X)).max() < 1e-3
