"""Protocol-neutral pieces the routes share: references, input/output descriptions, outputs."""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
import orjson
from starlette.responses import Response

from ..artifact import Manifest
from ..errors import InvalidInput
from ..refs import ModelRef
from ..runtime import Prediction
from ..runtime.text_plan import TRUNCATED

PLATFORM = "onnx_onnxv1"
JSON = "application/json"
_JSON_HEADER = (b"content-type", JSON.encode())


def ref_for(name: str, version: str | None = None, alias: str | None = None) -> ModelRef:
    """A store reference from URL parts, validated (400 on a malformed one)."""
    if version is not None:
        text = f"{name}:{version}"
    elif alias is not None:
        text = f"{name}@{alias}"
    else:
        text = name
    return _parse(text)


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> ModelRef:
    return ModelRef.parse(text)


def label_datatype(manifest: Manifest) -> str:
    labels = manifest.class_labels or []
    if labels and all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        return "INT64"
    return "BYTES"


def input_metadata(manifest: Manifest) -> list[dict[str, Any]]:
    if manifest.is_image:  # one encoded file (JPEG, PNG ...) per element
        return [{"name": manifest.inputs[0].name, "datatype": "BYTES", "shape": [-1]}]
    if manifest.input_layout == "matrix":
        return [
            {"name": manifest.matrix_input, "datatype": "FP32", "shape": [-1, len(manifest.inputs)]}
        ]
    return [
        {"name": c.name, "datatype": "FP32" if c.dtype == "number" else "BYTES", "shape": [-1, 1]}
        for c in manifest.inputs
    ]


def output_metadata(manifest: Manifest) -> list[dict[str, Any]]:
    if manifest.task == "regression":
        vectors = "embedding" in manifest.outputs  # an embedder: one vector per row
        outputs = [{"name": "value", "datatype": "FP64", "shape": [-1, -1] if vectors else [-1]}]
    else:
        width = len(manifest.class_labels or []) or -1
        outputs = [
            {"name": "label", "datatype": label_datatype(manifest), "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, width]},
        ]
    if "compound" in manifest.outputs:
        outputs.append({"name": "compound", "datatype": "FP32", "shape": [-1]})
    if manifest.is_text:
        outputs.append({"name": TRUNCATED, "datatype": "BOOL", "shape": [-1]})
    return outputs


def output_tensors(manifest: Manifest, prediction: Prediction) -> dict[str, np.ndarray]:
    """The named outputs every protocol returns: label + probabilities, or value; then the
    prediction's extras (a text model's ``truncated``, the sentiment's ``compound``)."""
    if manifest.task == "regression":
        outputs = {"value": np.asarray(prediction.predictions, dtype=np.float64)}
    else:
        labels = prediction.predictions
        integers = label_datatype(manifest) == "INT64"
        outputs = {"label": labels.astype(np.int64) if integers else labels.astype(object)}
        if prediction.probabilities is not None:
            outputs["probabilities"] = np.asarray(prediction.probabilities, dtype=np.float32)
    if prediction.extras:
        outputs.update(prediction.extras)
    return outputs


def plain(values: np.ndarray) -> list[Any]:
    """numpy values as JSON-ready Python values."""
    return values.tolist() if values.dtype != object else [str(v) for v in values]


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)
    if headers:
        return Response(body, status, headers, media_type=JSON)
    return JSONBytes(body, status)


class JSONBytes(Response):
    """An encoded JSON body with its two headers made directly: Starlette's ``init_headers``
    checks and encodes them anew for every response (the predict routes answer with this)."""

    media_type = JSON

    def __init__(self, body: bytes, status: int = 200) -> None:
        self.status_code = status
        self.body = body
        self.background = None
        self.raw_headers = [(b"content-length", b"%d" % len(body)), _JSON_HEADER]


def parse_json(body: bytes) -> Any:
    """The JSON body, or a 400 that says plainly what is wrong with it and what to send.

    NaN and Infinity tokens (sent by tritonclient's JSON mode and TF-Serving clients for missing
    values) are not strict JSON: orjson refuses them, so such bodies take the stdlib parser.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        if not body.strip():
            why = "the body is empty"
        elif isinstance(exc, UnicodeDecodeError) or b"\x00" in body:
            why = "it holds binary data, not text (a file belongs in an upload, not in a request)"
        elif isinstance(exc, json.JSONDecodeError):
            why = f"{exc.msg.lower()} at line {exc.lineno}, column {exc.colno}"
        else:
            why = "it is nested too deeply"
        raise InvalidInput(
            f"The request body is not valid JSON: {why}. Send a JSON document as UTF-8 text with "
            'the header Content-Type: application/json, e.g. {"rows": [{"age": 35, "plan": '
            '"basic"}]} for /api/v1/models/NAME/predict (/docs describes every endpoint\'s body).'
        ) from None
