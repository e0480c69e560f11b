"""Training: AutoML per task, bring-your-own code, jobs and their runner, local/Ray backends.

The AutoML classes pull in scikit-learn, FLAML, LightGBM and XGBoost; they are imported when first
asked for, so a server that only serves (it imports the job runner) does not load them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TRAINERS", "LeaderboardRow", "TabularAutoML", "TrainingEvent"]


def __getattr__(name: str) -> Any:
    if name == "LeaderboardRow":
        from .leaderboard import LeaderboardRow

        return LeaderboardRow
    if name in ("TabularAutoML", "TrainingEvent"):
        from . import tabular

        return getattr(tabular, name)
    if name == "TRAINERS":  # every trainer by kind; the contract test suite runs against each
        from .tabular import TabularAutoML

        return {"tabular": TabularAutoML}
    raise AttributeError(name)
