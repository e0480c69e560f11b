"""Tabular AutoML on `adult`: quality, budget, ONNX size and latency vs the original model.

Run: make bench   (or .venv/bin/python bench/train.py [--budgets 10 30 60])
Needs ../shared/data/adult; prints a Markdown table to paste into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

from modelport.data import read_table
from modelport.runtime import Predictor
from modelport.runtime.tabular import encode, to_columns
from modelport.train import TabularAutoML
from modelport.train.tabular import encoded_frame

ADULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "adult"


def timings_us(call, runs: int) -> tuple[float, float]:
    call()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return float(np.percentile(samples, 50) * 1e6), float(np.percentile(samples, 99) * 1e6)


def run(budget: float) -> dict[str, object]:
    frame = read_table(next(ADULT.glob("*.csv")))
    X, y = frame.drop(columns="income"), frame["income"]
    stages: dict[str, float] = {}
    started = time.monotonic()
    automl = TabularAutoML(
        time_budget=budget, seed=0, callback=lambda e: stages.setdefault(e.stage, e.elapsed)
    ).fit(X, y)
    wall = time.monotonic() - started
    print(f"budget {budget}: stages started at {stages}, wall {wall:.1f} s", file=sys.stderr)
    artifact = automl.to_artifact("adult")
    predictor = Predictor(artifact)
    pipeline = automl.best_estimator_
    one, batch = X.iloc[:1], X.iloc[:1000]
    one_row = one.to_dict(orient="records")[0]
    feeds_one = encode(artifact.manifest, to_columns(one, artifact.manifest))
    feeds_batch = encode(artifact.manifest, to_columns(batch, artifact.manifest))
    model_one, model_batch = (
        encoded_frame(artifact.manifest.inputs, one),
        encoded_frame(artifact.manifest.inputs, batch),
    )
    names = list(artifact.manifest.outputs.values())
    return {
        "budget_s": budget,
        "wall_s": round(wall, 1),
        "best": automl.best_model_name_,
        "accuracy": round(automl.metrics_["accuracy"], 4),
        "roc_auc": round(automl.metrics_.get("roc_auc", float("nan")), 4),
        "onnx_kb": round(artifact.manifest.size_bytes / 1024, 1),
        "ort_raw_1": timings_us(lambda: predictor.session.run(names, feeds_one), 500),
        "modelport_1": timings_us(lambda: predictor.predict(one_row), 500),
        "sklearn_1": timings_us(lambda: pipeline.predict_proba(model_one), 200),
        "ort_raw_1000": timings_us(lambda: predictor.session.run(names, feeds_batch), 30),
        "modelport_1000": timings_us(lambda: predictor.predict(batch), 30),
        "sklearn_1000": timings_us(lambda: pipeline.predict_proba(model_batch), 30),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def fmt(pair: object) -> str:
    p50, p99 = pair  # type: ignore[misc]
    return f"{p50:,.0f} / {p99:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[10, 30, 60])
    args = parser.parse_args()
    if not ADULT.is_dir():
        sys.exit(f"skipped: {ADULT} is not available")
    rows = [run(b) for b in args.budgets]
    print(
        "| budget s | wall s | best | accuracy | ROC AUC | ONNX KB | 1 row µs p50/p99: ORT raw | "
        "modelport | sklearn | 1000 rows µs p50/p99: ORT raw | modelport | sklearn | peak RSS MB |"
    )
    print("|" + "---|" * 13)
    for r in rows:
        print(
            f"| {r['budget_s']:.0f} | {r['wall_s']} | {r['best']} | {r['accuracy']} | {r['roc_auc']} | "
            f"{r['onnx_kb']} | {fmt(r['ort_raw_1'])} | {fmt(r['modelport_1'])} | "
            f"{fmt(r['sklearn_1'])} | {fmt(r['ort_raw_1000'])} | {fmt(r['modelport_1000'])} | "
            f"{fmt(r['sklearn_1000'])} | {r['peak_rss_mb']} |"
        )


if __name__ == "__main__":
    main()
