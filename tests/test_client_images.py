"""Image models in the device SDK: every input form, local vs remote on real photos, modes and
fallback, and personalisation on the device (numpy head, local version, restart, sync, rollback)."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import sklearn.datasets
from PIL import Image
from sklearn.linear_model import LogisticRegression

from modelport.client import Client, ServerUnavailable
from modelport.errors import IntegrityError, InvalidInput, InvalidParameter
from modelport.runtime import head

from .artifacts import linear_artifact
from .conftest import SHARED_DATA, Server, free_port, zoo_model
from .serving import wait_until

SAMPLES = Path(sklearn.datasets.__file__).parent / "images"
PALACE, FLOWER = SAMPLES / "china.jpg", SAMPLES / "flower.jpg"
FLOWER_KINDS = ("daisy", "dandelion", "roses", "sunflowers", "tulips")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One server for the module with the image labeller ('labeler') and a tabular regression
    ('lin'); a test that adds versions registers a labeller of its own."""
    from modelport.config import Settings
    from modelport.store import Store

    home = tmp_path_factory.mktemp("images") / "home"
    store = Store(Settings(home=home))
    store.register(zoo_model("image-labeler"), name="labeler")
    store.register(linear_artifact("lin"), name="lin")
    server = Server(home)
    yield server, store
    server.stop()


@pytest.fixture
def client(served, tmp_path):
    with Client(served[0].url, cache_dir=tmp_path / "cache", timeout=60) as client:
        yield client


def every_form() -> list:
    """The two sample photos as bytes, a path (str and Path), PIL images (one a large JPEG the
    device decodes at a reduced scale, one already loaded) and an array."""
    large = io.BytesIO()
    Image.open(PALACE).resize((2560, 1708)).save(large, "JPEG", quality=90)
    return [
        PALACE.read_bytes(),
        str(FLOWER),
        PALACE,
        Image.open(large),
        Image.open(FLOWER).convert("L"),
        np.asarray(Image.open(PALACE)),
    ]


def crops(path: Path, count: int, offset: int = 0) -> list[np.ndarray]:
    """``count`` different 200 x 200 crops of one photo, as arrays."""
    pixels = np.asarray(Image.open(path))
    return [
        pixels[20 * i : 20 * i + 200, 30 * (i + offset) : 30 * (i + offset) + 200]
        for i in range(count)
    ]


def test_local_and_remote_agree_on_real_photos_in_every_form(client):
    local = client.model("labeler", mode="local_only", update="latest").predict(every_form())
    remote = client.model("labeler", mode="remote_only").predict(every_form(), top_k=3)
    assert (local.served_by, remote.served_by) == ("local", "remote")
    assert local.version == remote.version == 1
    expected = ["palace", "daisy", "palace", "palace", "daisy", "palace"]
    assert local.predictions == remote.predictions == expected
    for a, b in zip(local.probabilities, remote.probabilities, strict=True):
        assert len(a) == 1000 and a.keys() == b.keys()
        assert max(abs(a[k] - b[k]) for k in a) < 1e-4
    assert [len(row) for row in local.top_k] == [5] * 6
    assert [len(row) for row in remote.top_k] == [3] * 6
    for row, other in zip(local.top_k, remote.top_k, strict=True):
        assert [r["label"] for r in row[:3]] == [r["label"] for r in other]
        assert row[0]["score"] == pytest.approx(other[0]["score"], abs=1e-4)
        assert row[0]["score"] > row[1]["score"] > row[2]["score"]


def test_local_and_remote_agree_on_flower_photos(client):
    folder = SHARED_DATA / "flower_photos"
    if not folder.is_dir():
        pytest.skip("../shared/data/flower_photos is not available")
    photos = [photo for kind in FLOWER_KINDS for photo in sorted((folder / kind).glob("*.jpg"))[:3]]
    local = client.model("labeler", mode="local_only", update="latest").predict(photos)
    remote = client.model("labeler", mode="remote_only").predict(photos)
    assert local.predictions == remote.predictions and len(local.predictions) == 15
    for a, b in zip(local.probabilities, remote.probabilities, strict=True):
        assert max(abs(a[k] - b[k]) for k in a) < 1e-4


def test_modes_fall_back_for_images_as_for_rows(client, served, tmp_path):
    cache = tmp_path / "cache"
    client.model("labeler", mode="local_only", update="latest").sync()
    offline = Client(f"http://127.0.0.1:{free_port()}", cache_dir=cache, timeout=5)
    assert offline.model("labeler", mode="prefer_remote").predict(FLOWER).served_by == "local"
    assert offline.model("labeler", mode="prefer_local").predict(FLOWER).predictions == ["daisy"]
    with pytest.raises(ServerUnavailable):
        offline.model("labeler", mode="remote_only").predict(FLOWER)
    fresh = Client(served[0].url, cache_dir=tmp_path / "empty").model("labeler", update="local")
    assert fresh.predict(PALACE.read_bytes()).served_by == "local"  # synced on first use


def test_bad_images_are_named_locally_and_remotely(client, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a photo")
    local = client.model("labeler", mode="local_only", update="latest")
    with pytest.raises(InvalidInput, match="notes.txt is not an image"):
        local.predict([str(FLOWER), str(text)])
    with pytest.raises(InvalidInput, match="not an image"):
        client.model("labeler", mode="remote_only").predict([b"GIF89a broken", FLOWER])
    with pytest.raises(InvalidParameter, match="top_k"):
        local.predict(FLOWER, top_k=0)
    for where in (local, client.model("labeler", mode="remote_only")):  # the same on both sides
        with pytest.raises(InvalidInput, match="takes images, not rows"):
            where.predict([{"age": 35}])


def test_personalize_fits_a_local_version_that_survives_restart_and_rolls_back(
    client, served, tmp_path
):
    model = client.model("labeler", mode="prefer_remote", update="latest")
    examples = crops(PALACE, 4) + crops(FLOWER, 4)
    labels = ["home"] * 4 + ["garden"] * 4
    assert model.personalize(examples, labels) == 1

    held_out = crops(FLOWER, 2, offset=6) + crops(PALACE, 2, offset=6)
    result = model.predict(held_out, top_k=5)
    assert result.served_by == "local-personalized" and result.version == 1  # even prefer_remote
    assert result.predictions == ["garden", "garden", "home", "home"]
    assert all(p.keys() == {"garden", "home"} for p in result.probabilities)
    assert all(len(row) == 2 for row in result.top_k)  # k is capped by the 2 classes
    mine = model.versions()["personalized"]
    assert (mine["version"], mine["labels"], mine["examples"]) == (1, ["garden", "home"], 8)

    restarted = Client(served[0].url, cache_dir=tmp_path / "cache").model("labeler", update="local")
    again = restarted.predict(held_out)
    assert again.served_by == "local-personalized"
    assert again.probabilities == result.probabilities  # the same head, read back from disk
    server_side = client.model("labeler", mode="remote_only").predict(held_out[:1])
    assert server_side.predictions[0] not in ("garden", "home")  # never uploaded

    assert restarted.rollback() == 1
    assert restarted.predict(FLOWER).served_by == "local"
    assert restarted.predict(FLOWER).predictions == ["daisy"]
    assert "personalized" not in restarted.versions()
    assert not (tmp_path / "cache" / "labeler" / "personalized.json").exists()


def test_a_newer_server_version_waits_behind_the_personalised_one(served, tmp_path):
    server, store = served
    store.register(zoo_model("image-labeler"), name="labeler-sync")
    model = Client(server.url, cache_dir=tmp_path / "cache").model(
        "labeler-sync", mode="local_only", update="latest"
    )
    model.personalize([PALACE, FLOWER], ["home", "garden"])
    for version in (2, 3):
        store.register(zoo_model("image-labeler"), name="labeler-sync")
        wait_until(lambda v=version: model.sync() == 1 and model.versions()["current"] == v, "sync")
    versions = model.versions()
    assert versions["cached"] == [1, 2, 3]  # version 1 is kept while the head sits on it
    assert (versions["current"], versions["personalized"]["version"]) == (3, 1)
    assert model.predict(FLOWER).served_by == "local-personalized"
    assert model.rollback() == 3
    result = model.predict(FLOWER)
    assert (result.served_by, result.version, result.predictions) == ("local", 3, ["daisy"])
    model.sync()
    assert model.versions()["cached"] == [2, 3]  # no longer pinned: pruned like any old version


def test_a_damaged_personalised_head_is_said_and_rollback_recovers(client, tmp_path):
    model = client.model("labeler", mode="local_only", update="latest")
    model.personalize(iter([PALACE, FLOWER]), ("home", "garden"))  # any iterables
    (tmp_path / "cache" / "labeler" / "personalized.json").write_text('{"version": 1, "he')
    restarted = Client(cache_dir=tmp_path / "cache").model("labeler", mode="local_only")
    with pytest.raises(IntegrityError, match="personalised head .* is damaged"):
        restarted.predict(FLOWER)
    assert restarted.rollback() == 1
    assert restarted.predict(FLOWER).predictions == ["daisy"]


def test_personalize_refuses_what_it_cannot_learn_from(client):
    model = client.model("labeler", mode="local_only", update="latest")
    with pytest.raises(InvalidInput, match="2 examples but 1 labels"):
        model.personalize([PALACE, FLOWER], ["home"])
    with pytest.raises(InvalidInput, match="at least 2 different labels"):
        model.personalize([PALACE, FLOWER], ["home", "home"])
    with pytest.raises(InvalidInput, match="non-empty string"):
        model.personalize([PALACE, FLOWER], ["home", 3])
    with pytest.raises(InvalidInput, match="no embedding output"):
        client.model("lin", mode="local_only", update="latest").personalize([PALACE], ["a"])
    with pytest.raises(InvalidParameter, match="remote_only"):
        client.model("labeler", mode="remote_only").personalize([PALACE, FLOWER], ["a", "b"])
    assert "personalized" not in model.versions()


def test_the_head_is_the_logistic_regression_scikit_learn_fits():
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(3, 64))
    labels = [str(i) for i in rng.integers(0, 3, size=60)]
    x = centres[[int(label) for label in labels]] + rng.normal(scale=2.0, size=(60, 64))
    embeddings = x.astype(np.float32)
    fitted = head.fit(embeddings, labels)
    assert np.array_equal(fitted.weights, head.fit(embeddings, labels).weights)  # deterministic
    features = head.unit(embeddings)
    reference = LogisticRegression(C=1 / head.L2, tol=1e-10, max_iter=10_000).fit(features, labels)
    assert reference.classes_.tolist() == fitted.labels
    probabilities = fitted.probabilities(embeddings)
    assert np.abs(probabilities - reference.predict_proba(features)).max() < 1e-4
    restored = head.Head.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert np.array_equal(restored.probabilities(x), fitted.probabilities(x))
