"""Import of models trained elsewhere: each format converts, and its ONNX copy predicts the same."""

import joblib
import lightgbm
import numpy as np
import pytest
import skops.io
import xgboost
from skl2onnx import to_onnx
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelport.errors import ExportError, InvalidInput
from modelport.export.importers import import_file
from modelport.runtime import Predictor

from .datasets import mixed_classification


@pytest.fixture(scope="module")
def cancer(tmp_path_factory):
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    folder = tmp_path_factory.mktemp("cancer")
    X.to_csv(folder / "sample.csv", index=False)
    return X, y, folder


def _agree(artifact, rows, expected_labels):
    result = Predictor(artifact).predict(rows)
    assert [str(v) for v in result.predictions] == [str(v) for v in expected_labels]
    return result


def test_sklearn_pipeline_with_text_columns(tmp_path):
    frame = mixed_classification(300).dropna()
    X, y = frame.drop(columns="churn"), frame["churn"]
    pipeline = make_pipeline(
        ColumnTransformer(
            [
                ("num", StandardScaler(), ["age", "monthly fee"]),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan", "region"]),
            ]
        ),
        LogisticRegression(max_iter=500),
    ).fit(X, y)
    joblib.dump(pipeline, tmp_path / "pipe.joblib")
    X.to_csv(tmp_path / "sample.csv", index=False)
    artifact = import_file(tmp_path / "pipe.joblib", "pipe", tmp_path / "sample.csv")
    assert artifact.manifest.input_layout == "columns"
    assert artifact.manifest.class_labels == ["no", "yes"]
    assert artifact.manifest.source["parity"]["label_mismatches"] == 0
    result = _agree(artifact, X, pipeline.predict(X))
    assert np.abs(result.probabilities - pipeline.predict_proba(X)).max() < 1e-3


def test_skops_file(tmp_path, cancer):
    X, y, folder = cancer
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X.to_numpy(), y)
    skops.io.dump(model, tmp_path / "m.skops")
    artifact = import_file(tmp_path / "m.skops", "skops", folder / "sample.csv")
    assert artifact.manifest.input_layout == "matrix"
    _agree(artifact, X, model.predict(X.to_numpy()))


def test_lightgbm_booster_file(tmp_path, cancer):
    X, y, folder = cancer
    booster = lightgbm.train(
        {"objective": "binary", "verbose": -1}, lightgbm.Dataset(X.to_numpy(), y), 30
    )
    booster.save_model(tmp_path / "model.txt")
    artifact = import_file(tmp_path / "model.txt", "lgb", folder / "sample.csv")
    assert artifact.manifest.columns == list(X.columns)
    _agree(artifact, X, (booster.predict(X.to_numpy()) > 0.5).astype(int))


def test_xgboost_file_with_named_features(tmp_path, cancer):
    X, y, folder = cancer
    model = xgboost.XGBClassifier(n_estimators=30).fit(X, y)
    model.save_model(tmp_path / "model.json")
    artifact = import_file(tmp_path / "model.json", "xgb", folder / "sample.csv")
    _agree(artifact, X, model.predict(X))


def test_regressor_pickle(tmp_path):
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    model = RandomForestRegressor(n_estimators=20, random_state=0).fit(X, y)
    joblib.dump(model, tmp_path / "rf.pkl")
    X.to_csv(tmp_path / "sample.csv", index=False)
    artifact = import_file(tmp_path / "rf.pkl", "rf", tmp_path / "sample.csv")
    assert artifact.manifest.task == "regression"
    np.testing.assert_allclose(
        Predictor(artifact).predict(X).predictions, model.predict(X), rtol=1e-4, atol=1e-3
    )


def test_onnx_file_with_zipmap(tmp_path, cancer):
    X, y, folder = cancer
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        X.to_numpy(np.float32), y
    )
    (tmp_path / "m.onnx").write_bytes(
        to_onnx(model, X.to_numpy(np.float32)[:1]).SerializeToString()
    )
    artifact = import_file(tmp_path / "m.onnx", "onnx", folder / "sample.csv")
    assert artifact.manifest.class_labels == [0, 1]
    assert artifact.manifest.columns == list(X.columns)
    result = _agree(artifact, X, model.predict(X.to_numpy(np.float32)))
    assert result.probabilities.shape == (len(X), 2)


def test_onnx_without_sample_names_features_by_position(tmp_path, cancer):
    X, y, _ = cancer
    model = LogisticRegression(max_iter=2000).fit(X.to_numpy(np.float32), y)
    (tmp_path / "m.onnx").write_bytes(
        to_onnx(model, X.to_numpy(np.float32)[:1]).SerializeToString()
    )
    artifact = import_file(tmp_path / "m.onnx", "onnx")
    assert artifact.manifest.columns[:2] == ["f0", "f1"]
    _agree(artifact, X.to_numpy(), model.predict(X.to_numpy(np.float32)))


def test_bad_imports(tmp_path, cancer):
    X, y, folder = cancer
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(InvalidInput, match="not a valid ONNX"):
        import_file(tmp_path / "junk.onnx", "x")
    joblib.dump(LogisticRegression().fit(X, y), tmp_path / "m.joblib")
    with pytest.raises(InvalidInput, match="needs sample input rows"):
        import_file(tmp_path / "m.joblib", "x")
    X.iloc[:, :5].to_csv(tmp_path / "narrow.csv", index=False)
    with pytest.raises(InvalidInput, match="sample lacks|does not match"):
        import_file(tmp_path / "m.joblib", "x", tmp_path / "narrow.csv")
    (tmp_path / "m.h5").write_bytes(b"x")
    with pytest.raises(InvalidInput, match="unknown model format"):
        import_file(tmp_path / "m.h5", "x", folder / "sample.csv")
    (tmp_path / "broken.joblib").write_bytes(b"\x80\x04garbage")
    with pytest.raises(InvalidInput, match="cannot be loaded"):
        import_file(tmp_path / "broken.joblib", "x", folder / "sample.csv")


def test_unconvertible_estimator_is_an_export_error(tmp_path, cancer):
    from sklearn.semi_supervised import LabelSpreading

    X, y, folder = cancer
    joblib.dump(LabelSpreading().fit(X.to_numpy()[:100], y[:100]), tmp_path / "m.joblib")
    with pytest.raises(ExportError, match="cannot be converted to ONNX"):
        import_file(tmp_path / "m.joblib", "x", folder / "sample.csv")


def test_unknown_format_is_named_before_asking_for_a_sample(tmp_path):
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InvalidInput, match="unknown model format"):
        import_file(tmp_path / "data.csv", "x")
