"""`modelport predict`: a table in, the same rows with predictions (and probabilities) out."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .._fs import atomic_write
from ..runtime import Predictor
from ..runtime.tabular import to_columns, unseen_categories
from ._console import check_output, err_console, open_store

if TYPE_CHECKING:
    import pandas as pd


def predict(
    ref: Annotated[str, typer.Argument(help="name, name:VERSION or name@ALIAS")],
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file of rows to predict.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write CSV here instead of stdout.")
    ] = None,
) -> None:
    """Predict with a stored model; adds `prediction` and, for classifiers, `proba_<label>`."""
    from ..data import read_table

    if output is not None:
        check_output(output)  # before any work, and nothing gets created
    artifact = open_store().get(ref)
    frame = read_table(data)
    predictor = Predictor(artifact)
    result = predictor.predict(frame)
    out = frame.copy()
    out["prediction"] = result.predictions
    if result.probabilities is not None and result.class_labels is not None:
        for i, label in enumerate(result.class_labels):
            out[f"proba_{label}"] = result.probabilities[:, i]
    _report_unusual_values(predictor, frame)
    buffer = io.StringIO()
    out.to_csv(buffer, index=False)
    if output is None:
        sys.stdout.write(buffer.getvalue())
    else:
        atomic_write(output, buffer.getvalue().encode())
        err_console.print(
            f"Wrote {len(out)} predictions of {artifact.manifest.name}:"
            f"{artifact.manifest.version} to {output}."
        )


def _report_unusual_values(predictor: Predictor, frame: pd.DataFrame) -> None:
    manifest = predictor.manifest
    columns = to_columns(frame, manifest)
    for column, count in unseen_categories(manifest, columns).items():
        err_console.print(
            f"[yellow]note:[/] {count} value(s) of '{column}' were not seen in training; they "
            "count as unknown (no category)."
        )
    for spec in manifest.inputs:
        missing = int(frame[spec.name].isna().sum())
        if missing:
            what = "the training median" if spec.dtype == "number" else "an unknown category"
            err_console.print(
                f"[yellow]note:[/] {missing} missing value(s) in '{spec.name}' were filled with {what}."
            )
