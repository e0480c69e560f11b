import json
import zipfile

import pytest

from modelport.artifact import Manifest, ModelArtifact
from modelport.errors import IntegrityError, InvalidInput
from modelport.runtime import Predictor

from .artifacts import linear_artifact


def test_manifest_records_size_and_hash():
    artifact = linear_artifact()
    assert artifact.manifest.size_bytes == len(artifact.onnx)
    assert len(artifact.manifest.sha256) == 64
    assert artifact.manifest.created.endswith("+00:00")


@pytest.mark.parametrize("form", ["dir", "file"])
def test_round_trip(tmp_path, form):
    artifact = linear_artifact(scale=2.0)
    target = tmp_path / ("bundle" if form == "dir" else "bundle.zip")
    getattr(artifact, f"to_{form}")(target)
    loaded = ModelArtifact.load(target)
    assert loaded.onnx == artifact.onnx
    assert loaded.manifest == artifact.manifest
    assert Predictor(loaded).predict({"a": [1.0], "b": [0.5]}).predictions.tolist() == [2.5]


def test_load_rejects_tampered_onnx(tmp_path):
    artifact = linear_artifact()
    artifact.to_dir(tmp_path / "m")
    onnx = tmp_path / "m" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match="corrupted"):
        ModelArtifact.load(tmp_path / "m")


def test_load_rejects_a_zip_without_manifest(tmp_path):
    path = tmp_path / "x.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.onnx", b"")
    with pytest.raises(InvalidInput, match="not a modelport artifact"):
        ModelArtifact.load(path)


def test_manifest_json_round_trip_keeps_columns():
    manifest = linear_artifact().manifest
    again = Manifest.from_dict(json.loads(manifest.to_json()))
    assert again == manifest
    assert again.columns == ["a", "b"]


def test_manifest_from_incomplete_dict_is_a_clear_error():
    with pytest.raises(InvalidInput, match="manifest is not valid"):
        Manifest.from_dict({"name": "x"})
