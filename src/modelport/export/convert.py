"""Conversion of scikit-learn pipelines (with LightGBM / XGBoost inside) to ONNX bytes."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..artifact import ColumnSpec
from ..errors import ExportError
from .labels import labels_from_probabilities
from .thresholds import align_lightgbm

OPSET = {"": 17, "ai.onnx.ml": 3}
LABEL, PROBABILITIES, VALUE = "label", "probabilities", "variable"


@dataclass
class Converted:
    """ONNX bytes and the graph's input and output names."""

    onnx: bytes
    input_names: list[str]
    outputs: dict[str, str]


@functools.cache
def register_boosters() -> None:
    """Teach skl2onnx the LightGBM and XGBoost estimators through onnxmltools' converters."""
    from lightgbm import LGBMClassifier, LGBMRegressor
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    from xgboost import XGBClassifier, XGBRegressor

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    for model, alias, convert in [
        (LGBMClassifier, "LightGbmLGBMClassifier", convert_lightgbm),
        (XGBClassifier, "XGBoostXGBClassifier", convert_xgboost),
    ]:
        update_registered_converter(
            model,
            alias,
            calculate_linear_classifier_output_shapes,
            convert,
            options=classifier_options,
        )
    for model, alias, convert in [
        (LGBMRegressor, "LightGbmLGBMRegressor", convert_lightgbm),
        (XGBRegressor, "XGBoostXGBRegressor", convert_xgboost),
    ]:
        update_registered_converter(model, alias, calculate_linear_regressor_output_shapes, convert)


def sklearn_to_onnx(
    model: Any,
    columns: list[ColumnSpec],
    layout: str,
    classifier: bool,
    class_labels: list[Any] | None = None,
) -> Converted:
    """Convert a fitted scikit-learn model or pipeline; ``layout`` is "columns" or "matrix".

    The graph carries the column names and class labels in its metadata, so a plain exported
    ``.onnx`` file still says what its label indices mean.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    register_boosters()
    if layout == "columns":
        types = [
            (
                c.name,
                FloatTensorType([None, 1]) if c.dtype == "number" else StringTensorType([None, 1]),
            )
            for c in columns
        ]
    else:
        types = [("input", FloatTensorType([None, len(columns)]))]
    options = {id(model): {"zipmap": False}} if classifier else None
    try:
        with _positional_xgboost_features(model):
            proto = convert_sklearn(model, initial_types=types, options=options, target_opset=OPSET)
        booster = getattr(_final(model), "booster_", None)
        if type(booster).__module__.startswith("lightgbm"):
            align_lightgbm(proto, booster)
        if classifier:
            labels_from_probabilities(proto)
    except Exception as exc:  # skl2onnx raises RuntimeError, ValueError, NameError, TypeError ...
        raise ExportError(
            f"{_describe(model)} cannot be converted to ONNX: {exc}. Use an estimator skl2onnx "
            "supports (see its list of converters) or register a converter for it."
        ) from exc
    _unique_opsets(proto)
    describe_graph(proto, columns, class_labels)
    inputs = [i.name for i in proto.graph.input]
    outputs = [o.name for o in proto.graph.output]
    roles = (
        {"label": outputs[0], "probabilities": outputs[1]} if classifier else {"value": outputs[0]}
    )
    return Converted(proto.SerializeToString(), inputs, roles)


@contextlib.contextmanager
def _positional_xgboost_features(model: Any) -> Iterator[None]:
    """onnxmltools reads XGBoost features only as 'f0', 'f1' ...: hide real names while converting."""
    final = _final(model)
    booster = final.get_booster() if type(final).__module__.startswith("xgboost") else None
    names = booster.feature_names if booster is not None else None
    if names is None:
        yield
        return
    booster.feature_names = None
    try:
        yield
    finally:
        booster.feature_names = names


def _unique_opsets(proto: Any) -> None:
    """One opset import per domain: skl2onnx lists the default domain twice in graphs of
    ai.onnx.ml operators only, which onnxruntime's quantiser refuses ("Failed to find proper
    ai.onnx domain")."""
    versions: dict[str, int] = {}
    for opset in proto.opset_import:
        versions[opset.domain] = max(opset.version, versions.get(opset.domain, 0))
    if len(versions) < len(proto.opset_import):
        del proto.opset_import[:]
        for domain, version in versions.items():
            proto.opset_import.add(domain=domain, version=version)


def describe_graph(proto: Any, columns: list[ColumnSpec], class_labels: list[Any] | None) -> None:
    """Write modelport's description into the ONNX metadata (readable by any runtime)."""
    from onnx import helper

    props = {"modelport.columns": json.dumps([c.name for c in columns])}
    if class_labels is not None:
        props["modelport.class_labels"] = json.dumps(class_labels)
    helper.set_model_props(proto, props)


def _final(model: Any) -> Any:
    """The estimator at the end of a pipeline (or the model itself)."""
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def _describe(model: Any) -> str:
    return type(_final(model)).__name__
