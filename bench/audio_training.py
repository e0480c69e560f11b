"""Audio classification on spoken_digits: leave-one-speaker-out accuracy, training time, graph size.

Run: .venv/bin/python bench/audio_training.py [--budget 20]
Needs: ../shared/data/spoken_digits (skipped when absent).

spoken_digits holds 50 recordings (8 kHz): each of 5 speakers says each digit once. For each
speaker, the other four speakers' 40 recordings are laid out as class folders (``0/``, ``1/``
...) and `AudioAutoML` trains on them within the budget (its own 80/20 split inside picks the
head); the artifact's `Predictor` (what the server and the SDK run) then labels the held-out
speaker's 10 recordings. The fp32 graph and its int8 variant are both scored. A last run
trains on all 50, as `modelport train` would, for its time and size. Prints Markdown for
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from modelport.artifact import ModelArtifact
from modelport.export.quantize import int8_variant
from modelport.runtime import Predictor
from modelport.train.audio import AudioAutoML

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "spoken_digits"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per training")
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"skipped: {DATA} is not available")
    with (DATA / "transcripts.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    speakers = sorted({row["speaker"] for row in rows})
    print(f"spoken_digits: {len(rows)} recordings, speakers {', '.join(speakers)}\n")
    print("| held-out speaker | fp32 accuracy | int8 accuracy | training s | winner |")
    print("|---|---|---|---|---|")
    right = {"fp32": 0, "int8": 0}
    for speaker in speakers:
        train = [row for row in rows if row["speaker"] != speaker]
        test = [row for row in rows if row["speaker"] == speaker]
        automl, seconds = _train(train, args.budget)
        artifact = automl.to_artifact("digits")
        truth = np.array([row["digit"] for row in test])
        scores = {}
        paths = [str(DATA / row["file"]) for row in test]
        for variant, graph in _graphs(artifact, paths).items():
            predicted = Predictor(graph).predict(paths)
            scores[variant] = float(np.mean(predicted.predictions == truth))
            right[variant] += int(np.sum(predicted.predictions == truth))
        print(
            f"| {speaker} | {scores['fp32']:.2f} | {scores.get('int8', float('nan')):.2f} | "
            f"{seconds:.1f} | {automl.leaderboard_[0].model} |"
        )
    print(
        f"| **all ({len(rows)})** | **{right['fp32'] / len(rows):.2f}** | "
        f"**{right['int8'] / len(rows):.2f}** | | |\n"
    )
    automl, seconds = _train(rows, args.budget)
    artifact = automl.to_artifact("digits")
    manifest = artifact.manifest
    print(
        f"All {len(rows)} recordings (as `modelport train` does): {seconds:.1f} s, window "
        f"{manifest.preprocessing['audio']['window_seconds']} s, winner "
        f"{automl.leaderboard_[0].model}, own held-out accuracy {manifest.metrics['accuracy']:.2f} "
        f"on {automl.split_['test']} recordings; graph {manifest.size_bytes / 1024:.0f} KB."
    )
    clip = [str(DATA / rows[0]["file"])]
    predictor = Predictor(artifact, intra_op_threads=1)
    predictor.predict(clip)
    started = time.perf_counter()
    for _ in range(100):
        predictor.predict(clip)
    print(
        f"One recording through Predictor.predict (decode, resample 8->16 kHz, trim, graph; one "
        f"thread): {(time.perf_counter() - started) * 10:.2f} ms."
    )


def _train(rows: list[dict[str, str]], budget: float) -> tuple[AudioAutoML, float]:
    """AudioAutoML on ``rows``, laid out as one folder per digit (links to the recordings)."""
    with tempfile.TemporaryDirectory(prefix="digits-") as folder:
        for row in rows:
            link = Path(folder) / row["digit"] / Path(row["file"]).name
            link.parent.mkdir(exist_ok=True)
            link.symlink_to(DATA / row["file"])
        started = time.monotonic()
        automl = AudioAutoML(time_budget=budget).fit(folder)
        return automl, time.monotonic() - started


def _graphs(artifact: ModelArtifact, paths: list[str]) -> dict[str, ModelArtifact]:
    """The fp32 artifact and its int8 form (the trainer does not make one: this measures why)."""
    variant = int8_variant(artifact, paths)
    assert variant is not None, artifact.manifest.skipped_variants
    int8 = ModelArtifact.create(variant.onnx, **_fields(artifact))
    return {"fp32": artifact, "int8": int8}


def _fields(artifact: ModelArtifact) -> dict[str, object]:
    manifest = artifact.manifest
    return {
        "name": manifest.name,
        "task": manifest.task,
        "inputs": manifest.inputs,
        "outputs": manifest.outputs,
        "input_layout": manifest.input_layout,
        "class_labels": manifest.class_labels,
        "label_is_index": True,
        "preprocessing": manifest.preprocessing,
    }


if __name__ == "__main__":
    main()
