"""The int8 variant: made and measured, or the manifest and `models show` say why not."""

import json

import joblib
import numpy as np
import onnx
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import modelport.export.quantize as quantize
from modelport.export.importers import import_file


@pytest.fixture(scope="module")
def logistic(tmp_path_factory):
    """A plain LogisticRegression: skl2onnx makes a graph of ai.onnx.ml operators only."""
    folder = tmp_path_factory.mktemp("logistic")
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(200, 4)), columns=list("abcd"))
    joblib.dump(LogisticRegression().fit(X, (X["a"] > 0).astype(int)), folder / "logistic.joblib")
    X.to_csv(folder / "sample.csv", index=False)
    return folder / "logistic.joblib", folder / "sample.csv"


def test_a_graph_with_nothing_to_quantise_gets_a_variant_that_says_why_devices_keep_fp32(
    logistic, store, modelport
):
    # skl2onnx listed the default opset twice here, and onnxruntime refused to quantise it
    artifact = import_file(logistic[0], "logistic", logistic[1])
    domains = [o.domain for o in onnx.load_from_string(artifact.onnx).opset_import]
    assert sorted(domains) == sorted(set(domains))
    report = artifact.manifest.variants["int8"]
    assert not report["recommended"] and report["reason"] == quantize.NOTHING_QUANTISED
    assert artifact.manifest.skipped_variants == {}

    store.register(artifact)
    shown = modelport("models", "show", "logistic").stdout
    assert "devices keep fp32: nothing to quantise: the graph has no MatMul" in shown


@pytest.mark.parametrize(
    "fault, reason",
    [
        ("refused", "onnxruntime could not quantise the graph: no int8 kernel for this graph"),
        ("broken", "the quantised graph does not run: "),
    ],
)
def test_a_failed_quantisation_is_recorded_shown_and_explained(
    logistic, store, modelport, tmp_path, monkeypatch, fault, reason
):
    def failing(onnx_bytes: bytes) -> bytes:
        if fault == "refused":
            raise ValueError("no int8 kernel for this graph")
        return onnx_bytes[: len(onnx_bytes) // 2]  # a truncated graph

    monkeypatch.setattr(quantize, "_quantise", failing)
    artifact = import_file(logistic[0], "logistic", logistic[1])
    assert artifact.variants == {} and artifact.manifest.variants == {}
    assert artifact.manifest.skipped_variants["int8"].startswith(reason)

    store.register(artifact)
    shown = modelport("models", "show", "logistic").stdout
    assert f"int8: not made: {reason}" in shown
    manifest = json.loads(modelport("models", "show", "logistic", "--json").stdout)
    assert manifest["skipped_variants"]["int8"].startswith(reason)
    export = modelport(
        "export", "logistic", "-o", tmp_path / "int8.onnx", "--variant", "int8", check=False
    )
    assert export.returncode == 1
    assert "has no variant 'int8' (it has fp32; int8 was not made: " + reason in " ".join(
        export.stderr.split()
    )
