"""The leaderboard: the best trial of each estimator family, read while FLAML searches."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from .metrics import score_from_loss


@dataclass
class LeaderboardRow:
    """The best trial of one estimator family so far."""

    model: str
    metric: str
    score: float
    loss: float
    fit_seconds: float
    trials: int
    onnx_latency_us: float | None = None
    note: str = ""
    recall: dict[str, float] | None = None
    """Per class (classification): the share of its held-out rows the exported model got right."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def snapshot(automl: Any, metric: str) -> list[LeaderboardRow]:
    """The current leaderboard of a (possibly running) FLAML AutoML, best first.

    NOTE: FLAML's trial log records only new overall bests, so per-family progress comes from its
    search states (best_loss, total_iter, best_config_train_time); read defensively, since the
    search thread is changing them.
    """
    try:
        states = list(getattr(automl, "_search_states", {}).items())
    except RuntimeError:  # the dict grew while we copied it; the next poll will see it
        return []
    rows = []
    for learner, state in states:
        loss = getattr(state, "best_loss", math.inf)
        if not math.isfinite(loss):
            continue
        rows.append(
            LeaderboardRow(
                model=learner,
                metric=metric,
                score=score_from_loss(metric, loss),
                loss=loss,
                fit_seconds=float(getattr(state, "best_config_train_time", 0.0) or 0.0),
                trials=int(getattr(state, "total_iter", 0)),
            )
        )
    return sorted(rows, key=lambda r: r.loss)
