"""The device SDK on two tables: local predict vs bare onnxruntime (the issue's aims), its cost
per column, remote latency, cold start, and the fp32 / int8 variants.

Run: make bench-client   (or .venv/bin/python bench/client.py)
Needs nothing: adult (../shared/data/adult) is skipped when absent; the wide tables are generated.
Prints Markdown tables for bench/RESULTS.md.

Bare onnxruntime is `InferenceSession.run` of the SDK's own session on feeds this script builds
itself from the rows (per input column, float32 or str [n, 1]), so it does not depend on how
modelport encodes. Each comparison is timed in alternating blocks (``interleaved_us``), so that
load from other work falls on both alike. Remote latency, cold start and the variants run on the
first table (adult when present).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from common import (
    BUDGETS,
    OtherLoad,
    interleaved_us,
    modelport_server,
    p50_p99_us,
    present,
    raw_feeds,
    require,
    table,
    train_table,
    wide_table,
)

from modelport.client import Client
from modelport.train import TabularAutoML

RUNS = 3000
"""1-row calls timed per alternative."""
FRAME_ROWS, FRAME_RUNS = 1000, 200
COLUMNS = (5, 20, 80)
"""Widths of the per-column cost table (``wide_table(n)``), each trained for COST_BUDGET s."""
COST_BUDGET = 5.0
ONE_ROW_AIM = (1.2, 50.0)  # p50 <= 1.2 × raw + 50 µs
FRAME_AIM = 1.5  # p50 <= 1.5 × raw


@dataclass
class Versus:
    """p50 / p99 µs of bare onnxruntime and of the SDK on the same rows, timed in turns."""

    raw: tuple[float, float]
    sdk: tuple[float, float]
    others: float  # CPU % other processes used meanwhile


def versus(client: Client, name: str, rows, runs: int) -> Versus:  # type: ignore[no-untyped-def]
    """The local SDK's ``model.predict(rows)`` (row dicts or a DataFrame) vs its session's
    ``run`` on feeds made here."""
    local = client.model(name, mode="local_only", update="latest")
    local.predict(rows)
    predictor = local._predictor
    assert predictor is not None
    names = list(predictor.manifest.outputs.values())
    feeds = raw_feeds(predictor.manifest, rows)
    load = OtherLoad()
    times = interleaved_us(
        {
            "raw": lambda: predictor.session.run(names, feeds),
            "sdk": lambda: local.predict(rows),
        },
        runs,
        warmup=100 if runs >= 1000 else 3,
    )
    return Versus(times["raw"], times["sdk"], load.percent())


def one_row_limit(raw_p50: float) -> float:
    factor, extra = ONE_ROW_AIM
    return factor * raw_p50 + extra


def met(ok: bool) -> str:
    return "met" if ok else "not met"


def aims_table(client: Client, tables: dict) -> list[str]:
    """Per table: one row dict and a 1,000-row DataFrame, SDK vs bare onnxruntime."""
    factor, extra = ONE_ROW_AIM
    lines = [
        "| table | columns | 1 row µs p50 / p99: bare `run` | `model.predict([row])` "
        f"| aim ≤ {factor} × bare + {extra:.0f} µs | 1 row aim | {FRAME_ROWS:,} rows ms p50: "
        f"bare `run` | `model.predict(frame)` | ratio | ≤ {FRAME_AIM}× aim | other CPU % |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, (_, X, _) in tables.items():
        complete = X.dropna()
        row = versus(client, name, complete.head(1).to_dict(orient="records"), RUNS)
        frame = versus(client, name, complete.head(FRAME_ROWS), FRAME_RUNS)
        limit = one_row_limit(row.raw[0])
        ratio = frame.sdk[0] / frame.raw[0]
        lines.append(
            f"| {name} | {X.shape[1]} | {row.raw[0]:.0f} / {row.raw[1]:.0f} | "
            f"{row.sdk[0]:.0f} / {row.sdk[1]:.0f} | {limit:.0f} | {met(row.sdk[0] <= limit)} | "
            f"{frame.raw[0] / 1000:.2f} | {frame.sdk[0] / 1000:.2f} | {ratio:.2f}× | "
            f"{met(ratio <= FRAME_AIM)} | {max(row.others, frame.others):.0f} |"
        )
    return lines


def cost_table(client: Client) -> list[str]:
    """1-row p50 vs the number of columns, and the slope of modelport's own cost."""
    lines = [
        "| columns (text + numbers) | bare `run` p50 µs | `model.predict([row])` p50 µs "
        "| modelport's own cost µs | other CPU % |",
        "|---|---|---|---|---|",
    ]
    own, raw = [], []
    for n in COLUMNS:
        X, _ = wide_table(n)
        text = n - X.select_dtypes("number").shape[1]
        t = versus(client, f"wide{n}", X.head(1).to_dict(orient="records"), RUNS)
        own.append(t.sdk[0] - t.raw[0])
        raw.append(t.raw[0])
        lines.append(
            f"| {n} ({text} + {n - text}) | {t.raw[0]:.0f} | {t.sdk[0]:.0f} | {own[-1]:.0f} | "
            f"{t.others:.0f} |"
        )
    own_slope = np.polyfit(COLUMNS, own, 1)[0]
    raw_slope = np.polyfit(COLUMNS, raw, 1)[0]
    lines.append(
        f"\nSlope (least squares over {', '.join(map(str, COLUMNS))} columns): modelport's own "
        f"cost {own_slope:.2f} µs per extra column; bare onnxruntime {raw_slope:.2f} µs per column."
    )
    return lines


def main() -> None:
    require(needs_adult=False)
    names = present()
    work = Path(tempfile.mkdtemp(prefix="modelport-client-bench-"))
    home, cache = work / "home", work / "cache"
    tables = {}
    for name in names:
        X, y = table(name)
        tables[name] = (train_table(home, name, X, y, BUDGETS[name]), X, y)
    for n in COLUMNS:
        train_table(home, f"wide{n}", *wide_table(n), budget=COST_BUDGET)
    first = names[0]
    automl, X, y = tables[first]
    row = X.dropna().head(1).to_dict(orient="records")[0]
    try:
        with modelport_server(home) as (url, _):
            client = Client(url, cache_dir=cache)
            aims = aims_table(client, tables)
            cost = cost_table(client)
            remote_model = client.model(first, mode="remote_only")
            remote = p50_p99_us(lambda: remote_model.predict([row]), 1000)
            cold = _cold_start(cache, first, row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cores = (os.cpu_count() or 1) * 100
    print("SDK local predict vs bare onnxruntime (the issue's aims), timed in turns:\n")
    print("\n".join(aims))
    print(f"\n*other CPU %*: what other processes used meanwhile, of {cores} %.\n")
    print("Cost per column (`wide_table(n)`, 1 row, timed in turns):\n")
    print("\n".join(cost))
    print(f"\nOn {first}:\n")
    print("| path | p50 µs | p99 µs |")
    print("|---|---|---|")
    print(
        f"| `model.predict([row])`, remote (HTTP, same machine) | {remote[0]:.0f} | {remote[1]:.0f} |"
    )
    print(f"| cold start: import + load cached model + first prediction | {cold:,.0f} | — |")
    print()
    variants_table(automl, X, y, row, first)


def variants_table(automl: TabularAutoML, X, y, row: dict, name: str) -> None:
    """fp32 vs int8 for the tree ensemble and for an MLP on the same data."""
    import joblib
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from modelport.export.importers import import_file
    from modelport.runtime import Predictor

    complete = X.dropna()
    X_train, X_test, y_train, y_test = train_test_split(
        complete, y[complete.index], test_size=0.2, random_state=0
    )
    numeric = [c for c in X.columns if X[c].dtype.kind in "fi"]
    text = [c for c in X.columns if c not in numeric]
    mlp = make_pipeline(
        ColumnTransformer(
            [
                ("n", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
                ("t", OneHotEncoder(handle_unknown="ignore"), text),
            ]
        ),
        MLPClassifier((256, 128), max_iter=60, random_state=0),
    ).fit(X_train, y_train)
    work = Path(tempfile.mkdtemp(prefix="modelport-variants-"))
    joblib.dump(mlp, work / "mlp.joblib")
    X_test.head(500).to_csv(work / "sample.csv", index=False)
    models = {
        "LightGBM (AutoML)": automl.to_artifact(name),
        "MLP 256-128": import_file(work / "mlp.joblib", "mlp", work / "sample.csv"),
    }
    truth = y_test.astype(str).to_numpy()
    print("| model | variant | size KB | 1-row p50 µs | accuracy (held out) | recommended |")
    print("|---|---|---|---|---|---|")
    for label, artifact in models.items():
        for name in ("fp32", "int8"):
            predictor = Predictor(artifact.variant(name))
            p50, _ = p50_p99_us(lambda p=predictor: p.predict([row]), 1000)
            accuracy = float(np.mean(predictor.predict(X_test).predictions.astype(str) == truth))
            recommended = (
                artifact.manifest.variants["int8"]["recommended"] if name == "int8" else ""
            )
            size = predictor.manifest.size_bytes / 1024
            print(f"| {label} | {name} | {size:.1f} | {p50:.0f} | {accuracy:.4f} | {recommended} |")
    shutil.rmtree(work, ignore_errors=True)


def _cold_start(cache: Path, name: str, row: dict) -> float:
    code = (
        "import time; t = time.perf_counter()\n"
        "from modelport.client import Client\n"
        f"m = Client(None, cache_dir={str(cache)!r}).model({name!r}, mode='local_only')\n"
        f"m.predict([{row!r}])\n"
        "print((time.perf_counter() - t) * 1e6)"
    )
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(5)
    ]
    return float(np.median(runs))


if __name__ == "__main__":
    main()
