"""ORT format: the flatbuffer model ORT Mobile loads on iOS and Android (via onnxruntime's tool)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import ExportError


def to_ort(onnx: bytes) -> bytes:
    """Convert ONNX bytes to ORT format with onnxruntime's own converter."""
    with tempfile.TemporaryDirectory(prefix="modelport-ort-") as tmp:
        source = Path(tmp) / "model.onnx"
        source.write_bytes(onnx)
        result = subprocess.run(
            [sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(source)],
            capture_output=True,
            text=True,
            cwd=tmp,
        )
        produced = sorted(Path(tmp).glob("*.ort"))
        if result.returncode != 0 or not produced:
            raise ExportError(
                "onnxruntime could not convert the model to ORT format: "
                f"{(result.stderr or result.stdout).strip()[-500:]}"
            )
        return produced[0].read_bytes()
