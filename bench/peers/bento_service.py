"""The same scikit-learn pipeline served the way a BentoML user would: rows in, probabilities out."""

import os

import bentoml
import joblib
import pandas as pd


@bentoml.service(workers=int(os.environ.get("BENTO_WORKERS", "1")))
class Tabular:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["MODEL_PATH"])

    @bentoml.api
    def predict(self, rows: list[dict]) -> dict:
        frame = pd.DataFrame(rows)
        proba = self.model.predict_proba(frame)
        return {"predictions": proba.argmax(axis=1).tolist(), "probabilities": proba.tolist()}
