"""A trained linear head grafted onto a frozen image backbone: one ONNX graph for the new model.

The backbone (a zoo labeller) keeps its ``embedding`` output; the nodes and weights of its own
(ImageNet) head are pruned, and the new head is appended as plain ONNX nodes: optional L2
normalisation or standardisation of the embedding, MatMul + Add, Softmax and ArgMax. Outputs:
``probabilities`` [n, classes], ``label`` (the index of the best class) and ``embedding``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..artifact import ModelArtifact, sha256_hex
from ..errors import ExportError
from ..runtime.head import EPSILON, softmax, unit
from ..runtime.image import ImageSpec

EMBEDDING = "embedding"
OUTPUTS = ("probabilities", "label", EMBEDDING)


@dataclass(frozen=True)
class LinearHead:
    """``softmax(transform(x) @ coef.T + intercept)``; ``transform`` is L2 normalisation
    (``l2``), standardisation (``mean``/``scale``) or nothing."""

    coef: np.ndarray
    """[classes, features]"""
    intercept: np.ndarray
    l2: bool = False
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None

    @classmethod
    def from_sklearn(cls, model: Any, l2: bool = False, scaler: Any | None = None) -> LinearHead:
        """From a fitted LogisticRegression (two classes become a two-row softmax, which gives
        the same probabilities as its sigmoid) and an optional fitted StandardScaler."""
        coef = np.asarray(model.coef_, dtype=np.float64)
        intercept = np.asarray(model.intercept_, dtype=np.float64)
        if coef.shape[0] == 1:
            coef = np.vstack([np.zeros_like(coef), coef])
            intercept = np.concatenate([[0.0], intercept])
        mean = scale = None
        if scaler is not None:
            mean = np.asarray(scaler.mean_, dtype=np.float64)
            scale = np.asarray(scaler.scale_, dtype=np.float64)
        return cls(coef, intercept, l2, mean, scale)

    def transform(self, features: np.ndarray) -> np.ndarray:
        x = np.asarray(features, dtype=np.float64)
        if self.l2:
            x = unit(x)
        if self.mean is not None and self.scale is not None:
            x = (x - self.mean) / self.scale
        return x

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return softmax(self.transform(features) @ self.coef.T + self.intercept)


def with_view(backbone: ModelArtifact, spec: ImageSpec) -> ModelArtifact:
    """The backbone taking photos made by ``spec``: its input side set to ``spec.size``, which
    must be a multiple of 32 (the EfficientNet-Lite graphs' fixed "same" paddings then hold)."""
    import onnx

    if spec.size % 32:
        raise ExportError(f"A backbone view needs a side divisible by 32, not {spec.size}.")
    manifest = backbone.manifest
    if manifest.preprocessing.get("image") == spec.to_dict():
        return backbone
    model = onnx.load_from_string(backbone.onnx)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[1].dim_value = dims[2].dim_value = spec.size
    graph = model.SerializeToString()
    return ModelArtifact(
        graph,
        dataclasses.replace(
            manifest,
            sha256=sha256_hex(graph),
            size_bytes=len(graph),
            preprocessing={**manifest.preprocessing, "image": spec.to_dict()},
        ),
    )


def attach_head(backbone_onnx: bytes, head: LinearHead) -> bytes:
    """The backbone graph without its own head, with ``head`` on its embedding."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load_from_string(backbone_onnx)
    graph = model.graph
    _keep_only(graph, EMBEDDING)
    nodes, weights = [], []
    x = EMBEDDING

    def constant(name: str, value: np.ndarray) -> str:
        weights.append(numpy_helper.from_array(value.astype(np.float32), f"head.{name}"))
        return f"head.{name}"

    if head.l2:
        nodes.append(helper.make_node("ReduceL2", [x], ["head.norm"], axes=[1], keepdims=1))
        eps = constant("epsilon", np.array(EPSILON))
        nodes.append(helper.make_node("Max", ["head.norm", eps], ["head.norm_safe"]))
        nodes.append(helper.make_node("Div", [x, "head.norm_safe"], ["head.unit"]))
        x = "head.unit"
    if head.mean is not None and head.scale is not None:
        nodes.append(helper.make_node("Sub", [x, constant("mean", head.mean)], ["head.centred"]))
        nodes.append(
            helper.make_node("Div", ["head.centred", constant("scale", head.scale)], ["head.std"])
        )
        x = "head.std"
    nodes += [
        helper.make_node("MatMul", [x, constant("weight", head.coef.T)], ["head.product"]),
        helper.make_node("Add", ["head.product", constant("bias", head.intercept)], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    graph.node.extend(nodes)
    graph.initializer.extend(weights)
    classes = head.coef.shape[0]
    graph.output.insert(
        0, helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", classes])
    )
    graph.output.insert(1, helper.make_tensor_value_info("label", TensorProto.INT64, ["n"]))
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _keep_only(graph: Any, output: str) -> None:
    """Drop every output but ``output``, the nodes only they needed and unused weights."""
    outputs = [o for o in graph.output if o.name == output]
    del graph.output[:]
    graph.output.extend(outputs)
    needed = {output}
    kept = []
    for node in reversed(graph.node):
        if any(name in needed for name in node.output):
            kept.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    weights = [w for w in graph.initializer if w.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(weights)
