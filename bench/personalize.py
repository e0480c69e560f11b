"""On-device personalisation on flower_photos: seconds per 100 photos and held-out accuracy.

    .venv/bin/python bench/personalize.py [--draws 3]

``Model.personalize`` is ``head.fit(head.embed(predictor, photos), labels)`` on the labeller's
local copy; this times exactly those two calls (decode + embedding, then the numpy fit) for k
photos per class of ../shared/data/flower_photos, and scores the head on the photos not used.
One onnxruntime thread (a phone gives an app about one core), draws with seeds 0..N-1.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from pathlib import Path

import numpy as np

from modelport import zoo
from modelport.config import Settings
from modelport.runtime import head
from modelport.runtime.predictor import Predictor

FLOWERS = Path(__file__).resolve().parents[2] / "shared" / "data" / "flower_photos"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=3)
    args = parser.parse_args()
    if not FLOWERS.is_dir():
        raise SystemExit(f"{FLOWERS} is absent: this benchmark needs ../shared/data.")
    cache = Path(os.environ.get("MODELPORT_ZOO_CACHE") or Settings().resolved_zoo_cache)
    predictor = Predictor(zoo.load("image-labeler", cache), intra_op_threads=1)
    photos = sorted(FLOWERS.glob("*/*.jpg"))
    classes = sorted({p.parent.name for p in photos})
    everything = head.embed(predictor, photos)  # for scoring the photos left out
    print(
        "| photos per class | examples | embed s | fit s | s per 100 examples | held-out accuracy |"
    )
    print("|---|---|---|---|---|---|")
    for per_class in (3, 5, 10, 20, 40):
        embed_s, fit_s, accuracy = [], [], []
        for seed in range(args.draws):
            rng = random.Random(seed)
            chosen = [
                i
                for c in classes
                for i in rng.sample(
                    [j for j, p in enumerate(photos) if p.parent.name == c], per_class
                )
            ]
            labels = [photos[i].parent.name for i in chosen]
            started = time.perf_counter()
            embeddings = head.embed(predictor, [photos[i] for i in chosen])
            embedded = time.perf_counter()
            fitted = head.fit(embeddings, labels)
            fit_s.append(time.perf_counter() - embedded)
            embed_s.append(embedded - started)
            rest = sorted(set(range(len(photos))) - set(chosen))
            predicted = np.asarray(fitted.labels)[fitted.probabilities(everything[rest]).argmax(1)]
            truth = np.asarray([photos[i].parent.name for i in rest])
            accuracy.append(float(np.mean(predicted == truth)))
        count = per_class * len(classes)
        total = statistics.median(e + f for e, f in zip(embed_s, fit_s, strict=True))
        print(
            f"| {per_class} | {count} | {statistics.median(embed_s):.2f} | "
            f"{statistics.median(fit_s):.3f} | {total / count * 100:.2f} | "
            f"{statistics.mean(accuracy):.3f} |"
        )


if __name__ == "__main__":
    main()
