"""Tabular AutoML on `adult`: quality, budget, ONNX size and latency vs the original model.

Run: make bench   (or .venv/bin/python bench/train.py [--budgets 10 30 60])
Needs ../shared/data/adult; prints a Markdown table to paste into bench/RESULTS.md.

Latency, p50 / p99 in µs on one thread: *ORT raw* is `InferenceSession.run` on pre-encoded inputs
(the floor), *modelport* is the user-facing `Predictor.predict` from a row dict (1 row) or a
DataFrame (1,000 rows), encoding included; *sklearn* is the fitted pipeline's `predict_proba` on
a DataFrame. The three are timed in alternating blocks (200 calls each at 1 row in blocks of 10,
30 at 1,000 rows in blocks of 5), so load from other work falls on all alike. *sklearn ÷
modelport* is the ratio of their p50s; *other CPU %* is what other processes on the machine used
while they were timed (of 100 % per core).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

from common import OtherLoad, adult, interleaved_us, require

from modelport.runtime import Predictor
from modelport.runtime.tabular import encode, to_columns
from modelport.train import TabularAutoML
from modelport.train.tabular import encoded_frame


def run(budget: float) -> dict[str, object]:
    X, y = adult()
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
    load = OtherLoad()
    one_row_calls = {
        "ort_raw": lambda: predictor.session.run(names, feeds_one),
        "modelport": lambda: predictor.predict(one_row),
        "sklearn": lambda: pipeline.predict_proba(model_one),
    }
    batch_calls = {
        "ort_raw": lambda: predictor.session.run(names, feeds_batch),
        "modelport": lambda: predictor.predict(batch),
        "sklearn": lambda: pipeline.predict_proba(model_batch),
    }
    timings = {f"{k}_1": v for k, v in interleaved_us(one_row_calls, 200).items()}
    timings |= {f"{k}_1000": v for k, v in interleaved_us(batch_calls, 30, block=5).items()}
    others = load.percent()
    return {
        "budget_s": budget,
        "wall_s": round(wall, 1),
        "best": automl.best_model_name_,
        "accuracy": round(automl.metrics_["accuracy"], 4),
        "roc_auc": round(automl.metrics_.get("roc_auc", float("nan")), 4),
        "onnx_kb": round(artifact.manifest.size_bytes / 1024, 1),
        **timings,
        "others": others,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def fmt(pair: object) -> str:
    p50, p99 = pair  # type: ignore[misc]
    return f"{p50:,.0f} / {p99:,.0f}"


def ratio(r: dict, rows: int) -> str:
    return f"{r[f'sklearn_{rows}'][0] / r[f'modelport_{rows}'][0]:.1f}×"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[10, 30, 60])
    args = parser.parse_args()
    require()
    rows = [run(b) for b in args.budgets]
    print(
        "| budget s | wall s | best | accuracy | ROC AUC | ONNX KB | 1 row µs p50/p99: ORT raw | "
        "modelport | sklearn | sklearn ÷ modelport | 1000 rows µs p50/p99: ORT raw | modelport | "
        "sklearn | sklearn ÷ modelport | peak RSS MB | other CPU % |"
    )
    print("|" + "---|" * 16)
    for r in rows:
        print(
            f"| {r['budget_s']:.0f} | {r['wall_s']} | {r['best']} | {r['accuracy']} | {r['roc_auc']} | "
            f"{r['onnx_kb']} | {fmt(r['ort_raw_1'])} | {fmt(r['modelport_1'])} | "
            f"{fmt(r['sklearn_1'])} | {ratio(r, 1)} | {fmt(r['ort_raw_1000'])} | "
            f"{fmt(r['modelport_1000'])} | {fmt(r['sklearn_1000'])} | {ratio(r, 1000)} | "
            f"{r['peak_rss_mb']} | {r['others']:.0f} |"
        )


if __name__ == "__main__":
    main()
