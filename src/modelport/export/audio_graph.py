"""The feature half of an audio classifier's graph: raw 16 kHz audio in, pooled log-mel or MFCC
features out, with standard ONNX operators only (opset 17), so any onnxruntime runs it.

``audio`` float32 [n, samples] (a fixed window, see runtime/audio_plan.py) -> STFT (512-point,
400-sample Hann window centred in it, 160-sample hop: 25 ms frames every 10 ms) -> power ->
a 40-band mel filterbank (HTK mel scale, 20 Hz - 8 kHz, baked in as a weight: the ONNX
MelWeightMatrix op builds a different bank) -> log (above a :data:`FLOOR`) -> optionally the first DCT-II coefficients
(MFCC) -> the mean of each of a few equal segments in time, and the standard deviation over the
whole window -> ``embedding`` [n, d]. A classifier head is appended to ``embedding`` by
export/image_head.attach_head, as for photos.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_FFT = 512
WINDOW = 400
HOP = 160
MELS = 40
FMIN, FMAX = 20.0, 8000.0
FLOOR = 1.0
"""Added to the mel energies before the log. Recordings reach the graph scaled to a peak of 1,
so this is a fixed level below the loudest sound: quiet frames and the window's padding all sit
near log(1) = 0 instead of far below (log 1e-6 = -13.8), where their share of the window moved
every pooled feature. Leave-one-speaker-out on spoken_digits (20 MFCC x 5 segments, logistic):
floor 1e-6 0.52-0.58, 1e-3 0.56-0.62, 0.1 0.62-0.64, 1 0.70-0.72, 3-30 0.68-0.74."""
OPSET = 17
EMBEDDING = "embedding"


@dataclass(frozen=True)
class Features:
    """What the graph pools: ``kind`` "mfcc" (``coefficients`` of them) or "logmel" (all
    :data:`MELS` bands), averaged over ``segments`` equal parts of the window, plus the
    standard deviation of each over the whole window."""

    kind: str
    coefficients: int
    segments: int

    @property
    def name(self) -> str:
        return f"{self.kind} {self.coefficients}x{self.segments}"

    @property
    def size(self) -> int:
        return self.coefficients * (self.segments + 1)

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "coefficients": self.coefficients, "segments": self.segments}


def frames(samples: int) -> int:
    """STFT frames of a window of ``samples`` (no padding: every frame is whole)."""
    return 1 + (samples - N_FFT) // HOP


def mel_filterbank(rate: int) -> np.ndarray:
    """Triangular HTK-mel filters over the FFT bins: float64 [N_FFT // 2 + 1, MELS]."""
    hz = np.fft.rfftfreq(N_FFT, 1 / rate)
    low, high = (2595 * np.log10(1 + f / 700) for f in (FMIN, min(FMAX, rate / 2)))
    points = 700 * (10 ** (np.linspace(low, high, MELS + 2) / 2595) - 1)
    lower, centre, upper = points[:-2], points[1:-1], points[2:]
    rising = (hz[:, None] - lower) / (centre - lower)
    falling = (upper - hz[:, None]) / (upper - centre)
    return np.maximum(0, np.minimum(rising, falling))


def dct_matrix(coefficients: int) -> np.ndarray:
    """The orthonormal DCT-II of the mel bands, first ``coefficients``: [MELS, coefficients]."""
    m, k = np.arange(MELS)[:, None], np.arange(coefficients)[None, :]
    matrix = np.sqrt(2 / MELS) * np.cos(np.pi * k * (2 * m + 1) / (2 * MELS))
    matrix[:, 0] /= np.sqrt(2)
    return matrix


def window() -> np.ndarray:
    """A periodic Hann window of :data:`WINDOW` samples centred in :data:`N_FFT`."""
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)
    padded = np.zeros(N_FFT)
    start = (N_FFT - WINDOW) // 2
    padded[start : start + WINDOW] = hann
    return padded


def feature_graph(samples: int, rate: int, features: Features) -> bytes:
    """The ONNX graph from ``audio`` [n, samples] to ``embedding`` [n, features.size]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    count = frames(samples)
    per_segment = count // features.segments
    if per_segment < 1:
        raise ValueError(f"{samples} samples make {count} frames, fewer than the segments")
    weights: list[onnx.TensorProto] = []

    def constant(name: str, value: np.ndarray) -> str:
        weights.append(numpy_helper.from_array(value, name))
        return name

    def ints(name: str, *values: int) -> str:
        return constant(name, np.array(values, dtype=np.int64))

    node = helper.make_node
    bands = features.coefficients
    nodes = [
        node("Unsqueeze", ["audio", ints("axis_2", 2)], ["signal"]),
        node(
            "STFT",
            ["signal", constant("hop", np.array(HOP, dtype=np.int64)), "window"],
            ["stft"],
            onesided=1,
        ),
        node("Mul", ["stft", "stft"], ["squares"]),
        node("ReduceSum", ["squares", ints("axis_last", -1)], ["power"], keepdims=0),
        node("MatMul", ["power", "mel_filterbank"], ["mel"]),
        node("Add", ["mel", constant("floor", np.array(FLOOR, dtype=np.float32))], ["floored"]),
        node("Log", ["floored"], ["logmel"]),
    ]
    constant("window", window().astype(np.float32))
    constant("mel_filterbank", mel_filterbank(rate).astype(np.float32))
    frames_of = "logmel"
    if features.kind == "mfcc":
        dct = constant("dct", dct_matrix(bands).astype(np.float32))
        nodes.append(node("MatMul", ["logmel", dct], ["mfcc"]))
        frames_of = "mfcc"
    elif features.kind != "logmel" or bands != MELS:
        raise ValueError(f"unknown features {features}")
    used = per_segment * features.segments
    nodes += [
        node(
            "Slice",
            [frames_of, ints("start", 0), ints("end", used), ints("axis_1", 1)],
            ["used"],
        ),
        node(
            "Reshape",
            ["used", ints("segmented", -1, features.segments, per_segment, bands)],
            ["segments"],
        ),
        node("ReduceMean", ["segments"], ["segment_means"], axes=[2], keepdims=0),
        node("Flatten", ["segment_means"], ["means"], axis=1),
        node("ReduceMean", ["used"], ["centre"], axes=[1], keepdims=1),
        node("Sub", ["used", "centre"], ["deviations"]),
        node("Mul", ["deviations", "deviations"], ["squared"]),
        node("ReduceMean", ["squared"], ["variance"], axes=[1], keepdims=0),
        node("Sqrt", ["variance"], ["std"]),
        node("Concat", ["means", "std"], [EMBEDDING], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "audio_features",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["n", samples])],
        [helper.make_tensor_value_info(EMBEDDING, TensorProto.FLOAT, ["n", features.size])],
        weights,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="modelport"
    )
    model.ir_version = 8  # what onnxruntime releases since 1.10 read
    onnx.checker.check_model(model)
    return model.SerializeToString()
