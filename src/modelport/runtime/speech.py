"""Speech to text with pocketsphinx: the runtime's second backend, behind the Predictor interface.

The model file of a speech artifact is a small JSON config (:class:`SphinxConfig`); the acoustic
model, language model and dictionary are the en-us files the ``pocketsphinx`` wheel ships
(``pip install 'modelport[speech]'``). Recordings are decoded to 16 kHz mono by runtime/audio.py,
padded with silence (the decoder loses a last word said right at the end) and dithered. A grammar
(JSGF) or a list of keywords, per model or per request, restricts what can be heard: with one,
spoken commands come out exact; without, the general language model is poor on short commands.

A pocketsphinx decoder is not thread-safe and takes ~0.3 s and ~90 MB to make, so each predictor
keeps a small pool, made on demand, and each decoder keeps the grammars it was given. Decoding
holds the GIL: more decoders let concurrent requests take turns, not use more cores.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import queue
import re
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from ..artifact import Manifest, ModelArtifact
from ..errors import InvalidInput, MissingDependency
from .audio import MAX_SECONDS, is_recording, recording
from .predictor import Prediction

RATE = 16000
FRAMES_PER_SECOND = 100
LANGUAGE_MODEL = "_default"
"""pocketsphinx's name for the search of its general (n-gram) language model."""
SEARCHES_KEPT = 16
"""Grammars and keyword lists each decoder keeps ready (the least recently used go first)."""
WORDS = "words"
"""The extra of a prediction holding each recording's timed words."""
MODEL_FILES = ("en-us/mdef", "en-us/means", "en-us/variances", "en-us/sendump",
               "en-us/transition_matrices", "en-us/feat.params", "en-us/noisedict",
               "en-us.lm.bin", "cmudict-en-us.dict")  # fmt: skip
"""The files of the wheel's en-us model a decoder reads, relative to ``<model path>/en-us``."""
INSTALL = "Speech-to-text needs pocketsphinx: pip install 'modelport[speech]'"
_JSGF_SYNTAX = re.compile(
    r"//[^\n]*|/\*.*?\*/|#JSGF[^;]*;|\bgrammar\s+[\w.]+\s*;|\bimport\s+<[^>]*>\s*;"
    r"|<[^>]*>|\{[^}]*\}|/[^/]*/|\bpublic\b|[=;|()\[\]*+\"]",
    re.S,
)
"""Everything in a JSGF grammar that is not a word: header, comments, rule names, tags, weights."""


@dataclass(frozen=True)
class SphinxConfig:
    """A speech model's file: what the decoder listens for and how recordings are prepared."""

    grammar: str | None = None
    """A JSGF grammar every recording is matched against (None: the general language model)."""
    keywords: tuple[str, ...] | None = None
    """Phrases to spot anywhere in a recording, instead of a full transcript."""
    keyword_threshold: float = 1e-30
    """How sure the decoder must be to report a keyword (smaller: more found, more false);
    pocketsphinx's own default."""
    padding: tuple[float, float] = (0.3, 0.5)
    """Seconds of silence added before and after each recording."""
    dither: float = 32.0
    """Standard deviation, in 16-bit steps, of the noise added to every recording (the same for
    the same recording): on digital silence pocketsphinx hears words ("in", "dog"); with it,
    silence gives nothing and 81 of 81 synthetic commands come out exact (76 without)."""
    max_seconds: float = MAX_SECONDS
    files: dict[str, str] = field(default_factory=dict)
    """SHA-256 of the model files the config was made with (see :data:`MODEL_FILES`)."""

    def to_bytes(self) -> bytes:
        data = {"engine": "pocketsphinx", "model": "en-us"} | {
            "grammar": self.grammar,
            "keywords": None if self.keywords is None else list(self.keywords),
            "keyword_threshold": self.keyword_threshold,
            "padding": list(self.padding),
            "dither": self.dither,
            "max_seconds": self.max_seconds,
            "files": self.files,
        }
        return json.dumps(data, indent=2, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> SphinxConfig:
        try:
            values = json.loads(data)
            if values.pop("engine") != "pocketsphinx" or values.pop("model") != "en-us":
                raise ValueError("not pocketsphinx's en-us model")
            keywords = values.pop("keywords")
            return cls(
                keywords=None if keywords is None else tuple(keywords),
                padding=tuple(values.pop("padding")),
                **values,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidInput(
                f"The speech model's config is not valid ({exc}); pull speech-to-text again."
            ) from exc


@dataclass(frozen=True)
class Search:
    """What a decoder listens for: the language model, a JSGF grammar or a keyword file."""

    kind: str
    text: str = ""

    @property
    def name(self) -> str:
        if self.kind == "lm":
            return LANGUAGE_MODEL
        return f"{self.kind}-{hashlib.sha256(self.text.encode()).hexdigest()[:20]}"


class SpeechPredictor:
    """Runs a pocketsphinx artifact with the interface of :class:`Predictor`: ``predictions``
    are the transcripts, ``extras["words"]`` the timed words of each recording."""

    def __init__(self, artifact: ModelArtifact, threads: int = 0) -> None:
        """``threads``: the most decoders kept (each ~90 MB); 0 means 2."""
        self.manifest: Manifest = artifact.manifest
        self.config = SphinxConfig.from_bytes(artifact.onnx)
        self.model_path = model_path()
        _warn_if_changed(self.config.files, self.model_path, self.manifest.name)
        self.default = search_for(self.config.grammar, self.config.keywords, self.config)
        self._pool = _Pool(self._decoder, threads or 2)
        with self._pool.decoder():  # the first decoder now: a bad model grammar fails the load
            pass

    def predict(
        self, inputs: Any, grammar: str | None = None, keywords: Sequence[str] | None = None
    ) -> Prediction:
        """Transcribe one recording or a list: WAV bytes, paths of WAV files, or
        ``(samples, sample_rate)``; ``grammar`` (JSGF) or ``keywords`` replace the model's."""
        return self.run(self.encode(inputs, grammar, keywords))

    def encode(
        self, inputs: Any, grammar: str | None = None, keywords: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Padded 16-bit samples of each recording and what to listen for; rows of several
        requests (each with its own grammar) can be concatenated and run together."""
        search = self.default
        if grammar is not None or keywords is not None:
            search = search_for(grammar, keywords, self.config)
        items = list(inputs) if isinstance(inputs, list | tuple) else [inputs]
        if is_recording(inputs):
            items = [inputs]
        audio = _objects(
            [self._samples(recording(i, RATE, self.config.max_seconds)) for i in items]
        )
        return {"audio": audio, "search": _objects([search] * len(items))}

    def run(self, encoded: dict[str, np.ndarray]) -> Prediction:
        """Transcribe encoded recordings (what :meth:`encode` returns)."""
        with self._pool.decoder() as decoder:
            results = [
                decoder.decode(pcm, search, self.config.padding)
                for pcm, search in zip(encoded["audio"], encoded["search"], strict=True)
            ]
        transcripts = _objects([text for text, _ in results])
        return Prediction(transcripts, None, None, {WORDS: _objects([w for _, w in results])})

    def _samples(self, samples: np.ndarray) -> np.ndarray:
        """16-bit samples, padded with silence and dithered (the same noise for the same length)."""
        before, after = (np.zeros(round(s * RATE), np.float32) for s in self.config.padding)
        pcm = np.concatenate([before, np.clip(samples, -1.0, 1.0) * 32767, after])
        if self.config.dither:  # the same noise ends every recording: see _dither
            pcm += _dither(len(pcm) - len(after), len(after)) * np.float32(self.config.dither)
        return np.clip(np.round(pcm), -32768, 32767).astype(np.int16)

    def _decoder(self) -> _Decoder:
        decoder = _Decoder(self.model_path)
        decoder.activate(self.default)
        return decoder


class _Decoder:
    """One pocketsphinx decoder and the searches (grammars, keyword lists) added to it."""

    def __init__(self, path: Path) -> None:
        self.decoder = _pocketsphinx().Decoder(
            samprate=RATE,
            loglevel="FATAL",
            hmm=str(path / "en-us"),
            lm=str(path / "en-us.lm.bin"),
            dict=str(path / "cmudict-en-us.dict"),
            bestpath=False,  # grammars: 69 of 80 synthetic commands exact, against 58 with it
        )
        self.searches: OrderedDict[str, None] = OrderedDict()

    def decode(
        self, pcm: np.ndarray, search: Search, padding: tuple[float, float]
    ) -> tuple[str, list[dict[str, Any]]]:
        """The transcript of ``pcm`` and its timed words, in seconds of the recording it was
        padded from."""
        self.activate(search)
        self.decoder.start_utt()
        self.decoder.process_raw(pcm.tobytes(), full_utt=True)
        self.decoder.end_utt()
        hypothesis = self.decoder.hyp()
        if hypothesis is None:
            return "", []
        lead, duration = padding[0], max(len(pcm) / RATE - sum(padding), 0.0)

        def seconds(frame: int) -> float:
            return round(min(max(frame / FRAMES_PER_SECOND - lead, 0.0), duration), 2)

        words = [
            {
                "word": re.sub(r"\(\d+\)$", "", segment.word.strip()),
                "start": seconds(segment.start_frame),
                "end": seconds(segment.end_frame + 1),
            }
            for segment in self.decoder.seg() or []
            if segment.word[:1] not in ("<", "[", "(")  # <sil>, [NOISE], (NULL): not words
        ]
        return " ".join(hypothesis.hypstr.split()), words

    def activate(self, search: Search) -> None:
        """Make ``search`` the current one, adding it first if this decoder lacks it."""
        name = search.name
        if name != LANGUAGE_MODEL and name not in self.searches:
            self._add(name, search)
            self.searches[name] = None
        self.decoder.activate_search(name)
        if name in self.searches:
            self.searches.move_to_end(name)
            while len(self.searches) > SEARCHES_KEPT:  # never the current one: it is the newest
                self.decoder.remove_search(self.searches.popitem(last=False)[0])

    def _add(self, name: str, search: Search) -> None:
        if search.kind == "kws":
            with tempfile.NamedTemporaryFile("w", suffix=".kws", encoding="utf-8") as handle:
                handle.write(search.text)
                handle.flush()
                self.decoder.add_kws(name, handle.name)
            return
        try:
            self.decoder.add_jsgf_string(name, search.text)
        except ValueError as exc:
            raise InvalidInput(
                "The grammar is not valid JSGF. Give a full grammar ('#JSGF V1.0; grammar g; "
                "public <command> = ...;') or just its rule, e.g. 'turn (on | off) the "
                "(lights | fan)'."
            ) from exc


class _Pool:
    """Up to ``size`` decoders, made when every one made so far is busy."""

    def __init__(self, make: Callable[[], _Decoder], size: int) -> None:
        self._make = make
        self._size = max(1, size)
        self._idle: queue.LifoQueue[_Decoder] = queue.LifoQueue()
        self._made = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def decoder(self) -> Iterator[_Decoder]:
        decoder = self._take()
        try:
            yield decoder
        finally:
            self._idle.put(decoder)

    def _take(self) -> _Decoder:
        with contextlib.suppress(queue.Empty):
            return self._idle.get_nowait()
        with self._lock:
            make = self._made < self._size
            if make:
                self._made += 1
        if not make:
            return self._idle.get()
        try:
            return self._make()
        except BaseException:
            with self._lock:
                self._made -= 1
            raise


def search_for(grammar: str | None, keywords: Sequence[str] | None, config: SphinxConfig) -> Search:
    """The search a grammar or keyword list asks for, its words checked against the
    dictionary (the language model when neither is given)."""
    if grammar is not None and keywords is not None:
        raise InvalidInput("Give a grammar or keywords, not both.")
    if grammar is not None:
        text = _full_grammar(grammar)
        _check_words(_JSGF_SYNTAX.sub(" ", text).split(), "grammar")
        return Search("jsgf", text)
    if keywords is not None:
        phrases = keyword_phrases(keywords)
        _check_words([w for p in phrases for w in p.split()], "keywords")
        threshold = f"{config.keyword_threshold:g}"
        return Search("kws", "".join(f"{p} /{threshold}/\n" for p in phrases))
    return Search("lm")


def keyword_phrases(keywords: Sequence[str]) -> list[str]:
    """Keywords as distinct lowercase phrases of single-spaced words."""
    phrases = [keywords] if isinstance(keywords, str) else list(keywords)
    phrases = [" ".join(str(p).lower().split()) for p in phrases]
    if not phrases or not all(phrases):
        raise InvalidInput("The keywords are empty: give one or more words or phrases.")
    return list(dict.fromkeys(phrases))


def _full_grammar(grammar: str) -> str:
    """A JSGF grammar as given, or one made of a bare rule such as 'turn (on | off) the fan'."""
    text = grammar.strip()
    if not text.rstrip(";").strip():
        raise InvalidInput("The grammar is empty: give JSGF, e.g. 'turn (on | off) the lights'.")
    if text.startswith("#JSGF"):
        return text + "\n"
    return f"#JSGF V1.0;\ngrammar request;\npublic <request> = {text.rstrip(';')};\n"


def _check_words(words: list[str], what: str) -> None:
    known = dictionary()
    missing = list(dict.fromkeys(w for w in words if w not in known))
    if missing:
        shown = ", ".join(repr(w) for w in missing[:20]) + (" ..." if len(missing) > 20 else "")
        raise InvalidInput(
            f"The {what} uses {len(missing)} word(s) the speech model's dictionary does not "
            f"have: {shown}. Use lowercase English words it knows (numbers as words, e.g. "
            "'five')."
        )


@cache
def dictionary() -> frozenset[str]:
    """Every word of the en-us dictionary (alternative pronunciations as one)."""
    path = model_path() / "cmudict-en-us.dict"
    with path.open(encoding="utf-8") as lines:
        return frozenset(line.split(" ", 1)[0].split("(", 1)[0] for line in lines)


def model_path() -> Path:
    """The folder of pocketsphinx's en-us model (in its wheel)."""
    return Path(_pocketsphinx().get_model_path()) / "en-us"


def model_hashes(path: Path) -> dict[str, str]:
    """SHA-256 of each of the model's :data:`MODEL_FILES` in ``path``."""
    return {name: hashlib.sha256((path / name).read_bytes()).hexdigest() for name in MODEL_FILES}


def library_version() -> str:
    _pocketsphinx()
    return version("pocketsphinx")


def _warn_if_changed(recorded: dict[str, str], path: Path, name: str) -> None:
    changed = sorted(k for k, v in model_hashes(path).items() if recorded.get(k, v) != v)
    if changed:
        warnings.warn(
            f"Model '{name}' was made with other pocketsphinx model files than this "
            f"pocketsphinx {library_version()} has ({', '.join(changed)} differ): its transcripts "
            "may differ from the server's. Install the pocketsphinx version in its manifest.",
            RuntimeWarning,
            stacklevel=3,
        )


def _dither(body: int, tail: int) -> np.ndarray:
    """Unit noise: ``body`` samples, then ``tail`` that are the same for every recording, so
    every recording leaves the decoder in the same state (seen without it: after different
    recordings the language model heard the next one differently, 1 time in 5)."""
    return np.concatenate(
        [
            np.random.default_rng(0).standard_normal(body, dtype=np.float32),
            np.random.default_rng(1).standard_normal(tail, dtype=np.float32),
        ]
    )


def _objects(values: list[Any]) -> np.ndarray:
    """A 1-D object array of ``values`` (which numpy would otherwise stack)."""
    array = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):  # one by one: a slice assignment would broadcast
        array[i] = value
    return array


def _pocketsphinx() -> Any:
    try:
        import pocketsphinx
    except ImportError as exc:
        raise MissingDependency(INSTALL) from exc
    return pocketsphinx
