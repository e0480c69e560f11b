"""Labels of binary tree classifiers: the class of the highest probability, as the models say.

onnxruntime's TreeEnsembleClassifier picks a binary label from the summed leaf weights with a
rule made for forests of probabilities: when no leaf weight is negative, the positive class wins
only above 0.5 (above 0 otherwise). Boosters sum log-odds, whose threshold is 0, and LightGBM
puts the average log-odds of the target into the leaves of its first tree: when that tree is
(nearly) the whole model, as in FLAML trials cut short by the time budget, and the target is
mostly positive, every leaf is positive. Every row with log-odds in (0, 0.5] then got the
negative label while its probabilities stayed right (measured: one LightGBM tree on
breast-cancer, 215 of 569 labels wrong, probabilities 5e-8 apart; hosted jobs with a 4 s budget
failed 1 run in 3 this way).

The graph's label is therefore recomputed from its probability output: ArgMax over the classes
(the first on ties, like numpy's argmax in ``predict``), then the class label at that index.
"""

from __future__ import annotations

from typing import Any

TREE_CLASSIFIER = "TreeEnsembleClassifier"
DEFAULT_DOMAIN_OPSET = 13


def labels_from_probabilities(proto: Any) -> None:
    """Rewrite, in place, the label output of every two-class tree ensemble classifier."""
    from onnx import NodeProto, helper

    names = _names(proto)
    nodes = []
    for original in proto.graph.node:
        node = NodeProto()
        node.CopyFrom(original)
        nodes.append(node)
        classes = _two_classes(node)
        if classes is None or len(node.output) < 2 or not node.output[1]:
            continue
        label, probabilities = node.output[0], node.output[1]
        by_score, index, table, gather = (
            _fresh(names, f"{label}_{role}") for role in ("by_score", "index", "classes", "gather")
        )
        node.output[0] = by_score
        nodes += [
            helper.make_node("ArgMax", [probabilities], [index], name=index, axis=1, keepdims=0),
            helper.make_node("Constant", [], [table], name=table, value=classes),
            helper.make_node("Gather", [table, index], [label], name=gather, axis=0),
        ]
    if len(nodes) == len(proto.graph.node):
        return
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    if not any(opset.domain == "" for opset in proto.opset_import):
        proto.opset_import.add(domain="", version=DEFAULT_DOMAIN_OPSET)


def _two_classes(node: Any) -> Any:
    """A tree classifier's two class labels as a tensor; None for other nodes."""
    from onnx import TensorProto, helper

    if node.op_type != TREE_CLASSIFIER:
        return None
    for attribute in node.attribute:
        if attribute.name == "classlabels_int64s" and len(attribute.ints) == 2:
            return helper.make_tensor("classes", TensorProto.INT64, [2], list(attribute.ints))
        if attribute.name == "classlabels_strings" and len(attribute.strings) == 2:
            return helper.make_tensor("classes", TensorProto.STRING, [2], list(attribute.strings))
    return None


def _names(proto: Any) -> set[str]:
    """Every value and node name in the graph."""
    graph = proto.graph
    names = {name for node in graph.node for name in (*node.input, *node.output, node.name)}
    return names | {v.name for v in (*graph.input, *graph.output, *graph.initializer)}


def _fresh(names: set[str], base: str) -> str:
    """``base``, or ``base_1``, ``base_2`` ...: the first not in ``names`` (which it joins)."""
    name, i = base, 0
    while name in names:
        i += 1
        name = f"{base}_{i}"
    names.add(name)
    return name
