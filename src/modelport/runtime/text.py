"""Free text as text models want it: normalised here, in the runtime, the same for training, the
server and the SDK.

The graph tokenises (skl2onnx's TF-IDF: a regular expression over lowercase ASCII), but it cannot
lowercase: ONNX's StringNormalizer needs an OS locale (en_US.UTF-8) that many machines lack. So
the runtime lowercases and folds accents before the graph sees the text ("Café" -> "cafe").
"""

from __future__ import annotations

import unicodedata
from typing import Any

import numpy as np

from ..errors import InvalidInput, SchemaMismatch

NORMALIZE = "lowercase,fold_accents"
"""The normalisation text columns record in their ColumnSpec (the only one there is)."""
TOKEN_PATTERN = "[a-z0-9]{2,}"
"""Tokens of the TF-IDF graphs: runs of 2+ ASCII letters or digits of the normalised text."""


def normalize(text: str) -> str:
    """Case-folded, with accents and compatibility forms folded: "Ｃａｆé Straße" -> "cafe
    strasse". Applying it twice changes nothing (the training rows are normalised once before
    the parity check normalises them again)."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def check_normalization(name: str, normalization: str | None) -> None:
    """Refuse a text column whose normalisation this modelport does not know."""
    if normalization not in (None, NORMALIZE):
        raise InvalidInput(
            f"Text column '{name}' asks for the normalisation {normalization!r}, which this "
            f"version of modelport does not know (it knows {NORMALIZE!r}). Upgrade modelport."
        )


def encode_texts(name: str, values: Any, normalization: str | None) -> np.ndarray:
    """A text column as normalised str (missing -> ""); anything but text is refused."""
    check_normalization(name, normalization)
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    out = np.empty(len(items), dtype=object)
    for i, value in enumerate(items):
        if type(value) is str:
            out[i] = normalize(value) if normalization else value
        elif value is None or (isinstance(value, float) and value != value):
            out[i] = ""
        else:
            raise SchemaMismatch(
                f"Column '{name}' holds free text, but row {i + 1} has {value!r} "
                f"({type(value).__name__}). Send the text as a string."
            )
    return out


def textless(columns: list[np.ndarray]) -> np.ndarray:
    """Which rows have nothing but blanks in every one of the text ``columns``."""
    blank = [np.fromiter((not v.strip() for v in c), bool, len(c)) for c in columns]
    return np.logical_and.reduce(blank)


def check_not_empty(names: list[str], columns: list[np.ndarray]) -> None:
    """Refuse rows without text for a model that reads nothing but text."""
    empty = textless(columns)
    if empty.any():
        rows = ", ".join(str(i + 1) for i in np.flatnonzero(empty)[:5])
        raise SchemaMismatch(
            f"Row(s) {rows} have no text in {', '.join(map(repr, names))}: the model reads only "
            "text, so there is nothing to predict from. Send the text to classify."
        )
