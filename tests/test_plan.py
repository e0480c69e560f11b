"""The encoding plan (runtime/plan.py): on a wide table, every input form it packs quickly gives
the same feeds, and every bad input the same error, as the careful path in runtime/tabular.py;
the server answers wide tables in every protocol with the runtime's predictions."""

from __future__ import annotations

import asyncio
import functools
import json

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton

from modelport.artifact import ModelArtifact
from modelport.config import Settings
from modelport.errors import InvalidInput, SchemaMismatch
from modelport.runtime import Predictor, tabular
from modelport.runtime.batching import Batcher
from modelport.runtime.plan import NUMBERS, STRINGS
from modelport.runtime.predictor import Prediction
from modelport.serve.tensors import decode_request
from modelport.store import Store

from .conftest import Server, trained_spam
from .datasets import spam_messages, wide_classification


@functools.cache
def wide_artifact() -> ModelArtifact:
    """A classifier on 30 columns (20 of them text), trained once per test session."""
    from modelport.train import TabularAutoML

    frame = wide_classification()
    trainer = TabularAutoML(time_budget=2, estimators=("lgbm",))
    return trainer.fit(frame.drop(columns="label"), frame["label"]).to_artifact("wide")


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor(wide_artifact())


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return wide_classification(12, seed=9).drop(columns="label")


@functools.cache
def mixed_text_artifact() -> ModelArtifact:
    """A classifier on a number, a category and free text between them (linear, 2 s budget)."""
    from modelport.train import TabularAutoML

    frame = spam_messages(200, seed=6)
    rng = np.random.default_rng(6)
    frame.insert(0, "channel", rng.choice(["sms", "email"], len(frame)))
    frame.insert(0, "hour", rng.integers(0, 24, len(frame)).astype(float))
    trainer = TabularAutoML(time_budget=2, estimators=("linear",))
    return trainer.fit(frame.drop(columns="label"), frame["label"]).to_artifact("mixed")


def careful(predictor: Predictor, rows):  # type: ignore[no-untyped-def]
    """What the plan's careful path (runtime/tabular.py) packs for ``rows``."""
    manifest = predictor.manifest
    assert predictor.plan is not None
    return predictor.plan.pack_feeds(tabular.encode(manifest, tabular.to_columns(rows, manifest)))


def assert_same(packed: dict, expected: dict) -> None:
    np.testing.assert_array_equal(packed[NUMBERS], expected[NUMBERS])  # NaN equals NaN here
    assert packed[STRINGS].tolist() == expected[STRINGS].tolist()
    assert packed[NUMBERS].dtype == np.float32 and packed[STRINGS].dtype == object


def test_every_input_form_packs_as_the_careful_path_does(predictor, frame):
    records = json.loads(frame.to_json(orient="records"))  # None for gaps, as JSON sends them
    odd = [
        {**records[0], "cat 2": 7, "cat 4": 2.0, "num_3": "1.5", "num_6": None},
        {**records[1], "cat 5": None, "cat 7": float("nan"), "num_9": True, "extra": "ignored"},
    ]
    forms = [
        records,
        records[0],
        frame,
        {name: frame[name].tolist() for name in frame.columns},
        frame.to_numpy(dtype=object),
        odd,
    ]
    for rows in forms:
        assert_same(predictor.encode(rows), careful(predictor, rows))
    expected = predictor.predict(records)
    for rows in forms[2:4]:
        np.testing.assert_array_equal(predictor.predict(rows).probabilities, expected.probabilities)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda rows: [{k: v for k, v in r.items() if k != "cat 5"} for r in rows], "lacks the"),
        (lambda rows: [{**rows[0], "num_3": "tall"}, *rows[1:]], "must hold numbers"),
        (lambda rows: [{**rows[0], "num_3": [1, 2]}], "different lengths"),
        (lambda rows: [], "no rows to predict"),
        (lambda rows: [rows[0], {k: v for k, v in rows[1].items() if k != "num_0"}], None),
        (lambda rows: {k: [v, v] if k != "num_0" else [v] for k, v in rows[0].items()}, "lengths"),
        (lambda rows: 42, "Cannot read rows"),
    ],
)
def test_bad_rows_get_the_careful_paths_error(predictor, frame, change, message):
    rows = change(json.loads(frame.head(3).to_json(orient="records")))
    try:
        expected = careful(predictor, rows)
    except SchemaMismatch as error:
        with pytest.raises(SchemaMismatch) as raised:
            predictor.encode(rows)
        assert str(raised.value) == str(error) and message in str(error)
    else:  # a row without a value the others have: that value is missing, not an error
        assert message is None
        assert_same(predictor.encode(rows), expected)


def tensors_of(frame: pd.DataFrame, shape: str = "column") -> dict[str, np.ndarray]:
    arrays = {}
    for name in frame.columns:
        values = frame[name].to_numpy()
        values = values.astype(np.float32) if values.dtype.kind == "f" else values.astype(object)
        arrays[name] = values.reshape(-1, 1) if shape == "column" else values
    return arrays


def test_wire_tensors_pack_as_the_careful_path_does(predictor, frame):
    plan, manifest = predictor.plan, predictor.manifest
    assert plan is not None
    for shape in ("column", "flat"):
        tensors = tensors_of(frame.fillna({"cat 1": ""}), shape)
        expected = plan.pack_feeds(tabular.encode_tensors(manifest, tensors))
        assert_same(plan.pack_tensors(tensors), expected)
    good = tensors_of(frame)
    bad = [
        {**good, "cat 2": good["num_0"]},  # numbers sent for a text column
        {**good, "num_0": good["cat 2"]},  # text sent for a number column
        {**good, "num_0": np.zeros((len(frame), 2), np.float32)},
        {**good, "unknown": good["num_0"]},
        {k: v for k, v in good.items() if k != "cat 2"},
    ]
    for tensors in bad:
        with pytest.raises(SchemaMismatch) as expected:
            tabular.encode_tensors(manifest, tensors)
        with pytest.raises(SchemaMismatch) as raised:
            plan.pack_tensors(tensors)
        assert str(raised.value) == str(expected.value)


def oip_body(frame: pd.DataFrame, parameters: bool = False) -> dict:
    inputs = []
    for name in frame.columns:
        column = frame[name]
        text = column.dtype.kind not in "fi"
        item = {
            "name": name,
            "shape": [len(frame), 1],
            "datatype": "BYTES" if text else "FP32",
            "data": column.fillna("").tolist() if text else column.tolist(),
        }
        if parameters:  # any parameter sends an input through the one-by-one decoder
            item["parameters"] = {}
        inputs.append(item)
    return {"inputs": inputs}


def test_oip_json_columns_decode_as_one_by_one(predictor, frame):
    whole = frame.fillna({"num_0": 0.5})
    fast = decode_request(json.dumps(oip_body(whole)).encode(), None)
    slow = decode_request(json.dumps(oip_body(whole, parameters=True)).encode(), None)
    assert fast.blocks is not None and slow.blocks is None
    assert fast.inputs.keys() == slow.inputs.keys()
    for name, array in slow.inputs.items():
        assert fast.inputs[name].reshape(array.shape).tolist() == array.tolist()
    plan = predictor.plan
    assert plan is not None
    blocks = plan.pack_blocks(fast.blocks)
    assert blocks is not None
    assert_same(blocks, plan.pack_tensors(slow.inputs))
    body = oip_body(whole)
    body["inputs"][1]["data"][0] = 3  # a number in the BYTES input "cat 1": the one-by-one error
    with pytest.raises(InvalidInput, match="is BYTES: every value must be a string"):
        decode_request(json.dumps(body).encode(), None)


class Counting:
    """A stand-in predictor: counts calls; a row with x = -1 makes its call fail."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def run(self, feeds: dict) -> Prediction:
        x = feeds["x"]
        self.calls.append(len(x))
        if (x == -1).any():
            raise SchemaMismatch("row -1 is refused")
        return Prediction(x * 2, None, None)


def test_the_loop_batcher_merges_a_turn_and_keeps_failures_apart():
    model = Counting()
    batcher = Batcher(model)  # type: ignore[arg-type]

    async def run(values: list[int]) -> list:
        requests = [batcher.run({"x": np.array([v])}) for v in values]
        return await asyncio.gather(*requests, return_exceptions=True)

    answers = asyncio.run(run([1, 2, -1, 4]))
    assert [a.predictions.tolist() for a in answers if not isinstance(a, Exception)] == [
        [2],
        [4],
        [8],
    ]
    assert isinstance(answers[2], SchemaMismatch)
    assert model.calls[0] == 4  # one call for the turn, then one per request after it failed
    assert len(model.calls) == 5


@pytest.fixture(scope="module")
def wide_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("wide") / "home"
    Store(Settings(home=home)).register(wide_artifact())
    server = Server(home)
    yield server
    server.stop()


def test_the_server_answers_a_wide_table_in_every_protocol(wide_server, predictor, frame):
    records = json.loads(frame.to_json(orient="records"))
    expected = predictor.predict(records)
    url = wide_server.url
    simple = httpx.post(f"{url}/api/v1/models/wide/predict", json={"rows": records}).json()
    assert simple["predictions"] == expected.predictions.tolist()
    tfs = httpx.post(f"{url}/v1/models/wide:predict", json={"instances": records}).json()
    assert [p["label"] for p in tfs["predictions"]] == expected.predictions.tolist()
    body = json.dumps(oip_body(frame))  # NaN for missing numbers, as tritonclient sends them
    headers = {"Content-Type": "application/json"}
    oip = httpx.post(f"{url}/v2/models/wide/infer", content=body, headers=headers).json()
    label = next(o for o in oip["outputs"] if o["name"] == "label")
    assert label["data"] == expected.predictions.tolist()
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    inputs = []
    for name, values in tensors_of(frame.fillna({"cat 1": ""})).items():
        tensor = triton.InferInput(
            name, list(values.shape), "BYTES" if values.dtype == object else "FP32"
        )
        tensor.set_data_from_numpy(values, binary_data=True)
        inputs.append(tensor)
    answer = client.infer("wide", inputs).as_numpy("probabilities")
    np.testing.assert_allclose(answer, expected.probabilities, rtol=1e-6)


def test_bad_wide_requests_get_the_runtimes_message(wide_server, predictor, frame):
    records = json.loads(frame.head(2).to_json(orient="records"))
    without = [{k: v for k, v in r.items() if k != "cat 5"} for r in records]
    with pytest.raises(SchemaMismatch) as expected:
        predictor.predict(without)
    url = wide_server.url
    simple = httpx.post(f"{url}/api/v1/models/wide/predict", json={"rows": without})
    assert simple.status_code == 400 and simple.json()["error"] == str(expected.value)
    body = oip_body(frame.head(2).fillna({"num_0": 0.0}))
    body["inputs"] = [i for i in body["inputs"] if i["name"] != "cat 5"]
    oip = httpx.post(f"{url}/v2/models/wide/infer", json=body)
    assert oip.status_code == 400 and "'cat 5'" in oip.json()["error"]
    body = oip_body(frame.head(2).fillna({"num_0": 0.0}))
    body["inputs"][0]["data"] = ["a", "b"]  # text in the FP32 input num_0
    wrong = httpx.post(f"{url}/v2/models/wide/infer", json=body)
    assert wrong.status_code == 400 and "'num_0' is FP32" in wrong.json()["error"]


def test_free_text_is_normalised_alike_on_both_paths():
    predictor = Predictor(mixed_text_artifact())
    assert [c.dtype for c in predictor.manifest.inputs] == ["number", "string", "text"]
    frame = spam_messages(6, seed=12).drop(columns="label")
    frame.insert(0, "channel", ["sms", "email", None, "sms", "fax", "sms"])
    frame.insert(0, "hour", [1.0, None, 3.0, 4.0, 5.0, 6.0])
    frame.loc[5, "message"] = "Crème BRÛLÉE ｆｒｅｅ"
    records = json.loads(frame.to_json(orient="records"))
    forms = [
        records,
        records[-1],
        frame,
        {name: frame[name].tolist() for name in frame.columns},
        frame.to_numpy(dtype=object),
        [{**records[0], "message": None}, *records[1:]],  # missing text: "" beside other columns
    ]
    for rows in forms:
        assert_same(predictor.encode(rows), careful(predictor, rows))
    assert predictor.encode(records)[STRINGS][5].tolist() == ["sms", "creme brulee free"]
    plan, manifest = predictor.plan, predictor.manifest
    assert plan is not None
    tensors = tensors_of(frame.fillna({"channel": ""}))
    expected = plan.pack_feeds(tabular.encode_tensors(manifest, tensors))
    assert_same(plan.pack_tensors(tensors), expected)
    strings = np.array([tensors["channel"].ravel(), tensors["message"].ravel()], dtype=object)
    blocks = plan.pack_blocks(
        [(("hour",), tensors["hour"].reshape(1, -1)), (("channel", "message"), strings)]
    )
    assert blocks is not None
    assert_same(blocks, expected)
    assert strings[1, 5] == "Crème BRÛLÉE ｆｒｅｅ"  # the request's own array is left as it was


@pytest.mark.parametrize(
    "rows",
    [
        [{"message": ""}],
        [{"message": "hello there"}, {"message": None}],
        [{"message": "  "}],
        [{"message": 7}],
        {"message": ["fine words", float("nan")]},
    ],
)
def test_bad_text_gets_the_careful_paths_error(rows):
    predictor = Predictor(trained_spam())
    with pytest.raises(SchemaMismatch) as expected:
        careful(predictor, rows)
    with pytest.raises(SchemaMismatch) as raised:
        predictor.encode(rows)
    assert str(raised.value) == str(expected.value)
    plan = predictor.plan
    assert plan is not None
    texts = np.array(
        [[r["message"] for r in rows] if isinstance(rows, list) else rows["message"]], dtype=object
    )
    assert plan.pack_blocks([(("message",), texts)]) is None  # left to pack_tensors' careful path
