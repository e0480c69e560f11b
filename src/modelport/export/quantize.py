"""Smaller models for devices: a dynamic-int8 variant, kept only with its measured cost.

onnxruntime's dynamic quantisation stores MatMul/Conv weights as int8 (≈4× smaller for an MLP) and
leaves tree ensembles and ai.onnx.ml linear models as they are. The variant is measured on
held-out rows against the fp32 graph; it becomes the default only when it is meaningfully smaller
and loses at most one point of accuracy (or 1 % R²). Whatever happens is said in the manifest:
the variant's report gives the ``reason`` devices keep fp32, and a variant that could not be made
at all is named in ``skipped_variants`` with why.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..artifact import ModelArtifact, sha256_hex
from ..runtime import Predictor

MAX_LOSS = 0.01
MIN_SAVING = 0.10
NOTHING_QUANTISED = (
    "nothing to quantise: the graph has no MatMul, Conv, Gather or LSTM weights (tree "
    "ensembles and ai.onnx.ml linear models have no int8 form), so the int8 copy is no smaller "
    "than fp32"
)


@dataclass
class Variant:
    """A quantised graph and how it compares with fp32 on held-out rows."""

    onnx: bytes
    report: dict[str, Any]


def int8_variant(artifact: ModelArtifact, rows: Any, truth: np.ndarray) -> Variant | None:
    """Quantise ``artifact``'s graph and score both versions on ``rows``.

    None when no int8 graph could be made; then ``artifact.manifest.skipped_variants["int8"]``
    says why (callers build the registered manifest from this one, so the reason reaches it).
    """
    skipped = artifact.manifest.skipped_variants
    skipped.pop("int8", None)
    try:
        int8 = _quantise(artifact.onnx)
    except Exception as exc:  # onnxruntime raises plain ValueError, RuntimeError ...
        skipped["int8"] = f"onnxruntime could not quantise the graph: {exc}"
        return None
    quantised = ModelArtifact(int8, _with_graph(artifact, int8))
    fp32_score = _score(Predictor(artifact), rows, truth)
    try:
        int8_score = _score(Predictor(quantised), rows, truth)
    except Exception as exc:  # e.g. an int8 kernel this onnxruntime build lacks
        skipped["int8"] = f"the quantised graph does not run: {exc}"
        return None
    metric = "accuracy" if artifact.manifest.task == "classification" else "r2"
    saving = 1 - len(int8) / len(artifact.onnx)
    loss = fp32_score - int8_score
    report: dict[str, Any] = {
        "sha256": sha256_hex(int8),
        "size_bytes": len(int8),
        "fp32_size_bytes": len(artifact.onnx),
        "score": round(int8_score, 6),
        "fp32_score": round(fp32_score, 6),
        "metric": metric,
        "recommended": bool(saving >= MIN_SAVING and loss <= MAX_LOSS),
    }
    if not report["recommended"]:
        report["reason"] = _why_not(int8, saving, loss, metric)
    return Variant(int8, report)


def _quantise(onnx: bytes) -> bytes:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="modelport-int8-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(onnx)
        logging.disable(logging.WARNING)  # it advises a pre-processing step tabular graphs lack
        try:
            quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        finally:
            logging.disable(logging.NOTSET)
        return target.read_bytes()


def _why_not(int8: bytes, saving: float, loss: float, metric: str) -> str:
    """Why devices keep fp32: in the words of the rule in the module docstring."""
    if not _has_int8_weights(int8):
        return NOTHING_QUANTISED
    reasons = []
    if saving < MIN_SAVING:
        size = f"{saving:.0%} smaller" if saving >= 0 else f"{-saving:.0%} larger"
        reasons.append(f"it is {size} than fp32 (devices need {MIN_SAVING:.0%} smaller)")
    if loss > MAX_LOSS:
        reasons.append(
            f"it loses {loss:.4f} {metric} (devices accept a loss of at most {MAX_LOSS:g})"
        )
    return "; ".join(reasons)


def _has_int8_weights(onnx: bytes) -> bool:
    from onnx import TensorProto, load_from_string

    graph = load_from_string(onnx).graph
    return any(t.data_type in (TensorProto.INT8, TensorProto.UINT8) for t in graph.initializer)


def _with_graph(artifact: ModelArtifact, onnx: bytes) -> Any:
    import dataclasses

    return dataclasses.replace(artifact.manifest, sha256=sha256_hex(onnx), size_bytes=len(onnx))


def _score(predictor: Predictor, rows: Any, truth: np.ndarray) -> float:
    predicted = predictor.predict(rows).predictions
    if predictor.manifest.task == "classification":
        return float(np.mean(predicted.astype(str) == np.asarray(truth).astype(str)))
    truth = np.asarray(truth, dtype=np.float64)
    residual = np.sum((truth - predicted) ** 2)
    return float(1 - residual / max(np.sum((truth - truth.mean()) ** 2), 1e-12))
