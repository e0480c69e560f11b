"""Open Inference Protocol v2 (KServe / Triton REST), with Triton's binary tensor extension."""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ... import __version__
from ...artifact import Manifest
from ...errors import InvalidInput, Unavailable
from ...refs import ModelRef
from .. import images
from ..context import JSON, PUBLIC, Call, ServerContext, check_content_type, endpoint
from ..dataplane import (
    PLATFORM,
    JSONBytes,
    input_metadata,
    json_response,
    output_metadata,
    output_tensors,
    ref_for,
)
from ..tensors import HEADER_LENGTH, classification, decode_request, encode_response, texts

EXTENSIONS = ["binary_tensor_data", "classification"]
BODY_TYPES = (JSON, "application/octet-stream", "")
"""tritonclient sends no Content-Type; binary tensor requests may say octet-stream."""


def _ref(request: Request) -> ModelRef:
    params = request.path_params
    return ref_for(params["name"], params.get("version"))


@endpoint("oip_server_metadata", PUBLIC)
async def server_metadata(ctx: ServerContext, request: Request, call: Call) -> Response:
    return json_response({"name": "modelport", "version": __version__, "extensions": EXTENSIONS})


@endpoint("oip_live", PUBLIC)
async def live(ctx: ServerContext, request: Request, call: Call) -> Response:
    return json_response({"live": True})


@endpoint("oip_ready", PUBLIC)
async def ready(ctx: ServerContext, request: Request, call: Call) -> Response:
    if not ctx.ready:
        raise Unavailable("The server is starting: models are still loading.")
    return json_response({"ready": True})


@endpoint("oip_model_ready", "predict", _ref)
async def model_ready(ctx: ServerContext, request: Request, call: Call) -> Response:
    model = await ctx.models.get(str(call.ref))
    return json_response({"name": model.manifest.name, "ready": True})


@endpoint("oip_model_metadata", "predict", _ref)
async def model_metadata(ctx: ServerContext, request: Request, call: Call) -> Response:
    manifest = (await ctx.models.get(str(call.ref))).manifest
    return json_response(
        {
            "name": manifest.name,
            "versions": [str(manifest.version)],
            "platform": PLATFORM,
            "inputs": input_metadata(manifest),
            "outputs": output_metadata(manifest),
        }
    )


@endpoint("oip_infer", "predict", _ref)
async def infer(ctx: ServerContext, request: Request, call: Call) -> Response:
    check_content_type(request, BODY_TYPES)
    body = await ctx.read_body(request)
    decoded = decode_request(body, request.headers.get(HEADER_LENGTH))
    model = await ctx.models.get(str(call.ref))
    manifest = model.manifest
    call.model = manifest.name
    if manifest.is_image:
        prediction = await images.predict(ctx, call, model, _images(manifest, decoded.inputs))
    elif decoded.has_input(IMAGE) and IMAGE not in manifest.columns:
        raise images.wrong_form(manifest, True, TABULAR_FORM)
    else:
        plan = model.predictor.plan
        assert plan is not None
        encoded = decoded.blocks and plan.pack_blocks(decoded.blocks)
        encoded = encoded or plan.pack_tensors(texts(decoded.inputs, decoded.binary))
        prediction = await ctx.predict(call, model, encoded)
    outputs = output_tensors(manifest, prediction)
    if decoded.outputs is not None:
        unknown = [name for name in decoded.outputs if name not in outputs]
        if unknown:
            raise InvalidInput(
                f"Model '{manifest.name}' has no output {', '.join(map(repr, unknown))}; "
                f"its outputs are {', '.join(outputs)}."
            )
        outputs = {name: outputs[name] for name in decoded.outputs}
    for name, k in decoded.classification.items():
        outputs[name] = classification(outputs[name], k, manifest.class_labels, name)
    header: dict[str, Any] = {
        "model_name": model.manifest.name,
        "model_version": str(model.manifest.version),
    }
    if decoded.id is not None:
        header["id"] = decoded.id
    payload, json_length = encode_response(header, outputs, decoded)
    if json_length is None:
        return JSONBytes(payload)
    return Response(
        payload,
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(json_length)},
    )


IMAGE = "image"
TABULAR_FORM = (
    "one input per column, named as GET /v2/models/NAME lists them (numbers FP32, text BYTES)"
)
IMAGE_FORM = (
    "one BYTES input 'image' of shape [n], each element an encoded image file (JPEG, PNG ...; "
    "base64 in JSON, raw with the binary extension)"
)


def _images(manifest: Manifest, inputs: dict[str, np.ndarray]) -> list[Any]:
    """The elements of the image input: file bytes (binary tensors) or base64 text (JSON)."""
    name = manifest.inputs[0].name
    if set(inputs) != {name}:
        if name in inputs:
            extra = ", ".join(repr(n) for n in inputs if n != name)
            raise InvalidInput(f"Model '{manifest.name}' has no input {extra}; send {IMAGE_FORM}.")
        raise images.wrong_form(manifest, False, IMAGE_FORM)
    tensor = inputs[name]
    if tensor.dtype != object:
        raise InvalidInput(f"Input '{name}' must be BYTES: {IMAGE_FORM}.")
    if tensor.ndim > 2 or (tensor.ndim == 2 and tensor.shape[1] != 1):
        raise InvalidInput(
            f"Input '{name}' must have shape [n] or [n, 1], not {list(tensor.shape)}."
        )
    return list(tensor.reshape(-1))


routes = [
    Route("/v2", server_metadata),
    Route("/v2/health/live", live),
    Route("/v2/health/ready", ready),
    Route("/v2/models/{name}", model_metadata),
    Route("/v2/models/{name}/ready", model_ready),
    Route("/v2/models/{name}/infer", infer, methods=["POST"]),
    Route("/v2/models/{name}/versions/{version}", model_metadata),
    Route("/v2/models/{name}/versions/{version}/ready", model_ready),
    Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
]
