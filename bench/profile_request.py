"""Where one prediction request's time goes inside modelport's ASGI app, stage by stage.

Run: .venv/bin/python bench/profile_request.py [--requests 5000] [--rows 1 32]
     [--table adult wide]
Before/after a change: run it with an older modelport source tree first on the path, e.g.
     git archive OLD src | tar -x -C /tmp/old && PYTHONPATH=/tmp/old/src .venv/bin/python bench/...
Needs nothing: adult (../shared/data/adult) is skipped when absent; the wide table is generated.
Prints Markdown tables for bench/RESULTS.md.

It trains a LightGBM model per table (adult, and `common.wide_table(20)`) into a temporary store
with an API key, builds the real app (``modelport.serve.app.create_app``) with its lifespan and its
defaults (metering, and the access log, written to a file as `modelport serve` writes it to
stderr), and sends it predictions with the key, simple JSON (``POST /api/v1/models/NAME/predict``)
and OIP v2 JSON (``POST /v2/models/NAME/infer``, one input per column), directly as ASGI calls,
one after another on one event loop: no socket, no HTTP parser, no uvicorn, so this is the app's
own cost per request. Each stage is a function the app calls; it is wrapped with ``perf_counter``
and charged its exclusive time (time in wrapped stages it calls goes to those), so the stages and
"the rest" add up to the total. A stage whose function this modelport lacks (older or newer code)
is left out and said so. The same requests also run without the wrappers (the true total; the
difference is the wrappers' own cost) and against the bare Starlette endpoint of the serving
benchmark (bench/peers/hello.py), in alternating rounds so that load from other processes falls
on all three alike.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import functools
import inspect
import logging.config
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import orjson
from common import (
    BENCH,
    BUDGETS,
    TABLES,
    OtherLoad,
    create_key,
    oip_body,
    present,
    simple_body,
    table,
    train_table,
)

# (label, module, attribute path): each a function or method the app calls per request
STAGES = [
    ("read the body", "modelport.serve.context", "ServerContext.read_body"),
    ("parse JSON (orjson)", "modelport.serve.dataplane", "parse_json"),
    ("auth check", "modelport.serve.auth", "Authenticator.check"),
    ("model lookup", "modelport.serve.models", "ModelManager.get"),
    ("OIP: decode the request", "modelport.serve.tensors", "decode_request"),
    ("OIP: text tensors", "modelport.serve.tensors", "texts"),
    ("rows -> packed (plan)", "modelport.runtime.plan", "TabularPlan.pack"),
    ("OIP tensors -> packed (plan)", "modelport.runtime.plan", "TabularPlan.pack_tensors"),
    ("rows -> feeds: to_columns", "modelport.runtime.tabular", "to_columns"),
    ("rows -> feeds: encode", "modelport.runtime.tabular", "encode"),
    ("OIP tensors -> feeds: encode_tensors", "modelport.runtime.tabular", "encode_tensors"),
    (
        "ctx.predict + batcher (around the model call)",
        "modelport.serve.context",
        "ServerContext.predict",
    ),
    ("packed -> graph feeds (plan)", "modelport.runtime.plan", "TabularPlan.feeds"),
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
    ("response: OIP encode", "modelport.serve.tensors", "encode_response"),
    ("response: JSON encode (orjson)", "modelport.serve.dataplane", "json_response"),
    ("metrics (Prometheus)", "modelport.serve.metrics", "Metrics.observe_request"),
    ("metrics (request counters)", "modelport.serve.metrics", "RequestStats.observe"),
    ("metering (usage record)", "modelport.serve.metering", "Meter.record"),
    ("access log: buffer the line", "modelport.serve.access_log", "AccessLog.record"),
    ("access log: logging call (to a file)", "logging", "Logger.info"),
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
        try:
            module = sys.modules.get(module_name) or __import__(module_name, fromlist=["_"])
        except ImportError:
            missing.append(f"{module_name}.{path}")
            continue
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

    def __init__(self, app, path: str, body: bytes, key: str) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        headers = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")]
        headers.append((b"content-length", str(len(body)).encode()))
        headers.append((b"authorization", f"Bearer {key}".encode()))
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


@dataclass(frozen=True)
class Case:
    """One kind of request: a table's model, a protocol, rows per request."""

    table: str
    protocol: str
    rows: int

    @property
    def path(self) -> str:
        if self.protocol == JSON:
            return f"/api/v1/models/{self.table}/predict"
        return f"/v2/models/{self.table}/infer"

    def body(self, rows: list[dict]) -> bytes:
        chosen = rows[: self.rows]
        return orjson.dumps(simple_body(chosen) if self.protocol == JSON else oip_body(chosen))


def log_to_file(path: Path) -> None:
    """Logging as `modelport serve` sets it up, to ``path`` instead of stderr; the root logger
    without handlers, as in the server (training libraries may have given it one)."""
    from modelport.cli.serve import LOG_CONFIG

    config = copy.deepcopy(LOG_CONFIG)
    for handler in config["handlers"].values():
        handler.pop("stream", None)
        handler.update({"class": "logging.FileHandler", "filename": str(path)})
    config["root"] = {"handlers": []}
    logging.config.dictConfig(config)


async def profile(
    home: Path, key: str, rows: dict[str, list[dict]], cases: list[Case], requests: int
) -> dict:
    """Per case and line of the table: (mean, p50) µs per request."""
    from modelport.config import Settings
    from modelport.serve.app import create_app

    sys.path.insert(0, str(BENCH / "peers"))
    from hello import app as bare

    # background polls and usage flushes out of the way: only requests run on the loop
    app = create_app(Settings(home=home, poll_interval=3600, meter_flush_seconds=3600))
    queue: asyncio.Queue = asyncio.Queue()
    task = await lifespan(app, queue)
    bodies = {case: case.body(rows[case.table]) for case in cases}
    clock = Clock()
    runs: dict = {case: {"plain": [], "bare": [], "wrapped": []} for case in cases}
    missing: list[str] = []
    others = OtherLoad()
    each = max(requests // ROUNDS, 1)
    for _ in range(ROUNDS):  # rounds alternate, so a burst of load elsewhere hits all three alike
        for case in cases:
            body = bodies[case]
            runs[case]["plain"].append(await Harness(app, case.path, body, key).run(each))
            runs[case]["bare"].append(await Harness(bare, "/predict", body, key).run(each))
            undo, missing = instrument(clock)
            wrapped = Harness(app, case.path, body, key)
            runs[case]["wrapped"].append(await wrapped.run(each, clock))
            restore(undo)
    results: dict = {"others": others.percent()}
    for case in cases:
        plain, bare_times, wrapped = (
            np.vstack(runs[case][k]) for k in ("plain", "bare", "wrapped")
        )
        columns = {label: wrapped[:, i + 1] for i, label in enumerate(LABELS)}
        columns[REST] = wrapped[:, 0] - wrapped[:, 1:].sum(axis=1)
        columns[WRAPPED] = wrapped[:, 0]
        columns[TOTAL] = plain[:, 0]
        columns[BARE] = bare_times[:, 0]
        results[case] = {k: (float(v.mean()), float(np.median(v))) for k, v in columns.items()}
        results[case]["p99"] = float(np.percentile(plain[:, 0], 99))
    await queue.put({"type": "lifespan.shutdown"})
    await task
    return {"cases": results, "missing": missing}


JSON, OIP = "simple JSON", "OIP v2 JSON"
ROUNDS = 5
LABELS = [label for label, *_ in STAGES]
REST = "the rest: ASGI call, fast-path routing, Request/Response objects, handler code"
WRAPPED = "total with the wrappers (= stages + the rest)"
TOTAL = "**total per request, without the wrappers**"
BARE = "bare Starlette endpoint (bench/peers/hello.py), same harness and body"


def print_table(results: dict, name: str, protocol: str, sizes: list[int], requests: int) -> None:
    """The stages of one table's model and one protocol (those it ran), a column pair per
    request size."""
    cases = [Case(name, protocol, n) for n in sizes]
    head = " | ".join(f"{n} row{'s' if n > 1 else ''}: mean | p50" for n in sizes)
    print(f"\n**{name}, {protocol}** (`POST {cases[0].path}`)\n")
    print(f"| stage (µs per request, {requests:,} requests) | {head} |")
    print("|---|" + "---|---|" * len(sizes))
    ran = [label for label in LABELS if any(results[case][label][0] for case in cases)]
    for label in [*ran, REST, WRAPPED, TOTAL, BARE]:
        cells = " | ".join(
            f"{results[case][label][0]:,.1f} | {results[case][label][1]:,.1f}" for case in cases
        )
        print(f"| {label} | {cells} |")
    p99 = ", ".join(
        f"{results[case]['p99']:,.0f} µs ({case.rows} row{'s' if case.rows > 1 else ''})"
        for case in cases
    )
    print(f"\np99 of the total without the wrappers: {p99}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="per table, protocol and size")
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--table", nargs="+", choices=TABLES, default=list(TABLES))
    args = parser.parse_args()
    names = present(args.table)
    if not names:
        sys.exit("skipped: no table to profile")
    cases = [Case(name, p, n) for name in names for p in (JSON, OIP) for n in args.rows]
    with tempfile.TemporaryDirectory(prefix="modelport-profile-") as work:
        home = Path(work) / "home"
        rows = {}
        for name in names:
            X, y = table(name)
            train_table(home, name, X, y, BUDGETS[name])
            rows[name] = orjson.loads(X.dropna().head(max(args.rows)).to_json(orient="records"))
        log_to_file(Path(work) / "server.log")
        found = asyncio.run(profile(home, create_key(home), rows, cases, args.requests))
        logging.shutdown()
    import modelport

    print(f"modelport from {Path(modelport.__file__).parent}; API key sent; access log on.")
    for name in names:
        for protocol in (JSON, OIP):
            print_table(found["cases"], name, protocol, args.rows, args.requests)
    print("\nMeans add up (stages + the rest = total with the wrappers); medians do not.")
    cores = os.cpu_count()
    print(
        f"Other processes used {found['cases']['others']:.0f} % CPU (of {cores * 100} %) meanwhile."
    )
    if found["missing"]:
        print(f"Not in this modelport, so left out: {', '.join(found['missing'])}.")
    print(f"onnxruntime {ort.__version__}, Python {sys.version.split()[0]}.")


if __name__ == "__main__":
    main()
