"""Hosted training over HTTP: upload datasets, submit jobs, follow them (SSE), read their logs."""

from __future__ import annotations

import asyncio
import time
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message

from ...errors import Conflict, InvalidInput, NotFound
from ...store.datasets import IncomingFile
from ...train.spec import JobSpec
from ..auth import owner, visible_owner
from ..context import Call, ServerContext, endpoint
from ..dataplane import json_response

CHUNK = 1 << 20
MAX_LOG_BYTES = 1 << 20
EVENT_POLL = 0.5
KEEP_ALIVE = 15.0


@endpoint("upload_dataset", "train")
async def upload_dataset(ctx: ServerContext, request: Request, call: Call) -> Response:
    """A multipart form with a ``file`` field, or the raw file as the body (``?filename=``)."""
    ctx.runner.expect_jobs()  # a job is likely to follow: warm the workers meanwhile
    datasets = ctx.store.datasets
    declared = request.headers.get("content-length", "")
    if declared.isdigit():
        IncomingFile.check_size(int(declared), datasets.max_bytes)
    with datasets.incoming(request.query_params.get("filename", "upload")) as upload:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            await _receive_form(request, upload)
        elif (
            content_type.startswith("application/x-www-form-urlencoded")
            and "filename" not in request.query_params
        ):  # curl --data-binary sends this type; with ?filename= the body is the file
            raise InvalidInput(
                "A form without a file was sent. Send the file as a multipart form field 'file' "
                "(curl -F file=@data.csv), or as the raw body with its name: "
                "curl --data-binary @data.csv '.../api/v1/datasets?filename=data.csv'."
            )
        else:
            async for chunk in request.stream():
                upload.write(chunk)
        if upload.size == 0:
            raise InvalidInput(
                "The upload is empty. Send the file as a multipart form field 'file' "
                "(curl -F file=@data.csv) or as the request body."
            )
        dataset, created = await asyncio.to_thread(datasets.add, upload, owner(call.key))
    return json_response(dataset.to_dict(), status=201 if created else 200)


async def _receive_form(request: Request, upload: IncomingFile) -> None:
    """Parse the form with the size limit applied while it streams in."""
    limited = Request(request.scope, _counting(request.receive, upload.check_total))
    async with limited.form(max_files=1, max_fields=10) as form:
        part = form.get("file")
        if not isinstance(part, UploadFile):
            raise InvalidInput(
                "The form has no file in the field 'file'. Send it as: curl -F file=@data.csv ..."
            )
        upload.filename = part.filename or upload.filename
        while chunk := await part.read(CHUNK):
            upload.write(chunk)


def _counting(
    receive: Callable[[], Awaitable[Message]], check: Callable[[int], None]
) -> Callable[[], Awaitable[Message]]:
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        check(seen)
        return message

    return counted


@endpoint("list_datasets", "train")
async def list_datasets(ctx: ServerContext, request: Request, call: Call) -> Response:
    found = await asyncio.to_thread(ctx.store.datasets.list, visible_owner(call.key))
    return json_response({"datasets": [d.to_dict() for d in found]})


@endpoint("dataset", "train")
async def dataset(ctx: ServerContext, request: Request, call: Call) -> Response:
    dataset_id, whose = request.path_params["id"], visible_owner(call.key)
    if request.method == "DELETE":
        await asyncio.to_thread(ctx.store.datasets.get, dataset_id, whose)  # 404 if not yours
        waiting = await asyncio.to_thread(ctx.store.jobs.using, dataset_id, whose)
        if waiting:
            raise Conflict(
                f"Dataset {dataset_id} is used by the queued or running job(s) "
                f"{', '.join(waiting)}; cancel them or wait until they end, then delete it."
            )
        found = await asyncio.to_thread(ctx.store.datasets.delete, dataset_id, whose)
        return json_response({"deleted": found.id})
    found = await asyncio.to_thread(ctx.store.datasets.get, dataset_id, whose)
    return json_response(found.to_dict())


@endpoint("submit_job", "train")
async def submit_job(ctx: ServerContext, request: Request, call: Call) -> Response:
    """A training job; one with a ``script`` runs user code on the server, so it needs admin."""
    body = await ctx.read_json(request)
    if isinstance(body, dict) and body.get("script") is not None:
        ctx.auth.require(call.key, "admin")
    spec = JobSpec.from_request(body, ctx.settings.max_time_budget)
    ctx.auth.check_model(call.key, spec.name, "write")
    found = await asyncio.to_thread(ctx.store.datasets.get, spec.dataset, visible_owner(call.key))
    spec.check_dataset(found.kind, found.details.get("columns", []))
    job = await asyncio.to_thread(
        ctx.store.jobs.submit, spec.to_dict(), ctx.settings.max_queued_jobs, owner(call.key)
    )
    ctx.runner.expect_jobs()
    ctx.runner.wake()
    return json_response(
        _job_view(job.to_dict(), call), status=201, headers={"Location": f"/api/v1/jobs/{job.id}"}
    )


@endpoint("list_jobs", "train")
async def list_jobs(ctx: ServerContext, request: Request, call: Call) -> Response:
    status = request.query_params.get("status")
    found = await asyncio.to_thread(ctx.store.jobs.list, 100, status, visible_owner(call.key))
    return json_response({"jobs": [_job_view(j.to_dict(), call, brief=True) for j in found]})


@endpoint("job", "train")
async def job(ctx: ServerContext, request: Request, call: Call) -> Response:
    """GET: the job's state; DELETE: cancel it (202 while a running job is being stopped)."""
    job_id, whose = request.path_params["id"], visible_owner(call.key)
    if request.method == "DELETE":
        found = await asyncio.to_thread(ctx.store.jobs.cancel, job_id, whose)
        return json_response(_job_view(found.to_dict(), call), status=200 if found.done else 202)
    found = await asyncio.to_thread(ctx.store.jobs.get, job_id, whose)
    return json_response(_job_view(found.to_dict(), call))


@endpoint("job_logs", "train")
async def job_logs(ctx: ServerContext, request: Request, call: Call) -> Response:
    """The end of the job's log: the last ``?tail=`` bytes (default and most: 1 MiB)."""
    job_id = request.path_params["id"]
    await asyncio.to_thread(ctx.store.jobs.get, job_id, visible_owner(call.key))  # 404: not yours
    tail = request.query_params.get("tail", str(MAX_LOG_BYTES))
    if not tail.isdigit():
        raise InvalidInput("tail must be a number of bytes, e.g. ?tail=65536.")
    text = await asyncio.to_thread(
        _tail, ctx.store.jobs.log_path(job_id), min(int(tail), MAX_LOG_BYTES)
    )
    return Response(text, media_type="text/plain; charset=utf-8")


def _tail(path: Path, size: int) -> bytes:
    if not path.exists():
        return b""
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - size))
        return handle.read()


@endpoint("job_report", "train")
async def job_report(ctx: ServerContext, request: Request, call: Call) -> Response:
    """The report of a succeeded image job as PNG: its confusion matrix on the held-out photos
    and the photos it was least sure of (thumbnails from the dataset, while it exists)."""
    found = await asyncio.to_thread(
        ctx.store.jobs.get, request.path_params["id"], visible_owner(call.key)
    )
    png = await asyncio.to_thread(_report_png, ctx, found)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})


def _report_png(ctx: ServerContext, job: Any) -> bytes:
    from ...train.image_report import render_report

    report = ctx.store.manifest(job.model).source.get("report") if job.model else None
    if report is None:
        raise NotFound(
            f"Job {job.id} has no report ({job.status}): reports are made by image AutoML jobs "
            f"that succeeded. GET /api/v1/jobs/{job.id} shows its state and error."
        )
    try:
        dataset = ctx.store.datasets.get(job.spec["dataset"])
    except NotFound:  # deleted since: the report is drawn without thumbnails
        return render_report(report, lambda photo: None)
    with zipfile.ZipFile(ctx.store.datasets.path(dataset)) as archive:
        wanted = {item["photo"] for item in report["worst"]}
        found = {
            photo: member
            for member in archive.namelist()
            for photo in wanted
            if member == photo or member.endswith(f"/{photo}")
        }
        return render_report(
            report, lambda photo: archive.read(found[photo]) if photo in found else None
        )


@endpoint("job_events", "train")
async def job_events(ctx: ServerContext, request: Request, call: Call) -> Response:
    """Server-Sent Events: ``progress`` and ``leaderboard`` while it runs, then ``done``."""
    job_id = request.path_params["id"]
    first = await asyncio.to_thread(ctx.store.jobs.get, job_id, visible_owner(call.key))
    return StreamingResponse(
        _event_stream(ctx, first, call),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _event_stream(ctx: ServerContext, job: Any, call: Call) -> AsyncIterator[bytes]:
    sent: dict[str, Any] = {}
    number = 0
    last = time.monotonic()
    while True:
        state = job.to_dict()
        updates = {
            "progress": {k: state[k] for k in ("status", "stage", "progress", "message")},
            "leaderboard": {"leaderboard": state["leaderboard"]},
        }
        for name, data in updates.items():
            if sent.get(name) != data:  # elapsed alone is no news: clients keep their clock
                number += 1
                sent[name] = data
                last = time.monotonic()
                yield _sse(name, {**data, "elapsed": state["elapsed"]}, number)
        if job.done:
            yield _sse("done", _job_view(state, call), number + 1)
            return
        if time.monotonic() - last > KEEP_ALIVE:
            last = time.monotonic()
            yield b": keep-alive\n\n"
        await asyncio.sleep(EVENT_POLL)
        job = await asyncio.to_thread(ctx.store.jobs.get, job.id)


def _sse(event: str, data: Any, number: int) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (number, event.encode(), orjson.dumps(data))


def _job_view(state: dict[str, Any], call: Call, brief: bool = False) -> dict[str, Any]:
    """The job as the API shows it, with links to its model once it is registered.

    A script's source is shown to admin credentials only.
    """
    if brief:
        state = {k: v for k, v in state.items() if k not in ("leaderboard", "spec")}
    elif state["spec"].get("script") and (call.key is None or call.key.scope != "admin"):
        state = {**state, "spec": {**state["spec"], "script": "(hidden: admin keys only)"}}
    if state.get("model"):
        ref = state["model"]
        state["links"] = {
            "predict": f"/api/v1/models/{ref}/predict",
            "onnx": f"/api/v1/models/{ref}/artifact?format=onnx",
            "artifact": f"/api/v1/models/{ref}/artifact",
        }
    return state


routes = [
    Route("/api/v1/datasets", upload_dataset, methods=["POST"]),
    Route("/api/v1/datasets", list_datasets, methods=["GET"]),
    Route("/api/v1/datasets/{id}", dataset, methods=["GET", "DELETE"]),
    Route("/api/v1/jobs", submit_job, methods=["POST"]),
    Route("/api/v1/jobs", list_jobs, methods=["GET"]),
    Route("/api/v1/jobs/{id}", job, methods=["GET", "DELETE"]),
    Route("/api/v1/jobs/{id}/events", job_events),
    Route("/api/v1/jobs/{id}/logs", job_logs),
    Route("/api/v1/jobs/{id}/report", job_report),
]
