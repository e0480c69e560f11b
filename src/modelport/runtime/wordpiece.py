"""BERT's uncased tokenizer (basic tokenisation + WordPiece) in pure Python, for text models on
the device as on the server: no native tokenizer package is needed.

It gives the ids Hugging Face's ``BertTokenizer`` gives (checked against the ``tokenizers``
package when the zoo builds the text-embedder): text is cleaned (NUL, U+FFFD and control
characters dropped, whitespace made spaces), CJK ideographs stand alone, accents are stripped,
case is folded, punctuation splits words, and each word becomes the longest vocabulary pieces
(``##`` marks a continuation; a word of over 100 characters, or one without pieces, is
``[UNK]``). ASCII text takes a one-regex path with the same result, 3-4x faster.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InvalidInput

METADATA = "metadata:"
"""A spec's ``vocab`` of ``"metadata:KEY"`` is in the graph's metadata under KEY, one token a line
(covered by the graph's SHA-256 and signature; the manifest stays small)."""
MAX_WORD_CHARS = 100
"""Longer words are [UNK], as in BERT."""
CHUNK_CHARS = 4096
"""Text is tokenised this much (then twice as much) at a time, so a huge text costs only the
part that fits the window."""
CACHE_WORDS = 50_000

_ASCII_WORDS = re.compile(r"[a-z0-9]+|[!-/:-@\[-`{-~]")
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class WordPiece:
    """Turns a text into ``[CLS] pieces... [SEP]`` ids, at most ``max_tokens`` of them."""

    def __init__(
        self, vocab: Sequence[str], max_tokens: int, inputs: tuple[str, str] = ("ids", "mask")
    ) -> None:
        self.vocab = {token: i for i, token in enumerate(vocab)}
        missing = [t for t in ("[UNK]", "[CLS]", "[SEP]", "[PAD]") if t not in self.vocab]
        if missing:
            raise InvalidInput(f"The model's vocabulary lacks {', '.join(missing)}; re-export it.")
        self.unk, self.cls, self.sep, self.pad = (
            self.vocab[t] for t in ("[UNK]", "[CLS]", "[SEP]", "[PAD]")
        )
        self.max_tokens = max_tokens
        self.inputs = inputs
        """The graph's inputs: token ids and attention mask, both int64 [n, tokens]."""
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def from_spec(cls, spec: dict[str, Any], metadata: Mapping[str, str]) -> WordPiece:
        """The tokenizer ``preprocessing["text"]`` describes, its vocabulary from ``metadata``."""
        source = str(spec.get("vocab", ""))
        vocab = metadata.get(source.removeprefix(METADATA)) if source.startswith(METADATA) else None
        if vocab is None or not (spec.get("lowercase") and spec.get("strip_accents")):
            raise InvalidInput(
                "This text model's tokenizer is not one modelport knows (an uncased WordPiece "
                f"whose vocabulary is in the graph's metadata): {spec}. Re-export it."
            )
        ids, mask = spec["inputs"]
        return cls(vocab.split("\n"), int(spec["max_tokens"]), (ids, mask))

    def feeds(self, encodings: list[list[int]]) -> dict[str, np.ndarray]:
        """Ids padded to the longest, and the mask of real tokens: int64 [n, longest]."""
        width = max(map(len, encodings))
        ids = np.full((len(encodings), width), self.pad, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding)] = encoding
            mask[row, : len(encoding)] = 1
        return dict(zip(self.inputs, (ids, mask), strict=True))

    def encode(self, text: str) -> tuple[list[int], bool]:
        """The ids of ``text``, and whether pieces past the window were dropped."""
        limit = self.max_tokens - 2
        pieces: list[int] = []
        start, size = 0, CHUNK_CHARS
        while start < len(text) and len(pieces) <= limit:
            end = _cut(text, start, start + size)
            for word in words(text[start:end]):
                pieces.extend(self._word(word))
            start, size = end, size * 2
        return [self.cls, *pieces[:limit], self.sep], len(pieces) > limit

    def _word(self, word: str) -> list[int]:
        ids = self._cache.get(word)
        if ids is None:
            ids = self._pieces(word)
            if len(self._cache) < CACHE_WORDS:
                self._cache[word] = ids
        return ids

    def _pieces(self, word: str) -> list[int]:
        """Greedy longest-match-first WordPiece of one word."""
        if len(word) > MAX_WORD_CHARS:
            return [self.unk]
        ids, start, vocab = [], 0, self.vocab
        while start < len(word):
            for end in range(len(word), start, -1):
                found = vocab.get(word[start:end] if start == 0 else "##" + word[start:end])
                if found is not None:
                    break
            else:
                return [self.unk]
            ids.append(found)
            start = end
        return ids


def words(text: str) -> list[str]:
    """BERT's basic tokenisation of ``text`` (uncased, accents stripped)."""
    if text.isascii():
        return _ASCII_WORDS.findall(_ASCII_CONTROL.sub("", text).lower())
    cleaned = []
    for c in text:
        if c in "\x00\ufffd" or _is_control(c):
            continue
        if c in " \t\n\r" or unicodedata.category(c) == "Zs":
            cleaned.append(" ")
        elif _is_cjk(ord(c)):
            cleaned.append(f" {c} ")
        else:
            cleaned.append(c)
    found = []
    for word in "".join(cleaned).lower().split():
        decomposed = unicodedata.normalize("NFD", word)
        current: list[str] = []
        for c in decomposed:
            if unicodedata.category(c) == "Mn":
                continue
            if _is_punctuation(c):
                if current:
                    found.append("".join(current))
                    current = []
                found.append(c)
            else:
                current.append(c)
        if current:
            found.append("".join(current))
    return found


def _cut(text: str, start: int, end: int) -> int:
    """Where a chunk from ``start`` ending near ``end`` may end: just after a space or newline
    (where BERT splits words anyway), or at the end of the text."""
    if end >= len(text):
        return len(text)
    at = max(text.rfind(" ", start, end), text.rfind("\n", start, end))
    if at < start:  # no break before: the first one after
        found = [i for i in (text.find(" ", end), text.find("\n", end)) if i >= 0]
        return min(found) + 1 if found else len(text)
    return at + 1


def _is_control(c: str) -> bool:
    return c not in "\t\n\r" and unicodedata.category(c) in ("Cc", "Cf")


def _is_punctuation(c: str) -> bool:
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )
