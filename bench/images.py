"""Images: the labeller in onnxruntime vs PyTorch, photo preprocessing, fp32 vs int8, ORT format.

Run: make bench-images   (= .venv/bin/python bench/images.py; needs the zoo extra; the flower
rows need ../shared/data/flower_photos and are skipped without it)
Prints Markdown tables for bench/RESULTS.md.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import BENCH, OtherLoad, interleaved_us

from modelport import zoo
from modelport.artifact import ModelArtifact
from modelport.config import Settings
from modelport.export import quantize
from modelport.export.ort_format import to_ort
from modelport.runtime import Predictor
from modelport.runtime.image import ImageSpec, prepare

FLOWERS = BENCH.parents[1] / "shared" / "data" / "flower_photos"
BATCHES = {1: 100, 8: 20, 32: 6}
"""Batch size -> timed runs of each runtime."""


def main() -> None:
    artifact = zoo.load("image-labeler", Settings().resolved_zoo_cache)
    spec = ImageSpec.from_manifest(artifact.manifest.preprocessing)
    photos = sorted(FLOWERS.glob("*/*.jpg")) if FLOWERS.is_dir() else []
    print(
        f"onnxruntime vs PyTorch ({os.cpu_count()} cores; threads: 1 each, or each one's default)\n"
    )
    runtimes_table(artifact, spec)
    print("\nPreprocessing, per photo\n")
    preprocessing_table(artifact, spec, photos)
    print()
    variants_table(artifact, spec, photos)
    print()
    ort_format_table(artifact)


def runtimes_table(artifact: ModelArtifact, spec: ImageSpec) -> None:
    """Pre-decoded pixels through the ONNX graph and through the PyTorch module it came from, on
    one thread each (every batch) and on both runtimes' default threads (one photo)."""
    import torch

    from modelport.zoo.efficientnet import _Labeller, _load

    module = _Labeller(*_load(0)).eval()
    rng = np.random.default_rng(0)
    load = OtherLoad()
    rows = []
    for threads, batches in ((1, BATCHES), (0, {1: BATCHES[1]})):
        session = Predictor(artifact, intra_op_threads=threads).session
        torch.set_num_threads(threads or os.cpu_count() or 1)
        for batch, runs in batches.items():
            pixels = rng.integers(0, 256, (batch, spec.size, spec.size, 3), dtype=np.uint8)
            tensor = torch.from_numpy(pixels)
            with torch.inference_mode():
                expected = module(tensor)[0].numpy()
                got = session.run(["probabilities"], {"image": pixels})[0]
                assert np.abs(expected - got).max() < 1e-4  # the same model
                times = interleaved_us(
                    {
                        "onnxruntime": lambda p=pixels, s=session: s.run(None, {"image": p}),
                        "PyTorch (eager)": lambda t=tensor: module(t),
                    },
                    runs,
                    block=max(1, runs // 10),
                    warmup=2,
                )
            rows += [(name, threads, batch, *times[name]) for name in times]
    rss = {name: _peak_rss_mb(name) for name in ("onnxruntime", "PyTorch (eager)")}
    print("| runtime | threads | batch | p50 ms | p99 ms | images/s | peak RSS MB (batch 32) |")
    print("|---|---|---|---|---|---|---|")
    for name, threads, batch, p50, p99 in rows:
        print(
            f"| {name} | {threads or 'default'} | {batch} | {p50 / 1e3:.1f} | {p99 / 1e3:.1f} | "
            f"{batch / (p50 / 1e6):.0f} | {rss[name]:.0f} |"
        )
    print(
        f"\nTimed in alternating blocks on pre-decoded uint8 pixels; other processes used "
        f"{load.percent():.0f} % CPU (of {(os.cpu_count() or 1) * 100} %) meanwhile. Peak RSS: a "
        "fresh process that imports the runtime, loads the model and runs 3 batches of 32."
    )


def preprocessing_table(artifact: ModelArtifact, spec: ImageSpec, photos: list[Path]) -> None:
    """Decode + upright + RGB + resize + crop per photo, with JPEG draft decoding (as modelport
    does) and without it, on the flower photos and on one big JPEG."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    buffer = io.BytesIO()
    china = Image.fromarray(load_sample_images().images[0])
    china.resize((2560, 1708), Image.Resampling.LANCZOS).save(buffer, "JPEG", quality=92)
    sets = {"a 2560 x 1708 JPEG (a sample photo scaled up)": [buffer.getvalue()] * 20}
    if photos:
        sets[f"{len(photos)} flower photos (mostly 320-500 px wide)"] = [
            p.read_bytes() for p in photos
        ] * 2
    else:
        print(f"(flower photo rows skipped: {FLOWERS} is not available)")
    ways = {
        "modelport `prepare` (JPEG draft decoding)": lambda b: prepare(b, spec),
        "full decode (PIL `convert('RGB')`), same resize": lambda b: prepare(
            Image.open(io.BytesIO(b)).convert("RGB"), spec
        ),
    }
    print("| photos | path | p50 ms | p99 ms | photos/s |")
    print("|---|---|---|---|---|")
    for label, data in sets.items():
        for name, way in ways.items():
            times = []
            for photo in data:
                start = time.perf_counter()
                way(photo)
                times.append(time.perf_counter() - start)
            p50, p99 = np.percentile(times, [50, 99]) * 1e3
            print(f"| {label} | {name} | {p50:.2f} | {p99:.2f} | {len(times) / sum(times):.0f} |")
    big = sets["a 2560 x 1708 JPEG (a sample photo scaled up)"][0]
    predictor = Predictor(artifact)
    draft, full = (predictor.run({"image": way(big)}) for way in ways.values())
    difference = np.abs(draft.probabilities - full.probabilities).max()
    print(
        f"\nThe big JPEG, draft vs full decoding: labelled {draft.predictions[0]} vs "
        f"{full.predictions[0]}, probabilities differ by at most {difference:.4f}."
    )


def variants_table(artifact: ModelArtifact, spec: ImageSpec, photos: list[Path]) -> None:
    """Size, one-photo latency (one thread), top-1 agreement with fp32 (on all photos and on those
    fp32 is sure of), and the share of daisy photos labelled daisy."""
    from sklearn.datasets import load_sample_images

    graphs = {
        "fp32": artifact.onnx,
        "int8, static QDQ per-channel (shipped)": artifact.variants["int8"],
        "int8, dynamic (tabular's method)": quantize._quantise(artifact.onnx),
    }
    pixels = prepare([*photos, *load_sample_images().images], spec)
    daisies = np.array(["/daisy/" in str(p) for p in photos] + [False, False])
    predictors = {
        name: Predictor(ModelArtifact(onnx, quantize._with_graph(artifact, onnx)), 1)
        for name, onnx in graphs.items()
    }
    one = {"image": pixels[:1]}
    times = interleaved_us({n: lambda p=p: p.run(one) for n, p in predictors.items()}, 40, 5)
    reference = predictors["fp32"].run({"image": pixels})
    sure = reference.probabilities.max(axis=1) >= 0.5
    print(
        f"fp32 vs int8 ({len(pixels)} photos: {len(photos)} flower photos and scikit-learn's 2 "
        f"sample photos, none used for calibration; fp32 is >= 50 % sure of {sure.sum()})\n"
    )
    print(
        "| graph | size MB | 1-photo p50 ms | top-1 agreement with fp32 | agreement where fp32 "
        "is sure | daisy photos labelled daisy |"
    )
    print("|---|---|---|---|---|---|")
    for name, predictor in predictors.items():
        predicted = predictor.run({"image": pixels}).predictions
        agrees = predicted == reference.predictions
        daisy = f"{np.mean(predicted[daisies] == 'daisy'):.3f}" if daisies.any() else "—"
        print(
            f"| {name} | {len(graphs[name]) / 1e6:.1f} | {times[name][0] / 1e3:.1f} | "
            f"{agrees.mean():.3f} | {agrees[sure].mean():.3f} | {daisy} |"
        )
    report = artifact.manifest.variants["int8"]
    print(
        f"\nThe manifest's own measurement (64 crops of the sample photos, default threads): "
        f"agreement {report['agreement']:.3f}, {report['latency_ms']:.1f} ms vs fp32 "
        f"{report['fp32_latency_ms']:.1f} ms, recommended: {report['recommended']}."
    )


def ort_format_table(artifact: ModelArtifact) -> None:
    """File size and session creation time, ONNX vs ORT format."""
    import onnxruntime as ort

    print("| graph | format | size MB | load ms (p50 of 10) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="modelport-ort-bench-") as tmp:
        for name, onnx in (("fp32", artifact.onnx), ("int8", artifact.variants["int8"])):
            for fmt, data in (("onnx", onnx), ("ort", to_ort(onnx))):
                path = Path(tmp) / f"{name}.{fmt}"
                path.write_bytes(data)
                loads = []
                for _ in range(10):
                    start = time.perf_counter()
                    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                    loads.append(time.perf_counter() - start)
                print(f"| {name} | {fmt} | {len(data) / 1e6:.1f} | {np.median(loads) * 1e3:.0f} |")


def _peak_rss_mb(runtime: str) -> float:
    result = subprocess.run(
        [sys.executable, __file__, "--peak-rss", runtime],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.strip())


def _report_peak_rss(runtime: str) -> None:
    """In a fresh process: import ``runtime``, load the labeller, run 3 batches of 32."""
    pixels = np.zeros((32, 224, 224, 3), dtype=np.uint8)
    if runtime == "onnxruntime":
        session = Predictor(zoo.load("image-labeler", Settings().resolved_zoo_cache)).session
        for _ in range(3):
            session.run(None, {"image": pixels})
    else:
        import torch

        from modelport.zoo.efficientnet import _Labeller, _load

        module = _Labeller(*_load(0)).eval()
        with torch.inference_mode():
            for _ in range(3):
                module(torch.from_numpy(pixels))
    status = Path("/proc/self/status").read_text()  # VmHWM: ru_maxrss counts the parent's too
    print(int(status.split("VmHWM:")[1].split()[0]) / 1024)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--peak-rss"]:
        _report_peak_rss(sys.argv[2])
    else:
        main()
