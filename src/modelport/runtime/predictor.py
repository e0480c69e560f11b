"""Predictor: an artifact's ONNX graph in onnxruntime, with input encoding and label mapping."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort

from ..artifact import Manifest, ModelArtifact
from ..errors import InvalidInput, SchemaMismatch
from . import image
from .audio_plan import AudioPlan
from .plan import TabularPlan
from .text_plan import TRUNCATED, TextPlan

IMAGE_BATCH = 8
"""Images per onnxruntime call: bounds a CNN's activation memory."""
TEXT_BATCH = 32
"""Texts per onnxruntime call: a transformer's attention grows with batch x tokens²."""
AUDIO_BATCH = 32
"""Recordings per onnxruntime call: the spectrogram of each is ~100 KB per second of audio."""
EXTRA_OUTPUTS = ("compound",)
"""Output roles a prediction carries besides its labels, probabilities or values."""


@dataclass
class Prediction:
    """Predictions for a batch of rows: labels (classification) or values (regression; a vector
    per row for an embedder)."""

    predictions: np.ndarray
    probabilities: np.ndarray | None
    class_labels: list[Any] | None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-row facts beside the predictions: ``truncated`` (texts cut to the model's window),
    ``compound`` (the sentiment score in [-1, 1])."""

    def __len__(self) -> int:
        return len(self.predictions)

    def probabilities_by_label(self) -> list[dict[str, float]] | None:
        """One ``{label: probability}`` per row, as the JSON API and the SDK return them."""
        if self.probabilities is None or self.class_labels is None:
            return None
        labels = [str(label) for label in self.class_labels]
        return [dict(zip(labels, row, strict=True)) for row in self.probabilities.tolist()]

    def top_k(self, k: int) -> list[list[dict[str, Any]]] | None:
        """The ``k`` most probable labels of each row, best first: ``[{"label", "score"}]``."""
        if self.probabilities is None or self.class_labels is None:
            return None
        best = best_classes(self.probabilities, k)
        return [
            [{"label": self.class_labels[j], "score": float(row[j])} for j in order]
            for row, order in zip(self.probabilities, best, strict=True)
        ]

    @classmethod
    def concatenate(cls, parts: list[Prediction]) -> Prediction:
        """One prediction of the rows of ``parts`` (predictions of batches of one model), in order."""
        if len(parts) == 1:
            return parts[0]
        probabilities = [p.probabilities for p in parts]
        return cls(
            np.concatenate([p.predictions for p in parts]),
            None if probabilities[0] is None else np.concatenate(probabilities),
            parts[0].class_labels,
            {k: np.concatenate([p.extras[k] for p in parts]) for k in parts[0].extras},
        )


def best_classes(scores: np.ndarray, k: int) -> np.ndarray:
    """The indices of the ``k`` highest scores of each row (at least 1, at most all), best
    first; ties keep the class order."""
    k = max(1, min(k, scores.shape[1]))
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


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
            outputs[k] for k in ("label", "probabilities", "value", *EXTRA_OUTPUTS) if k in outputs
        ]
        labels = self.manifest.class_labels
        self._labels = np.asarray(labels) if labels is not None else None
        self.image_spec = (
            image.ImageSpec.from_manifest(self.manifest.preprocessing)
            if self.manifest.is_image
            else None
        )
        self.plan: TabularPlan | TextPlan | AudioPlan | None = None
        self._batch = IMAGE_BATCH if self.image_spec is not None else None
        if self.manifest.is_text:
            metadata = self.session.get_modelmeta().custom_metadata_map
            self.plan, self._batch = TextPlan(self.manifest, metadata), TEXT_BATCH
        elif self.manifest.input_layout == "audio":
            self.plan, self._batch = AudioPlan(self.manifest), AUDIO_BATCH
        elif self.image_spec is None:
            self.plan = TabularPlan(self.manifest)

    def predict(self, rows: Any) -> Prediction:
        """Predict for rows given as dicts, columns, a DataFrame or a 2-D array; for an image
        model, for one image or a list of them (bytes, paths, PIL images or arrays); for a text
        model, for one text or a list of them (or rows ``{"text": ...}``); for an audio model,
        for one recording or a list of them (WAV bytes, paths, ``(samples, sample_rate)``)."""
        return self.run(self.encode(rows))

    def encode(self, rows: Any) -> dict[str, np.ndarray]:
        """The encoded input :meth:`run` takes: rows, texts or recordings packed by the model's
        plan (which the server's batcher can merge), or the pixels of images."""
        if self.plan is not None:
            return self.plan.pack(rows)
        return {self.manifest.inputs[0].onnx_name or "image": image.prepare(rows, self.image_spec)}

    def embed(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """The model's embedding output (image and text models) for encoded input: float32
        [n, d]."""
        name = self.manifest.outputs.get("embedding")
        if name is None:
            raise InvalidInput(f"Model '{self.manifest.name}' has no embedding output.")
        return np.asarray(self._outputs([name], feeds)[name], dtype=np.float32)

    def _outputs(self, names: list[str], encoded: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """onnxruntime's outputs ``names``; images go IMAGE_BATCH at a time, since a CNN's
        activations grow with the batch (100 photos at once held 1.5 GB) and gain little speed,
        and texts TEXT_BATCH at a time, each batch padded to its longest text."""
        chunks = [encoded]
        if self._batch is not None:
            size, step = len(next(iter(encoded.values()))), self._batch
            chunks = [
                {k: v[i : i + step] for k, v in encoded.items()}
                for i in range(0, max(size, 1), step)
            ]
        if self.plan is not None:
            chunks = [self.plan.feeds(chunk) for chunk in chunks]
        try:
            parts = [self.session.run(names, feeds) for feeds in chunks]
        except Exception as exc:  # onnxruntime's InvalidArgument/Fail carry the useful text
            raise SchemaMismatch(f"Model '{self.manifest.name}' rejected the input: {exc}") from exc
        if len(parts) == 1:
            return dict(zip(names, parts[0], strict=True))
        return {n: np.concatenate([p[i] for p in parts]) for i, n in enumerate(names)}

    def run(self, encoded: dict[str, np.ndarray]) -> Prediction:
        """Predict from encoded input (what :meth:`encode` returns)."""
        results = self._outputs(self._output_names, encoded)
        outputs = self.manifest.outputs
        extras = {k: results[outputs[k]].reshape(-1) for k in EXTRA_OUTPUTS if k in outputs}
        if TRUNCATED in encoded:
            extras[TRUNCATED] = encoded[TRUNCATED]
        if "value" in outputs:
            values = results[outputs["value"]]
            if values.ndim == 2 and values.shape[1] > 1:  # a vector per row (an embedder's)
                return Prediction(values, None, None, extras)
            return Prediction(np.asarray(values, np.float64).reshape(-1), None, None, extras)
        probabilities = results.get(outputs.get("probabilities", ""))
        labels = np.asarray(results[outputs["label"]]).reshape(-1)
        if self.manifest.label_is_index and self._labels is not None:
            labels = self._labels[labels]
        return Prediction(labels, probabilities, self.manifest.class_labels, extras)
