"""The zoo: ready-made models built once from packaged weights, then ordinary artifacts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_sample_images

from modelport import zoo
from modelport.runtime.predictor import Predictor

from .conftest import zoo_model


def test_the_image_labeler_names_what_is_in_a_photo():
    artifact = zoo_model("image-labeler")
    manifest = artifact.manifest
    assert manifest.is_image and manifest.label_is_index
    assert len(manifest.class_labels) == len(set(manifest.class_labels)) == 1000
    assert set(manifest.outputs) == {"probabilities", "label", "embedding"}
    assert manifest.preprocessing["image"]["size"] == 224
    china, flower = load_sample_images().images
    prediction = Predictor(artifact).predict([china, flower])
    assert list(prediction.predictions) == ["palace", "daisy"]
    assert np.allclose(prediction.probabilities.sum(axis=1), 1, atol=1e-4)
    top = prediction.top_k(3)
    assert [len(row) for row in top] == [3, 3]
    assert top[0][0]["label"] == "palace" and top[0][0]["score"] > top[0][1]["score"]


def test_pull_registers_a_versioned_model_from_the_shared_build(modelport, store):
    zoo_model("image-labeler")  # built once per run in MODELPORT_ZOO_CACHE, which the CLI shares
    listing = json.loads(modelport("zoo", "list", "--json").stdout)
    assert "image-labeler" in [m["name"] for m in listing]
    pulled = modelport("zoo", "pull", "image-labeler", "--as", "labels", "--alias", "prod")
    assert "Building" not in pulled.stderr  # a cache hit: nothing exported again
    again = json.loads(modelport("zoo", "pull", "image-labeler", "--as", "labels", "--json").stdout)
    assert again["version"] == 2 and again["source"]["zoo"] == "image-labeler"
    assert store.manifest("labels@prod").version == 1
    assert store.get("labels:2").manifest.sha256 == zoo_model("image-labeler").manifest.sha256


def test_an_unknown_name_lists_the_zoo(modelport):
    result = modelport("zoo", "pull", "imagenet", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "has no model 'imagenet'" in result.stderr and "image-labeler" in result.stderr


def test_building_without_the_zoo_extra_says_what_to_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("efficientnet"):
            raise ImportError(f"No module named '{name}'", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_torch)
    with pytest.raises(ImportError, match=r"pip install 'modelport\[zoo\]'"):
        zoo.load("image-labeler", tmp_path)
    assert not list(tmp_path.iterdir())  # nothing half-built is cached


def test_a_damaged_cached_build_is_made_again(tmp_path):
    cache = Path(os.environ["MODELPORT_ZOO_CACHE"])
    copy = tmp_path / zoo.cache_path("image-labeler", cache).name
    data = bytearray(zoo.cache_path("image-labeler", cache).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the stored graph
    copy.write_bytes(bytes(data))
    rebuilt = zoo.load("image-labeler", tmp_path)
    assert rebuilt.manifest.sha256 == zoo_model("image-labeler").manifest.sha256  # reproducible
    assert zoo.load("image-labeler", tmp_path).manifest.sha256 == rebuilt.manifest.sha256
