"""The real server over its three protocols, spoken by real clients (httpx, tritonclient)."""

import json

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from modelport.artifact import ModelArtifact
from modelport.runtime import Predictor

from .conftest import Server
from .serving import ROWS, churn_store, wait_until


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve") / "home"
    store = churn_store(home)
    server = Server(home)
    yield server, store
    server.stop()


@pytest.fixture(scope="module")
def expected(served):
    _, store = served
    return Predictor(store.get("churn")).predict(ROWS)


def _triton_inputs(client, binary: bool):
    inputs = []
    for meta in client.get_model_metadata("churn")["inputs"]:
        values = [row[meta["name"]] for row in ROWS]
        if meta["datatype"] == "FP32":
            array = np.array([np.nan if v is None else v for v in values], dtype=np.float32)
        else:
            array = np.array(["" if v is None else v for v in values], dtype=object)
        tensor = triton.InferInput(meta["name"], [len(ROWS), 1], meta["datatype"])
        tensor.set_data_from_numpy(array.reshape(-1, 1), binary_data=binary)
        inputs.append(tensor)
    return inputs


def test_tritonclient_with_default_arguments(served, expected):
    server, _ = served
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("churn") and client.is_model_ready("churn", "1")
    assert not client.is_model_ready("ghost")
    meta = client.get_model_metadata("churn")
    assert [i["name"] for i in meta["inputs"]] == ["age", "monthly fee", "plan", "region"]
    assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities"]
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data", "classification"]
    result = client.infer("churn", _triton_inputs(client, binary=True))  # all defaults: binary
    assert [v.decode() for v in result.as_numpy("label")] == expected.predictions.tolist()
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected.probabilities, atol=1e-6)


def test_tritonclient_json_tensors_and_chosen_outputs(served, expected):
    server, _ = served
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    result = client.infer(
        "churn",
        _triton_inputs(client, binary=False),
        model_version="1",
        request_id="r-7",
        outputs=[triton.InferRequestedOutput("probabilities", binary_data=False)],
    )
    response = result.get_response()
    assert response["id"] == "r-7" and response["model_version"] == "1"
    assert [o["name"] for o in response["outputs"]] == ["probabilities"]
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected.probabilities, atol=1e-6)


def test_tritonclient_errors_carry_the_message(served):
    server, _ = served
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    inputs = _triton_inputs(client, binary=True)[:2]
    with pytest.raises(InferenceServerException, match="lacks the column") as error:
        client.infer("churn", inputs)
    assert error.value.status() == "400"


def test_tf_serving_rows_and_columns(served, expected):
    server, _ = served
    rows = httpx.post(f"{server.url}/v1/models/churn:predict", json={"instances": ROWS}).json()
    assert [p["label"] for p in rows["predictions"]] == expected.predictions.tolist()
    columns = {k: [r[k] for r in ROWS] for k in ROWS[0]}
    cols = httpx.post(f"{server.url}/v1/models/churn/versions/1:predict", json={"inputs": columns})
    assert cols.json()["outputs"]["label"] == expected.predictions.tolist()
    np.testing.assert_allclose(
        cols.json()["outputs"]["probabilities"], expected.probabilities, atol=1e-6
    )
    labelled = httpx.post(
        f"{server.url}/v1/models/churn/labels/production:predict", json={"instances": ROWS}
    )
    assert labelled.json() == rows
    status = httpx.get(f"{server.url}/v1/models/churn").json()
    assert status["model_version_status"][0] == {
        "version": "1",
        "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    }
    meta = httpx.get(f"{server.url}/v1/models/churn/metadata").json()
    signature = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["plan"]["dtype"] == "DT_STRING"
    single = httpx.post(
        f"{server.url}/v1/models/lin:predict", json={"instances": [{"a": 2, "b": 1}]}
    )
    assert single.json() == {"predictions": [3.0]}


def test_simple_json(served, expected):
    server, _ = served
    answer = httpx.post(f"{server.url}/api/v1/models/churn/predict", json={"rows": ROWS}).json()
    assert answer["model"] == "churn" and answer["version"] == 1
    assert answer["predictions"] == expected.predictions.tolist()
    assert answer["probabilities"][0]["yes"] == pytest.approx(
        float(expected.probabilities[0][1]), abs=1e-6
    )


def test_same_predictions_as_the_cli(served, expected, tmp_path):
    import subprocess

    import pandas as pd

    from .conftest import MODELPORT

    server, store = served
    pd.DataFrame(ROWS).to_csv(tmp_path / "rows.csv", index=False)
    out = subprocess.run(
        [str(MODELPORT), "predict", "churn", str(tmp_path / "rows.csv")],
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, "MODELPORT_HOME": str(store.settings.home)},
    ).stdout
    cli_labels = [line.split(",")[-3] for line in out.splitlines()[1:]]
    assert cli_labels == expected.predictions.tolist()


def test_downloads_with_etag(served):
    server, store = served
    manifest = httpx.get(f"{server.url}/api/v1/models/churn/manifest")
    assert (
        manifest.status_code == 200 and manifest.json()["sha256"] == store.manifest("churn").sha256
    )
    etag = manifest.headers["etag"]
    again = httpx.get(f"{server.url}/api/v1/models/churn/manifest", headers={"If-None-Match": etag})
    assert again.status_code == 304
    artifact = httpx.get(f"{server.url}/api/v1/models/churn@production/artifact")
    assert ModelArtifact.from_bytes(artifact.content).manifest.version == 1
    cached = httpx.get(
        f"{server.url}/api/v1/models/churn/artifact",
        headers={"If-None-Match": artifact.headers["etag"]},
    )
    assert cached.status_code == 304 and cached.content == b""
    onnx = httpx.get(f"{server.url}/api/v1/models/churn/artifact?format=onnx")
    assert onnx.content == store.get("churn").onnx
    listing = httpx.get(f"{server.url}/api/v1/models").json()["models"]
    assert {m["name"] for m in listing} == {"churn", "lin"}


def _v2(data, name="age", datatype="FP32", shape=None):
    shape = shape if shape is not None else [len(data), 1]
    return {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]}


BAD_BODIES = {
    "malformed json": ("/v2/models/lin/infer", b"{not json", 400, "not valid JSON"),
    "no inputs": ("/v2/models/lin/infer", json.dumps({"x": 1}).encode(), 400, '"inputs" list'),
    "wrong dtype": (
        "/v2/models/lin/infer",
        json.dumps(
            {
                "inputs": [
                    {"name": "a", "shape": [1], "datatype": "BYTES", "data": ["x"]},
                    {"name": "b", "shape": [1], "datatype": "FP32", "data": [1]},
                ]
            }
        ).encode(),
        400,
        "holds numbers",
    ),
    "wrong shape": (
        "/v2/models/lin/infer",
        json.dumps(
            {"inputs": [{"name": "a", "shape": [3, 1], "datatype": "FP32", "data": [1, 2]}]}
        ).encode(),
        400,
        "carries 2 values",
    ),
    "unknown input": (
        "/v2/models/lin/infer",
        json.dumps(
            {"inputs": [{"name": "zzz", "shape": [1], "datatype": "FP32", "data": [1]}]}
        ).encode(),
        400,
        "no input named 'zzz'",
    ),
    "not numbers": (
        "/v2/models/lin/infer",
        json.dumps(
            {"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": ["x"]}]}
        ).encode(),
        400,
        "not numbers",
    ),
    "out of range": (
        "/v2/models/lin/infer",
        json.dumps(
            {"inputs": [{"name": "a", "shape": [1], "datatype": "INT8", "data": [300]}]}
        ).encode(),
        400,
        "out of that type's range",
    ),
    "unknown model": (
        "/v2/models/ghost/infer",
        json.dumps(_v2([1.0])).encode(),
        404,
        "no model named 'ghost'",
    ),
    "bad version": (
        "/v2/models/lin/versions/x/infer",
        json.dumps(_v2([1.0])).encode(),
        400,
        "whole number",
    ),
    "simple without rows": ("/api/v1/models/lin/predict", b'{"row": []}', 400, '{"rows"'),
    "tfs both formats": (
        "/v1/models/lin:predict",
        b'{"instances": [], "inputs": {}}',
        400,
        "exactly one",
    ),
    "unknown route": ("/v3/anything", b"{}", 404, "No such endpoint"),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_requests_get_json_errors(served, case):
    server, _ = served
    path, body, status, words = BAD_BODIES[case]
    response = httpx.post(
        f"{server.url}{path}", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status
    assert set(response.json()) == {"error"} and words in response.json()["error"]


def test_size_limits(served):
    server, _ = served
    huge = b'{"rows": [' + b'{"a": 1, "b": 2},' * 1_200_000 + b'{"a": 1, "b": 2}]}'
    response = httpx.post(
        f"{server.url}/api/v1/models/lin/predict",
        content=huge,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413 and "at most" in response.json()["error"]
    many = {"rows": [{"a": 1, "b": 2}] * 10_001}
    response = httpx.post(f"{server.url}/api/v1/models/lin/predict", json=many)
    assert response.status_code == 413 and "10000 per request" in response.json()["error"]


def test_wrong_method(served):
    server, _ = served
    response = httpx.get(f"{server.url}/v2/models/lin/infer")
    assert response.status_code == 405 and "error" in response.json()


def test_binary_size_mismatch(served):
    server, _ = served
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "a",
                    "shape": [2],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 8},
                }
            ]
        }
    ).encode()
    response = httpx.post(
        f"{server.url}/v2/models/lin/infer",
        content=header + b"\0" * 4,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 400 and "binary_data_size" in response.json()["error"]


def test_metrics_openapi_and_docs(served):
    server, _ = served
    httpx.post(f"{server.url}/api/v1/models/lin/predict", json={"rows": [{"a": 1, "b": 1}]})
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'modelport_requests_total{model="lin",route="simple_predict",status="200"}' in metrics
    assert "modelport_request_seconds_bucket" in metrics and "modelport_loaded_models" in metrics
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert spec["openapi"].startswith("3.") and "/v2/models/{name}/infer" in spec["paths"]
    assert "modelport API" in httpx.get(f"{server.url}/docs").text


def test_access_log_has_no_keys_or_inputs(served):
    server, _ = served
    httpx.post(
        f"{server.url}/api/v1/models/lin/predict",
        json={"rows": [{"a": 12345.5, "b": 1}]},
        headers={"Authorization": "Bearer mp_secret_value"},
    )
    line = (
        '"route":"simple_predict","method":"POST","path":"/api/v1/models/lin/predict","status":401'
    )
    wait_until(lambda: line in server.log.read_text(), "no access line")  # written in batches
    log = server.log.read_text()
    assert '{"time":"20' in log
    assert "12345.5" not in log and "mp_secret_value" not in log


def test_every_route_is_in_the_openapi_document():
    from modelport.serve.openapi import SPEC
    from modelport.serve.routes import oip, simple, tfserving, training

    paths = {r.path for module in (oip, simple, tfserving, training) for r in module.routes}
    paths.discard("/v1/models/{tail:path}")  # TF-Serving's colon paths, listed one by one
    assert paths - set(SPEC["paths"]) == set()
