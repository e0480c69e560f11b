"""Where one prediction request's time goes inside modelport's ASGI app, stage by stage.

Run: .venv/bin/python bench/profile_request.py [--requests 5000] [--rows 1 32]
Needs ../shared/data/adult. Prints a Markdown table for bench/RESULTS.md.

It trains a LightGBM model on adult into a temporary store, builds the real app
(``modelport.serve.app.create_app``) with its lifespan, and sends it simple-JSON predictions
(``POST /api/v1/models/adult/predict``) directly as ASGI calls, one after another on one event loop:
no socket, no HTTP parser, no uvicorn, so this is the app's own cost per request. Each stage is a
function the app calls; it is wrapped with ``perf_counter`` and charged its exclusive time (time in
wrapped stages it calls goes to those), so the stages and "the rest" add up to the total. The same
requests also run without the wrappers (the true total; the difference is the wrappers' own cost)
and against the bare Starlette endpoint of the serving benchmark (bench/peers/hello.py), in
alternating rounds so that load from other processes falls on all three alike.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import orjson
from common import ADULT, BENCH, OtherLoad, train_adult

# (label, module, attribute path): each a function or method the app calls per request
STAGES = [
    ("read the body", "modelport.serve.context", "ServerContext.read_body"),
    ("parse JSON (orjson)", "modelport.serve.dataplane", "parse_json"),
    ("auth check", "modelport.serve.auth", "Authenticator.check"),
    ("model lookup", "modelport.serve.models", "ModelManager.get"),
    ("rows -> feeds: to_columns", "modelport.runtime.tabular", "to_columns"),
    ("rows -> feeds: encode", "modelport.runtime.tabular", "encode"),
    (
        "ctx.predict + batcher (around the model call)",
        "modelport.serve.context",
        "ServerContext.predict",
    ),
    (
        "Predictor.run outside onnxruntime (outputs, labels)",
        "modelport.runtime.predictor",
        "Predictor.run",
    ),
    ("onnxruntime `InferenceSession.run`", "onnxruntime", "InferenceSession.run"),
    ("response: output tensors", "modelport.serve.dataplane", "output_tensors"),
    (
        "response: probabilities by label",
        "modelport.runtime.predictor",
        "Prediction.probabilities_by_label",
    ),
    ("response: JSON encode (orjson)", "modelport.serve.dataplane", "json_response"),
    ("metrics (Prometheus)", "modelport.serve.metrics", "Metrics.observe_request"),
    ("metering (usage record)", "modelport.serve.metering", "Meter.record"),
]


class Clock:
    """Exclusive time per stage: a stage's time minus the time of stages it called."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self._children = [0.0]

    def start(self) -> float:
        self._children.append(0.0)
        return time.perf_counter()

    def stop(self, label: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        inner = self._children.pop()
        self._children[-1] += elapsed
        self.spent[label] = self.spent.get(label, 0.0) + elapsed - inner

    def reset(self) -> None:
        self.spent.clear()


def wrap(function, label: str, clock: Clock):  # type: ignore[no-untyped-def]
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def timed_async(*args, **kwargs):  # type: ignore[no-untyped-def]
            started = clock.start()
            try:
                return await function(*args, **kwargs)
            finally:
                clock.stop(label, started)

        return timed_async

    @functools.wraps(function)
    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        started = clock.start()
        try:
            return function(*args, **kwargs)
        finally:
            clock.stop(label, started)

    return timed


def instrument(clock: Clock) -> tuple[list[tuple[object, str, object]], list[str]]:
    """Wrap every stage where the app finds it: (what to put back to undo it, stages not found)."""
    undo, missing = [], []
    for label, module_name, path in STAGES:
        module = sys.modules.get(module_name) or __import__(module_name, fromlist=["_"])
        owner_name, _, name = path.rpartition(".")
        owner = getattr(module, owner_name, None) if owner_name else module
        original = getattr(owner, name, None) if owner is not None else None
        if original is None:
            missing.append(f"{module_name}.{path}")
            continue
        # a method: its class; a function: every module that imported it by name
        owners = (
            [owner]
            if owner_name
            else [
                loaded
                for loaded in list(sys.modules.values())
                if getattr(loaded, "__name__", "").startswith("modelport")
                and getattr(loaded, name, None) is original
            ]
        )
        timed = wrap(original, label, clock)
        for target in owners:
            undo.append((target, name, original))
            setattr(target, name, timed)
    return undo, missing


def restore(undo: list[tuple[object, str, object]]) -> None:
    for target, name, original in reversed(undo):
        setattr(target, name, original)


class Harness:
    """Sends one prepared POST to an ASGI app as a direct call and checks the answer."""

    def __init__(self, app, path: str, body: bytes) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        headers = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")]
        headers.append((b"content-length", str(len(body)).encode()))
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        self.message = {"type": "http.request", "body": body, "more_body": False}
        self.status = 0
        self.answer = b""

    async def receive(self) -> dict:
        return self.message

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.answer = message.get("body", b"")

    async def once(self) -> float:
        started = time.perf_counter()
        await self.app(dict(self.scope), self.receive, self.send)
        return time.perf_counter() - started

    async def run(self, requests: int, clock: Clock | None = None) -> np.ndarray:
        """µs of ``requests`` calls after 200 warm-ups, one row per request: the total, then (with
        a ``clock``) each stage's exclusive time in ``LABELS`` order."""
        await self.once()
        if self.status != 200:
            raise RuntimeError(f"{self.scope['path']} answered {self.status}: {self.answer[:300]}")
        for _ in range(200):
            await self.once()
        samples = np.zeros((requests, 1 + len(LABELS)))
        for i in range(requests):
            if clock is not None:
                clock.reset()
            samples[i, 0] = await self.once()
            if clock is not None:
                samples[i, 1:] = [clock.spent.get(label, 0.0) for label in LABELS]
        return samples * 1e6


async def lifespan(app, queue: asyncio.Queue) -> asyncio.Task:  # type: ignore[no-untyped-def]
    """Start the app's lifespan; the returned task ends it when ``queue`` gets a shutdown."""
    answers: asyncio.Queue = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})
    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, queue.get, answers.put)
    )
    started = await answers.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {started}")
    return task


async def profile(home: Path, rows: list[dict], sizes: list[int], requests: int) -> dict:
    """Per request size and line of the table: (mean, p50) µs per request."""
    from modelport.config import Settings
    from modelport.serve.app import create_app

    sys.path.insert(0, str(BENCH / "peers"))
    from hello import app as bare

    # background polls and usage flushes out of the way: only requests run on the loop
    settings = Settings(home=home, access_log=False, poll_interval=3600, meter_flush_seconds=3600)
    app = create_app(settings)
    queue: asyncio.Queue = asyncio.Queue()
    task = await lifespan(app, queue)
    bodies = {n: orjson.dumps({"rows": rows[:n]}) for n in sizes}
    clock = Clock()
    runs: dict = {n: {"plain": [], "bare": [], "wrapped": []} for n in sizes}
    missing: list[str] = []
    others = OtherLoad()
    for _ in range(ROUNDS):  # rounds alternate, so a burst of load elsewhere hits all three alike
        for n in sizes:
            each = requests // ROUNDS
            runs[n]["plain"].append(await Harness(app, PATH, bodies[n]).run(each))
            runs[n]["bare"].append(await Harness(bare, "/predict", bodies[n]).run(each))
            undo, missing = instrument(clock)
            runs[n]["wrapped"].append(await Harness(app, PATH, bodies[n]).run(each, clock))
            restore(undo)
    results: dict = {"others": others.percent()}
    for n in sizes:
        plain, bare_times, wrapped = (np.vstack(runs[n][k]) for k in ("plain", "bare", "wrapped"))
        columns = {label: wrapped[:, i + 1] for i, label in enumerate(LABELS)}
        columns[REST] = wrapped[:, 0] - wrapped[:, 1:].sum(axis=1)
        columns[WRAPPED] = wrapped[:, 0]
        columns[TOTAL] = plain[:, 0]
        columns[BARE] = bare_times[:, 0]
        results[n] = {k: (float(v.mean()), float(np.median(v))) for k, v in columns.items()}
        results[n]["p99"] = float(np.percentile(plain[:, 0], 99))
    await queue.put({"type": "lifespan.shutdown"})
    await task
    return {"sizes": results, "missing": missing}


PATH = "/api/v1/models/adult/predict"
ROUNDS = 5
LABELS = [label for label, *_ in STAGES]
REST = "the rest: ASGI call, fast-path routing, Request/Response objects, handler code"
WRAPPED = "total with the wrappers (= stages + the rest)"
TOTAL = "**total per request, without the wrappers**"
BARE = "bare Starlette endpoint (bench/peers/hello.py), same harness"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args()
    if not ADULT.exists():
        sys.exit(f"skipped: {ADULT} is not available")
    with tempfile.TemporaryDirectory(prefix="modelport-profile-") as work:
        home = Path(work) / "home"
        _, X, _ = train_adult(home, budget=10)
        rows = orjson.loads(X.dropna().head(max(args.rows)).to_json(orient="records"))
        found = asyncio.run(profile(home, rows, args.rows, args.requests))
    results = found["sizes"]
    head = " | ".join(f"{n} row{'s' if n > 1 else ''}: mean | p50" for n in args.rows)
    print(f"| stage (µs per request, {args.requests:,} requests) | {head} |")
    print("|---|" + "---|---|" * len(args.rows))
    for label in [*LABELS, REST, WRAPPED, TOTAL, BARE]:
        cells = " | ".join(
            f"{results[n][label][0]:,.1f} | {results[n][label][1]:,.1f}" for n in args.rows
        )
        print(f"| {label} | {cells} |")
    p99 = ", ".join(
        f"{results[n]['p99']:,.0f} µs ({n} row{'s' if n > 1 else ''})" for n in args.rows
    )
    print(f"\np99 of the total without the wrappers: {p99}.")
    print("Means add up (stages + the rest = total with the wrappers); medians do not.")
    cores = os.cpu_count()
    print(f"Other processes used {results['others']:.0f} % CPU (of {cores * 100} %) meanwhile.")
    if found["missing"]:
        print(f"Not found in this app, so counted in the rest: {', '.join(found['missing'])}.")
    print(f"onnxruntime {ort.__version__}, Python {sys.version.split()[0]}.")


if __name__ == "__main__":
    main()
