"""Import of existing models: ONNX files, scikit-learn pipelines, LightGBM and XGBoost boosters.

Every import ends as a :class:`ModelArtifact`; for non-ONNX models the sample rows fix the input
schema and prove that the ONNX graph predicts what the original model predicts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..artifact import ColumnSpec, ModelArtifact
from ..errors import ExportError, InvalidInput
from ..runtime import Predictor
from ..train.versions import library_versions
from . import onnx_graph, parity
from .convert import Converted, describe_graph, sklearn_to_onnx
from .labels import labels_from_probabilities
from .quantize import int8_variant
from .thresholds import align_lightgbm

PICKLE_SUFFIXES = {".joblib", ".pkl", ".pickle"}
KNOWN_SUFFIXES = {".zip", ".onnx", ".skops", ".txt", ".json", ".ubj", *PICKLE_SUFFIXES}
SUPPORTED = (
    ".zip (a modelport bundle), .onnx, .joblib/.pkl (scikit-learn), .skops, .txt (LightGBM) or "
    ".json/.ubj (XGBoost)"
)


def import_file(path: str | Path, name: str, sample: str | Path | None = None) -> ModelArtifact:
    """Turn the model file at ``path`` into an artifact named ``name``."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(
            f"The model file '{path}' does not exist. Give the path of a {SUPPORTED} file."
        )
    suffix = path.suffix.lower()
    if suffix not in KNOWN_SUFFIXES:
        raise InvalidInput(f"'{path.name}' has an unknown model format. Supported: {SUPPORTED}.")
    rows = _read_sample(sample) if sample is not None else None
    if suffix == ".zip":
        artifact = ModelArtifact.load(path)
        artifact.manifest.name = name
        return artifact
    if suffix == ".onnx":
        artifact = import_onnx(path.read_bytes(), name, rows)
    else:
        if rows is None:
            raise InvalidInput(
                f"Importing '{path.name}' needs sample input rows: pass --sample ROWS.csv with the "
                "columns the model was trained on (a few hundred rows; no target column). They set "
                "the input schema and prove the ONNX copy predicts the same."
            )
        artifact = import_estimator(_load_estimator(path, suffix), name, rows)
    artifact.manifest.source.setdefault("file", path.name)
    artifact.manifest.library_versions = library_versions()
    return artifact


def _read_sample(sample: str | Path) -> pd.DataFrame:
    from ..data import read_table

    return read_table(sample)


def _load_estimator(path: Path, suffix: str) -> Any:
    try:
        if suffix in PICKLE_SUFFIXES:
            import joblib

            return joblib.load(path)
        if suffix == ".skops":
            import skops.io as sio

            # NOTE: the user imports their own file; the types it names are trusted by that choice.
            return sio.load(path, trusted=sio.get_untrusted_types(file=path))
        if suffix == ".txt":
            import lightgbm

            return lightgbm.Booster(model_file=str(path))
        if suffix in {".json", ".ubj"}:
            return _load_xgboost(path)
    except InvalidInput:
        raise
    except Exception as exc:  # each library has its own error types for a bad file
        raise InvalidInput(
            f"'{path.name}' cannot be loaded as a {suffix} model: {exc}. Check that the file is "
            "complete and was saved by the library its extension names."
        ) from exc
    raise AssertionError(f"no loader for {suffix}")  # import_file checked the suffix


def _load_xgboost(path: Path) -> Any:
    import json

    import xgboost

    booster = xgboost.Booster(model_file=str(path))
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    model = xgboost.XGBRegressor() if objective.startswith("reg:") else xgboost.XGBClassifier()
    model.load_model(str(path))
    return model


def import_estimator(model: Any, name: str, sample: pd.DataFrame) -> ModelArtifact:
    """Convert a fitted scikit-learn-compatible model or LightGBM Booster, with a parity check."""
    import lightgbm
    from sklearn.base import is_classifier

    if isinstance(model, lightgbm.Booster):
        return _import_booster(model, name, sample)
    classifier = is_classifier(model)
    columns = _feature_columns(getattr(model, "feature_names_in_", None), sample)
    layout = "columns" if _takes_frame(model, columns) else "matrix"
    classes = getattr(model, "classes_", None)
    labels = np.asarray(classes).tolist() if classes is not None else None
    converted = sklearn_to_onnx(model, columns, layout, classifier, labels)
    rows = sample[[c.name for c in columns]]
    named = layout == "columns" or hasattr(model, "feature_names_in_")
    native = rows if named else rows.to_numpy(dtype=np.float32)
    expected_proba = None
    if classifier and hasattr(model, "predict_proba"):
        expected_proba = model.predict_proba(native)
    return _checked_artifact(
        converted,
        name,
        columns,
        layout,
        type(model).__name__,
        rows,
        classes=labels,
        expected=model.predict(native),
        expected_proba=expected_proba,
        label_is_index=_labels_are_positions(converted.onnx, labels),
    )


def _labels_are_positions(onnx: bytes, classes: list[Any] | None) -> bool:
    """True when the graph outputs each class's position rather than the class itself.

    skl2onnx writes boolean classes as the integers 0 and 1 (``int(False)``, ``int(True)``), which
    are their positions in the sorted ``classes_``; the label ``1`` must read back as ``True``.
    """
    import onnx as onnx_lib

    if classes is None:
        return False
    graph_labels = onnx_graph.class_labels(onnx_lib.load_from_string(onnx))
    if graph_labels is None or [str(c) for c in graph_labels] == [str(c) for c in classes]:
        return False
    return graph_labels == list(range(len(classes)))


def _import_booster(booster: Any, name: str, sample: pd.DataFrame) -> ModelArtifact:
    """A LightGBM Booster saved with ``save_model``: onnxmltools converts it directly."""
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    columns = _feature_columns(
        _generic_names(booster.feature_name()), sample, booster.num_feature()
    )
    objective = str(booster.dump_model().get("objective", "regression")).split()[0]
    classifier = objective in {"binary", "multiclass", "multiclassova"}
    try:
        proto = convert_lightgbm(
            booster,
            initial_types=[("input", FloatTensorType([None, len(columns)]))],
            zipmap=False,
            target_opset=15,
        )
    except Exception as exc:  # onnxmltools raises plain errors for unsupported boosters
        raise ExportError(f"The LightGBM booster cannot be converted to ONNX: {exc}.") from exc
    align_lightgbm(proto, booster)
    if classifier:
        labels_from_probabilities(proto)
    classes = list(range(booster.num_model_per_iteration() if objective != "binary" else 2))
    describe_graph(proto, columns, classes if classifier else None)
    names = [o.name for o in proto.graph.output]
    outputs = {"label": names[0], "probabilities": names[1]} if classifier else {"value": names[0]}
    converted = Converted(proto.SerializeToString(), [proto.graph.input[0].name], outputs)
    rows = sample[[c.name for c in columns]]
    raw = booster.predict(rows.to_numpy(dtype=np.float32))
    proba = np.column_stack([1 - raw, raw]) if classifier and raw.ndim == 1 else raw
    return _checked_artifact(
        converted,
        name,
        columns,
        "matrix",
        "LightGBM Booster",
        rows,
        classes=classes if classifier else None,
        expected=proba.argmax(axis=1) if classifier else raw,
        expected_proba=proba if classifier else None,
    )


def _checked_artifact(
    converted: Converted,
    name: str,
    columns: list[ColumnSpec],
    layout: str,
    what: str,
    rows: pd.DataFrame,
    classes: list[Any] | None,
    expected: np.ndarray,
    expected_proba: np.ndarray | None,
    label_is_index: bool = False,
) -> ModelArtifact:
    """The artifact of a converted model, once its ONNX predictions match ``expected``."""
    if layout == "columns":
        columns = [
            ColumnSpec(c.name, c.dtype, onnx_name, c.categorical)
            for c, onnx_name in zip(columns, converted.input_names, strict=False)
        ]
    classifier = "label" in converted.outputs
    artifact = ModelArtifact.create(
        converted.onnx,
        name=name,
        task="classification" if classifier else "regression",
        inputs=columns,
        input_layout=layout,
        matrix_input=converted.input_names[0] if layout == "matrix" else None,
        outputs=converted.outputs,
        class_labels=classes,
        label_is_index=label_is_index,
        source={"kind": "import", "format": what},
    )
    onnx = Predictor(artifact).predict(rows)
    if classifier:
        report = parity.check_classifier(expected, expected_proba, onnx, what)
    else:
        report = parity.check_regressor(expected, onnx, what)
    artifact.manifest.source["parity"] = report.to_dict()
    # the int8 variant is scored by agreement with the original model on the sample
    variant = int8_variant(artifact, rows, np.asarray(expected))
    if variant is not None:
        artifact.manifest.variants = {"int8": variant.report}
        artifact.variants = {"int8": variant.onnx}
    return artifact


def _feature_columns(
    names: Any, sample: pd.DataFrame, width: int | None = None
) -> list[ColumnSpec]:
    """The model's input columns: its own feature names, else the sample's columns in order."""
    if names is None:
        names = list(sample.columns)[:width] if width is not None else list(sample.columns)
    names = [str(n) for n in names]
    missing = [n for n in names if n not in sample.columns]
    if missing or (width is not None and len(names) != width):
        raise InvalidInput(
            f"The sample does not match the model's inputs: the model takes "
            f"{width or len(names)} feature(s) ({', '.join(names)}), the sample has "
            f"{', '.join(map(str, sample.columns))}. Give a sample with the training columns, in "
            "training order."
        )
    return [
        ColumnSpec(
            n,
            "number" if pd.api.types.is_numeric_dtype(sample[n]) else "string",
            categorical=not pd.api.types.is_numeric_dtype(sample[n]),
        )
        for n in names
    ]


def _generic_names(names: list[str]) -> list[str] | None:
    """None for LightGBM's placeholder names (Column_0 ...), which say nothing about the data."""
    return None if all(n.startswith("Column_") for n in names) else names


def _takes_frame(model: Any, columns: list[ColumnSpec]) -> bool:
    from sklearn.compose import ColumnTransformer

    steps = getattr(model, "steps", None)
    first = steps[0][1] if steps else model
    return isinstance(first, ColumnTransformer) or any(c.dtype == "string" for c in columns)


def import_onnx(onnx: bytes, name: str, sample: pd.DataFrame | None) -> ModelArtifact:
    """Import a user's ONNX graph: read its inputs, outputs and class labels; run the sample."""
    graph = onnx_graph.describe(onnx, sample.columns.tolist() if sample is not None else None)
    artifact = ModelArtifact.create(
        graph.onnx,
        name=name,
        task=graph.task,
        inputs=graph.columns,
        input_layout=graph.layout,
        matrix_input=graph.matrix_input,
        outputs=graph.outputs,
        class_labels=graph.class_labels,
        source={"kind": "import", "format": "onnx"},
    )
    if sample is not None:
        try:
            Predictor(artifact).predict(sample)
        except InvalidInput as exc:
            raise ExportError(
                f"The ONNX model does not run on the sample rows: {exc.message}"
            ) from exc
    return artifact
