"""`modelport predict` on photos: folders (recursive, sorted), files and globs; top-k columns
for many classes, probability columns for few; bad paths and non-images refused, nothing written."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn.datasets
from PIL import Image

from modelport.runtime import Predictor

from .artifacts import linear_artifact
from .conftest import zoo_model
from .test_serve_images import colour_artifact

SAMPLES = Path(sklearn.datasets.__file__).parent / "images"


@pytest.fixture
def photos(tmp_path):
    """photos/a/palace.jpg, photos/b/flower.png, photos/b/deeper/flower.webp and a notes.txt."""
    root = tmp_path / "photos"
    (root / "a").mkdir(parents=True)
    (root / "b" / "deeper").mkdir(parents=True)
    shutil.copy(SAMPLES / "china.jpg", root / "a" / "palace.jpg")
    flower = Image.open(SAMPLES / "flower.jpg")
    flower.save(root / "b" / "flower.png")
    flower.save(root / "b" / "deeper" / "flower.webp", lossless=True)
    (root / "notes.txt").write_text("not a photo")
    return root


def test_a_folder_gives_one_row_per_photo_with_top_k_columns(modelport, store, photos, tmp_path):
    store.register(zoo_model("image-labeler"), name="labeler")
    result = modelport("predict", "labeler", "photos", "--output", "out.csv")
    assert "skipped 1 file(s)" in result.stderr and "Wrote 3 predictions" in result.stderr
    assert "photos/notes.txt" in result.stderr
    out = pd.read_csv(tmp_path / "out.csv")
    assert out["path"].tolist() == [
        "photos/a/palace.jpg",
        "photos/b/deeper/flower.webp",
        "photos/b/flower.png",
    ]
    assert out["prediction"].tolist() == ["palace", "daisy", "daisy"]
    ranks = [f"top{i}_{what}" for i in range(1, 6) for what in ("label", "score")]
    assert list(out.columns) == ["path", "prediction", *ranks]
    assert (out["top1_label"] == out["prediction"]).all()
    scores = out[[f"top{i}_score" for i in range(1, 6)]].to_numpy()
    assert (np.diff(scores, axis=1) <= 0).all() and (scores > 0).all()
    expected = Predictor(store.get("labeler")).predict([str(tmp_path / p) for p in out["path"]])
    assert np.allclose(scores[:, 0], expected.probabilities.max(axis=1), atol=1e-6)


def test_files_and_quoted_globs_to_stdout_with_fewer_labels(modelport, store, photos):
    store.register(zoo_model("image-labeler"), name="labeler")
    printed = modelport(
        "predict", "labeler", "photos/a/palace.jpg", "photos/**/*.webp", "--top-k", "2"
    ).stdout
    lines = printed.splitlines()
    assert lines[0] == "path,prediction,top1_label,top1_score,top2_label,top2_score"
    assert [line.split(",")[:2] for line in lines[1:]] == [
        ["photos/a/palace.jpg", "palace"],
        ["photos/b/deeper/flower.webp", "daisy"],
    ]


def test_few_classes_get_a_probability_column_each(modelport, store, tmp_path):
    store.register(colour_artifact(), name="colours")
    (tmp_path / "shots").mkdir()
    for colour in ("red", "blue"):
        Image.new("RGB", (50, 40), colour).save(tmp_path / "shots" / f"{colour}.png")
    modelport("predict", "colours", "shots", "-o", "colours.csv")
    out = pd.read_csv(tmp_path / "colours.csv")
    assert list(out.columns) == ["path", "prediction", "proba_red", "proba_green", "proba_blue"]
    assert out["prediction"].tolist() == ["blue", "red"]  # sorted: shots/blue.png first
    assert np.allclose(out[["proba_red", "proba_green", "proba_blue"]].sum(axis=1), 1)


BAD = {
    "not an image": (
        ["labeler", "photos/a/palace.jpg", "photos/notes.txt"],
        "notes.txt is not an image",
    ),
    "empty folder": (["labeler", "empty"], "no image files in empty"),
    "missing path": (["labeler", "photos/nope.jpg"], "photos/nope.jpg does not exist"),
    "tabular with two files": (["lin", "a.csv", "b.csv"], "give one CSV or Parquet file, not 2"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_paths_get_one_clear_error_and_nothing_is_written(
    modelport, store, photos, tmp_path, case
):
    store.register(zoo_model("image-labeler"), name="labeler")
    store.register(linear_artifact("lin"), name="lin")
    (tmp_path / "empty").mkdir()
    args, words = BAD[case]
    result = modelport("predict", *args, "-o", "out.csv", check=False)
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert words in message and message.count("error:") == 1, message
    assert "Traceback" not in message
    assert not (tmp_path / "out.csv").exists()
