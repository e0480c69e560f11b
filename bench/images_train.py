"""Train a flower classifier from ../shared/data/flower_photos: wall time and held-out accuracy per
time budget, the feature cache's speed-up, and accuracy over several held-out splits.

    .venv/bin/python bench/images_train.py [--budgets 15 30 60] [--seeds 10]

Each budgeted run is the real command, `modelport train flower_photos --time-budget B --json`,
in a fresh MODELPORT_HOME (so photo features are computed, not cached), timed from start to exit
(start-up included). The warm run repeats the last budget in the same home (features cached).
The split rows train in-process on cached features with seeds 0..N-1: each seed holds out a
different stratified 20 % (60 photos). The zoo backbone is built once beforehand, untimed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOWERS = Path(__file__).resolve().parents[2] / "shared" / "data" / "flower_photos"
MODELPORT = Path(sys.executable).with_name("modelport")


def cli_run(home: Path, budget: float) -> tuple[float, dict]:
    env = {**os.environ, "MODELPORT_HOME": str(home)}
    started = time.perf_counter()
    done = subprocess.run(
        [MODELPORT, "train", FLOWERS, "--time-budget", str(budget), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - started, json.loads(done.stdout)


def row(label: str, budget: str, wall: str, accuracy: str, head: str, backbone: str) -> None:
    print(f"| {label} | {budget} | {wall} | {accuracy} | {head} | {backbone} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[15.0, 30.0, 60.0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    if not FLOWERS.is_dir():
        sys.exit(f"{FLOWERS} is not there; this benchmark needs ../shared/data/flower_photos.")
    from modelport import zoo
    from modelport.config import Settings
    from modelport.data.datasets import Limits
    from modelport.data.images import read_images
    from modelport.train.image import BACKBONE, ImageAutoML, feature_cache

    zoo_cache = Settings().resolved_zoo_cache
    os.environ.setdefault("MODELPORT_ZOO_CACHE", str(zoo_cache))
    zoo.load(BACKBONE, zoo_cache)
    print(f"flower_photos: 5 classes x 60 photos; {os.cpu_count()} cores, load {os.getloadavg()}")
    print("| run | budget s | wall s | held-out accuracy | head · view | backbone |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as scratch:
        for budget in args.budgets:
            home = Path(scratch) / f"home-{budget:g}"
            wall, summary = cli_run(home, budget)
            row(
                "cold (features computed)",
                f"{budget:g}",
                f"{wall:.1f} (features {summary['feature_seconds']:.1f})",
                f"{summary['metrics']['accuracy']:.3f}",
                summary["estimator"],
                BACKBONE,
            )
        wall, summary = cli_run(home, args.budgets[-1])
        row(
            f"warm ({summary['cached_photos']} photos cached)",
            f"{args.budgets[-1]:g}",
            f"{wall:.1f} (features {summary['feature_seconds']:.1f})",
            f"{summary['metrics']['accuracy']:.3f}",
            summary["estimator"],
            BACKBONE,
        )
        dataset = read_images(FLOWERS, home, Limits(10**10, 10**6))
        scores, heads, seconds = [], [], []
        for seed in range(args.seeds):
            automl = ImageAutoML(
                zoo_cache=zoo_cache,
                feature_cache=feature_cache(home),
                time_budget=args.budgets[0],
                seed=seed,
            ).fit(dataset)
            scores.append(automl.metrics_["accuracy"])
            heads.append(automl.best_model_name_)
            seconds.append(automl.fit_seconds_)
        spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
        common = max(set(heads), key=heads.count)
        row(
            f"{args.seeds} held-out splits (seeds 0-{args.seeds - 1}), warm",
            f"{args.budgets[0]:g}",
            f"{statistics.mean(seconds):.1f} each",
            f"{statistics.mean(scores):.3f} ± {spread:.3f} (min {min(scores):.3f}, "
            f"max {max(scores):.3f})",
            f"{common} ({heads.count(common)}/{len(heads)})",
            BACKBONE,
        )


if __name__ == "__main__":
    main()
