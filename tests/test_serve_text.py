"""Text models through every protocol of the server: texts as a list, the extras a text model
gives (the sentiment's compound score, whether a text was cut), and bad text bytes refused."""

from __future__ import annotations

import json

import httpx
import pytest

from modelport.config import Settings
from modelport.runtime import Predictor
from modelport.store import Store

from .conftest import Server, zoo_model

MOODS = ["I love this phone!", "The battery is awful.", "It arrived on Tuesday."]
LONG = "good " * 3000  # more words than the sentiment model reads


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("text") / "home"
    artifact = zoo_model("sentiment")
    Store(Settings(home=home)).register(artifact, name="mood")
    server = Server(home)
    yield server, Predictor(artifact)
    server.stop()


def test_simple_json_takes_a_list_of_texts_and_gives_the_extras(served):
    server, local = served
    expected = local.predict([*MOODS, LONG])
    answer = httpx.post(
        f"{server.url}/api/v1/models/mood/predict", json={"texts": [*MOODS, LONG]}, timeout=60
    ).json()
    assert answer["predictions"] == expected.predictions.tolist()
    assert answer["probabilities"] == expected.probabilities_by_label()
    assert answer["compound"] == pytest.approx(expected.extras["compound"].tolist(), abs=1e-6)
    assert answer["truncated"] == [False, False, False, True]
    rows = httpx.post(
        f"{server.url}/api/v1/models/mood/predict",
        json={"rows": [{"text": t} for t in MOODS]},
        timeout=60,
    ).json()
    assert rows["predictions"] == answer["predictions"][:3]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"texts": "I love it"}, '{"texts": ["some text", ...]}'),
        ({"text": ["I love it"]}, 'rows {"text": "..."}'),
        ({"texts": [""]}, "empty"),
        ({"texts": [12]}, "text"),
    ],
)
def test_bad_text_bodies_get_clear_errors(served, body, words):
    server, _ = served
    response = httpx.post(f"{server.url}/api/v1/models/mood/predict", json=body, timeout=60)
    assert response.status_code == 400 and words in response.json()["error"]


def test_oip_gives_the_extras_as_outputs_its_metadata_lists(served):
    server, local = served
    expected = local.predict(MOODS)
    metadata = httpx.get(f"{server.url}/v2/models/mood").json()
    assert [o["name"] for o in metadata["outputs"]] == [
        "label",
        "probabilities",
        "compound",
        "truncated",
    ]
    tensor = {"name": "text", "shape": [3], "datatype": "BYTES", "data": MOODS}
    outputs = httpx.post(
        f"{server.url}/v2/models/mood/infer", json={"inputs": [tensor]}, timeout=60
    ).json()["outputs"]
    found = {o["name"]: o for o in outputs}
    assert found["label"]["data"] == expected.predictions.tolist()
    assert found["compound"]["datatype"] == "FP32"
    assert found["compound"]["data"] == pytest.approx(
        expected.extras["compound"].tolist(), abs=1e-6
    )
    assert found["truncated"] == {
        "name": "truncated",
        "shape": [3],
        "datatype": "BOOL",
        "data": [False, False, False],
    }


def test_binary_text_that_is_not_utf8_is_refused(served):
    server, _ = served
    element = b"caf\xe9"  # Latin-1, not UTF-8
    raw = len(element).to_bytes(4, "little") + element
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "text",
                    "shape": [1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    ).encode()
    response = httpx.post(
        f"{server.url}/v2/models/mood/infer",
        content=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header))},
        timeout=60,
    )
    assert response.status_code == 400
    assert "Element 0 of input 'text' is not UTF-8" in response.json()["error"]


def test_tf_serving_instances_are_the_texts(served):
    server, local = served
    expected = local.predict(MOODS)
    answer = httpx.post(
        f"{server.url}/v1/models/mood:predict", json={"instances": MOODS}, timeout=60
    ).json()
    assert [row["label"] for row in answer["predictions"]] == expected.predictions.tolist()
