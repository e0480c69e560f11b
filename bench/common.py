"""What the benchmark scripts share: paths, the tables and models they serve (adult and a
generated wide table), request bodies, raw onnxruntime feeds, ports, timing loops."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
BIN = BENCH.parent / ".venv" / "bin"
ADULT = BENCH.parents[1] / "shared" / "data" / "adult" / "adult.csv"


def adult():  # type: ignore[no-untyped-def]
    """The adult table as features and target (pandas is imported only by those who call it)."""
    from modelport.data import read_table

    frame = read_table(ADULT)
    return frame.drop(columns="income"), frame["income"]


def wide_table(columns: int = 20, rows: int = 5000, seed: int = 0):  # type: ignore[no-untyped-def]
    """A generated mixed table: about 2/3 of the ``columns`` text categories (``c3`` holds
    "c3_0" ... with 3, 5, 8, 12 or 30 values, in turn), the rest rounded floats (``x2``); the
    target "yes"/"no" depends on up to six categories and three numbers, plus noise."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    score = rng.normal(0.0, 1.0, rows)  # the noise
    categorical = numeric = 0
    for i in range(columns):
        if i % 3 != 2:
            size = CARDINALITIES[categorical % len(CARDINALITIES)]
            codes = rng.integers(0, size, rows)
            data[f"c{i}"] = np.array([f"c{i}_{k}" for k in range(size)], dtype=object)[codes]
            if categorical < 6:
                score += rng.normal(0.0, 1.0, size)[codes]
            categorical += 1
        else:
            values = rng.normal(rng.uniform(-50, 50), rng.uniform(1, 20), rows).round(2)
            data[f"x{i}"] = values
            if numeric < 3:
                score += (values - values.mean()) / values.std()
            numeric += 1
    target = np.where(score > np.median(score), "yes", "no")
    return pd.DataFrame(data), pd.Series(target, name="target")


CARDINALITIES = (3, 5, 8, 12, 30)


def train_table(home: Path, name: str, X, y, budget: float = 8):  # type: ignore[no-untyped-def]
    """A LightGBM model (seed 0) on ``X``, ``y``, registered as ``name`` in the store at ``home``
    beside what it holds already."""
    from modelport.config import Settings
    from modelport.store import Store
    from modelport.train import TabularAutoML

    automl = TabularAutoML(time_budget=budget, estimators=("lgbm",), seed=0).fit(X, y)
    Store(Settings(home=home)).register(automl.to_artifact(name))
    return automl


def train_adult(home: Path, budget: float = 15):  # type: ignore[no-untyped-def]
    """A LightGBM model on adult (seed 0), registered as `adult` in a fresh store at ``home``."""
    shutil.rmtree(home, ignore_errors=True)
    X, y = adult()
    return train_table(home, "adult", X, y, budget), X, y


TABLES = ("adult", "wide")
"""The tables the serving and SDK benchmarks run on: adult (if ../shared/data has it) and
``wide_table(20)``."""
BUDGETS = {"adult": 15.0, "wide": 8.0}
"""AutoML seconds per table."""


def table(name: str):  # type: ignore[no-untyped-def]
    """One of ``TABLES`` as features and target."""
    return adult() if name == "adult" else wide_table(20)


def present(names: list[str] | tuple[str, ...] = TABLES) -> list[str]:
    """``names`` without adult when its data is absent (said on stderr)."""
    if "adult" in names and not ADULT.exists():
        print(f"skipped adult: {ADULT} is not available", file=sys.stderr)
        return [n for n in names if n != "adult"]
    return list(names)


def simple_body(rows: list[dict]) -> dict:
    """modelport's simple JSON request."""
    return {"rows": rows}


def oip_body(rows: list[dict], numbers: str = "FP32", content_type: bool = False) -> dict:
    """OIP v2 JSON, one input per column; ``content_type`` asks MLServer for a DataFrame."""
    inputs = []
    for column in rows[0]:
        values = [row[column] for row in rows]
        numeric = isinstance(values[0], (int, float))
        inputs.append(
            {
                "name": column,
                "shape": [len(rows), 1],
                "datatype": numbers if numeric else "BYTES",
                "data": values,
            }
        )
    body: dict = {"inputs": inputs}
    if content_type:
        body["parameters"] = {"content_type": "pd"}
    return body


def raw_feeds(manifest, rows) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """The graph's feeds for ``rows`` (dicts or a DataFrame), made here rather than by modelport
    (whose encoding is what is measured against them): per input column, float32 or str [n, 1]."""
    feeds = {}
    for spec in manifest.inputs:
        if isinstance(rows, list):
            values = [row[spec.name] for row in rows]
        else:
            values = rows[spec.name].tolist()
        if spec.dtype == "number":
            array = np.asarray(values, dtype=np.float32)
        else:
            array = np.asarray([str(v) for v in values], dtype=object)
        feeds[spec.onnx_name or spec.name] = array.reshape(-1, 1)
    return feeds


def create_key(home: Path) -> str:
    """A new predict-scope API key in the store at ``home``: once one exists, the server
    requires keys, as a deployment does."""
    from modelport.config import Settings
    from modelport.serve.keys import KeyStore
    from modelport.store import Store

    _, secret = KeyStore(Store(Settings(home=home)).engine).create("bench", "predict")
    return secret


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require(hey: bool = False, needs_adult: bool = True) -> None:
    """Exit with the reason when adult (if ``needs_adult``) or `hey` is missing; make OUT."""
    if needs_adult and not ADULT.exists():
        sys.exit(f"skipped: {ADULT} is not available")
    if hey and shutil.which("hey") is None:
        sys.exit("needs `hey`: apt-get install -y hey")
    OUT.mkdir(exist_ok=True)


def stop(process: subprocess.Popen) -> None:
    """End a server started with ``start_new_session=True`` and every process it started."""
    try:
        os.killpg(process.pid, 15)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, 9)


@contextlib.contextmanager
def modelport_server(home: Path) -> Iterator[tuple[str, int]]:
    """`modelport serve` on a free port over the store at ``home``: its URL and pid, once ready."""
    env = {**os.environ, "MODELPORT_HOME": str(home), "MODELPORT_ACCESS_LOG": "false"}
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "modelport"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        yield url, process.pid
    finally:
        stop(process)


def wait_ready(url: str) -> None:
    """Wait until a modelport server at ``url`` says it is ready."""
    import httpx

    for _ in range(200):
        try:
            if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


@dataclass
class Timing:
    """Calls of one function in a loop on one thread: throughput and per-call latency."""

    calls: int
    calls_per_s: float
    p50_us: float
    p99_us: float


def timed(
    call: Callable[[], object],
    runs: int | None = None,
    seconds: float | None = None,
    warmup: int = 100,
) -> Timing:
    """Time ``call`` after ``warmup`` calls, for ``runs`` calls or for ``seconds``.

    Throughput is calls over the wall time of the whole loop (timer overhead included), not
    derived from the median.
    """
    for _ in range(warmup):
        call()
    samples: list[float] = []
    clock = time.perf_counter
    started = clock()
    deadline = started + seconds if seconds is not None else float("inf")
    limit = runs if runs is not None else 10**9
    while len(samples) < limit:
        t = clock()
        call()
        end = clock()
        samples.append(end - t)
        if end >= deadline:
            break
    wall = clock() - started
    p50, p99 = np.percentile(samples, [50, 99]) * 1e6
    return Timing(len(samples), len(samples) / wall, float(p50), float(p99))


def p50_p99_us(call: Callable[[], object], runs: int, warmup: int = 100) -> tuple[float, float]:
    """Median and 99th percentile µs of ``runs`` calls of ``call``."""
    t = timed(call, runs=runs, warmup=warmup)
    return t.p50_us, t.p99_us


def interleaved_us(
    calls: dict[str, Callable[[], object]], runs: int, block: int = 10, warmup: int = 3
) -> dict[str, tuple[float, float]]:
    """Median and 99th percentile µs of ``runs`` calls of each, timed in alternating blocks of
    ``block`` calls (a×10, b×10, a×10, ...) so that load from other work on the machine falls on
    every call alike. Each block starts with one untimed call: a call just after another library's
    (e.g. OpenMP threads still spinning after scikit-learn) would otherwise pay for it."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    clock = time.perf_counter
    while any(len(times) < runs for times in samples.values()):
        for name, call in calls.items():
            call()
            for _ in range(min(block, runs - len(samples[name]))):
                started = clock()
                call()
                samples[name].append(clock() - started)
    return {
        name: tuple(float(v) for v in np.percentile(times, [50, 99]) * 1e6)  # type: ignore[misc]
        for name, times in samples.items()
    }


class OtherLoad:
    """CPU % used by everything else on the machine (not this script, not the children it has
    waited for, not ``excluded`` seconds such as a server's) since it was made; of 100 % per core."""

    def __init__(self) -> None:
        self.started, self.machine, self.ours = time.monotonic(), _machine_busy(), _our_cpu()

    def percent(self, excluded: float = 0.0) -> float:
        machine = _machine_busy() - self.machine
        others = machine - (_our_cpu() - self.ours) - excluded
        return max(0.0, 100 * others / (time.monotonic() - self.started))


def _machine_busy() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _our_cpu() -> float:
    ours = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ours.ru_utime + ours.ru_stime + children.ru_utime + children.ru_stime
