"""One plan per model that reads whole texts (the zoo's text-embedder and sentiment): texts in
any form become the graph's feeds, the same on the device and on the server.

A request is first *packed*: each text is checked (a string, or UTF-8 bytes; not blank) and
tokenised as ``manifest.preprocessing["text"]`` says, giving ``{"tokens": object [n] (one
encoding per text), "truncated": bool [n]}``. Packed requests are what the server's batcher merges
(texts of any length concatenate), and :meth:`TextPlan.feeds` pads a packed batch into the
graph's inputs. A text longer than the model's window is cut to it, and ``truncated`` says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from ..artifact import Manifest
from ..errors import InvalidInput, SchemaMismatch

Packed = dict[str, np.ndarray]
TOKENS, TRUNCATED = "tokens", "truncated"
SHOWN_CHARS = 40
"""How much of a bad text an error message quotes."""


class Tokenizer(Protocol):
    """What a text model's preprocessing does: one text -> an encoding; encodings -> feeds."""

    def encode(self, text: str) -> tuple[Any, bool]: ...

    def feeds(self, encodings: list[Any]) -> dict[str, np.ndarray]: ...


class TextPlan:
    """How one text model's inputs are read, built once from its manifest and graph metadata."""

    def __init__(self, manifest: Manifest, metadata: Mapping[str, str]) -> None:
        self.manifest = manifest
        self.column = manifest.inputs[0].name
        spec = manifest.preprocessing.get("text")
        kind = spec.get("kind") if isinstance(spec, dict) else None
        build = TOKENIZERS.get(str(kind))
        if build is None:
            raise InvalidInput(
                f"Model '{manifest.name}' tokenises text as {kind!r}, which this version of "
                f"modelport does not know (it knows {', '.join(TOKENIZERS)}). Upgrade modelport."
            )
        self.tokenizer: Tokenizer = build(spec, metadata)

    def pack(self, rows: Any) -> Packed:
        """Pack one text, a list of texts, rows ``{"text": ...}``, ``{"text": [...]}``, a
        DataFrame with the text column, or an array of texts."""
        return self.pack_texts(self._texts(rows))

    def pack_tensors(self, tensors: Mapping[str, np.ndarray]) -> Packed:
        """Pack named wire tensors (OIP v2, TF-Serving columns): the text column, [n] or [n, 1]."""
        if set(tensors) != {self.column}:
            raise SchemaMismatch(
                f"Model '{self.manifest.name}' takes one input, '{self.column}' (BYTES, shape "
                f"[n] or [n, 1], one text per element); got {', '.join(map(repr, tensors))}."
            )
        tensor = np.asarray(tensors[self.column])
        if tensor.ndim > 2 or (tensor.ndim == 2 and tensor.shape[1] != 1):
            raise SchemaMismatch(
                f"Input '{self.column}' must have shape [n] or [n, 1], not {list(tensor.shape)}."
            )
        return self.pack_texts(tensor.reshape(-1).tolist())

    def pack_blocks(self, blocks: list[tuple[tuple[str, ...], np.ndarray]]) -> Packed | None:
        """Packed from wire columns gathered by type, when they are this model's one text
        column; None otherwise (:meth:`pack_tensors` says what is wrong)."""
        if len(blocks) != 1 or blocks[0][0] != (self.column,) or blocks[0][1].dtype != object:
            return None
        return self.pack_texts(blocks[0][1].reshape(-1).tolist())

    def pack_texts(self, texts: list[Any]) -> Packed:
        if not texts:
            raise InvalidInput(
                "There are no texts to predict: the list is empty. Send at least one."
            )
        tokens = np.empty(len(texts), dtype=object)
        truncated = np.zeros(len(texts), dtype=bool)
        encode = self.tokenizer.encode
        for i, value in enumerate(texts):
            tokens[i], truncated[i] = encode(checked_text(value, i, len(texts)))
        return {TOKENS: tokens, TRUNCATED: truncated}

    def feeds(self, packed: Packed) -> dict[str, np.ndarray]:
        """The graph's inputs for a packed batch."""
        return self.tokenizer.feeds(list(packed[TOKENS]))

    def _texts(self, rows: Any) -> list[Any]:
        column = self.column
        if isinstance(rows, str | bytes | bytearray):
            return [rows]
        if isinstance(rows, dict):
            value = _field(rows, column, self.manifest.name)
            return list(value) if isinstance(value, list | tuple | np.ndarray) else [value]
        if hasattr(rows, "columns") and hasattr(rows, "to_numpy"):  # a DataFrame
            if column not in rows.columns:
                raise SchemaMismatch(
                    f"Model '{self.manifest.name}' reads the column '{column}', which the table "
                    f"lacks (it has {', '.join(map(str, rows.columns))})."
                )
            return rows[column].tolist()
        if isinstance(rows, np.ndarray):
            if rows.ndim == 2 and rows.shape[1] == 1:
                rows = rows[:, 0]
            if rows.ndim != 1:
                raise SchemaMismatch(
                    f"An array of shape {list(rows.shape)} is not a list of texts; model "
                    f"'{self.manifest.name}' takes one text per row."
                )
            return rows.tolist()
        if isinstance(rows, list | tuple):
            return [
                _field(row, column, self.manifest.name) if isinstance(row, dict) else row
                for row in rows
            ]
        raise InvalidInput(
            f"Model '{self.manifest.name}' reads text: pass a string, a list of strings, rows "
            f'{{"{column}": "..."}} or a table with a \'{column}\' column, not a '
            f"{type(rows).__name__}."
        )


def looks_like_texts(inputs: Any) -> bool:
    """True for one string or a non-empty list of them (what a text model takes)."""
    if isinstance(inputs, str):
        return True
    return (
        isinstance(inputs, list | tuple)
        and bool(inputs)
        and all(isinstance(v, str) for v in inputs)
    )


def as_rows(inputs: Any, column: str) -> list[dict[str, Any]]:
    """Texts as the rows the JSON API takes, ``{column: text}`` each (row dicts stay as they
    are); bytes are decoded (and checked) here, since JSON carries only text."""
    items = [inputs] if isinstance(inputs, str | bytes | bytearray) else list(inputs)
    return [
        item if isinstance(item, dict) else {column: checked_text(item, i, len(items))}
        for i, item in enumerate(items)
    ]


def checked_text(value: Any, i: int, n: int) -> str:
    """``value`` as text, or a clear error: not text, not UTF-8, or blank."""
    where = "The text" if n == 1 else f"Text {i + 1}"
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"{where} is not valid UTF-8: byte {exc.object[exc.start]:#04x} at position "
                f"{exc.start} cannot start or continue a character. Send text encoded as UTF-8 "
                "(or decode it yourself and send a string)."
            ) from None
    if not isinstance(value, str):
        raise SchemaMismatch(
            f"{where} is {value!r} ({type(value).__name__}), not text. Send each text as a string."
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInput(
                f"{where} holds {value[exc.start]!r} at position {exc.start}, half of a UTF-16 "
                "surrogate pair, which is no character: it was decoded from bytes that are not "
                "UTF-8 text. Send valid UTF-8 text."
            ) from None
    if not value.strip():
        shown = repr(value[:SHOWN_CHARS])
        raise InvalidInput(
            f"{where} is empty ({shown}): there is nothing to read. Send at least one word."
        )
    return value


def _field(row: dict[str, Any], column: str, model: str) -> Any:
    try:
        return row[column]
    except KeyError:
        raise SchemaMismatch(
            f"Model '{model}' reads text from the field '{column}', which this row lacks (it "
            f'has {", ".join(map(repr, row)) or "nothing"}). Send {{"{column}": "..."}}.'
        ) from None


def _wordpiece(spec: dict[str, Any], metadata: Mapping[str, str]) -> Tokenizer:
    from .wordpiece import WordPiece

    return WordPiece.from_spec(spec, metadata)


def _vader(spec: dict[str, Any], metadata: Mapping[str, str]) -> Tokenizer:
    from .vader import VaderTokens

    return VaderTokens.from_spec(spec, metadata)


TOKENIZERS: dict[str, Callable[[dict[str, Any], Mapping[str, str]], Tokenizer]] = {
    "wordpiece": _wordpiece,
    "vader_tokens": _vader,
}
"""``preprocessing["text"]["kind"]`` -> how to build that tokenizer."""
