"""The real `modelport` command, end to end, and its answers to bad input."""

import json

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from modelport.artifact import ModelArtifact
from modelport.config import Settings
from modelport.runtime import Predictor
from modelport.store import Store

from .conftest import mode, trained_churn
from .datasets import mixed_classification


@pytest.fixture
def churn_csv(tmp_path):
    path = tmp_path / "churn.csv"
    mixed_classification(500).to_csv(path, index=False)
    return path


def train(modelport, csv, name, budget, *extra):
    """`modelport train` on the churn table."""
    return modelport(
        "train", csv, "--target", "churn", "--name", name, "--time-budget", budget, *extra
    )


def test_train_predict_list_show_alias_export_delete(modelport, churn_csv, tmp_path, home, umask):
    trained = json.loads(train(modelport, churn_csv, "churn", "4", "--json").stdout)
    assert trained["reference"] == "churn:1"
    assert trained["leaderboard"] and trained["metrics"]["accuracy"] > 0.7
    assert trained["parity"]["label_mismatches"] == 0

    rows = mixed_classification(30, seed=9).drop(columns="churn")
    rows = rows[list(reversed(rows.columns))]  # another column order works
    rows.to_csv(tmp_path / "rows.csv", index=False)
    modelport("predict", "churn", tmp_path / "rows.csv", "-o", tmp_path / "out.csv")
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == [*rows.columns, "prediction", "proba_no", "proba_yes"]
    expected = Predictor(Store(Settings(home=home)).get("churn")).predict(rows)
    assert out["prediction"].tolist() == expected.predictions.tolist()
    np.testing.assert_allclose(out["proba_yes"], expected.probabilities[:, 1], atol=1e-6)

    listed = json.loads(modelport("models", "list", "--json").stdout)
    assert [(m["name"], m["latest_version"]) for m in listed] == [("churn", 1)]
    shown = modelport("models", "show", "churn").stdout
    assert "churn:1" in shown and "monthly fee" in shown and "classes: no, yes" in shown
    assert json.loads(modelport("models", "show", "churn:1", "--json").stdout)["sha256"]

    modelport("models", "alias", "churn:1", "production")
    assert json.loads(modelport("models", "list", "--json").stdout)[0]["aliases"] == {
        "production": 1
    }

    modelport("export", "churn@production", "-o", tmp_path / "churn.onnx")
    session = ort.InferenceSession(str(tmp_path / "churn.onnx"))
    assert {i.name for i in session.get_inputs()} == {"age", "monthly_fee", "plan", "region"}
    metadata = session.get_modelmeta().custom_metadata_map
    assert json.loads(metadata["modelport.class_labels"]) == ["no", "yes"]
    assert json.loads(metadata["modelport.columns"])[1] == "monthly fee"
    refused = modelport("export", "churn", "-o", tmp_path / "plain.zip", check=False)
    assert refused.returncode == 1 and "without --bundle" in refused.stderr
    modelport("export", "churn", "-o", tmp_path / "churn.ort", "--format", "ort")
    assert ort.InferenceSession(str(tmp_path / "churn.ort")).get_inputs()[0].name == "age"
    modelport("export", "churn", "-o", tmp_path / "churn-int8.onnx", "--variant", "int8")
    assert ort.InferenceSession(str(tmp_path / "churn-int8.onnx")).get_outputs()[0].name == "label"
    modelport("export", "churn", "-o", tmp_path / "churn.zip", "--bundle")
    assert ModelArtifact.load(tmp_path / "churn.zip").manifest.version == 1

    # user outputs follow the umask (022 here); the signing key stays the owner's alone
    outputs = ["out.csv", "churn.onnx", "churn.ort", "churn-int8.onnx", "churn.zip"]
    assert {name: oct(mode(tmp_path / name)) for name in outputs} == dict.fromkeys(outputs, "0o644")
    modelport("keys", "signing")
    assert mode(home / "signing" / "ed25519.pem") == 0o600

    modelport("models", "delete", "churn:1", "--yes")
    assert json.loads(modelport("models", "list", "--json").stdout) == []


def test_predict_to_stdout_reports_gaps(modelport, store, good_artifact, tmp_path):
    store.register(good_artifact, name="c")  # trained once per session, not by this test
    rows = pd.DataFrame(
        {
            "age": [None, 30],
            "monthly fee": [10.0, 90.0],
            "plan": ["basic", "platinum"],
            "region": ["north", None],
        }
    )
    rows.to_csv(tmp_path / "rows.csv", index=False)
    result = modelport("predict", "c", tmp_path / "rows.csv")
    assert result.stdout.splitlines()[0].endswith("prediction,proba_no,proba_yes")
    assert len(result.stdout.splitlines()) == 3
    assert "1 value(s) of 'plan' were not seen in training" in result.stderr
    assert "1 missing value(s) in 'age' were filled with the training median" in result.stderr


def test_train_reports_dropped_all_missing_columns(modelport, tmp_path):
    frame = mixed_classification(400).assign(notes=np.nan)
    frame.loc[:4, "churn"] = None
    frame.to_csv(tmp_path / "d.csv", index=False)
    result = modelport(
        "train",
        tmp_path / "d.csv",
        "--target",
        "churn",
        "--name",
        "d",
        "--time-budget",
        "3",
        "--estimators",
        "lgbm",
    )
    assert "column 'notes' was not used: every value is missing" in result.stderr
    assert "5 row(s) without a value for 'churn' were left out of training" in result.stderr
    # the hint names the user's own file, and it works as shown (the target column is ignored)
    assert f"Try: modelport predict d {tmp_path / 'd.csv'}" in result.stdout
    assert len(modelport("predict", "d", tmp_path / "d.csv").stdout.splitlines()) == 401


def test_import_and_predict(modelport, tmp_path):
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), tmp_path / "iris.joblib")
    X.to_csv(tmp_path / "iris.csv", index=False)
    imported = json.loads(
        modelport(
            "import",
            tmp_path / "iris.joblib",
            "--name",
            "iris",
            "--sample",
            tmp_path / "iris.csv",
            "--json",
        ).stdout
    )
    assert imported["version"] == 1 and imported["parity"]["label_mismatches"] == 0
    out = modelport("predict", "iris", tmp_path / "iris.csv").stdout
    assert out.splitlines()[0].endswith("prediction,proba_0,proba_1,proba_2")


def _bad_files(tmp_path):
    frame = mixed_classification(200)
    frame.to_csv(tmp_path / "ok.csv", index=False)
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "image.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    frame.assign(churn="no").to_csv(tmp_path / "oneclass.csv", index=False)
    pd.DataFrame({"x": np.arange(600.0), "y": [f"c{i % 500}" for i in range(600)]}).to_csv(
        tmp_path / "many.csv", index=False
    )
    frame.drop(columns=["plan", "churn"]).to_csv(tmp_path / "noplan.csv", index=False)
    frame.head(0).to_csv(tmp_path / "header.csv", index=False)
    (tmp_path / "noise.csv").write_bytes(bytes(range(1, 256)) * 20)  # binary, but no NUL


TRAIN = ["train", "--name", "m", "--time-budget", "5"]
BAD_INPUTS = {
    "missing target": (
        [*TRAIN, "ok.csv", "--target", "income"],
        "target column 'income' is not in",
    ),
    "empty file": ([*TRAIN, "empty.csv", "--target", "churn"], "is empty (0 bytes)"),
    "not csv": ([*TRAIN, "image.csv", "--target", "churn"], "is not a CSV file"),
    "binary without NUL": ([*TRAIN, "noise.csv", "--target", "churn"], "is not a CSV file"),
    "one class": ([*TRAIN, "oneclass.csv", "--target", "churn"], "single class"),
    "500 classes": ([*TRAIN, "many.csv", "--target", "y"], "500 classes in 600 rows"),
    "negative budget": (
        ["train", "ok.csv", "--target", "churn", "--name", "m", "--time-budget", "-5"],
        "time budget must be a positive",
    ),
    "bad name": (["train", "ok.csv", "--target", "churn", "--name", "no spaces"], "not valid"),
    "unknown model": (["predict", "ghost", "ok.csv"], "no model named 'ghost'"),
    "unknown version": (["predict", "good:9", "ok.csv"], "no version 9"),
    "missing column": (["predict", "good", "noplan.csv"], "lacks the column(s) 'plan'"),
    "missing dataset": (["predict", "good", "nope.csv"], "does not exist"),
    "predict empty file": (["predict", "good", "empty.csv"], "is empty (0 bytes)"),
    "predict header only": (["predict", "good", "header.csv"], "has a header line but no rows"),
    "predict to a missing folder": (
        ["predict", "good", "ok.csv", "--output", "nowhere/deeper/p.csv"],
        "The folder of --output 'nowhere/deeper/p.csv' does not exist",
    ),
    "predict to a folder": (["predict", "good", "ok.csv", "-o", "."], "is a directory"),
    "export to a missing folder": (
        ["export", "good", "-o", "nowhere/m.onnx"],
        "The folder of --output 'nowhere/m.onnx' does not exist",
    ),
}


NEEDS_GOOD_MODEL = {
    "missing column",
    "unknown version",
    "missing dataset",
    "predict empty file",
    "predict header only",
    "predict to a missing folder",
    "predict to a folder",
    "export to a missing folder",
}
WRONG_WORDS = (
    "cannot be parsed",
    "at least 10 rows",
    "Errno",
)  # re-wrapped, training's or raw wording


@pytest.fixture
def good_artifact():
    """A trained classifier, registered as 'good' (or any name) by the tests."""
    return trained_churn()


def _user_files(folder):
    """Files and folders in the commands' working folder, but not the store or $HOME caches."""
    paths = (p.relative_to(folder) for p in folder.rglob("*"))
    return sorted(p for p in paths if p.parts[0] != "home" and not p.parts[0].startswith("."))


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gets_one_clear_error(modelport, tmp_path, home, good_artifact, case):
    _bad_files(tmp_path)
    store = Store(Settings(home=home))
    if case in NEEDS_GOOD_MODEL:
        store.register(good_artifact, name="good")
    before = [(s.name, s.versions) for s in store.list_models()]
    files = _user_files(tmp_path)
    args, words = BAD_INPUTS[case]
    result = modelport(*args, check=False)
    assert result.returncode == 1, result.stderr
    message = " ".join(result.stderr.split())
    assert words in message
    assert message.count("error:") == 1 and not any(w in message for w in WRONG_WORDS), message
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert [(s.name, s.versions) for s in store.list_models()] == before
    assert _user_files(tmp_path) == files  # nothing written, no folder created


def test_corrupted_model_file(modelport, home, tmp_path):
    from .artifacts import linear_artifact

    store = Store(Settings(home=home))
    manifest = store.register(linear_artifact(), name="lin")
    blob = store.blobs.path(manifest.sha256)
    blob.write_bytes(b"corrupt" + blob.read_bytes())
    pd.DataFrame({"a": [1.0], "b": [2.0]}).to_csv(tmp_path / "r.csv", index=False)
    result = modelport("predict", "lin", tmp_path / "r.csv", check=False)
    assert result.returncode == 1 and "is corrupted" in result.stderr
    checked = modelport("models", "check", check=False)
    assert checked.returncode == 1 and "1 problem(s)" in checked.stdout


def test_unusable_store_location_is_a_clear_error(modelport, home, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("MODELPORT_HOME", str(blocker / "store"))
    result = modelport("models", "list", check=False)
    assert result.returncode == 1
    assert "Check that the path exists and is writable" in result.stderr
    assert "Traceback" not in result.stderr
