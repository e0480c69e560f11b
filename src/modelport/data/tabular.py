"""Reading tables (CSV, Parquet) and checking them before training, with errors a user can act on."""

from __future__ import annotations

import contextlib
import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..artifact import ColumnSpec, Task
from ..errors import InvalidDataset, InvalidParameter, InvalidTarget
from ..runtime.text import NORMALIZE

PARQUET_SUFFIXES = {".parquet", ".pq"}
MISSING_VALUES = ["?", "", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]
MAX_CATEGORIES = 200
"""A text column with more distinct values than this is not one-hot encoded (it is dropped)."""
MIN_TEXT_WORDS = 3.0
"""A string column whose values average this many words, and are mostly distinct, is free text."""
MIN_TEXT_DISTINCT = 0.5
MIN_ROWS_PER_CLASS = 2
MIN_ROWS = 10
TASKS = ("auto", "classification", "regression")
SCAN_ROWS = 100_000
CONTROL_BYTES = bytes([*range(0x01, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F])
"""Bytes no text file holds (tab, line ends and form feed excepted)."""


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, refusing empty and non-tabular files with a clear message."""
    path = _check_file(Path(path))
    if path.suffix.lower() in PARQUET_SUFFIXES:
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many unrelated types for a bad file
            raise _not_parquet(path, exc) from exc
    else:
        with _csv_errors(path):
            frame = _read_csv(path)
    if frame.empty:
        raise InvalidDataset(
            f"The file '{path}' has a header line but no rows. Add one row per example below "
            "the header."
        )
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def scan_table(path: str | Path) -> tuple[int, dict[str, str]]:
    """Rows and column types ("number"/"string") of a CSV or Parquet file, read in chunks, so a
    large upload is checked in full without holding it in memory."""
    path = _check_file(Path(path))
    if path.suffix.lower() in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq
        import pyarrow.types as pat

        try:
            parquet = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises many unrelated types for a bad file
            raise _not_parquet(path, exc) from exc
        numeric = (pat.is_integer, pat.is_floating, pat.is_boolean, pat.is_decimal)
        types = {
            str(f.name).strip(): "number" if any(t(f.type) for t in numeric) else "string"
            for f in parquet.schema_arrow
        }
        return parquet.metadata.num_rows, types
    rows, numbers = 0, {}
    with _csv_errors(path):
        for chunk in _read_csv(path, chunksize=SCAN_ROWS):
            rows += len(chunk)
            for column in chunk.columns:
                numeric = pd.api.types.is_numeric_dtype(chunk[column])
                numbers[str(column).strip()] = numbers.get(str(column).strip(), True) and numeric
    return rows, {name: "number" if n else "string" for name, n in numbers.items()}


def _check_file(path: Path) -> Path:
    if not path.is_file():
        raise InvalidDataset(
            f"The dataset '{path}' does not exist or is not a file. Give the path of a CSV or "
            "Parquet file."
        )
    if path.stat().st_size == 0:
        raise InvalidDataset(
            f"The file '{path}' is empty (0 bytes): it has no header line and no rows. Give a CSV "
            "or Parquet file with a header line and one row per example."
        )
    return path


def _not_parquet(path: Path, exc: Exception) -> InvalidDataset:
    return InvalidDataset(
        f"'{path}' cannot be read as Parquet ({exc}). Check that the file is a complete "
        "Parquet file, or save the data as CSV."
    )


def _read_csv(path: Path, chunksize: int | None = None) -> Any:
    """The whole table, or an iterator of ``chunksize``-row frames (use in ``_csv_errors``)."""
    with path.open("rb") as handle:
        head = handle.read(8192)
    if _looks_binary(head):
        raise InvalidDataset(
            f"'{path}' is not a CSV file: it holds binary data (it may be an image, a zip or a "
            "spreadsheet). Export the data as CSV (comma-separated text with a header line) or "
            "Parquet."
        )
    header = head.decode("utf-8-sig", errors="replace").splitlines()[0] if head.strip() else ""
    separator = _separator(header)
    names = [n.strip() for n in next(csv.reader([header], delimiter=separator), [])]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidDataset(
            f"The header of '{path}' names the column(s) {', '.join(map(repr, duplicates))} more "
            "than once. Column names must be unique: rename the repeated ones."
        )
    return pd.read_csv(
        path,
        sep=separator,
        na_values=MISSING_VALUES,
        keep_default_na=True,
        skipinitialspace=True,
        encoding="utf-8-sig",
        encoding_errors="replace",
        chunksize=chunksize,
    )


def _looks_binary(head: bytes) -> bool:
    """NUL bytes, or more control characters than text of any encoding holds (random bytes hold
    ~10 %): an image, an archive, a spreadsheet, not a CSV."""
    controls = len(head) - len(head.translate(None, CONTROL_BYTES))
    return b"\x00" in head or controls > max(1, len(head) // 100)


@contextlib.contextmanager
def _csv_errors(path: Path) -> Iterator[None]:
    """pandas' parse errors (raised on reading or on any later chunk) as InvalidDataset."""
    try:
        yield
    except InvalidDataset:
        raise  # already says what is wrong (it is a ValueError too)
    except pd.errors.EmptyDataError as exc:
        raise InvalidDataset(
            f"The dataset '{path}' has no columns: the file holds only blank lines. A CSV needs a "
            "header line and rows."
        ) from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidDataset(
            f"'{path}' cannot be parsed as CSV: {str(exc).strip().rstrip('.')}. Every line needs "
            "the same number of comma-separated fields as the header; quote values that contain "
            "commas."
        ) from exc


def _separator(header: str) -> str:
    """',' unless the header line is clearly split by ';', tab or '|' instead."""
    counts = {sep: header.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] > counts[","] else ","


@dataclass
class TableSchema:
    """The feature columns chosen for training, and the ones left out with the reason."""

    columns: list[ColumnSpec]
    dropped: dict[str, str] = field(default_factory=dict)


def infer_schema(
    frame: pd.DataFrame, target: str, text_columns: tuple[str, ...] = ()
) -> TableSchema:
    """Type each feature column: numbers, categories (one-hot encoded in the model) or free
    text (words, TF-IDF in the model): detected, or named in ``text_columns``."""
    _check_text_columns(frame, target, text_columns)
    columns, dropped = [], {}
    for name in frame.columns:
        if name == target:
            continue
        series = frame[name]
        present = series.dropna()
        if present.empty:
            dropped[name] = "every value is missing"
        elif present.nunique() == 1:
            dropped[name] = "it has a single value"
        elif pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            columns.append(ColumnSpec(name=name, dtype="number"))
        elif name in text_columns or _is_free_text(present):
            columns.append(ColumnSpec(name=name, dtype="text", normalize=NORMALIZE))
        else:
            categories = sorted(present.astype(str).unique().tolist())
            if len(categories) > MAX_CATEGORIES:
                reason = (
                    "every value is different (an identifier)"
                    if len(categories) == len(present)
                    else f"it has {len(categories)} distinct texts (more than {MAX_CATEGORIES})"
                )
                dropped[name] = reason
            else:
                columns.append(
                    ColumnSpec(name=name, dtype="string", categorical=True, categories=categories)
                )
    if not columns:
        detail = "; ".join(f"'{k}': {v}" for k, v in dropped.items()) or "there are none"
        raise InvalidDataset(
            f"No column is usable as a feature for predicting '{target}' ({detail}). Add columns "
            "with varied values."
        )
    return TableSchema(columns, dropped)


def _is_free_text(present: pd.Series) -> bool:
    """Words rather than codes: at least MIN_TEXT_WORDS per value on average, mostly distinct."""
    values = present.astype(str)
    distinct = values.nunique()
    if distinct <= MAX_CATEGORIES and distinct < MIN_TEXT_DISTINCT * len(values):
        return False
    return bool(values.str.split().str.len().mean() >= MIN_TEXT_WORDS)


def _check_text_columns(frame: pd.DataFrame, target: str, names: tuple[str, ...]) -> None:
    """Columns named as free text must exist, not be the target, and hold words, not numbers."""
    for name in names:
        if name not in frame.columns or name == target:
            why = "is the target" if name == target else "is not in the dataset"
            raise InvalidParameter(
                f"The text column '{name}' {why}. Name a feature column holding free text; the "
                f"columns are: {', '.join(map(str, frame.columns))}."
            )
        present = frame[name].dropna()
        if len(present) and pd.to_numeric(present, errors="coerce").notna().mean() >= 0.9:
            raise InvalidDataset(
                f"The text column '{name}' holds numbers (e.g. {present.iloc[0]!r}), not free "
                "text. Leave it out of --text-column: a column of numbers is used as numbers."
            )


def check_target(frame: pd.DataFrame, target: str, task: str) -> tuple[pd.DataFrame, Task]:
    """Validate the target column and decide the task; returns the rows whose target is known."""
    if task not in TASKS:
        raise InvalidParameter(f"The task '{task}' is not known. Use one of: {', '.join(TASKS)}.")
    if target not in frame.columns:
        raise InvalidTarget(
            f"The target column '{target}' is not in the dataset. Its columns are: "
            f"{', '.join(map(str, frame.columns))}. Pass one of them with --target (names are "
            "case-sensitive)."
        )
    labelled = frame[frame[target].notna()]
    if labelled.empty:
        raise InvalidTarget(
            f"Every value of the target column '{target}' is missing. The target needs a known "
            "value in each row used for training."
        )
    if len(labelled) < MIN_ROWS:
        raise InvalidDataset(
            f"Only {len(labelled)} rows have a value for '{target}'; training needs at least "
            f"{MIN_ROWS}. Add more rows."
        )
    series = labelled[target]
    resolved: Task
    if task == "auto":
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        many = series.nunique() > max(20, 0.05 * len(series))
        integral = numeric and bool((series.astype(float) % 1 == 0).all())
        resolved = "regression" if numeric and (many or not integral) else "classification"
    else:
        resolved = task  # type: ignore[assignment]
    if resolved == "regression":
        if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            raise InvalidTarget(
                f"Regression needs a numeric target, but '{target}' holds text such as "
                f"{series.iloc[0]!r}. Use --task classification, or pick a numeric column."
            )
        if series.nunique() < 2:
            raise InvalidTarget(
                f"The target '{target}' has the same value ({series.iloc[0]!r}) in every row, so "
                "there is nothing to learn. Pick a column whose value varies."
            )
        return labelled, resolved
    return _check_classes(labelled, target), resolved


def _check_classes(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    counts = frame[target].astype(str).value_counts()
    if len(counts) < 2:
        raise InvalidTarget(
            f"The target '{target}' has a single class ({counts.index[0]!r}) in all "
            f"{len(frame)} labelled rows; classification needs at least two. Add rows of another "
            "class, or pick another target."
        )
    rare = counts[counts < MIN_ROWS_PER_CLASS]
    if len(rare):
        raise InvalidTarget(
            f"The target '{target}' has {len(counts)} classes in {len(frame)} rows, and "
            f"{len(rare)} of them have fewer than {MIN_ROWS_PER_CLASS} rows (e.g. "
            f"{', '.join(map(repr, rare.index[:3]))}). Each class needs at least "
            f"{MIN_ROWS_PER_CLASS} rows to be learned and tested. Merge rare classes, drop their "
            "rows, or use --task regression if the target is a quantity."
        )
    return frame


def fingerprint(frame: pd.DataFrame) -> str:
    """A SHA-256 of the table's values and column names, stable across file formats."""
    digest = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
