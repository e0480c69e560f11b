"""Smaller models for devices: an int8 variant, kept only with its measured cost.

Tabular graphs get onnxruntime's dynamic quantisation: MatMul/Conv weights stored as int8 (≈4×
smaller for an MLP); tree ensembles and ai.onnx.ml linear models stay as they are. Image graphs
(conv nets) get static QDQ quantisation with per-channel weights, its activation ranges calibrated
on photos: dynamic quantisation made EfficientNet-Lite0 13-18× slower in onnxruntime
(ConvInteger), and per-tensor weights agreed with fp32's top-1 label on 0.66 of the flower photos
against per-channel's 0.89. The outputs (probabilities, embedding) and the logits stay float, so
scores keep their resolution (bench/RESULTS.md, "Images").

The variant is measured on held-out rows or photos against the fp32 graph (image graphs are also
timed on one photo); it becomes the default only when it is meaningfully smaller, loses at most one
point of accuracy (or 1 % R², or of top-1 agreement with fp32 when there are no labels) and, for
images, is at most 1.5× slower (a margin for timing on a busy machine). Whatever happens is said in
the manifest: the variant's report gives the ``reason`` devices keep fp32, and a variant that could
not be made at all is named in ``skipped_variants`` with why.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..artifact import ModelArtifact, sha256_hex
from ..errors import MissingDependency
from ..runtime import Prediction, Predictor

MAX_LOSS = 0.01
MIN_SAVING = 0.10
MAX_SLOWDOWN = 1.5
"""An image variant slower than fp32 by more than this factor (on one photo) is not recommended."""
CALIBRATION_IMAGES = 64
TIMED_RUNS = 20
FLOAT_OUTPUT_OPS = ["Gemm", "MatMul", "GlobalAveragePool"]
"""Ops whose outputs stay float in image graphs: the logits and the pooled embedding."""
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


def int8_variant(
    artifact: ModelArtifact, rows: Any, truth: Any = None, calibration: Any = None
) -> Variant | None:
    """Quantise ``artifact``'s graph and score both versions on ``rows`` (held-out rows or images).

    ``truth`` holds their labels or values; None (a model without labelled data, such as a zoo
    model) scores the int8 graph by its top-1 agreement with fp32. An image model needs
    ``calibration``: photos like its training photos (up to 64 are used), which set the int8
    ranges of its activations. None when no int8 graph could be made; then
    ``artifact.manifest.skipped_variants["int8"]`` says why (callers build the registered manifest
    from this one, so the reason reaches it).
    """
    skipped = artifact.manifest.skipped_variants
    skipped.pop("int8", None)
    fp32 = Predictor(artifact)
    image = artifact.manifest.is_image
    pixels = fp32.encode(_spread(calibration)) if image else None
    try:
        int8 = _quantise_static(artifact.onnx, pixels) if pixels else _quantise(artifact.onnx)
    except Exception as exc:  # onnxruntime raises plain ValueError, RuntimeError ...
        skipped["int8"] = f"onnxruntime could not quantise the graph: {exc}"
        return None
    feeds = fp32.encode(rows)
    reference = fp32.run(feeds)
    try:
        quantised = Predictor(ModelArtifact(int8, _with_graph(artifact, int8)))
        predicted = quantised.run(feeds)
    except Exception as exc:  # e.g. an int8 kernel this onnxruntime build lacks
        skipped["int8"] = f"the quantised graph does not run: {exc}"
        return None
    if truth is None:
        metric, truth = "agreement", reference.predictions
    else:
        metric = "accuracy" if artifact.manifest.task == "classification" else "r2"
    fp32_score = _score(reference, truth, metric)
    int8_score = _score(predicted, truth, metric)
    saving = 1 - len(int8) / len(artifact.onnx)
    loss = fp32_score - int8_score
    report: dict[str, Any] = {
        "sha256": sha256_hex(int8),
        "size_bytes": len(int8),
        "fp32_size_bytes": len(artifact.onnx),
        "score": round(int8_score, 6),
        "fp32_score": round(fp32_score, 6),
        "metric": metric,
    }
    slowdown = None
    if image:
        fp32_ms, int8_ms = _latency_ms([fp32, quantised], feeds)
        slowdown = int8_ms / fp32_ms
        report |= {
            "agreement": round(_score(predicted, reference.predictions, "agreement"), 6),
            "latency_ms": int8_ms,
            "fp32_latency_ms": fp32_ms,
            "held_out_images": len(reference),
        }
    reasons = _why_not(int8, saving, loss, metric, slowdown)
    report["recommended"] = not reasons
    if reasons:
        report["reason"] = reasons
    return Variant(int8, report)


def add_int8(
    artifact: ModelArtifact, rows: Any = None, truth: Any = None, calibration: Any = None
) -> ModelArtifact:
    """``artifact`` with its int8 variant attached (or the reason in ``skipped_variants``).

    An image model without photos of its own (a zoo model) is calibrated on crops of
    scikit-learn's two sample photos and checked on other crops of them.
    """
    if rows is None:
        try:
            rows, calibration = sample_photos(seed=1), sample_photos(seed=0)
        except MissingDependency as exc:
            artifact.manifest.skipped_variants["int8"] = str(exc)
            return artifact
    variant = int8_variant(artifact, rows, truth, calibration)
    if variant is not None:
        artifact.manifest.variants = {"int8": variant.report}
        artifact.variants = {"int8": variant.onnx}
    return artifact


def sample_photos(count: int = 32, seed: int = 0) -> list[np.ndarray]:
    """``count`` square crops of each of scikit-learn's two sample photos, at random places and
    sizes (a quarter of the shorter side and up), half of them mirrored."""
    try:
        from sklearn.datasets import load_sample_images
    except ImportError as exc:
        raise MissingDependency(
            "The int8 variant of a model without training photos is calibrated on scikit-learn's "
            "sample photos: pip install scikit-learn, then build the model again."
        ) from exc
    rng = np.random.default_rng(seed)
    crops = []
    for photo in load_sample_images().images:
        height, width, _ = photo.shape
        for _ in range(count):
            side = int(rng.integers(min(height, width) // 4, min(height, width) + 1))
            top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
            crop = photo[top : top + side, left : left + side]
            crops.append(np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop))
    return crops


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


def _quantise_static(onnx: bytes, feeds: dict[str, np.ndarray]) -> bytes:
    """Static QDQ int8 (per-channel weights, MinMax activation ranges from ``feeds``); the nodes
    that make graph outputs, and the Gemm/MatMul logits before them, stay float."""
    import onnx as onnx_lib
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = iter(
        [
            {k: v[i : i + 8] for k, v in feeds.items()}
            for i in range(0, len(next(iter(feeds.values()))), 8)
        ]
    )

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(batches, None)

    with tempfile.TemporaryDirectory(prefix="modelport-int8-") as tmp:
        source, prepared, target = (Path(tmp) / f"{n}.onnx" for n in ("fp32", "pre", "int8"))
        source.write_bytes(onnx)
        logging.disable(logging.WARNING)  # progress notes on every tensor
        try:
            quant_pre_process(source, prepared, skip_symbolic_shape=True)
            model = onnx_lib.load(prepared)
            outputs = {output.name for output in model.graph.output}
            for i, node in enumerate(model.graph.node):
                node.name = node.name or f"node_{i}"  # nodes are excluded by name
            keep_float = [n.name for n in model.graph.node if outputs & set(n.output)]
            quantize_static(
                model,
                target,
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                nodes_to_exclude=keep_float,
                extra_options={"OpTypesToExcludeOutputQuantization": FLOAT_OUTPUT_OPS},
            )
        finally:
            logging.disable(logging.NOTSET)
        quantised = onnx_lib.load(target)
        _unround_outputs(quantised.graph)
        return quantised.SerializeToString()


def _unround_outputs(graph: Any) -> None:
    """A graph output the quantiser passed through QuantizeLinear -> DequantizeLinear (because an
    int8 node also reads it, e.g. the embedding the classifier layer reads) is given the float
    tensor again; the int8 node keeps reading the rounded copy."""
    producer = {name: node for node in graph.node for name in node.output}
    for output in graph.output:
        dequantise = producer.get(output.name)
        if dequantise is None or dequantise.op_type != "DequantizeLinear":
            continue
        quantise = producer.get(dequantise.input[0])
        if quantise is None or quantise.op_type != "QuantizeLinear":
            continue
        renamed = {output.name: f"{output.name}_int8", quantise.input[0]: output.name}
        for node in graph.node:
            for names in (node.input, node.output):
                for i, name in enumerate(names):
                    names[i] = renamed.get(name, name)


def _spread(images: Any) -> list[Any]:
    """At most CALIBRATION_IMAGES of ``images``, spread evenly over them."""
    if images is None or len(images) == 0:
        raise ValueError("an image model's int8 variant needs calibration photos; none were given")
    picked = np.linspace(0, len(images) - 1, min(len(images), CALIBRATION_IMAGES)).astype(int)
    return [images[i] for i in np.unique(picked)]


def _latency_ms(predictors: list[Predictor], feeds: dict[str, np.ndarray]) -> list[float]:
    """Median milliseconds of each predictor on one image, timed in turns so that a machine
    busy with something else slows them alike."""
    one = {name: value[:1] for name, value in feeds.items()}
    times: list[list[float]] = [[] for _ in predictors]
    for predictor in predictors:
        predictor.run(one)  # warm-up: the first run allocates
    for _ in range(TIMED_RUNS):
        for timing, predictor in zip(times, predictors, strict=True):
            start = time.perf_counter()
            predictor.run(one)
            timing.append(time.perf_counter() - start)
    return [round(1000 * float(np.median(timing)), 3) for timing in times]


def _why_not(
    int8: bytes, saving: float, loss: float, metric: str, slowdown: float | None = None
) -> str:
    """Why devices keep fp32, in the words of the rule in the module docstring ("" when they
    need not)."""
    if saving < MIN_SAVING and not _has_int8_weights(int8):
        return NOTHING_QUANTISED
    reasons = []
    if saving < MIN_SAVING:
        size = f"{saving:.0%} smaller" if saving >= 0 else f"{-saving:.0%} larger"
        reasons.append(f"it is {size} than fp32 (devices need {MIN_SAVING:.0%} smaller)")
    if loss > MAX_LOSS:
        reasons.append(
            f"it loses {loss:.4f} {metric} (devices accept a loss of at most {MAX_LOSS:g})"
        )
    if slowdown is not None and slowdown > MAX_SLOWDOWN:
        reasons.append(f"it is {slowdown:.1f}x slower than fp32 on one photo")
    return "; ".join(reasons)


def _has_int8_weights(int8: bytes) -> bool:
    from onnx import TensorProto, load_from_string

    graph = load_from_string(int8).graph
    return any(t.data_type in (TensorProto.INT8, TensorProto.UINT8) for t in graph.initializer)


def _with_graph(artifact: ModelArtifact, onnx: bytes) -> Any:
    import dataclasses

    return dataclasses.replace(artifact.manifest, sha256=sha256_hex(onnx), size_bytes=len(onnx))


def _score(prediction: Prediction, truth: Any, metric: str) -> float:
    predicted = prediction.predictions
    if metric != "r2":
        return float(np.mean(predicted.astype(str) == np.asarray(truth).astype(str)))
    truth = np.asarray(truth, dtype=np.float64)
    residual = np.sum((truth - predicted) ** 2)
    return float(1 - residual / max(np.sum((truth - truth.mean()) ** 2), 1e-12))
