"""Online serving: modelport vs a bare endpoint, MLServer and BentoML, on two tables.

Run: make bench-serve   (or .venv/bin/python bench/serve.py [--seconds 3] [--rounds 3]
     [--only TEXT] [--tables adult wide])
Needs: `hey` (apt-get install -y hey); for adult and the peers, ../shared/data/adult (skipped
when absent) and the peers' own venvs, which `make bench-peers` creates in bench/.venvs (MLServer
pins an old FastAPI, so it cannot share ours; a peer without its venv is skipped).

A LightGBM model is trained on each table, adult (14 columns, 8 text) and a generated wide table
(`common.wide_table(20)`: 20 columns, 14 text), and both are served from one store. modelport runs
with its defaults on: an API key (sent by `hey`), metering, and the access log (to a file in
bench/out, as a server's stderr would be), with simple JSON and OIP v2 JSON (one input per
column), 1 worker and 2. The ceiling is a bare Starlette+uvicorn endpoint (bench/peers/hello.py:
reads the body, returns a constant) with 1 worker and 2, sent each table's simple-JSON body. The
peers serve adult only, (a) as the scikit-learn pipeline it was trained as (what their users
deploy by default) and (b) as the very same ONNX file in onnxruntime (bench/peers/mlserver_onnx.py,
bench/peers/bento_service.py:TabularOnnx); they run with 1 worker (their default) and with 2 and
OMP_NUM_THREADS=1 (tuned). Every server runs alone in turn, with the same `hey` load at concurrency
1, 8, 32 and 64, for 1-row and 32-row requests. The whole list runs ``--rounds`` times and each
table cell is the round with the median requests/s, so that load from other work on the machine,
which comes and goes, falls on every server alike. Prints Markdown tables for bench/RESULTS.md:
every cell; the aim (modelport ÷ the bare endpoint, same table and workers, 1 row, concurrency 32);
32-row requests as rows/s; every server at 1 row, concurrency 32; onnxruntime in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import joblib
import onnxruntime as ort
import psutil
from common import (
    BENCH,
    BIN,
    BUDGETS,
    OUT,
    TABLES,
    OtherLoad,
    create_key,
    free_port,
    oip_body,
    present,
    raw_feeds,
    require,
    simple_body,
    stop,
    table,
    timed,
    train_table,
)

from modelport.config import Settings
from modelport.runtime import Predictor
from modelport.store import Store

VENVS = BENCH / ".venvs"
PEERS = BENCH / "peers"
CONCURRENCY = (1, 8, 32, 64)
ROWS = (1, 32)
WORKERS = (1, 2)
AIM_CONCURRENCY, AIM_RATIO = 32, 0.5
"""The issue's aim: at 32 concurrent 1-row requests, at least half the bare endpoint's req/s."""
BARE = "bare Starlette+uvicorn (ceiling)"
TUNED = {"OMP_NUM_THREADS": "1", "ORT_THREADS": "1"}
"""Peers with one worker per core: one thread each for OpenMP (scikit-learn, LightGBM) and ORT."""


@dataclass
class Peer:
    """One server under test: how to start it, where to send what."""

    name: str
    runs: str  # what computes the prediction: "ONNX (onnxruntime)" or "scikit-learn pipeline"
    workers: int
    command: list[str]
    ready_path: str
    path: str
    body: Callable[[list[dict]], dict]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    before_start: Callable[[int], None] | None = None  # given the port
    table: str = "adult"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Table:
    """One served model: its name (= the table's), rows to send, its ONNX input names."""

    name: str
    rows: list[dict]
    onnx_names: dict[str, str]  # column name -> ONNX input name


@dataclass
class Model:
    """The trained models in the forms the servers load."""

    home: Path  # modelport store holding one model per table
    key: str  # an API key of that store
    tables: dict[str, Table]
    pipeline: Path | None = None  # adult's scikit-learn pipeline (joblib), for the peers
    onnx: Path | None = None  # adult's ONNX bytes, as a plain file, for the peers


def prepare(names: list[str]) -> Model:
    """Train a model per table into a fresh store, with an API key; for adult, also write its
    pipeline and ONNX file for the peers."""
    home = OUT / "home"
    shutil.rmtree(home, ignore_errors=True)
    model = Model(home, "", {})
    for name in names:
        X, y = table(name)
        automl = train_table(home, name, X, y, BUDGETS[name])
        artifact = Store(Settings(home=home)).get(name)
        onnx_names = {c.name: c.onnx_name or c.name for c in artifact.manifest.inputs}
        rows = json.loads(X.dropna().head(max(ROWS)).to_json(orient="records"))
        model.tables[name] = Table(name, rows, onnx_names)
        if name == "adult":
            model.pipeline, model.onnx = OUT / "model.joblib", OUT / "model.onnx"
            joblib.dump(automl.best_estimator_, model.pipeline)
            model.onnx.write_bytes(artifact.onnx)
    model.key = create_key(home)
    return model


def renamed(rows: list[dict], names: dict[str, str]) -> list[dict]:
    """Rows keyed by the ONNX input names, as a client of a plain ONNX file sends them."""
    return [{names[k]: v for k, v in row.items()} for row in rows]


def peer_version(venv: str, package: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    python = VENVS / venv / "bin" / "python"
    return subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip()


def peer_label(venv: str, protocol: str) -> str:
    """The peer's name and version; exits when its venv lacks the onnxruntime we run."""
    ours, theirs = ort.__version__, peer_version(venv, "onnxruntime")
    if theirs != ours:
        sys.exit(
            f"bench/.venvs/{venv} has onnxruntime {theirs or 'missing'}, modelport {ours}: "
            f"bench/.venvs/{venv}/bin/pip install onnxruntime=={ours}"
        )
    return (
        f"{'MLServer' if venv == 'mlserver' else 'BentoML'} {peer_version(venv, venv)} {protocol}"
    )


def peers(model: Model) -> list[Peer]:
    """Per table: the bare ceiling and modelport, 1 and 2 workers; then the peers (adult)."""
    found = []
    for t in model.tables.values():
        found.extend(bare_peers(t))
        found.extend(modelport_peers(model, t))
    if model.pipeline is not None:
        found.extend(mlserver_peers(model))
        found.extend(bentoml_peers(model))
    return found


def workers_flag(workers: int) -> list[str]:
    return ["--workers", str(workers)] if workers > 1 else []


def bare_peers(t: Table) -> list[Peer]:
    uvicorn = [str(BIN / "python"), "-m", "uvicorn", "hello:app", "--port", "{port}"]
    quiet = ["--no-access-log", "--log-level", "warning"]
    return [
        Peer(
            BARE,
            "nothing (constant answer)",
            workers,
            [*uvicorn, *workers_flag(workers), *quiet],
            "/predict",
            "/predict",
            simple_body,
            cwd=PEERS,
            table=t.name,
        )
        for workers in WORKERS
    ]


def modelport_peers(model: Model, t: Table) -> list[Peer]:
    """modelport with its defaults on: an API key, metering, the access log (to the log file)."""
    env = {"MODELPORT_HOME": str(model.home), "MODELPORT_ACCESS_LOG": "true"}
    found = []
    for workers in WORKERS:
        for protocol, path, body in (
            ("JSON", f"/api/v1/models/{t.name}/predict", simple_body),
            ("OIP v2", f"/v2/models/{t.name}/infer", oip_body),
        ):
            command = [str(BIN / "modelport"), "serve", "--port", "{port}"]
            found.append(
                Peer(
                    f"modelport {protocol}",
                    "ONNX (onnxruntime)",
                    workers,
                    [*command, *workers_flag(workers)],
                    "/v2/health/ready",
                    path,
                    body,
                    env,
                    table=t.name,
                    headers={"Authorization": f"Bearer {model.key}"},
                )
            )
    return found


def mlserver_peers(model: Model) -> list[Peer]:
    binary = VENVS / "mlserver" / "bin" / "mlserver"
    if not binary.exists():
        return []
    label = peer_label("mlserver", "OIP v2")
    kinds = (
        ("scikit-learn pipeline", "mlserver_sklearn.SKLearnModel", model.pipeline, "sklearn"),
        ("ONNX (onnxruntime)", "mlserver_onnx.OnnxRuntimeModel", model.onnx, "onnx"),
    )
    names = model.tables["adult"].onnx_names
    found = []
    for runs, implementation, uri, kind in kinds:
        if kind == "sklearn":
            body = lambda r: oip_body(r, "FP64", True)  # noqa: E731 - pandas codec, as users do
        else:
            body = lambda r: oip_body(renamed(r, names), "FP32", False)  # noqa: E731
        for workers in WORKERS:
            folder = OUT / f"mlserver-{kind}-{workers}"
            (folder / "adult").mkdir(parents=True, exist_ok=True)
            settings = {"name": "adult", "implementation": implementation}
            settings["parameters"] = {"uri": str(uri), "version": "v1"}
            (folder / "adult" / "model-settings.json").write_text(json.dumps(settings))
            found.append(
                Peer(
                    label,
                    runs,
                    workers,
                    [str(binary), "start", str(folder)],
                    "/v2/models/adult/ready",
                    "/v2/models/adult/infer",
                    body,
                    {**(TUNED if workers > 1 else {}), "PYTHONPATH": str(PEERS)},
                    cwd=folder,
                    before_start=lambda port, f=folder, w=workers: _mlserver_settings(f, port, w),
                )
            )
    return found


def _mlserver_settings(folder: Path, port: int, workers: int) -> None:
    settings = {"host": "127.0.0.1", "http_port": port, "parallel_workers": workers}
    settings.update(grpc_port=free_port(), metrics_port=free_port())
    (folder / "settings.json").write_text(json.dumps(settings))


def bentoml_peers(model: Model) -> list[Peer]:
    binary = VENVS / "bentoml" / "bin" / "bentoml"
    if not binary.exists():
        return []
    label = peer_label("bentoml", "JSON")
    found = []
    for runs, service, path, body in (
        ("scikit-learn pipeline", "Tabular", model.pipeline, simple_body),
        (
            "ONNX (onnxruntime)",
            "TabularOnnx",
            model.onnx,
            lambda r: simple_body(renamed(r, model.tables["adult"].onnx_names)),
        ),
    ):
        for workers in WORKERS:
            env = {
                "MODEL_PATH": str(path),
                "BENTO_WORKERS": str(workers),
                "BENTOML_HOME": str(OUT / "bentoml"),
                "BENTOML_DO_NOT_TRACK": "true",
                **(TUNED if workers > 1 else {}),
            }
            command = [str(binary), "serve", f"bento_service:{service}", "--port", "{port}"]
            found.append(
                Peer(label, runs, workers, command, "/readyz", "/predict", body, env, cwd=PEERS)
            )
    return found


def slug(peer: Peer) -> str:
    text = f"{peer.table} {peer.name} {peer.runs} {peer.workers}"
    return re.sub(r"[^a-z0-9]+", "-", text.lower())


def start(peer: Peer) -> tuple[subprocess.Popen, int]:
    port = free_port()
    if peer.before_start is not None:
        peer.before_start(port)
    command = [c.replace("{port}", str(port)) for c in peer.command]
    log = (OUT / f"{slug(peer)}.log").open("wb")
    process = subprocess.Popen(
        command,
        cwd=peer.cwd,
        env={**os.environ, **peer.env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if (
                httpx.request(
                    "POST" if peer.ready_path == "/predict" else "GET",
                    f"http://127.0.0.1:{port}{peer.ready_path}",
                    timeout=2,
                    json={"rows": []},
                ).status_code
                == 200
            ):
                time.sleep(1.0)  # MLServer's workers can report ready and then die: settle first
                return process, port
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop(process)
    raise RuntimeError(f"{peer.name} did not become ready; see {log.name}")


def load(
    url: str,
    body_file: Path,
    concurrency: int,
    seconds: float,
    pid: int,
    headers: dict[str, str] | None = None,
) -> dict:
    """`hey` against ``url`` for ``seconds`` (sending ``headers``); its numbers plus the
    server's CPU and memory."""
    sampler = _Sampler(pid)
    sampler.start()
    command = ["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    command += ["-T", "application/json", "-D", str(body_file), url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    usage = sampler.finish()
    summary, _, failures = out.partition("Error distribution:")
    statuses = {int(c): int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", summary)}
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": _percentile(summary, 50),
        "p99": _percentile(summary, 99),
        "errors": sum(n for code, n in statuses.items() if code != 200)
        + sum(int(n) for n in re.findall(r"\[(\d+)\]", failures)),
        **usage,
    }


def _percentile(summary: str, p: int) -> float:
    """ms; hey prints no 99 % line under 100 responses, where the nearest-rank p99 is the
    slowest response, which it does print."""
    match = re.search(rf"{p}% in ([\d.]+) secs", summary)
    if match is None and p == 99:
        match = re.search(r"Slowest:\s+([\d.]+) secs", summary)
    return float(match.group(1)) * 1000 if match else float("nan")


class _Sampler(threading.Thread):
    """CPU % and peak memory (RSS and PSS) of a server's whole process tree while the load runs,
    and the CPU % everything else on the machine used meanwhile (not the server, not `hey`, not
    this script): the noise from other work, out of 100 % per core.

    RSS summed over processes counts shared pages once per process; PSS splits them, so a
    multi-process server is not charged several times for the same libraries.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.done = threading.Event()
        self.peak_rss = self.peak_pss = 0

    def _tree(self) -> list[psutil.Process]:
        return [self.root, *self.root.children(recursive=True)]

    def _cpu_seconds(self) -> float:
        total = 0.0
        for proc in self._tree():
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                continue
        return total

    def start(self) -> None:
        self.started_at, self.cpu_at_start = time.monotonic(), self._cpu_seconds()
        self.others = OtherLoad()
        super().start()

    def run(self) -> None:
        while not self.done.wait(0.2):
            rss = pss = 0
            for proc in self._tree():
                try:
                    memory = proc.memory_full_info()
                except psutil.NoSuchProcess:
                    continue
                rss, pss = rss + memory.rss, pss + memory.pss
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)

    def finish(self) -> dict[str, float]:
        self.done.set()
        self.join()
        elapsed = time.monotonic() - self.started_at
        server = self._cpu_seconds() - self.cpu_at_start
        return {
            "cpu": 100 * server / elapsed,
            "others": self.others.percent(excluded=server),
            "rss": self.peak_rss / 2**20,
            "pss": self.peak_pss / 2**20,
        }


def measure(peer: Peer, rows: list[dict], seconds: float) -> list[dict]:
    """Start ``peer``, check its answer, then `hey` at each concurrency for each request size."""
    process, port = start(peer)
    results = []
    try:
        for n in ROWS:
            body = OUT / "body.json"
            body.write_text(json.dumps(peer.body(rows[:n])))
            url = f"http://127.0.0.1:{port}{peer.path}"
            headers = {"Content-Type": "application/json", **peer.headers}
            check = httpx.post(url, content=body.read_bytes(), headers=headers)
            if check.status_code != 200:
                raise RuntimeError(f"{peer.name}: {check.status_code} {check.text[:300]}")
            load(url, body, 8, 1.0, process.pid, peer.headers)  # warm-up
            for concurrency in CONCURRENCY:
                r = load(url, body, concurrency, seconds, process.pid, peer.headers)
                results.append({"peer": peer, "rows": n, "concurrency": concurrency, **r})
                print(row_line(results[-1]), file=sys.stderr, flush=True)
    finally:
        stop(process)
    return results


HEADER = (
    "| table | server | runs | workers | rows/request | concurrency | requests/s | rows/s "
    "| p50 ms | p99 ms | errors | CPU % | RSS MB | PSS MB | other CPU % |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def row_line(r: dict) -> str:
    peer = r["peer"]
    return (
        f"| {peer.table} | {peer.name} | {peer.runs} | {peer.workers} | {r['rows']} | "
        f"{r['concurrency']} | {r['rps']:,.0f} | {r['rps'] * r['rows']:,.0f} | {r['p50']:.2f} | "
        f"{r['p99']:.2f} | {r['errors']} | {r['cpu']:.0f} | {r['rss']:.0f} | {r['pss']:.0f} | "
        f"{r['others']:.0f} |"
    )


def aim_table(results: list[dict]) -> list[str]:
    """modelport ÷ the bare endpoint on the same table with as many workers, 1 row, at the aim's
    concurrency."""
    at = [r for r in results if r["rows"] == 1 and r["concurrency"] == AIM_CONCURRENCY]
    bare = {(r["peer"].table, r["peer"].workers): r for r in at if r["peer"].name == BARE}
    lines = [
        "| table | protocol | workers | modelport req/s | bare req/s | ratio "
        f"| aim ≥ {AIM_RATIO}× met? | modelport p99 ms | bare p99 ms "
        "| server CPU µs/request: modelport | bare |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in at:
        peer = r["peer"]
        ceiling = bare.get((peer.table, peer.workers))
        if not peer.name.startswith("modelport") or ceiling is None:
            continue
        ratio = r["rps"] / ceiling["rps"]
        lines.append(
            f"| {peer.table} | {peer.name.removeprefix('modelport ')} | {peer.workers} | "
            f"{r['rps']:,.0f} | {ceiling['rps']:,.0f} | {ratio:.2f}× | "
            f"{'met' if ratio >= AIM_RATIO else 'not met'} | {r['p99']:.2f} | "
            f"{ceiling['p99']:.2f} | {cpu_per_request(r):.0f} | {cpu_per_request(ceiling):.0f} |"
        )
    return lines


def cpu_per_request(r: dict) -> float:
    """The server's CPU time per request (all its processes), µs: what the app itself costs,
    less sensitive than requests/s to `hey` sharing the cores."""
    return r["cpu"] * 1e4 / r["rps"]


def rows_table(results: list[dict]) -> list[str]:
    """modelport's 32-row requests at the aim's concurrency, as rows/s."""
    lines = [
        "| table | server | workers | requests/s | rows/s | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        peer = r["peer"]
        wanted = r["rows"] == max(ROWS) and r["concurrency"] == AIM_CONCURRENCY
        if wanted and peer.name.startswith("modelport"):
            lines.append(
                f"| {peer.table} | {peer.name} | {peer.workers} | {r['rps']:,.0f} | "
                f"{r['rps'] * r['rows']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} |"
            )
    return lines


def in_process(home: Path, tables: dict[str, Table], seconds: float) -> list[str]:
    """onnxruntime without a server: one thread calling in a timed loop (no HTTP, no JSON)."""
    lines = [
        "| table | in-process call (one thread, no server) | rows/call | calls/s | rows/s "
        "| p50 µs | p99 µs |",
        "|---|---|---|---|---|---|---|",
    ]
    store = Store(Settings(home=home))
    for t in tables.values():
        predictor = Predictor(store.get(t.name))
        names = list(predictor.manifest.outputs.values())
        for n in ROWS:
            feeds = raw_feeds(predictor.manifest, t.rows[:n])
            for label, call in (
                (
                    "`InferenceSession.run` on pre-encoded feeds",
                    lambda f=feeds, p=predictor, o=names: p.session.run(o, f),
                ),
                (
                    "`Predictor.predict` on row dicts (encode + run)",
                    lambda r=t.rows[:n], p=predictor: p.predict(r),
                ),
            ):
                c = timed(call, seconds=seconds)
                lines.append(
                    f"| {t.name} | {label} | {n} | {c.calls_per_s:,.0f} | "
                    f"{c.calls_per_s * n:,.0f} | {c.p50_us:.0f} | {c.p99_us:.0f} |"
                )
    return lines


def median_round(cells: list[dict]) -> dict:
    """Of one cell measured in several rounds, the round with the median requests/s."""
    return sorted(cells, key=lambda r: r["rps"])[len(cells) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="of `hey` load per cell")
    parser.add_argument("--rounds", type=int, default=3, help="passes over every server")
    parser.add_argument(
        "--only",
        help="run only servers whose name contains this text (and the bare ceiling, which the "
        "aim compares with)",
    )
    parser.add_argument("--tables", nargs="+", choices=TABLES, default=list(TABLES))
    args = parser.parse_args()
    require(hey=True, needs_adult=False)
    names = present(args.tables)
    if not names:
        sys.exit("skipped: no table to serve")
    model = prepare(names)
    chosen = [p for p in peers(model) if args.only is None or args.only in p.name or p.name == BARE]
    passes = []
    for n in range(args.rounds):
        print(f"round {n + 1} of {args.rounds}", file=sys.stderr, flush=True)
        passes.append(
            [
                r
                for peer in chosen
                for r in measure(peer, model.tables[peer.table].rows, args.seconds)
            ]
        )
    results = [median_round(list(cells)) for cells in zip(*passes, strict=True)]
    print(f"Each cell: the median of {args.rounds} rounds by requests/s.\n")
    print(HEADER)
    print("\n".join(row_line(r) for r in results))
    print(
        f"\nAim: 1 row per request, concurrency {AIM_CONCURRENCY}, modelport with a key, metering"
    )
    print("and the access log on, vs the bare endpoint on the same table with as many workers\n")
    print("\n".join(aim_table(results)))
    print(f"\n{max(ROWS)} rows per request, concurrency {AIM_CONCURRENCY}\n")
    print("\n".join(rows_table(results)))
    print(f"\nEvery server: 1 row per request, concurrency {AIM_CONCURRENCY}\n")
    print(HEADER)
    print(
        "\n".join(
            row_line(r) for r in results if r["rows"] == 1 and r["concurrency"] == AIM_CONCURRENCY
        )
    )
    print()
    print("\n".join(in_process(model.home, model.tables, args.seconds)))


if __name__ == "__main__":
    main()
