"""`modelport train` and `modelport import`: new versions in the store, with a live leaderboard."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from ..artifact import Manifest
from ..config import Settings
from ..errors import InvalidParameter
from ..refs import check_name
from ..store import Store
from ._console import console, err_console, open_store, print_json
from ._live import LiveTraining

if TYPE_CHECKING:  # the training stack (FLAML, LightGBM ...) loads only when a command needs it
    from ..train import TrainingEvent


def train(
    data: Annotated[
        Path,
        typer.Argument(
            help="CSV or Parquet file with a header row; or photos: a folder with one sub-folder "
            "per class, a zip of such folders, or a CSV of path,label; or recordings: a folder "
            "with one sub-folder of WAV files per class."
        ),
    ],
    target: Annotated[
        str | None, typer.Option(help="The column to predict (tables; not for photos).")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="Model name in the store (photos, recordings: default the folder's)."),
    ] = None,
    time_budget: Annotated[float, typer.Option(help="Seconds for the whole run.")] = 60.0,
    task: Annotated[str, typer.Option(help="auto, classification or regression.")] = "auto",
    metric: Annotated[str, typer.Option(help="Search metric, or auto.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    estimators: Annotated[
        str | None, typer.Option(help="Comma-separated FLAML estimators, e.g. lgbm,rf.")
    ] = None,
    alias: Annotated[list[str], typer.Option(help="Alias(es) to point at the new version.")] = [],  # noqa: B006
    text_column: Annotated[
        list[str],
        typer.Option(help="A column of free text (repeatable); found by its words otherwise."),
    ] = [],  # noqa: B006
    backend: Annotated[
        str | None,
        typer.Option(help="local, or ray: trials in parallel on Ray (MODELPORT_TRAIN_BACKEND)."),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="Photos: write the report (confusion matrix, worst photos) as PNG here."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON summary only.")] = False,
) -> None:
    """Train a model on a table, labelled photos or labelled recordings with AutoML, export it
    to ONNX and register it."""
    from ..data import check_target, read_table
    from ..data.audio import is_audio_dataset
    from ..data.images import is_image_dataset

    if not data.exists():
        raise InvalidParameter(
            f"{data} does not exist. Give a CSV or Parquet file, or photos: a folder with one "
            "sub-folder per class, a zip of such folders, or a CSV of path,label."
        )
    if target is None and is_image_dataset(data):
        tabular_only = {"--task": task != "auto", "--metric": metric != "auto"}
        tabular_only |= {"--estimators": estimators is not None, "--backend": backend is not None}
        tabular_only |= {"--text-column": bool(text_column)}
        if any(tabular_only.values()):
            given = ", ".join(flag for flag, set_ in tabular_only.items() if set_)
            raise InvalidParameter(
                f"{given} apply to tables only. Photos and recordings train a classifier whose "
                "head is searched by held-out accuracy, locally; leave them out."
            )
        if is_audio_dataset(data):
            if report is not None:
                raise InvalidParameter(
                    "--report draws photos; for recordings, the confusion matrix and the recall "
                    "of each class are in the JSON summary (--json) and in modelport models show."
                )
            return _train_audio(data, name, time_budget, seed, alias, json_output)
        return _train_images(data, name, time_budget, seed, alias, report, json_output)
    if target is None or name is None:
        raise InvalidParameter(
            f"Training on the table {data} needs --target (the column to predict) and --name "
            "(the model's name in the store). Photos need neither: give a folder with one "
            "sub-folder per class, a zip of such folders, or a CSV of path,label."
        )
    check_name(name)  # fail before minutes of training, not after
    store = open_store()
    frame = read_table(data)
    check_target(frame, target, task)  # before the live display starts
    from ..train import TabularAutoML  # seconds of imports: after the input proved usable

    display = LiveTraining(enabled=not json_output)
    automl = TabularAutoML(
        task=task,
        time_budget=time_budget,
        metric=metric,
        seed=seed,
        estimators=tuple(estimators.split(",")) if estimators else None,
        callback=_shown_on(display),
        backend=_backend(backend, store.settings),
        text_columns=tuple(text_column),
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
        "text_columns": [c.name for c in automl.schema_.columns if c.dtype == "text"],
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
    _note_changed_classes(store, manifest)
    _print_registered(manifest, rows=data)


def _train_images(
    data: Path,
    name: str | None,
    time_budget: float,
    seed: int,
    alias: list[str],
    report: Path | None,
    json_output: bool,
) -> None:
    """``train`` on photos: a head over the zoo labeller's features, one ONNX graph."""
    import tempfile

    from ..data.datasets import Limits
    from ..data.images import read_images

    name = check_name(name or _name_of(data))
    store = open_store()
    settings = store.settings
    with tempfile.TemporaryDirectory(prefix="modelport-photos-") as unpacked:
        limits = Limits(settings.max_unpacked_bytes, settings.max_archive_files)
        dataset = read_images(data, Path(unpacked), limits)
        from ..train.image import ImageAutoML, feature_cache  # after the photos proved usable

        display = LiveTraining(enabled=not json_output)
        automl = ImageAutoML(
            zoo_cache=settings.resolved_zoo_cache,
            feature_cache=feature_cache(settings.home),
            time_budget=time_budget,
            seed=seed,
            callback=_shown_on(display),
        )
        with display:
            automl.fit(dataset)
        artifact = automl.to_artifact(name, description=f"Image AutoML on {data.name}")
        if report is not None:
            from .._fs import atomic_write
            from ..train.image_report import render_report

            photos = automl.report_
            atomic_write(report, render_report(photos, lambda photo: dataset.root / photo))
    manifest = store.register(artifact, aliases=tuple(alias))
    source = manifest.source
    if json_output:
        print_json(
            {
                "name": manifest.name,
                "version": manifest.version,
                "reference": f"{manifest.name}:{manifest.version}",
                "task": manifest.task,
                "classes": manifest.class_labels,
                "photos": dataset.counts(),
                "skipped": dataset.skipped,
                "estimator": source["estimator"],
                "view": source["view"],
                "metrics": manifest.metrics,
                "parity": source["parity"],
                "fit_seconds": source["fit_seconds"],
                "feature_seconds": source["feature_seconds"],
                "cached_photos": source["cached_photos"],
                "leaderboard": source["leaderboard"],
                "report": str(report) if report is not None else None,
            }
        )
        return
    if dataset.skipped:
        shown = ", ".join(dataset.skipped[:3]) + (" ..." if len(dataset.skipped) > 3 else "")
        err_console.print(
            f"[yellow]note:[/] {len(dataset.skipped)} file(s) without a photo's name were left "
            f"out: {escape(shown)}"
        )
    worst = len(automl.report_["worst"])
    if report is not None:
        console.print(f"Report (confusion matrix, the {worst} least sure photos): {report}")
    _note_changed_classes(store, manifest)
    _print_registered(manifest, rows=data if data.is_dir() else "PHOTO.jpg")


def _train_audio(
    data: Path, name: str | None, time_budget: float, seed: int, alias: list[str], json_output: bool
) -> None:
    """``train`` on recordings: log-mel features and a head, one ONNX graph."""
    from ..data.audio import read_recordings

    name = check_name(name or _name_of(data))
    store = open_store()
    dataset = read_recordings(data)
    from ..train.audio import AudioAutoML  # after the folder proved usable

    display = LiveTraining(enabled=not json_output)
    automl = AudioAutoML(time_budget=time_budget, seed=seed, callback=_shown_on(display))
    with display:
        automl.fit(dataset)
    manifest = store.register(
        automl.to_artifact(name, description=f"Audio AutoML on {data.name}"), aliases=tuple(alias)
    )
    source = manifest.source
    if json_output:
        print_json(
            {
                "name": manifest.name,
                "version": manifest.version,
                "reference": f"{manifest.name}:{manifest.version}",
                "task": manifest.task,
                "classes": manifest.class_labels,
                "recordings": dataset.counts(),
                "skipped": dataset.skipped,
                "window_seconds": manifest.preprocessing["audio"]["window_seconds"],
                "estimator": source["estimator"],
                "metrics": manifest.metrics,
                "recall": source["report"]["recall"],
                "confusion": source["report"]["confusion"],
                "parity": source["parity"],
                "fit_seconds": source["fit_seconds"],
                "leaderboard": source["leaderboard"],
                "skipped_variants": manifest.skipped_variants,
            }
        )
        return
    if dataset.skipped:
        shown = ", ".join(dataset.skipped[:3]) + (" ..." if len(dataset.skipped) > 3 else "")
        err_console.print(
            f"[yellow]note:[/] {len(dataset.skipped)} file(s) that are not WAV recordings were "
            f"left out: {escape(shown)}"
        )
    recall = ", ".join(f"{c} {share:.2f}" for c, share in source["report"]["recall"].items())
    console.print(f"Held-out recall per class: {escape(recall)}", highlight=False)
    _note_changed_classes(store, manifest)
    _print_registered(manifest, rows=data)


def _name_of(data: Path) -> str:
    """A model name from the folder's or file's name: 'Flower Photos.zip' -> 'flower-photos'."""
    stem = data.resolve().name if data.is_dir() else data.stem
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-._").lower()[:64]
    return name or "photos"


def _shown_on(display: LiveTraining) -> Callable[[TrainingEvent], None]:
    def show(event: TrainingEvent) -> None:
        display.update(event.progress, event.message, [r.to_dict() for r in event.leaderboard])

    return show


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
    _print_registered(manifest, rows=sample)


def _note_changed_classes(store: Store, manifest: Manifest) -> None:
    """Say so when the new version predicts other classes than the one before it: servers and
    devices that follow the name switch to it."""
    older = [m for m in store.versions(manifest.name) if (m.version or 0) < (manifest.version or 0)]
    if not older or older[-1].class_labels == manifest.class_labels:
        return
    before = older[-1]
    err_console.print(
        f"[yellow]note:[/] {manifest.name}:{manifest.version} predicts "
        f"{_classes(manifest.class_labels)}; version {before.version} predicted "
        f"{_classes(before.class_labels)}. Servers and devices that use '{manifest.name}' switch "
        f"to the new version (to keep one, point an alias at it: modelport models alias "
        f"{manifest.name}:{before.version} production).",
        highlight=False,
    )


def _classes(labels: list[Any] | None) -> str:
    if labels is None:
        return "values (regression)"
    shown = ", ".join(map(str, labels[:8]))
    return f"{len(labels)} classes ({shown}{', ...' if len(labels) > 8 else ''})"


def _print_registered(manifest: Manifest, rows: Path | str | None) -> None:
    """What was registered, and commands that work as shown (``rows``: a file of the user's whose
    columns the model takes; predict keeps and ignores extra columns such as the target)."""
    ref = f"{manifest.name}:{manifest.version}"
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in manifest.metrics.items())
    console.print(f"Registered [bold]{ref}[/] ({manifest.task}, {manifest.size_bytes:,} bytes).")
    if metrics:
        console.print(f"Test metrics: {metrics}")
    data = escape(shlex.quote(str(rows))) if rows is not None else "ROWS.csv"
    console.print(
        f"Try: modelport predict {manifest.name} {data}   |   modelport models show {ref}"
    )


def _backend(chosen: str | None, settings: Settings) -> str:
    """The flag, else MODELPORT_TRAIN_BACKEND; Ray finds its address in the environment."""
    if settings.ray_address:  # also read from .env, which Ray itself does not see
        os.environ.setdefault("MODELPORT_RAY_ADDRESS", settings.ray_address)
    return chosen or settings.train_backend
