"""VADER's reading of a text, in pure Python, for the zoo's sentiment model: what its graph
(VADER's lexicon and rules, compiled to ONNX) takes.

As vaderSentiment 3.3.2 does it: each emoji becomes its description (the table is in the graph's
metadata), the text is split at whitespace, and punctuation is stripped from both ends of a word
unless two characters or fewer would remain (so ":)" stays). The graph gets, per word: the word
in lowercase, whether it is in capitals in a text that is not all capitals (VADER's emphasis),
and whether it contains "n't" (a negation); per text: how many "!" and "?" it has. A text of
more than ``max_tokens`` words is cut to its first ones.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInput
from .wordpiece import METADATA

INPUTS = ("tokens", "caps", "negated", "exclamations", "questions")
"""The graph's inputs: string, float, float [n, words]; float [n, 1] twice."""
CHUNK_CHARS = 16_384


@dataclass(frozen=True)
class Words:
    """One text as VADER reads it."""

    tokens: list[str]
    caps: list[float]
    negated: list[float]
    exclamations: int
    questions: int


class VaderTokens:
    """Texts -> the sentiment graph's inputs."""

    def __init__(self, emoji: Mapping[str, str], max_tokens: int) -> None:
        self.emoji = emoji
        self.max_tokens = max_tokens

    @classmethod
    def from_spec(cls, spec: dict[str, Any], metadata: Mapping[str, str]) -> VaderTokens:
        source = str(spec.get("emoji", ""))
        table = metadata.get(source.removeprefix(METADATA)) if source.startswith(METADATA) else None
        if table is None or "max_tokens" not in spec:
            raise InvalidInput(
                f"This sentiment model's preprocessing is not one modelport knows: {spec}. "
                "Re-export it."
            )
        emoji = dict(line.split("\t", 1) for line in table.split("\n") if "\t" in line)
        return cls(emoji, int(spec["max_tokens"]))

    def encode(self, text: str) -> tuple[Words, bool]:
        """VADER's words of ``text`` (at most ``max_tokens``), and whether some were dropped.
        A long text is read only as far as the window needs (its "!" and "?" counted there)."""
        head = text
        if len(text) > CHUNK_CHARS:
            end = CHUNK_CHARS
            while end < len(text) and len(text[:end].split()) <= self.max_tokens:
                end *= 2
            head = text[:end]
        words = [_strip(w) for w in self._described(head).split()]
        kept = words[: self.max_tokens]
        upper = [w.isupper() for w in kept]
        emphasis = 0 < sum(upper) < len(kept)
        lower = [w.lower() for w in kept]
        encoded = Words(
            lower,
            [float(u and emphasis) for u in upper],
            [float("n't" in w) for w in lower],
            head.count("!"),
            head.count("?"),
        )
        return encoded, len(words) > len(kept)

    def _described(self, text: str) -> str:
        """``text`` with each emoji replaced by its description, spaced as VADER spaces it."""
        if text.isascii():
            return text
        out, after_space = [], True
        for c in text:
            description = self.emoji.get(c)
            if description is None:
                out.append(c)
                after_space = c == " "
            else:
                out.append(description if after_space else " " + description)
                after_space = False
        return "".join(out)

    def feeds(self, encodings: list[Words]) -> dict[str, np.ndarray]:
        """Words padded with "" to the longest text; counts as float [n, 1]."""
        width = max(1, max(len(w.tokens) for w in encodings))
        n = len(encodings)
        tokens = np.full((n, width), "", dtype=object)
        caps = np.zeros((n, width), dtype=np.float32)
        negated = np.zeros((n, width), dtype=np.float32)
        for row, words in enumerate(encodings):
            size = len(words.tokens)
            tokens[row, :size] = words.tokens
            caps[row, :size] = words.caps
            negated[row, :size] = words.negated
        counts = np.array([[w.exclamations, w.questions] for w in encodings], dtype=np.float32)
        return dict(zip(INPUTS, (tokens, caps, negated, counts[:, :1], counts[:, 1:]), strict=True))


def _strip(word: str) -> str:
    stripped = word.strip(string.punctuation)
    return word if len(stripped) <= 2 else stripped
