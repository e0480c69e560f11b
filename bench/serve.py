"""Online serving: modelport vs MLServer and BentoML on the same trained model, side by side.

Run: make bench-serve   (or .venv/bin/python bench/serve.py [--seconds 4])
Needs: `hey` (apt-get install -y hey), ../shared/data/adult, and the peers' own venvs, which
`make bench-peers` creates in bench/.venvs (MLServer pins an old FastAPI, so it cannot share ours).
Every server runs alone on the machine in turn, with the same `hey` load at concurrency 1, 8 and 64,
for 1-row and 32-row requests. Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import joblib
import numpy as np
import psutil

from modelport.config import Settings
from modelport.data import read_table
from modelport.runtime import Predictor
from modelport.runtime.tabular import encode, to_columns
from modelport.store import Store
from modelport.train import TabularAutoML

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
VENVS = BENCH / ".venvs"
ADULT = BENCH.parents[1] / "shared" / "data" / "adult" / "adult.csv"
CONCURRENCY = (1, 8, 64)
ROWS = (1, 32)


@dataclass
class Peer:
    """One server under test: how to start it, where to send what."""

    name: str
    command: list[str]
    ready_path: str
    path: str
    body: callable  # rows -> JSON body
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare() -> tuple[list[dict], Path, Path]:
    """Train one model on adult; register it for modelport, joblib it for the peers."""
    home = OUT / "home"
    shutil.rmtree(home, ignore_errors=True)
    frame = read_table(ADULT)
    X, y = frame.drop(columns="income"), frame["income"]
    automl = TabularAutoML(time_budget=15, estimators=("lgbm",), seed=0).fit(X, y)
    Store(Settings(home=home)).register(automl.to_artifact("adult"))
    joblib.dump(automl.best_estimator_, OUT / "model.joblib")
    complete = X.dropna().head(32)
    rows = json.loads(complete.to_json(orient="records"))
    return rows, home, OUT / "model.joblib"


def simple_body(rows: list[dict]) -> dict:
    return {"rows": rows}


def oip_body(rows: list[dict], numbers: str, content_type: bool) -> dict:
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


def peers(home: Path, model: Path) -> list[Peer]:
    mp = str(BENCH.parent / ".venv" / "bin" / "modelport")
    mp_env = {"MODELPORT_HOME": str(home), "MODELPORT_ACCESS_LOG": "false"}
    python = str(BENCH.parent / ".venv" / "bin" / "python")
    found = [
        Peer(
            "bare Starlette+uvicorn (ceiling)",
            [
                python,
                "-m",
                "uvicorn",
                "hello:app",
                "--port",
                "{port}",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            "/predict",
            "/predict",
            simple_body,
            cwd=BENCH / "peers",
        ),
        Peer(
            "modelport JSON, 1 worker",
            [mp, "serve", "--port", "{port}"],
            "/v2/health/ready",
            "/api/v1/models/adult/predict",
            simple_body,
            mp_env,
        ),
        Peer(
            "modelport OIP v2, 1 worker",
            [mp, "serve", "--port", "{port}"],
            "/v2/health/ready",
            "/v2/models/adult/infer",
            lambda r: oip_body(r, "FP32", False),
            mp_env,
        ),
        Peer(
            "modelport JSON, 2 workers",
            [mp, "serve", "--port", "{port}", "--workers", "2"],
            "/v2/health/ready",
            "/api/v1/models/adult/predict",
            simple_body,
            mp_env,
        ),
    ]
    mlserver = VENVS / "mlserver" / "bin" / "mlserver"
    if mlserver.exists():
        for workers, label in ((1, "default"), (2, "tuned: 2 workers, OMP_NUM_THREADS=1")):
            found.append(
                Peer(
                    f"MLServer 1.7 ({label})",
                    [str(mlserver), "start", "{dir}"],
                    "/v2/models/adult/ready",
                    "/v2/models/adult/infer",
                    lambda r: oip_body(r, "FP64", True),
                    {"OMP_NUM_THREADS": "1"} if workers == 2 else {},
                    cwd=_mlserver_dir(model, workers),
                )
            )
    bentoml = VENVS / "bentoml" / "bin" / "bentoml"
    if bentoml.exists():
        found.append(
            Peer(
                "BentoML 1.4",
                [str(bentoml), "serve", "bento_service:Tabular", "--port", "{port}"],
                "/readyz",
                "/predict",
                simple_body,
                {
                    "MODEL_PATH": str(model),
                    "BENTOML_HOME": str(OUT / "bentoml"),
                    "BENTOML_DO_NOT_TRACK": "true",
                },
                cwd=BENCH / "peers",
            )
        )
    return found


def _mlserver_dir(model: Path, workers: int) -> Path:
    folder = OUT / f"mlserver-{workers}"
    (folder / "adult").mkdir(parents=True, exist_ok=True)
    (folder / "adult" / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "adult",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": str(model), "version": "v1"},
            }
        )
    )
    return folder


def start(peer: Peer) -> tuple[subprocess.Popen, int]:
    port = free_port()
    if peer.cwd is not None and peer.cwd.name.startswith("mlserver"):
        (peer.cwd / "settings.json").write_text(
            json.dumps(
                {
                    "host": "127.0.0.1",
                    "http_port": port,
                    "grpc_port": free_port(),
                    "metrics_port": free_port(),
                    "parallel_workers": 2 if peer.cwd.name.endswith("2") else 1,
                }
            )
        )
    command = [c.replace("{port}", str(port)).replace("{dir}", str(peer.cwd)) for c in peer.command]
    log = (OUT / f"{re.sub(r'[^a-z0-9]+', '-', peer.name.lower())}.log").open("wb")
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


def stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, 15)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, 9)


def load(url: str, body_file: Path, concurrency: int, seconds: float, pid: int) -> dict:
    sampler = _Sampler(pid)
    sampler.start()
    out = subprocess.run(
        [
            "hey",
            "-z",
            f"{seconds}s",
            "-c",
            str(concurrency),
            "-m",
            "POST",
            "-T",
            "application/json",
            "-D",
            str(body_file),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu, rss = sampler.finish()
    statuses = {int(code): int(n) for code, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": _percentile(out, 50),
        "p99": _percentile(out, 99),
        "errors": sum(n for code, n in statuses.items() if code != 200),
        "cpu": cpu,
        "rss": rss,
    }


def _percentile(out: str, p: int) -> float:
    match = re.search(rf"{p}% in ([\d.]+) secs", out)
    return float(match.group(1)) * 1000 if match else float("nan")


class _Sampler(threading.Thread):
    """CPU % and peak RSS of a server's whole process tree while the load runs."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.done = threading.Event()
        self.peak_rss = 0

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
        super().start()

    def run(self) -> None:
        while not self.done.wait(0.2):
            rss = 0
            for proc in self._tree():
                try:
                    rss += proc.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
            self.peak_rss = max(self.peak_rss, rss)

    def finish(self) -> tuple[float, float]:
        self.done.set()
        self.join()
        elapsed = time.monotonic() - self.started_at
        return 100 * (self._cpu_seconds() - self.cpu_at_start) / elapsed, self.peak_rss / 2**20


def onnxruntime_limit(home: Path, rows: list[dict]) -> list[str]:
    predictor = Predictor(Store(Settings(home=home)).get("adult"))
    lines = []
    for n in ROWS:
        feeds = encode(predictor.manifest, to_columns(rows[:n], predictor.manifest))
        names = list(predictor.manifest.outputs.values())
        timings = []
        for _ in range(2000):
            started = time.perf_counter()
            predictor.session.run(names, feeds)
            timings.append(time.perf_counter() - started)
        p50, p99 = np.percentile(timings, [50, 99]) * 1000
        lines.append(
            f"| onnxruntime in-process (limit) | {n} | 1 | {1000 / p50:,.0f} | {p50:.3f} | "
            f"{p99:.3f} | 0 | 100 | — |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--only", help="run only peers whose name contains this text")
    args = parser.parse_args()
    if not ADULT.exists():
        sys.exit(f"skipped: {ADULT} is not available")
    if shutil.which("hey") is None:
        sys.exit("needs `hey`: apt-get install -y hey")
    OUT.mkdir(exist_ok=True)
    rows, home, model = prepare()
    lines = [
        "| server | rows/request | concurrency | requests/s | p50 ms | p99 ms | errors | CPU % | RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for peer in peers(home, model):
        if args.only and args.only not in peer.name:
            continue
        process, port = start(peer)
        try:
            for n in ROWS:
                body = OUT / "body.json"
                body.write_text(json.dumps(peer.body(rows[:n])))
                url = f"http://127.0.0.1:{port}{peer.path}"
                check = httpx.post(
                    url, content=body.read_bytes(), headers={"Content-Type": "application/json"}
                )
                if check.status_code != 200:
                    raise RuntimeError(f"{peer.name}: {check.status_code} {check.text[:300]}")
                load(url, body, 8, 1.0, process.pid)  # warm-up
                for concurrency in CONCURRENCY:
                    r = load(url, body, concurrency, args.seconds, process.pid)
                    line = (
                        f"| {peer.name} | {n} | {concurrency} | {r['rps']:,.0f} | {r['p50']:.2f} | "
                        f"{r['p99']:.2f} | {r['errors']} | {r['cpu']:.0f} | {r['rss']:.0f} |"
                    )
                    print(line, file=sys.stderr, flush=True)
                    lines.append(line)
        finally:
            stop(process)
    lines.extend(onnxruntime_limit(home, rows))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
