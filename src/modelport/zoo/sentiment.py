"""VADER (Hutto & Gilbert, 2014) compiled to one small ONNX graph: negative / neutral / positive
with probabilities and VADER's compound score, light enough for a phone (about 0.3 MB).

Needs ``pip install 'modelport[zoo]'`` to build (``vadersentiment``, whose wheel ships the
lexicon). The runtime reads the text as VADER does (runtime/vader.py); the graph holds the
lexicon (an ai.onnx.ml LabelEncoder from word to valence) and VADER's rules as tensor
arithmetic over each word and the three before it: negation (x -0.74), boosters and dampeners
(±0.293, less with distance), capitals (±0.733), "no", "least", "never so", "without doubt",
"but" (x0.5 before, x1.5 after), then "!" and "?" emphasis and ``compound = s / sqrt(s² + 15)``.
The label follows VADER's thresholds (compound >= 0.05 positive, <= -0.05 negative); the
probabilities are a softmax of the compound's distance past them. Two-word idioms ("kind of" as
a dampener, "the bomb") are not compiled; the build checks the graph against vaderSentiment on
the probe sentences and refuses to ship one that agrees on fewer than 98 % of the labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..artifact import ColumnSpec, ModelArtifact
from ..errors import ExportError, MissingDependency
from ..runtime import Predictor
from ..runtime.vader import INPUTS
from . import probes

LABELS = ["negative", "neutral", "positive"]
MAX_TOKENS = 1024
EMOJI_KEY = "modelport.vader_emoji"
WEIGHTS = "vadersentiment==3.3.2"
THRESHOLD = 0.05
SHARPNESS = 20.0
"""How fast the probability moves from neutral to a polarity as the compound passes ±0.05."""
MIN_AGREEMENT = 0.98
MAX_COMPOUND_GAP = 0.05
ONNX_OPSET = [("", 17), ("ai.onnx.ml", 3)]


def build(name: str) -> ModelArtifact:
    """Compile VADER's lexicon and rules to ONNX and check them against vaderSentiment."""
    vader = _load()
    analyzer = vader.SentimentIntensityAnalyzer()
    emoji = {k: v for k, v in analyzer.emojis.items() if len(k) == 1}  # VADER reads characters
    onnx = _graph(vader, analyzer.lexicon, emoji)
    artifact = ModelArtifact.create(
        onnx,
        name=name,
        task="classification",
        inputs=[ColumnSpec(name="text", dtype="text")],
        outputs={"label": "label", "probabilities": "probabilities", "compound": "compound"},
        input_layout="text",
        class_labels=LABELS,
        label_is_index=True,
        preprocessing={
            "text": {
                "kind": "vader_tokens",
                "max_tokens": MAX_TOKENS,
                "emoji": f"metadata:{EMOJI_KEY}",
            }
        },
        skipped_variants={
            "int8": "nothing to quantise: the graph is a word list and arithmetic, no weights"
        },
        library_versions={"vadersentiment": "3.3.2"},
        source={
            "kind": "zoo",
            "zoo": name,
            "architecture": "VADER lexicon and rules",
            "weights": WEIGHTS,
        },
        description=(
            "Sentiment of English text (VADER, tuned to social media): negative, neutral or "
            "positive, with probabilities and VADER's compound score in [-1, 1] (>= 0.05 "
            "positive, <= -0.05 negative). Knows emoji, emoticons, slang, negation, 'but', "
            "capitals and '!'."
        ),
    )
    artifact.manifest.metrics = _check_parity(artifact, analyzer)
    return artifact


def _check_parity(artifact: ModelArtifact, analyzer: Any) -> dict[str, float]:
    """The graph's labels must agree with vaderSentiment's on 98 % of the probe sentences, its
    compound within 0.05 on 95 %; the agreement goes into the manifest's metrics."""
    texts = probes.sentences()
    result = Predictor(artifact).predict(texts)
    expected = np.array([analyzer.polarity_scores(t)["compound"] for t in texts])
    labels = np.where(expected >= THRESHOLD, 2, np.where(expected <= -THRESHOLD, 0, 1))
    agreement = float(np.mean(result.predictions == np.asarray(LABELS)[labels]))
    close = float(np.mean(np.abs(result.extras["compound"] - expected) < MAX_COMPOUND_GAP))
    if agreement < MIN_AGREEMENT or close < 0.95:
        worst = texts[int(np.argmax(np.abs(result.extras["compound"] - expected)))]
        raise ExportError(
            f"The compiled VADER agrees with vaderSentiment on {agreement:.1%} of the probe "
            f"labels (needs {MIN_AGREEMENT:.0%}) and is within {MAX_COMPOUND_GAP} on {close:.1%} "
            f"of the compounds (needs 95 %); furthest on {worst[:60]!r}. Report this with the "
            "version of vadersentiment."
        )
    return {
        "vader_label_agreement": round(agreement, 4),
        "vader_compound_within_0.05": round(close, 4),
    }


class _Graph:
    """A small builder of ONNX nodes: each method adds one node and returns its output name."""

    def __init__(self) -> None:
        from onnx import helper

        self.helper = helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.count = 0
        self._shifted: dict[tuple[str, int], str] = {}
        self._flags: dict[tuple[str, str], str] = {}

    def _name(self) -> str:
        self.count += 1
        return f"t{self.count}"

    def op(self, kind: str, *inputs: str, domain: str = "", **attributes: Any) -> str:
        out = self._name()
        self.nodes.append(
            self.helper.make_node(kind, list(inputs), [out], domain=domain, **attributes)
        )
        return out

    def const(self, value: Any, dtype: Any = np.float32) -> str:
        from onnx import numpy_helper

        name = self._name()
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def lookup(self, tokens: str, table: dict[str, float]) -> str:
        """Each token's value in ``table`` (0 for a token not in it): float [n, words]."""
        keys = sorted(table)
        return self.op(
            "LabelEncoder",
            tokens,
            domain="ai.onnx.ml",
            keys_strings=keys,
            values_floats=[float(table[k]) for k in keys],
            default_float=0.0,
        )

    def flag(self, tokens: str, words: Any) -> str:
        """1 where the token is one of ``words``, else 0 (one node per word list)."""
        key = (tokens, "\n".join(sorted(words)))
        if key not in self._flags:
            self._flags[key] = self.lookup(tokens, dict.fromkeys(words, 1.0))
        return self._flags[key]

    def where(self, condition: str, then: str, otherwise: str) -> str:
        return self.op("Where", self.op("Cast", condition, to=9), then, otherwise)

    def mul(self, a: str, b: str) -> str:
        return self.op("Mul", a, b)

    def add(self, a: str, b: str) -> str:
        return self.op("Add", a, b)

    def both(self, a: str, b: str) -> str:
        return self.mul(a, b)

    def either(self, a: str, b: str) -> str:
        return self.op("Max", a, b)

    def negate(self, a: str) -> str:
        return self.op("Sub", self.const(1.0), a)

    def shift(self, x: str, by: int) -> str:
        """``x`` moved ``by`` words later (positive) or earlier (negative), 0 where nothing was
        (one node pair per feature and distance)."""
        if (x, by) in self._shifted:
            return self._shifted[(x, by)]
        pads = [0, by, 0, 0] if by > 0 else [0, 0, 0, -by]
        padded = self.op("Pad", x, self.const(pads, np.int64), self.const(0.0))
        start, end = (0, -by) if by > 0 else (-by, np.iinfo(np.int64).max)
        self._shifted[(x, by)] = self.op(
            "Slice",
            padded,
            self.const([start], np.int64),
            self.const([end], np.int64),
            self.const([1], np.int64),
        )
        return self._shifted[(x, by)]


def _graph(vader: Any, lexicon: dict[str, float], emoji: dict[str, str]) -> bytes:
    from onnx import TensorProto, helper

    g = _Graph()
    tokens, caps, nt, bangs, questions = INPUTS
    C, N = g.const(vader.C_INCR), g.const(vader.N_SCALAR)
    zero, one = g.const(0.0), g.const(1.0)
    valence = g.lookup(tokens, lexicon)
    known = g.flag(tokens, lexicon)
    exists = g.lookup(tokens, {"": -1.0})  # -1 for padding, 0 for a word
    exists = g.add(exists, one)
    booster = g.lookup(tokens, {k: v for k, v in vader.BOOSTER_DICT.items() if " " not in k})
    is_booster = g.flag(tokens, [k for k in vader.BOOSTER_DICT if " " not in k])
    negation = g.either(g.flag(tokens, vader.NEGATE), nt)
    words = {
        w: g.flag(tokens, group)
        for w, group in {
            "no": ["no"],
            "ornor": ["or", "nor"],
            "never": ["never"],
            "sothis": ["so", "this"],
            "without": ["without"],
            "doubt": ["doubt"],
            "least": ["least"],
            "atvery": ["at", "very"],
            "kind": ["kind"],
            "of": ["of"],
            "but": ["but"],
        }.items()
    }
    features = {
        "known": known,
        "exists": exists,
        "booster": booster,
        "negation": negation,
        "caps": caps,
        **words,
    }

    def before(feature: str, d: int) -> str:
        return g.shift(features[feature], d)

    def sign_of(v: str) -> tuple[str, str]:
        """(v > 0, v < 0) as floats."""
        return g.op("Cast", g.op("Greater", v, zero), to=1), g.op(
            "Cast", g.op("Less", v, zero), to=1
        )

    v = valence
    # "no" before another lexicon word is no sentiment of its own
    v = g.where(g.both(words["no"], g.shift(known, -1)), zero, v)
    after_no = g.either(
        g.either(before("no", 1), before("no", 2)), g.both(before("no", 3), before("ornor", 1))
    )
    v = g.where(after_no, g.mul(valence, N), v)
    positive, _ = sign_of(v)
    emphasis = g.where(positive, C, g.op("Neg", C))
    v = g.where(caps, g.add(v, emphasis), v)
    for k, scale in enumerate((1.0, 0.95, 0.9)):
        d = k + 1
        applies = g.both(before("exists", d), g.negate(before("known", d)))
        positive, negative_ = sign_of(v)
        s = g.mul(before("booster", d), g.where(negative_, g.const(-1.0), one))
        loud = g.both(
            before("caps", d),
            g.op("Cast", g.op("Not", g.op("Equal", before("booster", d), zero)), to=1),
        )
        s = g.add(s, g.where(loud, g.where(positive, C, g.op("Neg", C)), zero))
        stepped = g.add(v, g.mul(s, g.const(scale)))
        if k == 0:
            factor = g.where(before("negation", 1), N, one)
        elif k == 1:
            factor = g.where(
                g.both(before("never", 2), before("sothis", 1)),
                g.const(1.25),
                g.where(
                    g.both(before("without", 2), before("doubt", 1)),
                    one,
                    g.where(before("negation", 2), N, one),
                ),
            )
        else:
            factor = g.where(
                g.either(g.both(before("never", 3), before("sothis", 2)), before("sothis", 1)),
                g.const(1.25),
                g.where(
                    g.both(before("without", 3), g.either(before("doubt", 2), before("doubt", 1))),
                    one,
                    g.where(before("negation", 3), N, one),
                ),
            )
        adjusted = g.mul(stepped, factor)
        if k == 2:
            adjusted = _idioms(g, vader, tokens, adjusted)
        v = g.where(applies, adjusted, v)
    least = g.both(before("least", 1), g.negate(before("known", 1)))
    second = g.both(least, before("exists", 2))
    flips = g.either(
        g.both(second, g.negate(before("atvery", 2))), g.both(least, g.negate(before("exists", 2)))
    )
    v = g.where(flips, g.mul(v, N), v)
    scored = g.both(
        g.both(known, exists),
        g.negate(g.either(is_booster, g.both(words["kind"], g.shift(words["of"], -1)))),
    )
    v = g.mul(v, scored)
    # "but": words before the first one count half, words after it 1.5 times
    seen = g.op("CumSum", words["but"], g.const(1, np.int64))
    any_but = g.op("ReduceMax", words["but"], axes=[1], keepdims=1)
    first = g.both(words["but"], g.op("Cast", g.op("Equal", seen, one), to=1))
    factor = g.where(
        any_but,
        g.where(
            g.op("Cast", g.op("Equal", seen, zero), to=1),
            g.const(0.5),
            g.where(first, one, g.const(1.5)),
        ),
        one,
    )
    total = g.op("ReduceSum", g.mul(v, factor), g.const([1], np.int64), keepdims=1)
    # "!" and "?" emphasis
    shout = g.mul(g.op("Min", bangs, g.const(4.0)), g.const(0.292))
    ask = g.where(
        g.op("Cast", g.op("Greater", questions, one), to=1),
        g.where(
            g.op("Cast", g.op("LessOrEqual", questions, g.const(3.0)), to=1),
            g.mul(questions, g.const(0.18)),
            g.const(0.96),
        ),
        zero,
    )
    amplifier = g.add(shout, ask)
    positive, negative_ = sign_of(total)
    total = g.add(total, g.mul(g.op("Sub", positive, negative_), amplifier))
    compound = g.op(
        "Clip",
        g.op("Div", total, g.op("Sqrt", g.add(g.mul(total, total), g.const(15.0)))),
        g.const(-1.0),
        one,
    )
    compound = g.op("Reshape", compound, g.const([-1], np.int64))
    g.nodes.append(helper.make_node("Identity", [compound], ["compound"]))
    t = g.const(THRESHOLD)
    column = g.op("Unsqueeze", compound, g.const([1], np.int64))
    logits = g.op(
        "Concat",
        g.op("Neg", g.add(column, t)),
        g.op("Mul", column, zero),
        g.op("Sub", column, t),
        axis=1,
    )
    g.nodes.append(
        helper.make_node("Softmax", [g.mul(logits, g.const(SHARPNESS))], ["probabilities"], axis=1)
    )
    label = g.where(
        g.op("Cast", g.op("GreaterOrEqual", compound, t), to=1),
        g.const(2, np.int64),
        g.where(
            g.op("Cast", g.op("LessOrEqual", compound, g.op("Neg", t)), to=1),
            g.const(0, np.int64),
            g.const(1, np.int64),
        ),
    )
    g.nodes.append(helper.make_node("Identity", [label], ["label"]))
    words_shape = ["n", "words"]
    graph = helper.make_graph(
        g.nodes,
        "vader",
        [
            helper.make_tensor_value_info(tokens, TensorProto.STRING, words_shape),
            helper.make_tensor_value_info(caps, TensorProto.FLOAT, words_shape),
            helper.make_tensor_value_info(nt, TensorProto.FLOAT, words_shape),
            helper.make_tensor_value_info(bangs, TensorProto.FLOAT, ["n", 1]),
            helper.make_tensor_value_info(questions, TensorProto.FLOAT, ["n", 1]),
        ],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["n"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 3]),
            helper.make_tensor_value_info("compound", TensorProto.FLOAT, ["n"]),
        ],
        g.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in ONNX_OPSET]
    )
    model.ir_version = 8
    helper.set_model_props(
        model, {EMOJI_KEY: "\n".join(f"{k}\t{v}" for k, v in sorted(emoji.items()))}
    )
    return model.SerializeToString()


def _idioms(g: _Graph, vader: Any, tokens: str, v: str) -> str:
    """VADER's special cases ("the bomb", "yeah right" ...) around word i replace its valence,
    and a two-word dampener ("kind of") in the three words before it is added."""
    flags: dict[str, str] = {}

    def starts(phrase: str, at: int) -> str:
        """1 where ``phrase`` starts ``at`` words after word i (negative: before)."""
        found = ""
        for j, word in enumerate(phrase.split()):
            if word not in flags:
                flags[word] = g.flag(tokens, [word])
            shifted = g.shift(flags[word], -(at + j)) if at + j else flags[word]
            found = g.both(found, shifted) if found else shifted
        return found

    def case(size: int, at: int, otherwise: str) -> str:
        cases = {p: value for p, value in vader.SPECIAL_CASES.items() if len(p.split()) == size}
        out = otherwise
        for phrase, value in cases.items():
            out = g.where(starts(phrase, at), g.const(float(value)), out)
        return out

    # the first of these that matches wins, then the ones starting at word i override it
    for size, at in reversed([(2, -1), (3, -2), (2, -2), (3, -3), (2, -3)]):
        v = case(size, at, v)
    v = case(3, 0, case(2, 0, v))
    for phrase, value in vader.BOOSTER_DICT.items():
        if len(phrase.split()) == 2:
            hits = g.add(starts(phrase, -3), starts(phrase, -2))
            v = g.add(v, g.mul(hits, g.const(float(value))))
    return v


def _load() -> Any:
    try:
        from vaderSentiment import vaderSentiment
    except ImportError as exc:
        raise MissingDependency(
            "Building the sentiment model needs the zoo extra, which brings vadersentiment (the "
            "wheel that ships VADER's lexicon): pip install 'modelport[zoo]'. Once built, the "
            "model runs on onnxruntime alone, on the server and on devices."
        ) from exc
    return vaderSentiment
