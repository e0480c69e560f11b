"""TF-Serving-style REST: model status, metadata and :predict in row or columnar format."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...artifact import Manifest
from ...errors import InvalidInput, NotFound
from ...refs import ModelRef
from .. import images
from ..context import Call, ServerContext, endpoint
from ..dataplane import (
    input_metadata,
    json_response,
    output_metadata,
    output_tensors,
    plain,
    ref_for,
)
from ..models import LoadedModel

PATH = re.compile(
    r"(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<tail>/metadata|:predict)?"
)


def _parse(request: Request) -> tuple[ModelRef, str]:
    match = PATH.fullmatch(request.path_params["tail"])
    if match is None:
        raise NotFound(
            "No such TF-Serving endpoint. Use /v1/models/NAME[/versions/N|/labels/L]"
            "[/metadata|:predict]."
        )
    ref = ref_for(match["name"], match["version"], match["label"])
    return ref, match["tail"] or ""


def _ref(request: Request) -> ModelRef:
    return _parse(request)[0]


@endpoint("tfs_get", "predict", _ref)
async def status_or_metadata(ctx: ServerContext, request: Request, call: Call) -> Response:
    ref, tail = _parse(request)
    if tail == ":predict":
        raise InvalidInput("Send :predict requests with POST.")
    if tail == "/metadata":
        manifest = (await ctx.models.get(str(ref))).manifest
        return json_response(
            {
                "model_spec": {
                    "name": manifest.name,
                    "signature_name": "serving_default",
                    "version": str(manifest.version),
                },
                "metadata": {
                    "signature_def": {
                        "signature_def": {
                            "serving_default": {
                                "inputs": {
                                    i["name"]: _tensor_info(i) for i in input_metadata(manifest)
                                },
                                "outputs": {
                                    o["name"]: _tensor_info(o) for o in output_metadata(manifest)
                                },
                                "method_name": "tensorflow/serving/predict",
                            }
                        }
                    }
                },
            }
        )
    if ref.version or ref.alias:
        manifests = [await asyncio.to_thread(ctx.store.manifest, str(ref))]
    else:
        manifests = await asyncio.to_thread(ctx.store.versions, ref.name)
    return json_response(
        {
            "model_version_status": [
                {
                    "version": str(m.version),
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
                for m in manifests
            ]
        }
    )


@endpoint("tfs_predict", "predict", _ref)
async def predict(ctx: ServerContext, request: Request, call: Call) -> Response:
    ref, tail = _parse(request)
    if tail != ":predict":
        raise NotFound("POST is for :predict, e.g. /v1/models/NAME:predict.")
    body = await ctx.read_json(request)
    if not isinstance(body, dict) or ("instances" in body) == ("inputs" in body):
        raise InvalidInput(
            'A :predict body holds exactly one of "instances" (row format: a list of objects or '
            'lists) and "inputs" (columnar: an object of columns, or a list).'
        )
    model = await ctx.models.get(str(ref))
    call.model = model.manifest.name
    if model.manifest.is_image:
        return await _predict_images(ctx, call, model, body)
    rows = body.get("instances", body.get("inputs"))
    single_input = model.manifest.is_text  # its instances are the values of its one input
    if (
        isinstance(rows, list)
        and rows
        and not isinstance(rows[0], (dict, list))
        and not single_input
    ):
        rows = [rows]  # a single row given as a flat list
    if not isinstance(rows, (list, dict)):
        raise InvalidInput('"instances" / "inputs" must be a list or an object.')
    if _has_images(rows):
        raise images.wrong_form(model.manifest, True, TABULAR_FORM)
    encoded = model.predictor.encode(np.asarray(rows, dtype=object) if _is_matrix(rows) else rows)
    prediction = await ctx.predict(call, model, encoded)
    outputs = {k: plain(v) for k, v in output_tensors(model.manifest, prediction).items()}
    return _answer(body, outputs)


def _answer(body: dict[str, Any], outputs: dict[str, list[Any]]) -> Response:
    """Row format (``instances``): one object per row, or the bare values of a single output;
    columnar (``inputs``): ``{"outputs": ...}`` likewise."""
    if "instances" in body:
        if len(outputs) == 1:
            return json_response({"predictions": next(iter(outputs.values()))})
        names = list(outputs)
        return json_response(
            {
                "predictions": [
                    dict(zip(names, values, strict=True))
                    for values in zip(*outputs.values(), strict=True)
                ]
            }
        )
    return json_response(
        {"outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs}
    )


IMAGE_FORM = (
    '{"instances": [{"b64": "<base64 of a JPEG/PNG file>"}, ...]} (or [{"image": {"b64": '
    '...}}], or {"inputs": {"image": [{"b64": ...}]}})'
)


async def _predict_images(
    ctx: ServerContext, call: Call, model: LoadedModel, body: dict[str, Any]
) -> Response:
    """Each instance is ``{"b64": ...}`` or ``{"image": {"b64": ...}}``; columnar inputs are
    ``{"image": [...]}`` or the list itself. Outputs: label, probabilities and top_k."""
    manifest = model.manifest
    name = manifest.inputs[0].name
    found = body.get("instances", body.get("inputs"))
    if isinstance(found, dict) and set(found) == {name}:
        found = found[name]  # columnar, named
    if not isinstance(found, list):
        raise InvalidInput(f"Model '{manifest.name}' takes images: send {IMAGE_FORM}.")
    found = [_unwrap(item, name, manifest) for item in found]
    prediction = await images.predict(ctx, call, model, found)
    outputs = {k: plain(v) for k, v in output_tensors(manifest, prediction).items()}
    outputs["top_k"] = images.ranked(prediction, images.top_k(None, images.classes(manifest)))
    return _answer(body, outputs)


def _unwrap(item: Any, name: str, manifest: Manifest) -> Any:
    """``{"image": {"b64": ...}}`` -> ``{"b64": ...}``; rows of columns are refused."""
    if isinstance(item, dict) and set(item) == {name}:
        return item[name]
    if isinstance(item, dict) and "b64" not in item:
        raise images.wrong_form(manifest, False, IMAGE_FORM)
    return item


TABULAR_FORM = '{"instances": [{"column": value, ...}, ...]}'


def _has_images(rows: Any) -> bool:
    """True for instances in the image forms (``{"b64": ...}`` or ``{"image": {"b64": ...}}``)."""
    first = rows[0] if isinstance(rows, list) and rows else None
    return isinstance(first, dict) and ("b64" in first or isinstance(first.get("image"), dict))


def _is_matrix(rows: Any) -> bool:
    return isinstance(rows, list) and bool(rows) and all(isinstance(r, list) for r in rows)


def _tensor_info(meta: dict[str, Any]) -> dict[str, Any]:
    dtype = {"FP32": "DT_FLOAT", "FP64": "DT_DOUBLE", "INT64": "DT_INT64", "BYTES": "DT_STRING"}
    return {
        "dtype": dtype[meta["datatype"]],
        "tensor_shape": {
            "dim": [{"size": str(d), "name": ""} for d in meta["shape"]],
            "unknown_rank": False,
        },
        "name": meta["name"],
    }


routes = [
    Route("/v1/models/{tail:path}", status_or_metadata, methods=["GET"]),
    Route("/v1/models/{tail:path}", predict, methods=["POST"]),
]
