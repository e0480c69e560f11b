"""The one place a prediction is computed, used by the CLI, the server and the client alike."""

from .predictor import Prediction, Predictor

__all__ = ["Prediction", "Predictor"]
