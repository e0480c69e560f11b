"""AutoML training that ends in an ONNX artifact."""

from .leaderboard import LeaderboardRow
from .tabular import TabularAutoML, TrainingEvent

__all__ = ["LeaderboardRow", "TabularAutoML", "TrainingEvent"]
