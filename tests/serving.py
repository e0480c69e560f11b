"""For the server tests: a store with the session's churn classifier and a linear regression,
rows for the classifier, and waiting for a condition instead of a clock."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from modelport.config import Settings
from modelport.store import Store

from .artifacts import linear_artifact
from .conftest import Server, trained_churn


def churn_store(home: Path) -> Store:
    """A store with 'churn' (classifier, text + numbers; production alias) and 'lin'
    (regression, a*1+b). The classifier is trained once per session (conftest.trained_churn)."""
    store = Store(Settings(home=home))
    store.register(trained_churn(), aliases=("production",))
    store.register(linear_artifact("lin", scale=1.0), name="lin")
    return store


@contextlib.contextmanager
def churn_server(home: Path) -> Iterator[tuple[Server, Store]]:
    """A running server over :func:`churn_store`, stopped on leaving."""
    store = churn_store(home)
    server = Server(home)
    try:
        yield server, store
    finally:
        server.stop()


ROWS = [
    {"age": 35.0, "monthly fee": 79.0, "plan": "basic", "region": "north"},
    {"age": None, "monthly fee": 15.0, "plan": "premium", "region": None},
    {"age": 61.0, "monthly fee": 44.5, "plan": "plus", "region": "east"},
]


def wait_until(condition: Callable[[], Any], message: str, timeout: float = 30) -> None:
    """Poll ``condition`` until it is true; fail with ``message`` after ``timeout`` s (generous:
    a loaded machine may take seconds for what takes milliseconds on an idle one)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{message} after {timeout} s"
        time.sleep(0.05)
