"""Reading a user's ONNX graph: its tabular inputs, its outputs and its class labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..artifact import ColumnSpec, Task
from ..errors import InvalidInput

CLASS_LABEL_ATTRIBUTES = ("classlabels_int64s", "classlabels_ints", "classlabels_strings")
"""Where ai.onnx.ml operators list class labels (LinearClassifier and SVMClassifier in _ints)."""


@dataclass
class GraphInfo:
    """What modelport needs to know about an imported ONNX graph."""

    onnx: bytes
    task: Task
    columns: list[ColumnSpec]
    layout: str
    matrix_input: str | None
    outputs: dict[str, str]
    class_labels: list[Any] | None


def describe(data: bytes, sample_columns: list[str] | None) -> GraphInfo:
    """Validate ``data`` as ONNX and describe it; a ZipMap output is replaced by its tensor."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_from_string(data)
        onnx.checker.check_model(model)
    except (DecodeError, onnx.checker.ValidationError, ValueError) as exc:
        raise InvalidInput(
            f"The file is not a valid ONNX model: {exc}. Export it again from its framework "
            "(e.g. skl2onnx, torch.onnx.export)."
        ) from exc
    labels = class_labels(model)
    _strip_zipmap(model, labels)
    columns, layout, matrix_input = _inputs(model, sample_columns)
    task, outputs = _outputs(model)
    return GraphInfo(
        model.SerializeToString(),
        task,
        columns,
        layout,
        matrix_input,
        outputs,
        labels if task == "classification" else None,
    )


def class_labels(model: Any) -> list[Any] | None:
    """The class labels the graph's classifier outputs (an ONNX ModelProto), or None."""
    from onnx import helper

    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.name in CLASS_LABEL_ATTRIBUTES:
                values = helper.get_attribute_value(attribute)
                return [v.decode() if isinstance(v, bytes) else int(v) for v in values]
    return None


def _strip_zipmap(model: Any, labels: list[Any] | None) -> None:
    from onnx import TensorProto, helper

    for node in list(model.graph.node):
        if node.op_type != "ZipMap":
            continue
        model.graph.node.remove(node)
        for i, output in enumerate(model.graph.output):
            if output.name == node.output[0]:
                width = len(labels) if labels else None
                model.graph.output[i].CopyFrom(
                    helper.make_tensor_value_info(node.input[0], TensorProto.FLOAT, [None, width])
                )


def _dims(value: Any) -> list[int | None]:
    return [
        d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim
    ]


def _inputs(
    model: Any, sample_columns: list[str] | None
) -> tuple[list[ColumnSpec], str, str | None]:
    from onnx import TensorProto

    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    kinds = {TensorProto.FLOAT: "number", TensorProto.STRING: "string"}
    for value in inputs:
        kind = value.type.tensor_type.elem_type
        if kind not in kinds or len(_dims(value)) != 2:
            raise InvalidInput(
                f"ONNX input '{value.name}' is not a tabular input: modelport imports graphs whose "
                "inputs are float or string tensors of shape [n, features] (one matrix) or [n, 1] "
                "(one per column). Re-export the model with such inputs."
            )
    if len(inputs) == 1 and _dims(inputs[0])[1] != 1:
        value = inputs[0]
        width = _dims(value)[1]
        if kinds[value.type.tensor_type.elem_type] != "number":
            raise InvalidInput(
                f"ONNX input '{value.name}' is a string matrix; only float matrices are supported."
            )
        if sample_columns is not None and (width is None or width == len(sample_columns)):
            names = sample_columns
        elif width is not None:
            names = [f"f{i}" for i in range(width)]
        else:
            raise InvalidInput(
                f"ONNX input '{value.name}' has no fixed number of features; pass --sample ROWS.csv "
                "so its columns name them."
            )
        return [ColumnSpec(n, "number") for n in names], "matrix", value.name
    columns = [
        ColumnSpec(
            v.name,
            kinds[v.type.tensor_type.elem_type],
            v.name,
            categorical=v.type.tensor_type.elem_type == TensorProto.STRING,
        )
        for v in inputs
    ]
    return columns, "columns", None


def _outputs(model: Any) -> tuple[Task, dict[str, str]]:
    from onnx import TensorProto

    outputs = list(model.graph.output)
    floats = [o.name for o in outputs if o.type.tensor_type.elem_type == TensorProto.FLOAT]
    others = [o.name for o in outputs if o.name not in floats]
    if len(outputs) == 1 and floats:
        return "regression", {"value": floats[0]}
    if len(outputs) == 2 and len(floats) == 1 and len(others) == 1:
        return "classification", {"label": others[0], "probabilities": floats[0]}
    raise InvalidInput(
        f"The ONNX graph's outputs ({', '.join(o.name for o in outputs)}) are neither one float "
        "output (regression) nor a label plus a float probability tensor (classification). "
        "Re-export it with one of those output layouts."
    )
