"""Exact float32 split thresholds for LightGBM trees in ONNX.

LightGBM compares ``x <= t`` with ``t`` a double; ONNX tree ensembles store ``t`` as float32,
rounded to nearest. When the rounding goes up, a float32 input equal to the rounded value takes
the other branch (measured: 4 of 8 LightGBM runs on penguins moved raw scores by up to 0.18 and
failed the parity check). For a float32 ``x``, ``x <= t`` holds exactly when ``x <= t'`` with
``t'`` the largest float32 not above ``t``: each threshold is replaced by that value.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")


def align_lightgbm(proto: Any, booster: Any) -> None:
    """Rewrite, in place, the thresholds LightGBM's float32 rounding would move across inputs."""
    from onnx import helper

    rounded_up = _rounded_up_thresholds(booster.dump_model()["tree_info"])
    for node in proto.graph.node:
        if node.op_type not in TREE_OPS:
            continue
        attributes = {a.name: a for a in node.attribute}
        if "nodes_values" not in attributes:
            continue
        features = list(attributes["nodes_featureids"].ints)
        modes = list(attributes["nodes_modes"].strings)
        values = np.array(attributes["nodes_values"].floats, dtype=np.float32)
        for i, (feature, mode) in enumerate(zip(features, modes, strict=True)):
            if mode == b"BRANCH_LEQ" and float(values[i]) in rounded_up[feature]:
                values[i] = np.nextafter(values[i], np.float32(-np.inf))
        node.attribute.remove(attributes["nodes_values"])
        node.attribute.append(helper.make_attribute("nodes_values", values.tolist()))


def _rounded_up_thresholds(trees: list[dict[str, Any]]) -> dict[int, set[float]]:
    """Per feature, the float32 values that some double threshold was rounded up to."""
    found: dict[int, set[float]] = defaultdict(set)
    stack = [tree["tree_structure"] for tree in trees]
    while stack:
        node = stack.pop()
        if "split_index" not in node:
            continue
        threshold = node["threshold"]
        if isinstance(threshold, float):  # categorical splits hold a string of categories
            rounded = np.float32(threshold)
            if float(rounded) > threshold:
                found[node["split_feature"]].add(float(rounded))
        stack.extend((node["left_child"], node["right_child"]))
    return found
