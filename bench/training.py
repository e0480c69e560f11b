"""Hosted training: job overhead, serving latency while a job trains, and local vs Ray search.

Run: make bench-training   (or .venv/bin/python bench/training.py [--budget 60] [--seconds 10])
Needs: `hey` (apt-get install -y hey) and ../shared/data/adult. Prints Markdown tables for
bench/RESULTS.md:

1. One `modelport serve` with a LightGBM model on adult: `hey` load (1-row predictions, c=8) while
   no job runs, then the same load while a job trains adult with the given budget; the job's own
   timings (queued, worker start-up, training, registering).
2. `TabularAutoML` on adult with the same budget, trials one after another (local) vs in parallel
   on a local Ray with 2 CPUs: trials run, best validation score, test metrics, wall time.
"""

from __future__ import annotations

import argparse
import json
import time

from common import ADULT, OUT, adult, modelport_server, require, train_adult
from serve import load

from modelport.client import TrainingClient
from modelport.train import TabularAutoML


def serving_while_training(budget: float, seconds: float) -> None:
    home = OUT / "training-home"
    _, X, _ = train_adult(home, budget=10)
    body = OUT / "adult-1row.json"
    body.write_text(json.dumps({"rows": json.loads(X.dropna().head(1).to_json(orient="records"))}))

    with modelport_server(home) as (url, pid):
        predict = f"{url}/api/v1/models/adult/predict"
        load(predict, body, 8, 2, pid)  # warm-up
        idle = load(predict, body, 8, seconds, pid)
        with TrainingClient(url) as trainer:
            started = time.perf_counter()
            dataset = trainer.upload(ADULT)
            upload_s = time.perf_counter() - started
            submitted = time.perf_counter()
            job = trainer.submit(
                dataset["id"], name="adult-job", target="income", time_budget=budget
            )
            while trainer.job(job["id"])["stage"] in ("queued", "loading"):
                time.sleep(0.05)
            searching = time.perf_counter() - submitted
            busy = load(predict, body, 8, min(seconds, budget * 0.6), pid)
            while (done := trainer.job(job["id"]))["status"] not in ("succeeded", "failed"):
                time.sleep(0.2)
            finished = time.perf_counter() - submitted
            # the next job finds the spare worker the first one left warm
            second = trainer.submit(
                dataset["id"], name="adult-job", target="income", time_budget=10
            )
            while (warm := trainer.job(second["id"]))["status"] not in ("succeeded", "failed"):
                time.sleep(0.2)
    print(f"\n### Serving while a job trains (adult, budget {budget:g} s, `hey` c=8, 1 row)\n")
    print("| server state | req/s | p50 ms | p99 ms | errors |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, result in (("no job", idle), ("job training", busy)):
        print(
            f"| {name} | {result['rps']:,.0f} | {result['p50']:.2f} | {result['p99']:.2f} "
            f"| {result['errors']} |"
        )
    print(f"\n### Job overhead (status {done['status']}, then {warm['status']})\n")
    print("| phase | first job (spare warming since the upload) | next job (warm spare) |")
    print("| --- | ---: | ---: |")
    print(
        f"| upload adult.csv ({dataset['size_bytes'] / 1e6:.1f} MB, checked) | {upload_s:.2f} | |"
    )
    for phase in ("queued", "startup", "training", "registering"):
        first, then = (
            done["timings"].get(phase, float("nan")),
            warm["timings"].get(phase, float("nan")),
        )
        print(f"| {phase} | {first:.2f} | {then:.2f} |")
    print(f"| submit → search running (client view) | {searching:.2f} | |")
    print(f"| submit → succeeded (client view) | {finished:.2f} | |")


def local_vs_ray(budget: float) -> None:
    X, y = adult()
    print(f"\n### adult, budget {budget:g} s: local vs Ray (2 CPUs)\n")
    print("| backend | trials | best model | val log_loss | test accuracy | test AUC | wall s |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for backend in ("local", "ray"):
        started = time.perf_counter()
        automl = TabularAutoML(time_budget=budget, seed=0, backend=backend).fit(X, y)
        wall = time.perf_counter() - started
        best = automl.leaderboard_[0]
        trials = sum(r.trials for r in automl.leaderboard_)
        print(
            f"| {backend} | {trials} | {best.model} | {best.loss:.4f} "
            f"| {automl.metrics_['accuracy']:.4f} | {automl.metrics_['roc_auc']:.4f} | {wall:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    require(hey=True)
    serving_while_training(args.budget, args.seconds)
    local_vs_ray(args.budget)


if __name__ == "__main__":
    main()
