"""modelport: train or import a model once, run it online behind an API and offline on devices.

Heavy names are imported on first use, so ``import modelport`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "ModelArtifact": "modelport.artifact",
    "Manifest": "modelport.artifact",
    "ModelportError": "modelport.errors",
    "Predictor": "modelport.runtime",
    "Settings": "modelport.config",
    "Store": "modelport.store",
    "TabularAutoML": "modelport.train",
}

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelport' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
