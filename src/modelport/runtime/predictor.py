"""Predictor: an artifact's ONNX graph in onnxruntime, with input encoding and label mapping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from ..artifact import Manifest, ModelArtifact
from ..errors import InvalidInput, SchemaMismatch
from . import tabular


@dataclass
class Prediction:
    """Predictions for a batch of rows: labels (classification) or values (regression)."""

    predictions: np.ndarray
    probabilities: np.ndarray | None
    class_labels: list[Any] | None

    def __len__(self) -> int:
        return len(self.predictions)

    def probabilities_by_label(self) -> list[dict[str, float]] | None:
        """One ``{label: probability}`` per row, as the JSON API and the SDK return them."""
        if self.probabilities is None or self.class_labels is None:
            return None
        labels = [str(label) for label in self.class_labels]
        return [dict(zip(labels, row, strict=True)) for row in self.probabilities.tolist()]


class Predictor:
    """Runs one artifact; the only place in modelport where a prediction is computed."""

    def __init__(self, artifact: ModelArtifact, intra_op_threads: int = 0) -> None:
        self.manifest: Manifest = artifact.manifest
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                artifact.onnx, options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors on bad graphs
            raise InvalidInput(
                f"onnxruntime cannot load model '{self.manifest.name}': {exc}. The ONNX graph is "
                "invalid or uses operators this onnxruntime lacks; re-export it."
            ) from exc
        outputs = self.manifest.outputs
        self._output_names = [
            outputs[k] for k in ("label", "probabilities", "value") if k in outputs
        ]
        labels = self.manifest.class_labels
        self._labels = np.asarray(labels) if labels is not None else None

    def predict(self, rows: Any) -> Prediction:
        """Predict for rows given as dicts, columns, a DataFrame or a 2-D array."""
        return self.run(tabular.encode(self.manifest, tabular.to_columns(rows, self.manifest)))

    def run(self, feeds: dict[str, np.ndarray]) -> Prediction:
        """Predict from already encoded ONNX feeds."""
        try:
            results = dict(
                zip(self._output_names, self.session.run(self._output_names, feeds), strict=False)
            )
        except Exception as exc:  # onnxruntime's InvalidArgument/Fail carry the useful text
            raise SchemaMismatch(f"Model '{self.manifest.name}' rejected the input: {exc}") from exc
        outputs = self.manifest.outputs
        if "value" in outputs:
            values = np.asarray(results[outputs["value"]], dtype=np.float64).reshape(-1)
            return Prediction(values, None, None)
        probabilities = results.get(outputs.get("probabilities", ""))
        labels = np.asarray(results[outputs["label"]]).reshape(-1)
        if self.manifest.label_is_index and self._labels is not None:
            labels = self._labels[labels]
        return Prediction(labels, probabilities, self.manifest.class_labels)
