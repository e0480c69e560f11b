"""Hand-built ONNX artifacts for store and runtime tests (no training needed)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from modelport.artifact import ColumnSpec, ModelArtifact


def linear_artifact(name: str = "linear", scale: float = 1.0, padding: int = 0) -> ModelArtifact:
    """Regression ``value = a * scale + b``; ``padding`` bytes of unused weights enlarge the file."""
    nodes = [
        helper.make_node("Mul", ["a", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "b"], ["value"]),
    ]
    initializers = [numpy_helper.from_array(np.array([scale], dtype=np.float32), "scale")]
    if padding:
        noise = np.random.default_rng(int(scale * 1000)).random(padding // 4, dtype=np.float32)
        initializers.append(numpy_helper.from_array(noise, "padding"))
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 1]) for n in ("a", "b")],
        [helper.make_tensor_value_info("value", TensorProto.FLOAT, [None, 1])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return ModelArtifact.create(
        model.SerializeToString(),
        name=name,
        task="regression",
        inputs=[ColumnSpec("a", "number", "a"), ColumnSpec("b", "number", "b")],
        outputs={"value": "value"},
    )
