"""`modelport predict`: a table in, the same rows with predictions (and probabilities) out; for an
image or audio model, photos or WAV recordings in (files, globs, folders), one row per file out;
for a text model, texts in (``--text``, or a table's text column), one row per text out."""

from __future__ import annotations

import glob
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from .._fs import atomic_write
from ..errors import InvalidInput, InvalidParameter
from ..runtime import Prediction, Predictor
from ..runtime.predictor import AUDIO_BATCH, IMAGE_BATCH
from ..runtime.tabular import to_columns, unseen_categories
from ._console import check_output, err_console, open_store

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Media:
    """Files a model reads: the suffixes a folder or glob contributes (a file named on its own
    is read whatever its name), what they are called, and how many go to one call."""

    suffixes: tuple[str, ...]
    noun: str
    glob: str
    batch: int


IMAGES = Media(
    (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"),
    "image",
    "photos/*.jpg",
    IMAGE_BATCH,
)
RECORDINGS = Media((".wav",), "recording", "clips/*.wav", AUDIO_BATCH)
PROBABILITY_COLUMNS_UP_TO = 20
"""Classifiers with more classes get top-k columns instead of one probability column per class."""


def predict(
    ref: Annotated[str, typer.Argument(help="name, name:VERSION or name@ALIAS")],
    data: Annotated[
        list[Path] | None,
        typer.Argument(
            help="CSV or Parquet file of rows to predict; for an image (audio) model, image "
            "(WAV) files, folders (every one in them, recursively) or quoted globs; for a text "
            "model, a table with a text column (or use --text)."
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write CSV here instead of stdout.")
    ] = None,
    top_k: Annotated[
        int,
        typer.Option(
            "--top-k",
            min=1,
            help="Image and audio models with more than 20 classes: how many labels (best first) "
            "to write.",
        ),
    ] = 5,
    text: Annotated[
        list[str] | None,
        typer.Option("--text", help="Text models: a text to predict (repeat for several)."),
    ] = None,
    text_column: Annotated[
        str | None,
        typer.Option("--text-column", help="Text models: the table's column of texts."),
    ] = None,
) -> None:
    """Predict with a stored model; adds `prediction` and, for classifiers, `proba_<label>` (or
    top-k label and score columns for image and audio models with many classes)."""
    if output is not None:
        check_output(output)  # before any work, and nothing gets created
    artifact = open_store().get(ref)
    predictor = Predictor(artifact)
    data = data or []
    if artifact.manifest.is_text:
        out = _predict_texts(predictor, data, text or [], text_column)
    elif text:
        raise InvalidParameter(
            f"--text is for text models; '{artifact.manifest.name}' predicts "
            f"{_predicts(artifact.manifest.input_layout)}."
        )
    elif artifact.manifest.is_image:
        out = _predict_files(predictor, _files(data, IMAGES), top_k, IMAGES)
    elif artifact.manifest.input_layout == "audio":
        out = _predict_files(predictor, _files(data, RECORDINGS), top_k, RECORDINGS)
    else:
        if len(data) != 1:
            raise InvalidParameter(
                f"Model '{artifact.manifest.name}' predicts rows of a table: give one CSV or "
                f"Parquet file, not {len(data)} paths."
            )
        out = _predict_rows(predictor, data[0])
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


def _predict_rows(predictor: Predictor, data: Path) -> pd.DataFrame:
    from ..data import read_table

    frame = read_table(data)
    result = predictor.predict(frame)
    out = frame.copy()
    out["prediction"] = result.predictions
    if result.probabilities is not None and result.class_labels is not None:
        for i, label in enumerate(result.class_labels):
            out[f"proba_{label}"] = result.probabilities[:, i]
    _report_unusual_values(predictor, frame)
    return out


def _predict_texts(
    predictor: Predictor, data: list[Path], texts: list[str], column: str | None
) -> pd.DataFrame:
    """One row per text (the table's rows, or ``texts``): the prediction (an embedder's vector
    as ``embedding_0``...), probabilities, other outputs, and whether the text was cut."""
    import pandas as pd

    from ..data import read_table

    model = predictor.manifest.inputs[0].name
    if bool(texts) == bool(data) or len(data) > 1:
        raise InvalidParameter(
            f"Model '{predictor.manifest.name}' reads texts: give them with --text (repeat for "
            f"several), or give one CSV or Parquet file with a '{model}' column, not both."
        )
    frame = pd.DataFrame({model: texts}) if texts else read_table(data[0])
    column = column or model
    if column not in frame.columns:
        raise InvalidParameter(
            f"The table has no column '{column}' (it has {', '.join(map(str, frame.columns))}); "
            "name the column of texts with --text-column."
        )
    result = predictor.predict(frame[column].tolist())
    out = frame.copy()
    if result.predictions.ndim == 2:
        vectors = pd.DataFrame(
            result.predictions,
            columns=[f"embedding_{i}" for i in range(result.predictions.shape[1])],
        )
        out = pd.concat([out.reset_index(drop=True), vectors], axis=1)
    else:
        out["prediction"] = result.predictions
    if result.probabilities is not None and result.class_labels is not None:
        for i, label in enumerate(result.class_labels):
            out[f"proba_{label}"] = result.probabilities[:, i]
    for name, values in result.extras.items():
        out[name] = values
    truncated = result.extras.get("truncated")
    if truncated is not None and truncated.any():
        window = predictor.manifest.preprocessing["text"]["max_tokens"]
        err_console.print(
            f"[yellow]note:[/] {int(truncated.sum())} text(s) were longer than the model's window "
            f"of {window} tokens: only their beginning was read (column 'truncated')."
        )
    return out


def _predicts(layout: str) -> str:
    return {"image": "images", "audio": "recordings"}.get(layout, "rows of a table")


def _predict_files(
    predictor: Predictor, files: list[Path], top_k: int, media: Media
) -> pd.DataFrame:
    """One row per file: ``path``, ``prediction`` and the probabilities or top-k columns."""
    import pandas as pd

    result = Prediction.concatenate(  # decoded a batch at a time: a folder may hold thousands
        [
            predictor.predict([str(f) for f in files[i : i + media.batch]])
            for i in range(0, len(files), media.batch)
        ]
    )
    columns: dict[str, list] = {
        "path": [str(f) for f in files],
        "prediction": result.predictions.tolist(),
    }
    labels = result.class_labels
    if result.probabilities is not None and labels is not None:
        if len(labels) <= PROBABILITY_COLUMNS_UP_TO:
            for i, label in enumerate(labels):
                columns[f"proba_{label}"] = result.probabilities[:, i].tolist()
        else:
            ranked = result.top_k(top_k) or []
            for rank in range(len(ranked[0])):
                columns[f"top{rank + 1}_label"] = [row[rank]["label"] for row in ranked]
                columns[f"top{rank + 1}_score"] = [row[rank]["score"] for row in ranked]
    return pd.DataFrame(columns)


def _files(paths: list[Path], media: Media) -> list[Path]:
    """The files ``paths`` name: files as given, folders' files of the media's suffixes
    (recursively, sorted), globs' matches; a path that names nothing is an error."""
    files: list[Path] = []
    skipped: list[Path] = []
    for path in paths:
        if path.is_file():
            files.append(path)
            continue
        matches = [Path(m) for m in sorted(glob.glob(str(path), recursive=True))]
        if not matches:
            raise InvalidInput(
                f"{path} does not exist (no file, folder or glob match). Give {media.noun} "
                f"files, folders of them, or a quoted glob such as '{media.glob}'."
            )
        for match in matches:
            inside = (
                sorted(p for p in match.rglob("*") if p.is_file()) if match.is_dir() else [match]
            )
            kept = [p for p in inside if match.is_file() or p.suffix.lower() in media.suffixes]
            skipped += [p for p in inside if p not in kept]
            files += kept
    listed = ", ".join(media.suffixes)
    if skipped:
        shown = ", ".join(map(str, skipped[:3])) + (" ..." if len(skipped) > 3 else "")
        err_console.print(
            f"[yellow]note:[/] skipped {len(skipped)} file(s) whose names are not those of "
            f"{media.noun}s ({listed}): {escape(shown)}",
            highlight=False,
        )
    if not files:
        raise InvalidInput(
            f"There are no {media.noun} files in {', '.join(map(str, paths))}: modelport reads "
            f"{listed} files."
        )
    return files


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
