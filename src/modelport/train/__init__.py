"""AutoML training that ends in an ONNX artifact."""

from .leaderboard import LeaderboardRow
from .tabular import TabularAutoML, TrainingEvent

TRAINERS: dict[str, type[TabularAutoML]] = {"tabular": TabularAutoML}
"""Every trainer by kind; the contract test suite runs against each."""

__all__ = ["TRAINERS", "LeaderboardRow", "TabularAutoML", "TrainingEvent"]
