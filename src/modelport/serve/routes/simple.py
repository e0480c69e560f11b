"""Simple JSON for app developers, model listing, downloads for offline use, usage."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...artifact import Manifest
from ...encryption import ALGORITHM
from ...errors import InvalidInput, NotFound
from ...refs import ModelRef
from ...signing import Delivery
from .. import images
from ..context import PUBLIC, Call, ServerContext, endpoint
from ..dataplane import json_response, output_tensors, plain, ref_for
from ..metering import parse_since, usage_totals
from ..models import LoadedModel

SIGNATURE_HEADER = "X-Modelport-Signature"
ENCRYPTION_HEADER = "X-Modelport-Encryption"
RELEASE_HEADER = "X-Modelport-Release"
FORMATS = ("zip", "onnx")


def _ref(request: Request) -> ModelRef:
    return ref_for(request.path_params["ref"])


@endpoint("simple_predict", "predict", _ref)
async def predict(ctx: ServerContext, request: Request, call: Call) -> Response:
    """``{"rows": [{column: value}, ...]}`` -> predictions, probabilities per label, version.
    Text models also take ``{"texts": ["...", ...]}``. Image models take ``{"images": [base64,
    ...], "top_k": 5, "probabilities": false}`` or the files as a multipart upload, and answer
    labels and the top-k of each image."""
    assert call.ref is not None
    body = await _body(ctx, request)
    model = await ctx.models.get(str(call.ref))
    manifest = model.manifest
    call.model = manifest.name
    if manifest.is_image:
        return await _predict_images(ctx, call, model, body)
    if "images" in body:
        raise images.wrong_form(manifest, True, TABULAR_FORM)
    rows = _rows(body, manifest)
    ctx.check_rows(len(rows))
    prediction = await ctx.predict(call, model, model.predictor.encode(rows))
    outputs = output_tensors(manifest, prediction)
    answer = {
        "model": manifest.name,
        "version": manifest.version,
        "predictions": plain(outputs.get("label", outputs.get("value"))),
    }
    probabilities = prediction.probabilities_by_label()
    if probabilities is not None:
        answer["probabilities"] = probabilities
    for name, values in prediction.extras.items():
        answer[name] = plain(values)
    return json_response(answer)


def _rows(body: dict[str, Any], manifest: Manifest) -> list[Any]:
    """The rows of a tabular body; for a text model, the texts of ``{"texts": [...]}`` too."""
    if manifest.is_text and "texts" in body:
        texts = body["texts"]
        if not isinstance(texts, list):
            raise InvalidInput(f"The body must be {TEXT_FORM}: a list of strings.")
        return texts
    rows = body.get("rows")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        if manifest.is_text:
            raise InvalidInput(f'The body must be {TEXT_FORM}, or rows {{"text": "..."}}.')
        raise InvalidInput(f"The body must be {TABULAR_FORM}: a list of objects, one per row.")
    return rows


TABULAR_FORM = '{"rows": [{"column": value, ...}, ...]}'
TEXT_FORM = '{"texts": ["some text", ...]}'
IMAGE_FORM = (
    '{"images": ["<base64 of a JPEG/PNG/WebP file>", ...]} as JSON, the files as a '
    "multipart upload (curl -F image=@photo.jpg), or one file as the body with its image/* "
    "Content-Type"
)
FORM_FIELDS = {"top_k", "probabilities"}


async def _body(ctx: ServerContext, request: Request) -> dict[str, Any]:
    """A JSON object; or, as ``{"images": [file bytes], option: value}``, a multipart form or
    one photo sent as the body with its ``image/*`` type (options then in the query)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        form = await images.Form.parse(
            request.headers,
            await ctx.read_body(request),
            ctx.settings.max_batch_rows,
            FORM_FIELDS,
        )
        if not form.files:
            raise InvalidInput(
                "The form holds no image files. Attach each image as a file field: "
                "curl -F image=@photo.jpg (several -F for a batch)."
            )
        return {"images": form.files, **form.fields}
    if media.startswith("image/"):  # one photo as the whole body; options in the query
        options = {k: v for k, v in request.query_params.items() if k in FORM_FIELDS}
        return {"images": [await ctx.read_body(request)], **options}
    body = await ctx.read_json(request)
    if not isinstance(body, dict):
        raise InvalidInput(
            f"The body must be a JSON object: {TABULAR_FORM} for a tabular model, {IMAGE_FORM} "
            "for an image model."
        )
    return body


async def _predict_images(
    ctx: ServerContext, call: Call, model: LoadedModel, body: dict[str, Any]
) -> Response:
    manifest = model.manifest
    found = body.get("images")
    if found is None:
        if "rows" in body:
            raise images.wrong_form(manifest, False, IMAGE_FORM)
        raise InvalidInput(f"The body must be {IMAGE_FORM}.")
    if not isinstance(found, list):
        raise InvalidInput(f'"images" must be a list: {IMAGE_FORM}.')
    k = images.top_k(body.get("top_k"), images.classes(manifest))
    with_probabilities = images.flag(body.get("probabilities"), "probabilities")
    prediction = await images.predict(ctx, call, model, found)
    answer = {
        "model": manifest.name,
        "version": manifest.version,
        "predictions": plain(output_tensors(manifest, prediction)["label"]),
        "top_k": images.ranked(prediction, k),
    }
    if with_probabilities:
        answer["probabilities"] = prediction.probabilities_by_label()
    return json_response(answer)


@endpoint("list_models", "predict")
async def list_models(ctx: ServerContext, request: Request, call: Call) -> Response:
    """Every model the caller's key may use."""
    summaries = await asyncio.to_thread(ctx.store.list_models)
    if call.key is not None:
        summaries = [s for s in summaries if call.key.covers(s.name)]
    return json_response(
        {
            "models": [
                {
                    "name": s.name,
                    "latest_version": s.latest_version,
                    "versions": s.versions,
                    "aliases": s.aliases,
                    "task": s.task,
                }
                for s in summaries
            ]
        }
    )


@endpoint("manifest", "predict", _ref)
async def manifest(ctx: ServerContext, request: Request, call: Call) -> Response:
    """The manifest devices sync against; ``?variant=int8|fp32`` (default: the device default)."""
    found, delivery = await _delivered(ctx, request, str(call.ref))
    etag = _etag(found, delivery)
    if _matches(request, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return json_response(found.to_dict(), headers={"ETag": etag, **_signed(ctx, found, delivery)})


@endpoint("artifact", "predict", _ref)
async def artifact(ctx: ServerContext, request: Request, call: Call) -> Response:
    """The artifact zip for offline use (``?variant=``), or ``?format=onnx`` for plain ONNX."""
    fmt = request.query_params.get("format", "zip")
    if fmt not in FORMATS:
        raise InvalidInput(
            f"format must be 'zip' (the artifact bundle, the default) or 'onnx' (the plain "
            f"graph), not '{fmt}'."
        )
    plain_onnx = fmt == "onnx"
    found, delivery = await _delivered(ctx, request, str(call.ref))
    etag = _etag(found, delivery, "-onnx" if plain_onnx else "")
    if _matches(request, etag):
        return Response(status_code=304, headers={"ETag": etag})
    stored = await asyncio.to_thread(ctx.store.get, f"{found.name}:{found.version}")
    chosen = stored.variant(found.variant)
    if plain_onnx:
        body, media, filename = chosen.onnx, "application/octet-stream", f"{found.name}.onnx"
    else:
        body = await asyncio.to_thread(chosen.to_bytes)
        media, filename = "application/zip", f"{found.name}-{found.version}-{found.variant}.zip"
    return Response(
        body,
        media_type=media,
        headers={
            "ETag": etag,
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Model-Version": str(found.version),
            **_signed(ctx, found, delivery),
        },
    )


async def _delivered(ctx: ServerContext, request: Request, ref: str) -> tuple[Manifest, Delivery]:
    """The manifest of the variant asked for (default: the device default), and how it is
    delivered: the store's release number when it was read, and the encryption devices keep."""
    found, release = await asyncio.to_thread(ctx.store.release, ref)
    found = found.for_variant(request.query_params.get("variant") or found.device_variant())
    encrypted = await asyncio.to_thread(ctx.store.is_encrypted, found.name)
    return found, Delivery(release, ALGORITHM if encrypted else None)


def _etag(found: Manifest, delivery: Delivery, suffix: str = "") -> str:
    """Changes with the graph, the version and encryption (turning it on re-sends the model)."""
    encrypted = "-sealed" if delivery.encryption else ""
    return f'"{found.sha256}-{found.version}{encrypted}{suffix}"'


def _signed(ctx: ServerContext, found: Manifest, delivery: Delivery) -> dict[str, str]:
    """The signature headers: what is signed binds the manifest, the release number (so an old
    answer cannot be replayed as current) and whether devices must keep the model encrypted."""
    headers = {
        SIGNATURE_HEADER: ctx.signing.sign(found, delivery),
        RELEASE_HEADER: str(delivery.release),
    }
    if delivery.encryption:
        headers[ENCRYPTION_HEADER] = delivery.encryption
    return headers


@endpoint("usage", "admin")
async def usage(ctx: ServerContext, request: Request, call: Call) -> Response:
    since = parse_since(request.query_params.get("since"))
    await ctx.flush_usage()
    totals = await asyncio.to_thread(
        usage_totals,
        ctx.store.engine,
        ctx.settings.price_per_1000,
        request.query_params.get("key"),
        since,
    )
    return json_response(
        {
            "price_per_1000": ctx.settings.price_per_1000,
            "usage": [t.__dict__ for t in totals],
            "total": {
                "requests": sum(t.requests for t in totals),
                "rows": sum(t.rows for t in totals),
                "errors": sum(t.errors for t in totals),
                "cost": round(sum(t.cost for t in totals), 6),
            },
        }
    )


def _matches(request: Request, etag: str) -> bool:
    return etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]


@endpoint("model_key", "predict", _ref)
async def model_key(ctx: ServerContext, request: Request, call: Call) -> Response:
    """The key a device keeps an encrypted model with (API key required when keys exist)."""
    assert call.ref is not None
    name = call.ref.name
    key = await asyncio.to_thread(ctx.store.encryption_key, name)
    if key is None:
        raise NotFound(
            f"Model '{name}' is not encrypted at rest; turn it on with "
            f"`modelport models encrypt {name}`."
        )
    return json_response({"algorithm": ALGORITHM, "key": base64.b64encode(key).decode()})


@endpoint("signing_key", PUBLIC)
async def signing_key(ctx: ServerContext, request: Request, call: Call) -> Response:
    """The public key devices pin to verify downloaded models (not secret)."""
    return json_response({"algorithm": "ed25519", "public_key": ctx.signing.public_key})


routes = [
    Route("/api/v1/models", list_models),
    Route("/api/v1/models/{ref}/predict", predict, methods=["POST"]),
    Route("/api/v1/models/{ref}/manifest", manifest),
    Route("/api/v1/models/{ref}/artifact", artifact),
    Route("/api/v1/models/{ref}/key", model_key),
    Route("/api/v1/usage", usage),
    Route("/api/v1/signing-key", signing_key),
]
