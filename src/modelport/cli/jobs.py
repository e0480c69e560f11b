"""`modelport jobs`: train on a modelport server and watch it, from the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ..errors import ModelportError
from ._console import console, err_console, print_json
from ._live import LiveTraining

if TYPE_CHECKING:
    from ..client.training import TrainingClient

app = typer.Typer(
    help="Training jobs on a modelport server: upload, train, watch, cancel.",
    no_args_is_help=True,
)
DEFAULT_SERVER = "http://127.0.0.1:8000"
Server = Annotated[
    str, typer.Option(envvar="MODELPORT_SERVER", help="The modelport server to train on.")
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        envvar="MODELPORT_API_KEY",
        help="A key with scope train or admin (default for a server on this machine: the local "
        "admin token in MODELPORT_HOME).",
    ),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print JSON only.")]


def _client(server: str, api_key: str | None) -> TrainingClient:
    from .. import local_token
    from ..client.training import TrainingClient
    from ..config import Settings

    return TrainingClient(
        server, api_key=api_key or local_token.for_server(server, Settings().home)
    )


@app.command("submit")
def submit(
    data: Annotated[str, typer.Argument(help="A CSV/Parquet/JSONL/zip file to upload, or ds_ID.")],
    name: Annotated[str, typer.Option(help="Model name for the result.")],
    target: Annotated[str | None, typer.Option(help="The column to predict.")] = None,
    time_budget: Annotated[float, typer.Option(help="Seconds for the whole run.")] = 60.0,
    task: Annotated[str, typer.Option(help="auto, classification or regression.")] = "auto",
    metric: Annotated[str, typer.Option(help="Search metric, or auto.")] = "auto",
    estimators: Annotated[str | None, typer.Option(help="Comma-separated, e.g. lgbm,rf.")] = None,
    alias: Annotated[list[str], typer.Option(help="Alias(es) for the new version.")] = [],  # noqa: B006
    script: Annotated[
        Path | None,
        typer.Option(help="Your training code: a .py file defining train(data, target)."),
    ] = None,
    entry: Annotated[str, typer.Option(help="The function in --script to call.")] = "train",
    detach: Annotated[bool, typer.Option(help="Submit and return; do not follow.")] = False,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    json_output: JsonOutput = False,
) -> None:
    """Upload the data (unless it is a dataset id), submit a job and follow it to the end."""
    options: dict[str, Any] = {
        "target": target,
        "time_budget": time_budget,
        "task": task,
        "metric": metric,
        "estimators": estimators.split(",") if estimators else None,
        "aliases": alias,
    }
    if script is not None:
        if not script.is_file():
            raise ModelportError(f"The script '{script}' does not exist.")
        options.update(script=script.read_text(), entry=entry)
    with _client(server, api_key) as client:
        if data.startswith("ds_") and not Path(data).exists():
            dataset = data
        else:
            uploaded = client.upload(data)
            dataset = uploaded["id"]
            if not json_output:
                err_console.print(
                    f"Dataset {dataset}: {uploaded['rows']:,} rows ({uploaded['kind']})."
                )
        job = client.submit(dataset, name, **options)
        if detach:
            _print_job(job, json_output, server)
            return
        if not json_output:
            err_console.print(f"Job {job['id']} queued. Ctrl-C stops watching, not the job.")
        _follow(client, job["id"], json_output, server)


@app.command("show")
def show(
    job_id: Annotated[str, typer.Argument(help="The job id (job_...).")],
    follow: Annotated[bool, typer.Option(help="Watch it until it ends.")] = False,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    json_output: JsonOutput = False,
) -> None:
    """A job's status, progress, leaderboard and model."""
    with _client(server, api_key) as client:
        if follow:
            _follow(client, job_id, json_output, server)
            return
        job = client.job(job_id)
    if not json_output and job["leaderboard"]:
        display = LiveTraining(enabled=False)
        display.update(job["progress"], job["message"], job["leaderboard"])
        console.print(display.table())
    _print_job(job, json_output, server)
    if job["status"] in ("failed", "cancelled"):
        raise typer.Exit(1)


@app.command("list")
def list_jobs(
    status: Annotated[str | None, typer.Option(help="Only jobs with this status.")] = None,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    json_output: JsonOutput = False,
) -> None:
    """The latest jobs, newest first."""
    with _client(server, api_key) as client:
        jobs = client.jobs(status)
    if json_output:
        print_json(jobs)
        return
    table = Table("id", "status", "progress", "elapsed s", "model", "created")
    for job in jobs:
        table.add_row(
            job["id"],
            job["status"],
            f"{job['progress']:.0%}",
            f"{job['elapsed']:.1f}",
            job["model"] or "",
            job["created"][:19],
        )
    console.print(table)


@app.command("logs")
def logs(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
) -> None:
    """The job's log: the trainer's output, tracebacks, and what the server did."""
    with _client(server, api_key) as client:
        sys.stdout.write(client.logs(job_id))


@app.command("cancel")
def cancel(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
) -> None:
    """Cancel a queued or running job; nothing of it is registered."""
    with _client(server, api_key) as client:
        job = client.cancel(job_id)
    state = "cancelled" if job["status"] == "cancelled" else "stopping (cancel requested)"
    console.print(f"Job {job_id}: {state}.")


def _follow(client: TrainingClient, job_id: str, json_output: bool, server: str) -> None:
    """Draw the event stream; exit 1 when the job fails or is cancelled."""
    display = LiveTraining(enabled=not json_output)
    final: dict[str, Any] = {}
    progress, message, board = 0.0, "", []
    with display:
        for event, data in client.events(job_id):
            if event == "progress":
                progress, message = data["progress"], data["message"] or data["status"]
            elif event == "leaderboard":
                board = data["leaderboard"]
            elif event == "done":
                final = data
            display.update(progress, message, board)
    if not final:  # the stream ended early (a restart, a proxy): ask for the state
        final = client.job(job_id)
    _print_job(final, json_output, server)
    if final.get("status") != "succeeded":
        raise typer.Exit(1)


def _print_job(job: dict[str, Any], json_output: bool, server: str) -> None:
    if json_output:
        print_json(job)
        return
    line = f"Job {job['id']}: {job['status']}"
    if job["status"] == "running":
        line += f", {job['progress']:.0%} after {job['elapsed']:.0f} s — {job['message']}"
    console.print(line)
    if job.get("model"):
        onnx = server.rstrip("/") + job["links"]["onnx"]
        console.print(f"Model [bold]{job['model']}[/]; its ONNX file: {onnx}")
    if job.get("error"):
        err_console.print(f"[bold red]error:[/] {job['error']}", highlight=False, soft_wrap=True)
