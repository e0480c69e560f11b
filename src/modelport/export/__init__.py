"""Conversion to ONNX, parity checks and imports of existing models."""

from .parity import ParityReport

__all__ = ["ParityReport"]
