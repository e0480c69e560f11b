"""The int8 variant: made and measured, or the manifest and `models show` say why not."""

import json

import joblib
import numpy as np
import onnx
import onnxruntime
import pandas as pd
import pytest
from sklearn.datasets import load_sample_images
from sklearn.linear_model import LogisticRegression

import modelport.export.quantize as quantize
from modelport.export.importers import import_file
from modelport.runtime import Predictor
from modelport.runtime.image import ImageSpec, prepare

from .conftest import zoo_model

SPEC = ImageSpec(size=224)


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


def test_the_image_labeler_has_a_static_int8_variant_measured_against_fp32():
    artifact = zoo_model("image-labeler")
    report = artifact.manifest.variants["int8"]
    # static QDQ with per-channel weights: ~3.7x smaller; dynamic ConvInteger was 18x slower
    assert report["size_bytes"] < 0.3 * report["fp32_size_bytes"]
    assert report["metric"] == "agreement" and report["fp32_score"] == 1
    assert 0.7 <= report["score"] == report["agreement"] <= 1
    assert report["held_out_images"] == 64
    assert 0 < report["latency_ms"] < 10 * report["fp32_latency_ms"]
    # one rule for all variants: top-1 agreement counts like accuracy, so devices keep fp32
    assert not report["recommended"] and "agreement" in report["reason"]

    china, flower = load_sample_images().images
    int8 = Predictor(artifact.variant("int8")).predict([china, flower])
    assert list(int8.predictions) == ["palace", "daisy"]
    # the outputs stay float: scores keep their resolution and the embedding is not 8-bit
    assert len(np.unique(int8.probabilities[0])) > 900
    embedding = Predictor(artifact.variant("int8")).embed({"image": prepare(flower, SPEC)})
    assert embedding.shape == (1, 1280) and len(np.unique(embedding)) > 256


def test_an_image_model_with_labelled_photos_is_scored_by_accuracy():
    china, flower = load_sample_images().images
    variant = quantize.int8_variant(
        zoo_model("image-labeler"),
        [china, flower],
        np.array(["palace", "daisy"]),
        calibration=quantize.sample_photos(count=4),
    )
    assert variant is not None and variant.report["metric"] == "accuracy"
    assert variant.report["fp32_score"] == variant.report["score"] == 1.0


def test_an_int8_variant_slower_than_fp32_is_not_recommended():
    reason = quantize._why_not(b"", saving=0.7, loss=0.0, metric="accuracy", slowdown=18.0)
    assert reason == "it is 18.0x slower than fp32 on one photo"


def test_an_image_model_exports_as_onnx_and_ort_format_in_both_variants(modelport, tmp_path):
    zoo_model("image-labeler")  # the CLI below finds this build in the shared zoo cache
    modelport("zoo", "pull", "image-labeler")
    pixels = prepare(load_sample_images().images[1], SPEC)
    for variant in ("fp32", "int8"):
        for fmt in ("onnx", "ort"):
            path = tmp_path / f"labeller-{variant}.{fmt}"
            modelport("export", "image-labeler", "-o", path, "--variant", variant, "--format", fmt)
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            probabilities, label, embedding = session.run(None, {"image": pixels})
            assert label.tolist() == [985]  # daisy
            assert probabilities.shape == (1, 1000) and embedding.shape == (1, 1280)
