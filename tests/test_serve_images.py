"""Image models through the real server: simple JSON (base64 and multipart), OIP v2 (stock
tritonclient, binary and JSON, classification extension) and TF-Serving REST; bad images."""

import asyncio
import base64
import io
import json
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import sklearn.datasets
import tritonclient.http as triton
from onnx import TensorProto, helper
from PIL import Image
from tritonclient.utils import InferenceServerException

from modelport.artifact import ColumnSpec, ModelArtifact
from modelport.config import Settings
from modelport.runtime import Predictor
from modelport.runtime.batching import Batcher
from modelport.runtime.image import ImageSpec
from modelport.store import Store

from .artifacts import linear_artifact
from .conftest import SHARED_DATA, Server, zoo_model

SAMPLES = Path(sklearn.datasets.__file__).parent / "images"
BODY_LIMIT = 4_000_000
COLOURS = ["red", "green", "blue"]


def colour_artifact() -> ModelArtifact:
    """A 3-class image model that labels a picture by its dominant colour (32 px): cheap to
    run, and its answer for a plain red, green or blue image is known."""
    nodes = [
        helper.make_node("Cast", ["image"], ["pixels"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["pixels", "axes"], ["means"], keepdims=0),
        helper.make_node("Mul", ["means", "sharpness"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "colours",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, [None, 32, 32, 3])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3]),
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
        ],
        [
            helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2]),
            helper.make_tensor("sharpness", TensorProto.FLOAT, [], [0.05]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return ModelArtifact.create(
        model.SerializeToString(),
        name="colours",
        task="classification",
        inputs=[ColumnSpec(name="image", dtype="image", onnx_name="image")],
        outputs={"probabilities": "probabilities", "label": "label"},
        input_layout="image",
        class_labels=COLOURS,
        label_is_index=True,
        preprocessing={"image": ImageSpec(size=32).to_dict()},
    )


def picture(colour: str, fmt: str = "JPEG", size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, fmt)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sample(name: str) -> bytes:
    """A real photo scikit-learn ships: china.jpg (a palace) or flower.jpg (a daisy)."""
    return (SAMPLES / name).read_bytes()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("images") / "home"
    store = Store(Settings(home=home))
    store.register(zoo_model("image-labeler"))
    store.register(colour_artifact())
    store.register(linear_artifact("lin"))
    server = Server(home, MODELPORT_MAX_BODY_BYTES=str(BODY_LIMIT))
    yield server, store
    server.stop()


@pytest.fixture(scope="module")
def labeller(served):
    return Predictor(served[1].get("image-labeler"))


def simple(server, ref: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/models/{ref}/predict", timeout=60, **kwargs)


def test_simple_json_base64_data_url_and_b64_object(served, labeller):
    server, _ = served
    china, flower = sample("china.jpg"), sample("flower.jpg")
    images = [b64(china), "data:image/jpeg;base64," + b64(flower), {"b64": b64(china)}]
    answer = simple(server, "image-labeler", json={"images": images}).json()
    assert answer["model"] == "image-labeler" and answer["version"] == 1
    assert answer["predictions"] == ["palace", "daisy", "palace"]
    assert "probabilities" not in answer  # only when asked
    assert [len(row) for row in answer["top_k"]] == [5, 5, 5]
    assert answer["top_k"][0][0]["label"] == "palace"
    local = labeller.predict([china, flower])
    scores = [row[0]["score"] for row in answer["top_k"][:2]]
    np.testing.assert_allclose(scores, local.probabilities.max(axis=1), atol=1e-4)

    asked = {"images": [b64(flower)], "top_k": 2, "probabilities": True}
    answer = simple(server, "image-labeler", json=asked).json()
    assert [t["label"] for t in answer["top_k"][0]] == [t["label"] for t in local.top_k(2)[1]]
    (probabilities,) = answer["probabilities"]
    assert len(probabilities) == 1000
    np.testing.assert_allclose(
        [probabilities[label] for label in labeller.manifest.class_labels],
        local.probabilities[1],
        atol=1e-4,
    )


def test_multipart_upload_is_a_batch_in_order(served):
    server, _ = served
    files = [
        ("image", ("a.jpg", picture("blue"), "image/jpeg")),
        ("image", ("b.png", picture("red", "PNG"), "image/png")),
        ("photo", ("c.webp", picture("green", "WEBP"), "application/octet-stream")),
    ]
    response = simple(server, "colours", files=files, data={"top_k": "2", "probabilities": "true"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["predictions"] == ["blue", "red", "green"]
    assert [[t["label"] for t in row][:1] for row in answer["top_k"]] == [
        ["blue"],
        ["red"],
        ["green"],
    ]
    assert {len(row) for row in answer["top_k"]} == {2}
    assert set(answer["probabilities"][0]) == set(COLOURS)
    # top_k beyond the number of classes gives every class
    response = simple(server, "colours", files=files[:1], data={"top_k": "10"})
    assert len(response.json()["top_k"][0]) == 3


def test_one_photo_as_the_raw_body(served):
    server, _ = served
    url = f"{server.url}/api/v1/models/colours/predict"
    sent = httpx.post(
        url,
        content=picture("red", "PNG"),
        headers={"Content-Type": "image/png"},
        params={"top_k": "1", "probabilities": "true"},
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["predictions"] == ["red"] and len(sent.json()["top_k"][0]) == 1
    assert set(sent.json()["probabilities"][0]) == set(COLOURS)
    refused = httpx.post(
        f"{server.url}/api/v1/models/lin/predict",
        content=picture("red"),
        headers={"Content-Type": "image/jpeg"},
    )
    assert refused.status_code == 400 and "rows" in refused.json()["error"]


def test_tabular_rows_still_work_beside_image_models(served):
    server, _ = served
    answer = simple(server, "lin", json={"rows": [{"a": 2, "b": 1}]}).json()
    assert answer["predictions"] == [3.0] and "top_k" not in answer


def triton_client(server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=60)


def test_oip_metadata_declares_a_bytes_image_input(served):
    server, _ = served
    meta = triton_client(server).get_model_metadata("image-labeler")
    assert meta["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 1000]},
    ]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json-base64"])
def test_tritonclient_sends_image_files(served, labeller, binary):
    server, _ = served
    photos = [sample("china.jpg"), sample("flower.jpg")]
    elements = photos if binary else [b64(p) for p in photos]
    tensor = triton.InferInput("image", [2], "BYTES")
    tensor.set_data_from_numpy(np.array(elements, dtype=object), binary_data=binary)
    outputs = [
        triton.InferRequestedOutput("label", binary_data=binary),
        triton.InferRequestedOutput("probabilities", binary_data=binary),
    ]
    result = triton_client(server).infer("image-labeler", [tensor], outputs=outputs)
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label")]
    assert labels == ["palace", "daisy"]
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), labeller.predict(photos).probabilities, atol=1e-4
    )


def test_triton_classification_extension(served):
    server, _ = served
    tensor = triton.InferInput("image", [3, 1], "BYTES")  # [n, 1] is accepted too
    tensor.set_data_from_numpy(
        np.array([[picture("green")], [picture("red")], [picture("blue")]], dtype=object)
    )
    result = triton_client(server).infer(
        "colours", [tensor], outputs=[triton.InferRequestedOutput("probabilities", class_count=3)]
    )
    classes = result.as_numpy("probabilities")
    assert classes.shape == (3, 3)
    best = [row[0].decode().split(":") for row in classes]
    assert [(int(index), label) for _, index, label in best] == [
        (1, "green"),
        (0, "red"),
        (2, "blue"),
    ]
    scores = [[float(v.decode().split(":")[0]) for v in row] for row in classes]
    assert all(row == sorted(row, reverse=True) and 0 < row[-1] < row[0] <= 1 for row in scores)
    # on the labeller, with the JSON form of the request
    body = {
        "inputs": [
            {
                "name": "image",
                "shape": [1],
                "datatype": "BYTES",
                "data": [b64(sample("flower.jpg"))],
            }
        ],
        "outputs": [{"name": "probabilities", "parameters": {"classification": 2}}],
    }
    answer = httpx.post(f"{server.url}/v2/models/image-labeler/infer", json=body, timeout=60).json()
    (output,) = answer["outputs"]
    assert output["datatype"] == "BYTES" and output["shape"] == [1, 2]
    assert output["data"][0].split(":", 2)[2] == "daisy"


def tfs(server, ref: str, body) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/models/{ref}:predict", json=body, timeout=60)


def test_tfserving_b64_instances_and_metadata(served, labeller):
    server, _ = served
    china, flower = sample("china.jpg"), sample("flower.jpg")
    local = labeller.predict([china, flower])
    for instances in (
        [{"b64": b64(china)}, {"b64": b64(flower)}],
        [{"image": {"b64": b64(china)}}, {"image": {"b64": b64(flower)}}],
    ):
        predictions = tfs(server, "image-labeler", {"instances": instances}).json()["predictions"]
        assert [p["label"] for p in predictions] == ["palace", "daisy"]
        assert [p["top_k"][0]["label"] for p in predictions] == ["palace", "daisy"]
        np.testing.assert_allclose(
            [p["probabilities"] for p in predictions], local.probabilities, atol=1e-4
        )
    columnar = tfs(server, "colours", {"inputs": {"image": [{"b64": b64(picture("blue"))}]}})
    assert columnar.json()["outputs"]["label"] == ["blue"]
    signature = httpx.get(f"{server.url}/v1/models/image-labeler/metadata").json()
    inputs = signature["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    assert inputs["image"]["dtype"] == "DT_STRING"
    assert inputs["image"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]


def flower_photos(per_class: int = 4) -> list[Path]:
    folder = SHARED_DATA / "flower_photos"
    if not folder.is_dir():
        pytest.skip("../shared/data/flower_photos is not available")
    return [
        p
        for d in sorted(folder.iterdir())
        if d.is_dir()
        for p in sorted(d.glob("*.jpg"))[:per_class]
    ]


@pytest.mark.parametrize("source", ["sklearn", "flower_photos"])
def test_the_three_protocols_answer_what_the_local_predictor_does(served, labeller, source):
    server, _ = served
    if source == "sklearn":
        photos = [sample("china.jpg"), sample("flower.jpg")]
    else:
        photos = [p.read_bytes() for p in flower_photos()]
    expected = labeller.predict(photos).probabilities
    order = labeller.manifest.class_labels
    answer = simple(
        server, "image-labeler", json={"images": [b64(p) for p in photos], "probabilities": True}
    )
    by_simple = [[row[label] for label in order] for row in answer.json()["probabilities"]]
    tensor = triton.InferInput("image", [len(photos)], "BYTES")
    tensor.set_data_from_numpy(np.array(photos, dtype=object))
    by_oip = triton_client(server).infer("image-labeler", [tensor]).as_numpy("probabilities")
    instances = [{"b64": b64(p)} for p in photos]
    by_tfs = [
        p["probabilities"]
        for p in tfs(server, "image-labeler", {"instances": instances}).json()["predictions"]
    ]
    for got in (by_simple, by_oip, by_tfs):
        np.testing.assert_allclose(got, expected, atol=1e-4)


def truncated_jpeg() -> bytes:
    whole = sample("flower.jpg")
    return whole[: len(whole) // 2]


def animated_gif() -> bytes:
    buffer = io.BytesIO()
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def blank_png(side: int = 20_000) -> bytes:
    """A complete, valid black PNG of ``side`` x ``side`` pixels, cheaply made (20,000: 400 MP
    in 1.7 MB)."""
    deflate = zlib.compressobj(1)
    rows = bytes((side + 1) * 1000)  # 1,000 rows: a filter byte and the pixels each
    data = b"".join(deflate.compress(rows) for _ in range(side // 1000)) + deflate.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("image", "status", "says"),
    [
        ("not base64 at all!", 400, "not valid base64"),
        (b64(b"just some text, no picture"), 400, "not an image"),
        (b64(truncated_jpeg()), 400, "corrupt or truncated"),
        (b64(animated_gif()), 400, "animated"),
        (None, 400, "base64 string"),
    ],
    ids=["not-base64", "not-an-image", "truncated-jpeg", "animated-gif", "null"],
)
def test_bad_images_are_refused_with_the_reason(served, image, status, says):
    server, _ = served
    response = simple(server, "colours", json={"images": [b64(picture("red")), image]})
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert says in message and "Image 2 of 2" in message, message


def test_a_decompression_bomb_is_refused_before_it_is_decoded(served):
    server, _ = served
    bomb = blank_png()
    assert len(bomb) < BODY_LIMIT
    response = simple(server, "colours", files=[("image", ("bomb.png", bomb, "image/png"))])
    assert response.status_code == 413, response.text
    assert "larger than the 100,000,000 pixels" in response.json()["error"]
    tensor = triton.InferInput("image", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([bomb], dtype=object))
    with pytest.raises(InferenceServerException, match="pixels"):
        triton_client(server).infer("colours", [tensor])


def test_a_body_over_the_limit_is_413(served):
    server, _ = served
    big = bytes(BODY_LIMIT + 1)
    for response in (
        simple(server, "colours", files=[("image", ("big.jpg", big, "image/jpeg"))]),
        simple(server, "colours", json={"images": [b64(big)]}),
        tfs(server, "colours", {"instances": [{"b64": b64(big)}]}),
    ):
        assert response.status_code == 413, response.text
        assert "MODELPORT_MAX_BODY_BYTES" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"images": []}, "empty"),
        ({"images": "abc"}, '"images" must be a list'),
        ({}, 'The body must be {"images"'),
        ({"images": ["x"], "top_k": 0}, "top_k must be a positive integer"),
        ({"images": ["x"], "top_k": -2}, "top_k must be a positive integer"),
        ({"images": ["x"], "top_k": "five"}, "top_k must be a positive integer"),
        ({"images": ["x"], "top_k": 2.5}, "top_k must be a positive integer"),
        ({"images": ["x"], "top_k": True}, "top_k must be a positive integer"),
        ({"images": ["x"], "probabilities": "maybe"}, "probabilities must be true or false"),
        ({"rows": [{"a": 1}]}, "takes images, not rows"),
    ],
)
def test_bad_simple_requests(served, body, says):
    server, _ = served
    response = simple(server, "colours", json=body)
    assert response.status_code == 400, response.text
    assert says in response.json()["error"]


def test_the_wrong_form_of_input_says_which_form_the_model_takes(served):
    server, _ = served
    image = b64(picture("red"))
    refusals = [
        simple(server, "lin", json={"images": [image]}),
        simple(server, "lin", files=[("image", ("a.jpg", picture("red"), "image/jpeg"))]),
        tfs(server, "lin", {"instances": [{"b64": image}]}),
        tfs(server, "colours", {"instances": [{"a": 1, "b": 2}]}),
    ]
    oip = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [image]}]}
    refusals.append(httpx.post(f"{server.url}/v2/models/lin/infer", json=oip))
    rows = {"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
    refusals.append(httpx.post(f"{server.url}/v2/models/colours/infer", json=rows))
    messages = []
    for response in refusals:
        assert response.status_code == 400, response.text
        messages.append(response.json()["error"])
    for message in messages[:3] + messages[4:5]:
        assert "takes rows of the columns a, b, not images" in message, message
    for message in (messages[3], messages[5]):
        assert "takes images, not rows" in message and "image" in message, message
    # curl -F image=photo.jpg (without @) sends the file name as text
    response = simple(server, "colours", data={"image": "photo.jpg"}, files={"x": ("x.jpg", b"")})
    assert response.status_code == 400
    assert "-F image=@photo.jpg" in response.json()["error"]
    form = b'--xx\r\nContent-Disposition: form-data; name="top_k"\r\n\r\n3\r\n--xx--\r\n'
    multipart = {"content-type": "multipart/form-data; boundary=xx"}
    response = simple(server, "colours", content=form, headers=multipart)
    assert response.status_code == 400 and "no image files" in response.json()["error"]


def test_an_upload_from_another_origin_is_refused(served):
    server, _ = served
    files = [("image", ("a.jpg", picture("red"), "image/jpeg"))]
    foreign = simple(server, "colours", files=files, headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403 and "evil.example" in foreign.json()["error"]
    own = simple(server, "colours", files=files, headers={"Origin": server.url})
    assert own.status_code == 200 and own.json()["predictions"] == ["red"]


def test_decoding_does_not_hold_the_event_loop(served):
    server, _ = served
    large = ("large.png", blank_png(8000), "image/png")  # 64 MP: 0.3 s or more to decode
    finished = []

    def slow() -> httpx.Response:  # 4 such images: over a second of decoding on an idle machine
        response = simple(server, "colours", files=[("image", large)] * 4)
        finished.append(time.monotonic())
        return response

    with ThreadPoolExecutor(1) as pool:
        decoding = pool.submit(slow)
        time.sleep(0.3)
        assert httpx.get(f"{server.url}/v2/health/live", timeout=60).status_code == 200
        answered = time.monotonic()
        assert decoding.result().status_code == 200
    assert answered < finished[0], "the server answered nothing while it decoded images"


def test_concurrent_requests_get_their_own_answers(served):
    server, _ = served
    colours = COLOURS * 8

    def ask(colour: str) -> list[str]:
        return simple(server, "colours", json={"images": [b64(picture(colour))] * 2}).json()[
            "predictions"
        ]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, colours))
    assert answers == [[c, c] for c in colours]


def test_a_large_request_runs_in_chunks_of_at_most_eight_images(served):
    server, _ = served
    colours = [COLOURS[i % 3] for i in range(20)]
    answer = simple(server, "colours", json={"images": [b64(picture(c)) for c in colours]})
    assert answer.json()["predictions"] == colours
    metrics = httpx.get(f"{server.url}/metrics").text
    calls = _sample(metrics, 'modelport_batch_rows_count{model="colours"}')
    assert _sample(metrics, 'modelport_batch_rows_bucket{le="8.0",model="colours"}') == calls
    assert _sample(metrics, 'modelport_batch_rows_sum{model="colours"}') >= 20
    # a bad image is named by its place in the whole request, not in its chunk
    images = [b64(picture("red"))] * 12 + ["not base64!"] + [b64(picture("red"))] * 7
    refused = simple(server, "colours", json={"images": images})
    assert refused.status_code == 400 and "Image 13 of 20" in refused.json()["error"]


def _sample(metrics: str, name: str) -> float:
    return next(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(name))


def test_the_batcher_merges_image_feeds_and_splits_the_answers():
    predictor = Predictor(colour_artifact())
    sizes: list[int] = []
    batcher = Batcher(predictor, max_wait_ms=20, inline_below_ms=0, on_batch=sizes.append)

    async def run():
        requests = [[picture("red")], [picture("blue"), picture("green")], [picture("green")]]
        return await asyncio.gather(*(batcher.run(predictor.encode(r)) for r in requests))

    results = asyncio.run(run())
    assert sizes == [4]  # one call for the three requests
    assert [r.predictions.tolist() for r in results] == [["red"], ["blue", "green"], ["green"]]


def test_openapi_describes_the_image_forms(served):
    server, _ = served
    spec = httpx.get(f"{server.url}/openapi.json").json()
    body = spec["paths"]["/api/v1/models/{ref}/predict"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body)
    schemas = json.dumps(spec["components"]["schemas"])
    assert '"images"' in schemas and '"top_k"' in schemas and '"b64"' in schemas
