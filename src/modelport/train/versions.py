"""Versions of the libraries that built a model, recorded in its manifest."""

from __future__ import annotations

from importlib import metadata

LIBRARIES = (
    "modelport",
    "numpy",
    "pandas",
    "scikit-learn",
    "lightgbm",
    "xgboost-cpu",
    "flaml",
    "onnx",
    "onnxruntime",
    "skl2onnx",
    "onnxmltools",
)


def library_versions() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
