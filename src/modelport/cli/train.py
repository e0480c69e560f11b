"""`modelport train` and `modelport import`: new versions in the store, with a live leaderboard."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..artifact import Manifest
from ..refs import check_name
from ._console import console, err_console, open_store, print_json

if TYPE_CHECKING:  # the training stack (FLAML, LightGBM ...) loads only when a command needs it
    from ..train import LeaderboardRow, TrainingEvent


def train(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file with a header row.")],
    target: Annotated[str, typer.Option(help="The column to predict.")],
    name: Annotated[str, typer.Option(help="Model name in the store.")],
    time_budget: Annotated[float, typer.Option(help="Seconds for the whole run.")] = 60.0,
    task: Annotated[str, typer.Option(help="auto, classification or regression.")] = "auto",
    metric: Annotated[str, typer.Option(help="Search metric, or auto.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    estimators: Annotated[
        str | None, typer.Option(help="Comma-separated FLAML estimators, e.g. lgbm,rf.")
    ] = None,
    alias: Annotated[list[str], typer.Option(help="Alias(es) to point at the new version.")] = [],  # noqa: B006
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON summary only.")] = False,
) -> None:
    """Train a model on a table with AutoML, export it to ONNX and register it."""
    from ..data import check_target, read_table
    from ..train import TabularAutoML

    check_name(name)  # fail before minutes of training, not after
    store = open_store()
    frame = read_table(data)
    check_target(frame, target, task)  # before the live display starts
    display = _LiveTraining(time_budget, enabled=not json_output)
    automl = TabularAutoML(
        task=task,
        time_budget=time_budget,
        metric=metric,
        seed=seed,
        estimators=tuple(estimators.split(",")) if estimators else None,
        callback=display.update,
    )
    with display:
        automl.fit(frame.drop(columns=[target]), frame[target])
    manifest = store.register(
        automl.to_artifact(name, description=f"AutoML on {data.name}"), aliases=tuple(alias)
    )
    summary = {
        "name": manifest.name,
        "version": manifest.version,
        "reference": f"{manifest.name}:{manifest.version}",
        "task": manifest.task,
        "estimator": automl.best_model_name_,
        "metrics": manifest.metrics,
        "parity": automl.parity_.to_dict(),
        "fit_seconds": round(automl.fit_seconds_, 2),
        "dropped_columns": automl.schema_.dropped,
        "unlabelled_rows": automl.unlabelled_rows_,
        "leaderboard": [r.to_dict() for r in automl.leaderboard_],
        "note": automl.fallback_reason_,
    }
    if json_output:
        print_json(summary)
        return
    if automl.unlabelled_rows_:
        err_console.print(
            f"[yellow]note:[/] {automl.unlabelled_rows_} row(s) without a value for '{target}' "
            "were left out of training."
        )
    for column, reason in automl.schema_.dropped.items():
        err_console.print(f"[yellow]note:[/] column '{column}' was not used: {reason}.")
    if automl.fallback_reason_:
        err_console.print(f"[yellow]note:[/] {automl.fallback_reason_}")
    _print_registered(manifest)


def import_model(
    path: Annotated[
        Path,
        typer.Argument(help=".onnx, .joblib/.pkl, .skops, LightGBM .txt or XGBoost .json/.ubj"),
    ],
    name: Annotated[str, typer.Option(help="Model name in the store.")],
    sample: Annotated[
        Path | None, typer.Option(help="CSV of input rows (needed for non-ONNX models).")
    ] = None,
    alias: Annotated[list[str], typer.Option(help="Alias(es) to point at the new version.")] = [],  # noqa: B006
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON summary only.")] = False,
) -> None:
    """Import an existing model: convert it to ONNX, check parity on the sample, register it."""
    from ..export.importers import import_file

    store = open_store()
    artifact = import_file(path, name=name, sample=sample)
    manifest = store.register(artifact, aliases=tuple(alias))
    if json_output:
        print_json(
            {
                "name": manifest.name,
                "version": manifest.version,
                "task": manifest.task,
                "parity": manifest.source.get("parity"),
            }
        )
        return
    _print_registered(manifest)


def _print_registered(manifest: Manifest) -> None:
    ref = f"{manifest.name}:{manifest.version}"
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in manifest.metrics.items())
    console.print(f"Registered [bold]{ref}[/] ({manifest.task}, {manifest.size_bytes:,} bytes).")
    if metrics:
        console.print(f"Test metrics: {metrics}")
    console.print(
        f"Try: modelport predict {manifest.name} rows.csv   |   modelport models show {ref}"
    )


class _LiveTraining:
    """A progress bar over the time budget and the leaderboard, redrawn on each event (stderr)."""

    def __init__(self, budget: float, enabled: bool) -> None:
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=err_console,
        )
        self.task_id = self.progress.add_task("Searching", total=1.0)
        self.rows: list[LeaderboardRow] = []
        self.live = Live(self._render(), console=err_console, refresh_per_second=4, transient=False)

        self.started = False

    def __enter__(self) -> _LiveTraining:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.started:
            self.live.update(self._render())
            self.live.__exit__(*exc)

    def update(self, event: TrainingEvent) -> None:
        """Draw the event; the display starts with the first one, so errors before it stay clean."""
        if event.leaderboard:
            self.rows = event.leaderboard
        self.progress.update(self.task_id, completed=event.progress, description=event.message)
        if not self.enabled:
            return
        if not self.started:
            self.started = True
            self.live.__enter__()
        self.live.update(self._render())

    def _render(self) -> Group:
        table = Table(title="Leaderboard", title_justify="left")
        for column in ("model", "metric", "score", "trials", "fit s", "ONNX µs/row", "note"):
            table.add_column(column, justify="right" if column not in ("model", "note") else "left")
        for row in self.rows:
            latency = f"{row.onnx_latency_us:.0f}" if row.onnx_latency_us is not None else "—"
            table.add_row(
                row.model,
                row.metric,
                f"{row.score:.4f}",
                str(row.trials),
                f"{row.fit_seconds:.2f}",
                latency,
                row.note,
            )
        return Group(self.progress, table)
