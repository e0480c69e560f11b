"""Two BentoML services over the same model, rows in, probabilities out (``{"rows": [...]}``).

- ``Tabular``: the scikit-learn pipeline (joblib at ``MODEL_PATH``), as a BentoML user would serve
  what they trained.
- ``TabularOnnx``: the ONNX file modelport serves (at ``MODEL_PATH``) in onnxruntime, rows keyed by
  the graph's input names; the fair peer of modelport's JSON route. ``ORT_THREADS`` sets
  onnxruntime's intra-op threads (default 1: one per worker process).

``BENTO_WORKERS`` sets the worker processes of either (default 1).
"""

import os

import bentoml
import numpy as np

WORKERS = int(os.environ.get("BENTO_WORKERS", "1"))


@bentoml.service(workers=WORKERS)
class Tabular:
    def __init__(self) -> None:
        import joblib

        self.model = joblib.load(os.environ["MODEL_PATH"])

    @bentoml.api
    def predict(self, rows: list[dict]) -> dict:
        import pandas as pd

        proba = self.model.predict_proba(pd.DataFrame(rows))
        return {"predictions": proba.argmax(axis=1).tolist(), "probabilities": proba.tolist()}


@bentoml.service(workers=WORKERS)
class TabularOnnx:
    def __init__(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("ORT_THREADS", "1"))
        self.session = ort.InferenceSession(
            os.environ["MODEL_PATH"], options, providers=["CPUExecutionProvider"]
        )
        self.inputs = [
            (i.name, object if i.type == "tensor(string)" else np.float32)
            for i in self.session.get_inputs()
        ]

    @bentoml.api
    def predict(self, rows: list[dict]) -> dict:
        feeds = {
            name: np.array([row[name] for row in rows], dtype=dtype).reshape(-1, 1)
            for name, dtype in self.inputs
        }
        label, proba = self.session.run(None, feeds)
        return {"predictions": label.tolist(), "probabilities": proba.tolist()}
