"""Models for the server tests, trained once per test module."""

from __future__ import annotations

from pathlib import Path

from modelport.config import Settings
from modelport.store import Store
from modelport.train import TabularAutoML

from .artifacts import linear_artifact
from .datasets import mixed_classification


def churn_store(home: Path) -> Store:
    """A store with 'churn' (classifier, text + numbers) and 'lin' (regression, a*1+b)."""
    store = Store(Settings(home=home))
    frame = mixed_classification(400)
    trainer = TabularAutoML(time_budget=2, estimators=("lgbm",)).fit(
        frame.drop(columns="churn"), frame["churn"]
    )
    store.register(trainer.to_artifact("churn"), aliases=("production",))
    store.register(linear_artifact("lin", scale=1.0), name="lin")
    return store


ROWS = [
    {"age": 35.0, "monthly fee": 79.0, "plan": "basic", "region": "north"},
    {"age": None, "monthly fee": 15.0, "plan": "premium", "region": None},
    {"age": 61.0, "monthly fee": 44.5, "plan": "plus", "region": "east"},
]
