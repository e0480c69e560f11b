"""Smaller models for devices: a dynamic-int8 variant, kept only with its measured cost.

onnxruntime's dynamic quantisation stores MatMul/Gemm weights as int8 (≈4× smaller for an MLP) and
leaves tree ensembles as they are. The variant is measured on held-out rows against the fp32
graph; it becomes the default only when it is meaningfully smaller and loses at most one point
of accuracy (or 1 % R²).
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


@dataclass
class Variant:
    """A quantised graph and how it compares with fp32 on held-out rows."""

    onnx: bytes
    report: dict[str, Any]


def int8_variant(artifact: ModelArtifact, rows: Any, truth: np.ndarray) -> Variant | None:
    """Quantise ``artifact``'s graph and score both versions on ``rows`` (None: not possible)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="modelport-int8-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(artifact.onnx)
        logging.disable(logging.WARNING)  # it advises a pre-processing step tabular graphs lack
        try:
            quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        except Exception:  # e.g. graphs of ai.onnx.ml operators only: nothing to quantise
            return None
        finally:
            logging.disable(logging.NOTSET)
        int8 = target.read_bytes()
    quantised = ModelArtifact(int8, _with_graph(artifact, int8))
    fp32_score = _score(Predictor(artifact), rows, truth)
    int8_score = _score(Predictor(quantised), rows, truth)
    saving = 1 - len(int8) / len(artifact.onnx)
    loss = fp32_score - int8_score
    return Variant(
        int8,
        {
            "sha256": sha256_hex(int8),
            "size_bytes": len(int8),
            "fp32_size_bytes": len(artifact.onnx),
            "score": round(int8_score, 6),
            "fp32_score": round(fp32_score, 6),
            "metric": "accuracy" if artifact.manifest.task == "classification" else "r2",
            "recommended": bool(saving >= MIN_SAVING and loss <= MAX_LOSS),
        },
    )


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
