"""The AutoML search on Ray: estimator families split across workers, searched in parallel.

Each Ray task runs FLAML over its share of the families with one CPU, for the whole search budget,
and reports its leaderboard while it runs; the driver merges the shares into one leaderboard and
takes the best family's model. With N CPUs, N trials run at once — one per share — where the local
backend runs one trial at a time with every core.

NOTE: FLAML's own Ray Tune path (``n_concurrent_trials``) was measured here first: with Ray 2.60
and FLAML 2.8 its trials ran one at a time in one process, its search states stayed empty until the
end (no live leaderboard) and a cancelled run left placement groups holding the CPUs. Plain tasks
have none of these problems and keep FLAML's per-family search as it is locally.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from .leaderboard import LeaderboardRow, snapshot
from .linear import NAME as LINEAR

POLL = 0.5
_INIT = threading.Lock()


def ensure_ray(address: str | None = None) -> Any:
    """Connect to ``address`` (MODELPORT_RAY_ADDRESS), or start a local Ray on this machine.

    A local Ray gets token authentication off (Ray 2.60 turns it on and writes ~/.ray otherwise)
    and keeps its session files under the system temp dir, so nothing depends on HOME.
    """
    import ray

    with _INIT:
        if ray.is_initialized():
            return ray
        address = address or os.environ.get("MODELPORT_RAY_ADDRESS") or None
        if address is None:
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        if threading.current_thread() is threading.main_thread():
            _init(ray, address)
        else:
            _init_in_owner_thread(ray, address)
    return ray


def _init(ray: Any, address: str | None) -> None:
    ray.init(
        address=address,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="warning",
        configure_logging=False,
    )


def _init_in_owner_thread(ray: Any, address: str | None) -> None:
    """Start Ray from a thread that lives as long as the process.

    NOTE: a local Ray's processes die with the *thread* that started them (parent-death signal);
    started from a short-lived worker thread of the server, Ray's GCS was killed a second later.
    """
    started = threading.Event()
    failure: list[BaseException] = []

    def own() -> None:
        try:
            _init(ray, address)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            failure.append(exc)
        started.set()
        threading.Event().wait()  # keep this thread, and so Ray, alive

    threading.Thread(target=own, name="ray-owner", daemon=True).start()
    started.wait()
    if failure:
        raise failure[0]


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def shares(estimators: tuple[str, ...], workers: int) -> list[tuple[str, ...]]:
    """Round-robin, so the usually strongest families (listed first) land on different workers."""
    count = max(1, min(workers, len(estimators)))
    return [estimators[i::count] for i in range(count)]


class ShardedSearch:
    """The finished search, with the slice of FLAML's AutoML API the export step uses."""

    def __init__(self, automls: list[Any], rows: list[LeaderboardRow]) -> None:
        self._by_family = {family: automl for automl in automls for family in automl._search_states}
        self.best_estimator = rows[0].model
        self.model = self._by_family[self.best_estimator].model

    def best_model_for_estimator(self, family: str) -> Any:
        return self._by_family[family].best_model_for_estimator(family)


def search_on_ray(
    matrix: np.ndarray,
    y: np.ndarray,
    fit_options: dict[str, Any],
    estimators: tuple[str, ...],
    metric: str,
    report: Callable[[list[LeaderboardRow], bool], None],
) -> tuple[ShardedSearch, list[LeaderboardRow]]:
    """Run the shares as Ray tasks; ``report`` gets the merged leaderboard as it changes, and
    whether any share has started searching yet.

    Each share's budget counts from its own start: starting Ray and its workers (seconds of
    imports on a cold worker) comes on top, as the "starting" stage, instead of eating the search.
    """
    ray = ensure_ray()
    from ray.util.queue import Empty, Queue

    queue = Queue()
    data = (ray.put(matrix), ray.put(y))
    search = ray.remote(num_cpus=1)(_search_share)
    pending = {
        search.remote(*data, fit_options, share, metric, index, queue): index
        for index, share in enumerate(shares(estimators, cluster_cpus()))
    }
    boards: dict[int, list[LeaderboardRow]] = {}  # a share is in once it has said so
    results = []
    try:
        while pending:
            done, _ = ray.wait(list(pending), timeout=POLL)
            for ref in done:
                results.append(ray.get(ref))
                pending.pop(ref)
            try:
                for index, rows in queue.get_nowait_batch(queue.qsize()):
                    boards[index] = rows
            except Empty:
                pass
            report(_merge(boards.values()), bool(boards))
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        ray.kill(queue.actor)
    rows = _merge(snapshot(automl, metric) for automl in results)
    if not rows:
        from ..errors import InvalidParameter

        raise InvalidParameter("The AutoML search on Ray finished no trial within the budget.")
    return ShardedSearch(results, rows), rows


def _merge(boards: Any) -> list[LeaderboardRow]:
    return sorted((row for board in boards for row in board), key=lambda r: r.loss)


def _search_share(
    matrix: np.ndarray,
    y: np.ndarray,
    fit_options: dict[str, Any],
    share: tuple[str, ...],
    metric: str,
    index: int,
    queue: Any,
) -> Any:
    """One Ray task: FLAML over ``share`` with one CPU, reporting its leaderboard."""
    from flaml import AutoML

    from .linear import LinearLearner

    automl = AutoML()
    automl.add_learner(LINEAR, LinearLearner)
    queue.put((index, []))  # started: the driver's budget clock may stop showing "starting"
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(POLL):
            queue.put((index, snapshot(automl, metric)))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        automl.fit(matrix, y, estimator_list=list(share), n_jobs=1, **fit_options)
    finally:
        stop.set()
        watcher.join()
    return automl
