"""Turn rows (dicts, columns, DataFrames, arrays) into the ONNX inputs a manifest describes.

This is the careful path of tabular encoding, for training, the CLI, the server and the client:
it converts anything (numbers become float32, missing -> NaN, imputed inside the graph; categories
become strings, missing -> "", which the graph treats like any unseen category; free text is
normalised by runtime/text.py) and names what is wrong. Predictions go through runtime/plan.py, which packs the common forms in a few numpy steps
and hands everything else to these functions, so both give the same feeds and the same errors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..artifact import ColumnSpec, Manifest
from ..errors import SchemaMismatch
from . import text

MISSING_TOKENS = frozenset({"", "?", "na", "nan", "null", "none"})

Columns = Mapping[str, Any]


def to_columns(rows: Any, manifest: Manifest) -> Columns:
    """Accept a DataFrame, a dict of columns, one row as a dict, a list of row dicts, or a 2-D array."""
    if hasattr(rows, "columns") and hasattr(rows, "to_numpy"):  # a pandas DataFrame
        return {str(c): rows[c].to_numpy() for c in rows.columns}
    if isinstance(rows, Mapping):
        if all(is_sequence(v) for v in rows.values()):
            return rows
        return {k: [v] for k, v in rows.items()}
    if isinstance(rows, np.ndarray):
        return _matrix_columns(rows, manifest)
    if isinstance(rows, Sequence) and not isinstance(rows, str):
        if not rows:
            raise SchemaMismatch(
                "There are no rows to predict: the list of rows is empty. Send at least one row "
                f"with the columns {', '.join(manifest.columns)}."
            )
        if all(isinstance(r, Mapping) for r in rows):
            # only the model's columns; one absent from every row is reported by encode()
            present = set().union(*rows)
            return {
                name: [r.get(name) for r in rows] for name in manifest.columns if name in present
            }
        if all(is_sequence(r) for r in rows):
            return _matrix_columns(np.asarray(rows, dtype=object), manifest)
    raise SchemaMismatch(
        f"Cannot read rows of type {type(rows).__name__}. Pass a list of dicts "
        "([{'age': 30, ...}]), a dict of columns ({'age': [30, 41]}), a pandas DataFrame or a "
        f"2-D array with the columns {', '.join(manifest.columns)} in that order."
    )


def encode(manifest: Manifest, columns: Columns) -> dict[str, np.ndarray]:
    """The ONNX feeds for ``columns``; raises SchemaMismatch naming what is missing or wrong."""
    missing = [c.name for c in manifest.inputs if c.name not in columns]
    if missing:
        raise SchemaMismatch(
            f"The input lacks the column(s) {', '.join(map(repr, missing))} that model "
            f"'{manifest.name}' needs. It expects {', '.join(manifest.columns)} (any order; extra "
            "columns are ignored). Add the missing columns; leave a value empty if it is unknown."
        )
    encoded = [encode_column(spec, columns[spec.name]) for spec in manifest.inputs]
    lengths = {len(a) for a in encoded}
    if len(lengths) > 1:
        raise SchemaMismatch(
            "The input's columns have different lengths "
            f"({', '.join(f'{c.name}={len(a)}' for c, a in zip(manifest.inputs, encoded, strict=False))}). "
            "Every column needs one value per row."
        )
    if manifest.input_layout == "matrix":
        assert manifest.matrix_input is not None
        return {manifest.matrix_input: np.hstack(encoded) if encoded else np.empty((0, 0))}
    if manifest.inputs and all(spec.dtype == "text" for spec in manifest.inputs):
        text.check_not_empty(manifest.columns, [array.ravel() for array in encoded])
    return {
        spec.onnx_name or spec.name: array
        for spec, array in zip(manifest.inputs, encoded, strict=False)
    }


def encode_column(spec: ColumnSpec, values: Any) -> np.ndarray:
    """One column as an [n, 1] array: float32 numbers, str categories or normalised text."""
    if spec.dtype == "number":
        return _numbers(spec.name, values).reshape(-1, 1)
    if spec.dtype == "text":
        return text.encode_texts(spec.name, values, spec.normalize).reshape(-1, 1)
    return as_text(values).reshape(-1, 1)


def _numbers(name: str, values: Any) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        return values.astype(np.float32, copy=False)
    try:
        return np.array(values, dtype=np.float32)  # None -> NaN, "3.5" -> 3.5
    except (TypeError, ValueError):
        pass
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    out = np.empty(len(items), dtype=np.float32)
    for i, value in enumerate(items):
        if value is None or (isinstance(value, str) and value.strip().lower() in MISSING_TOKENS):
            out[i] = np.nan
            continue
        try:
            out[i] = float(value)
        except (TypeError, ValueError):
            raise SchemaMismatch(
                f"Column '{name}' must hold numbers, but row {i + 1} has {value!r}. Send a number, "
                "or leave the value empty (null) if it is unknown."
            ) from None
    return out


def as_text(values: Any) -> np.ndarray:
    """Values as the graph's text: str kept, None/NaN -> "", 3.0 -> "3", anything else str()."""
    items = values.tolist() if isinstance(values, np.ndarray) else values
    out = np.empty(len(items), dtype=object)
    out[:] = [v if type(v) is str else _category(v) for v in items]
    return out


def _category(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) if not isinstance(value, str) else value


def is_sequence(value: Any) -> bool:
    """Whether ``value`` holds several values (a column), not one."""
    return isinstance(value, (list, tuple, np.ndarray)) or hasattr(value, "to_numpy")


def _matrix_columns(array: np.ndarray, manifest: Manifest) -> Columns:
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[1] != len(manifest.inputs):
        raise SchemaMismatch(
            f"A 2-D array for model '{manifest.name}' needs {len(manifest.inputs)} columns "
            f"({', '.join(manifest.columns)}), but it has shape {array.shape}."
        )
    return {spec.name: array[:, i] for i, spec in enumerate(manifest.inputs)}


def unseen_categories(manifest: Manifest, columns: Columns) -> dict[str, int]:
    """How many values per categorical column were never seen in training (for reports)."""
    counts = {}
    for spec in manifest.inputs:
        if spec.categorical and spec.categories is not None and spec.name in columns:
            values = as_text(columns[spec.name])
            known = np.array(spec.categories, dtype=object)
            unseen = int((~np.isin(values, known) & (values != "")).sum())
            if unseen:
                counts[spec.name] = unseen
    return counts


def encode_tensors(manifest: Manifest, tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """ONNX feeds from named wire tensors (one per column, or the matrix input), strictly checked.

    Unlike :func:`encode`, unknown names are errors: protocol clients name inputs exactly.
    """
    if manifest.input_layout == "matrix" and manifest.matrix_input in tensors:
        matrix = tensors[manifest.matrix_input]
        if len(tensors) > 1 or matrix.dtype.kind not in "fiub":
            raise SchemaMismatch(
                f"Model '{manifest.name}' takes one numeric input '{manifest.matrix_input}'."
            )
        width = len(manifest.inputs)
        if matrix.size % max(width, 1):
            raise SchemaMismatch(
                f"Input '{manifest.matrix_input}' needs {width} values per row, but has "
                f"{matrix.size} values in shape {list(matrix.shape)}."
            )
        return {manifest.matrix_input: matrix.astype(np.float32, copy=False).reshape(-1, width)}
    known = {c.name for c in manifest.inputs}
    unknown = [name for name in tensors if name not in known]
    if unknown:
        raise SchemaMismatch(
            f"Model '{manifest.name}' has no input named {', '.join(map(repr, unknown))}. Its "
            f"inputs are {', '.join(manifest.columns)} (see the model's metadata)."
        )
    columns = {}
    for spec in manifest.inputs:
        tensor = tensors.get(spec.name)
        if tensor is None:
            continue  # encode() names every missing column at once
        if tensor.ndim > 2 or (tensor.ndim == 2 and tensor.shape[1] != 1):
            raise SchemaMismatch(
                f"Input '{spec.name}' must have shape [n] or [n, 1], not {list(tensor.shape)}."
            )
        if spec.dtype == "number" and tensor.dtype.kind not in "fiub":
            raise SchemaMismatch(
                f"Input '{spec.name}' holds numbers: send FP32, FP64 or an integer type, not text."
            )
        if spec.dtype != "number" and tensor.dtype.kind in "fiub":
            what = "free text" if spec.dtype == "text" else "text categories"
            raise SchemaMismatch(f"Input '{spec.name}' holds {what}: send BYTES.")
        columns[spec.name] = tensor.reshape(-1)
    return encode(manifest, columns)
