"""One encoding plan per tabular model: requests in any form become the graph's feeds in a few
numpy steps, however many columns the model has.

A request is first *packed*: every number column of every row in one float32 block ``[n, m]``
and every text column in one object block ``[n, k]``. Packed requests are what the server's
batcher merges (two concatenations, whatever the width), and :meth:`TabularPlan.feeds` turns a
packed batch into the graph's per-column inputs with views, not copies per value.

The fast path takes the common shapes (row dicts, one row, a DataFrame, wire tensors, a numeric
matrix) when their values are already what the graph wants. Anything else (a missing column, a
non-numeric value, an empty request) goes through :mod:`.tabular`, which converts the unusual
and names what is wrong; so both paths give the same feeds and the same errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np

from ..artifact import Manifest
from . import tabular, text

Packed = dict[str, np.ndarray]
"""``{"numbers": float32 [n, m], "strings": object [n, k]}``: one request, or a batch of them."""
NUMBERS, STRINGS = "numbers", "strings"
NUMERIC = frozenset("fiub")
"""numpy dtype kinds that number columns take (float, int, unsigned, bool)."""
KIND = attrgetter("dtype.kind")


class TabularPlan:
    """How one model's inputs are read, built once from its manifest."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        specs = manifest.inputs
        self.numbers = [c.name for c in specs if c.dtype == "number"]
        self.strings = [c.name for c in specs if c.dtype != "number"]
        self._number_feeds = [c.onnx_name or c.name for c in specs if c.dtype == "number"]
        self._string_feeds = [c.onnx_name or c.name for c in specs if c.dtype != "number"]
        self._get_numbers = _getter(self.numbers)
        self._get_strings = _getter(self.strings)
        self._number_key, self._string_key = tuple(self.numbers), tuple(self.strings)
        self.matrix = manifest.input_layout == "matrix"
        self._known = frozenset(manifest.columns)
        texts = [c for c in specs if c.dtype == "text"]
        for spec in texts:
            text.check_normalization(spec.name, spec.normalize)
        self._texts = [(self.strings.index(c.name), c.normalize is not None) for c in texts]
        """Free-text columns: their place in the text block, and whether they are normalised."""
        self._text_only = bool(specs) and len(texts) == len(specs)

    # -- requests -> packed ----------------------------------------------------------------

    def pack(self, rows: Any) -> Packed:
        """Pack rows given as dicts (or one dict), a DataFrame, columns or a 2-D array."""
        packed = self._fast(rows)
        if packed is None:
            packed = self.pack_feeds(
                tabular.encode(self.manifest, tabular.to_columns(rows, self.manifest))
            )
        return packed

    def pack_tensors(self, tensors: Mapping[str, np.ndarray]) -> Packed:
        """Pack named wire tensors (OIP v2, TF-Serving columns), each [n] or [n, 1]; unknown
        names and wrong shapes or dtypes are errors, as :func:`tabular.encode_tensors` says."""
        if not self.matrix and len(tensors) == len(self._known) and self._known.issuperset(tensors):
            numbers = [tensors[name] for name in self.numbers]
            strings = [tensors[name] for name in self.strings]
            kinds = set(map(KIND, numbers)), set(map(KIND, strings))
            if kinds[0] <= NUMERIC and not kinds[1] & NUMERIC:
                try:
                    return self._pack(
                        _stack(numbers, np.float32), _stack(strings, object), columns=True
                    )
                except (_Unusual, TypeError, ValueError):
                    pass  # shapes [n] and [n, 1] mixed, other shapes, lengths that differ
        return self.pack_feeds(tabular.encode_tensors(self.manifest, tensors))

    def pack_blocks(self, blocks: list[tuple[tuple[str, ...], np.ndarray]]) -> Packed | None:
        """Packed from wire columns already gathered by type (one [inputs, n] array per type,
        with the inputs' names) when they are exactly this model's number columns and its text
        columns, in its order. None otherwise (use :meth:`pack_tensors`)."""
        found = dict(blocks)
        numbers = found.pop(self._number_key, None) if self.numbers else None
        strings = found.pop(self._string_key, None) if self.strings else None
        if (
            self.matrix
            or found
            or (numbers is None) != (not self.numbers)
            or (strings is None) != (not self.strings)
            or (numbers is not None and numbers.dtype.kind not in NUMERIC)
            or (strings is not None and strings.dtype != object)
        ):
            return None
        try:
            return self._pack(numbers, strings, columns=True)
        except _Unusual:
            return None  # pack_tensors' careful path says what is wrong

    def pack_feeds(self, feeds: Mapping[str, np.ndarray]) -> Packed:
        """Packed form of the graph's own feeds (what :mod:`.tabular` makes)."""
        if self.matrix:
            assert self.manifest.matrix_input is not None
            matrix = feeds[self.manifest.matrix_input]
            return {NUMBERS: matrix, STRINGS: _no_strings(len(matrix))}
        numbers = [feeds[name] for name in self._number_feeds]
        strings = [feeds[name] for name in self._string_feeds]
        n = len(numbers[0]) if numbers else len(strings[0]) if strings else 0
        return {
            NUMBERS: np.hstack(numbers) if numbers else np.empty((n, 0), np.float32),
            STRINGS: np.hstack(strings) if strings else _no_strings(n),
        }

    # -- packed -> the graph's feeds ----------------------------------------------------------

    def feeds(self, packed: Packed) -> dict[str, np.ndarray]:
        """The graph's inputs: the matrix itself, or one [n, 1] view per column."""
        numbers = packed[NUMBERS]
        if self.matrix:
            return {self.manifest.matrix_input or "input": numbers}
        numbers = np.asfortranarray(numbers)  # each column contiguous, so views can be fed
        strings = np.asfortranarray(packed[STRINGS])
        feeds = {name: numbers[:, i : i + 1] for i, name in enumerate(self._number_feeds)}
        feeds.update({name: strings[:, i : i + 1] for i, name in enumerate(self._string_feeds)})
        return feeds

    # -- the fast path ----------------------------------------------------------------------

    def _fast(self, rows: Any) -> Packed | None:
        """Packed rows, or None when they need the careful path (which may raise)."""
        try:
            if isinstance(rows, list) and rows and type(rows[0]) is dict:
                return self._rows(rows)
            if type(rows) is dict and rows:
                if not any(map(tabular.is_sequence, rows.values())):
                    return self._rows([rows])  # one row
                return self._columns(rows.__getitem__)
            if hasattr(rows, "columns") and hasattr(rows, "to_numpy"):
                return self._columns(lambda name: rows[name].to_numpy())  # a DataFrame
            if isinstance(rows, np.ndarray) and self.matrix and rows.dtype.kind in NUMERIC:
                return self._pack(rows, None)  # _pack checks the shape
        except (_Unusual, KeyError, TypeError, ValueError):
            pass
        return None

    def _rows(self, rows: list[dict[str, Any]]) -> Packed:
        get_numbers, get_strings = self._get_numbers, self._get_strings
        numbers = [get_numbers(row) for row in rows] if get_numbers else None
        strings = [get_strings(row) for row in rows] if get_strings else None
        return self._pack(
            np.array(numbers, dtype=np.float32) if numbers is not None else None,
            strings,
        )

    def _columns(self, column: Callable[[str], Any]) -> Packed:
        """Packed from whole columns, ``column(name)`` each (a dict of lists, a DataFrame)."""
        numbers = [column(name) for name in self.numbers]
        strings = [column(name) for name in self.strings]
        return self._pack(numbers or None, strings or None, columns=True)

    def _pack(self, numbers: Any, strings: Any, columns: bool = False) -> Packed:
        """Blocks from row-major values (``columns``: one sequence per column instead)."""
        if numbers is not None:
            numbers = np.asarray(numbers, dtype=np.float32)
            numbers = numbers.T if columns else numbers
            if numbers.ndim != 2 or numbers.shape[1] != len(self.numbers):
                raise _Unusual
        if strings is None:
            return {NUMBERS: numbers, STRINGS: _no_strings(len(numbers))}
        if isinstance(strings, np.ndarray) and strings.dtype == object and strings.ndim == 2:
            block = strings  # already one block (wire tensors): _texts copies before it writes
        else:
            rows = (len(strings), len(strings[0])) if columns else (len(strings), len(self.strings))
            block = np.empty(rows, dtype=object)
            block[:] = strings
        block = block.T if columns else block
        if self._texts:
            block = self._normalised(block)
        block = _texts(block)
        if numbers is None:
            numbers = np.empty((len(block), 0), np.float32)
        elif len(numbers) != len(block):
            raise _Unusual  # columns of different lengths: the careful path names them
        return {NUMBERS: numbers, STRINGS: block}

    def _normalised(self, block: np.ndarray) -> np.ndarray:
        """A copy of the text block with its free-text columns normalised; a value that is not
        a string, or a row without text for a model of text alone, is the careful path's."""
        block = block.copy()
        for i, normalize in self._texts:
            column = block[:, i]
            if not all(type(v) is str for v in column):
                raise _Unusual
            if normalize:
                block[:, i] = list(map(text.normalize, column))
        if self._text_only and text.textless([block[:, i] for i, _ in self._texts]).any():
            raise _Unusual
        return block


class _Unusual(Exception):
    """Input the fast path leaves to the careful one."""


def _getter(names: list[str]) -> Any:
    """A function of a row dict that returns its values of ``names`` as a tuple (KeyError when
    one is absent), or None without names."""
    if not names:
        return None
    get = itemgetter(*names)
    return get if len(names) > 1 else lambda row: (get(row),)


def _stack(columns: list[np.ndarray], dtype: Any) -> np.ndarray | None:
    """Columns of one shape, [n] or [n, 1], as one [columns, n] array (None without columns)."""
    if not columns:
        return None
    stacked = np.array(columns, dtype=dtype)
    if stacked.ndim == 3 and stacked.shape[2] == 1:
        stacked = stacked.reshape(stacked.shape[:2])
    if stacked.ndim != 2:
        raise _Unusual
    return stacked


def _texts(block: np.ndarray) -> np.ndarray:
    """A block of text values as the graph wants them: missing values (None, NaN) become "",
    in two vectorised passes; other non-text values (numbers) go through tabular's conversion."""
    kinds = set(map(type, block.flat))
    if kinds == {str}:
        return block
    if kinds <= MISSING_TEXT:
        missing = np.equal(block, None) | (block != block)  # None, and NaN (unequal to itself)
        if set(map(type, block[~missing])) <= {str}:
            block = block.copy()
            block[missing] = ""
            return block
    return tabular.as_text(block.ravel()).reshape(block.shape)


MISSING_TEXT = frozenset({str, float, type(None)})


def _no_strings(n: int) -> np.ndarray:
    return np.empty((n, 0), dtype=object)
