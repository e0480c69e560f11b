"""Open Inference Protocol v2 tensors, in JSON and in Triton's binary tensor extension.

A request body is a JSON header, optionally followed by raw tensors whose sizes the header gives
(``parameters.binary_data_size``) when ``Inference-Header-Content-Length`` says where the JSON
ends. Tensors become numpy arrays directly: no per-element Python work for numbers.
"""

from __future__ import annotations

import functools
import math
import struct
from dataclasses import dataclass, field
from typing import Any, Union

import msgspec
import numpy as np
import orjson

from ..errors import InvalidInput
from ..runtime.predictor import best_classes
from .dataplane import parse_json

DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
DATATYPES = {dtype: name for name, dtype in DTYPES.items()}
HEADER_LENGTH = "inference-header-content-length"
Blocks = list[tuple[tuple[str, ...], np.ndarray]]


@dataclass
class InferRequest:
    """A decoded inference request."""

    id: str | None
    decoded: dict[str, np.ndarray] | None
    """The inputs, decoded one by one (None when they came as ``blocks``)."""
    outputs: list[str] | None
    binary_outputs: dict[str, bool] = field(default_factory=dict)
    binary_default: bool = False
    classification: dict[str, int] = field(default_factory=dict)
    """Outputs asked for as Triton's classification extension: name -> top k."""
    binary: bool = False
    """Whether tensors came in binary (BYTES elements are then ``bytes``, not text)."""
    blocks: Blocks | None = None
    """The inputs of each datatype as one [inputs, n] array with their names, when the request
    took the JSON fast path."""

    @functools.cached_property
    def inputs(self) -> dict[str, np.ndarray]:
        """Every input by name (for the fast path, views of the rows of ``blocks``)."""
        if self.decoded is not None:
            return self.decoded
        assert self.blocks is not None
        return {n: row for names, block in self.blocks for n, row in zip(names, block, strict=True)}

    def has_input(self, name: str) -> bool:
        """Whether an input is called ``name`` (without making :attr:`inputs`)."""
        if self.blocks is not None:
            return any(name in names for names, _ in self.blocks)
        return name in self.inputs


def _column_type(datatype: str, element: type) -> type:
    """The msgspec struct of an input of the common form with ``datatype``: flat data of
    ``element`` values, no parameters (anything else fails to decode)."""
    return msgspec.defstruct(
        f"_{datatype}Column",
        [("name", str), ("shape", tuple[int, ...]), ("data", list[element])],  # type: ignore[valid-type]
        tag_field="datatype",
        tag=datatype,
        forbid_unknown_fields=True,
    )


_ELEMENTS = {"BOOL": bool, "BYTES": str, "FP16": float, "FP32": float, "FP64": float}
_COLUMN_DTYPES = {
    _column_type(datatype, _ELEMENTS.get(datatype, int)): DTYPES.get(datatype, np.dtype(object))
    for datatype in ("BYTES", *DTYPES)
}
"""Each datatype's input struct, and the numpy dtype of its values: msgspec checks every value's
type while it decodes, so no Python pass over the values is left to do."""


class _ColumnsRequest(msgspec.Struct):
    inputs: list[Union[tuple(_COLUMN_DTYPES)]]  # type: ignore[valid-type]  # noqa: UP007
    id: str | None = None
    outputs: list[dict[str, Any]] | None = None
    parameters: dict[str, Any] | None = None


_COLUMNS = msgspec.json.Decoder(_ColumnsRequest)


def decode_request(body: bytes, header_length: str | None) -> InferRequest:
    """Parse a JSON or JSON+binary inference request; every problem is an InvalidInput (400)."""
    if header_length is None:
        fast = _decode_columns(body)
        if fast is not None:
            return fast
    json_part, binary = body, b""
    if header_length is not None:
        if not (header_length.isascii() and header_length.isdigit()) or int(header_length) > len(
            body
        ):
            raise InvalidInput(
                f"Inference-Header-Content-Length is {header_length!r}, but the body has "
                f"{len(body)} bytes. It must give the length of the JSON part."
            )
        json_part, binary = body[: int(header_length)], body[int(header_length) :]
    request = parse_json(json_part)
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise InvalidInput(
            'An inference request is a JSON object with an "inputs" list: '
            '{"inputs": [{"name": ..., "shape": [...], "datatype": ..., "data": [...]}]}.'
        )
    inputs, offset = {}, 0
    for item in request["inputs"]:
        name, array, used = _decode_input(item, binary, offset)
        if name in inputs:
            raise InvalidInput(f"Input '{name}' appears twice in the request.")
        inputs[name] = array
        offset += used
    if offset != len(binary):
        raise InvalidInput(
            f"The body has {len(binary)} bytes of binary tensor data, but the inputs' "
            f"binary_data_size add up to {offset}."
        )
    request_id = request.get("id")
    return _request(
        None if request_id is None else str(request_id),
        request.get("outputs"),
        _params(request),
        InferRequest(None, inputs, None, binary=bool(binary)),
    )


def _decode_columns(body: bytes) -> InferRequest | None:
    """The common JSON request, decoded and type-checked by msgspec in one pass, its inputs
    gathered into one array per datatype (:func:`_blocks`). None for anything else (binary
    data, input parameters, NaN tokens, a wrong type anywhere), which the one-by-one decoder
    reads and, if it is wrong, explains."""
    try:
        request = _COLUMNS.decode(body)
    except msgspec.MsgspecError:
        return None
    blocks = _blocks(request.inputs)
    if blocks is None:
        return None
    found = InferRequest(None, None, None, blocks=blocks)
    return _request(request.id, request.outputs, request.parameters or {}, found)


def _request(
    request_id: str | None, outputs: Any, parameters: dict[str, Any], found: InferRequest
) -> InferRequest:
    """``found`` (its inputs decoded) completed with the request's id and requested outputs."""
    found.id = request_id
    found.binary_default = bool(parameters.get("binary_data_output", False))
    if isinstance(outputs, list):
        found.outputs = []
        for item in outputs:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise InvalidInput('Each requested output is an object with a "name".')
            found.outputs.append(item["name"])
            flag = _params(item).get("binary_data")
            if flag is not None:
                found.binary_outputs[item["name"]] = bool(flag)
            k = _params(item).get("classification")
            if k is not None:
                if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                    raise InvalidInput(
                        f"Output '{item['name']}' asks for classification {k!r}; it must be a "
                        "positive integer: how many of the best classes to return per row."
                    )
                found.classification[item["name"]] = k
    return found


def _blocks(inputs: list[Any]) -> Blocks | None:
    """The inputs as one [inputs, n] array per datatype when they are columns of one length n,
    shape [n] or [n, 1] (read as [n]), with distinct names; None for anything else."""
    if not inputs:
        return None
    n = len(inputs[0].data)
    shapes = ((n,), (n, 1))
    groups: dict[type, list[Any]] = {}
    for column in inputs:
        if len(column.data) != n or column.shape not in shapes:
            return None
        groups.setdefault(type(column), []).append(column)
    names = [column.name for column in inputs]
    if not n or len(set(names)) != len(names):
        return None
    blocks = []
    for kind, columns in groups.items():
        try:
            block = np.array([column.data for column in columns], dtype=_COLUMN_DTYPES[kind])
        except OverflowError:  # an integer out of the datatype's range: the careful path says so
            return None
        blocks.append((tuple(column.name for column in columns), block))
    return blocks


def _decode_input(item: Any, binary: bytes, offset: int) -> tuple[str, np.ndarray, int]:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise InvalidInput('Each input is an object with "name", "shape", "datatype" and "data".')
    name = item["name"]
    shape, datatype = item.get("shape"), item.get("datatype")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InvalidInput(f"Input '{name}' needs a shape: a list of non-negative integers.")
    if not isinstance(datatype, str) or (datatype != "BYTES" and datatype not in DTYPES):
        raise InvalidInput(
            f"Input '{name}' has datatype {datatype!r}; use one of BYTES, {', '.join(DTYPES)}."
        )
    count = math.prod(shape)
    size = _params(item).get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise InvalidInput(
                f"Input '{name}' has binary_data_size {size!r}, beyond the {len(binary)} bytes "
                "of binary data in the body."
            )
        raw = binary[offset : offset + size]
        array = (
            _bytes_elements(name, raw)
            if datatype == "BYTES"
            else _raw_numbers(name, raw, DTYPES[datatype])
        )
        used = size
    else:
        if "data" not in item:
            raise InvalidInput(f"Input '{name}' has neither data nor binary_data_size.")
        array = _json_data(name, item["data"], datatype)
        used = 0
    if array.size != count:
        raise InvalidInput(
            f"Input '{name}' has shape {shape} ({count} values) but carries {array.size} values."
        )
    return name, array.reshape(shape), used


def _params(item: dict[str, Any]) -> dict[str, Any]:
    parameters = item.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInput('"parameters" must be a JSON object of names to values.')
    return parameters


def _raw_numbers(name: str, raw: bytes, dtype: np.dtype[Any]) -> np.ndarray:
    if len(raw) % dtype.itemsize:
        raise InvalidInput(
            f"Input '{name}' has {len(raw)} bytes, not a whole number of {dtype.itemsize}-byte values."
        )
    return np.frombuffer(raw, dtype=dtype)


def _bytes_elements(name: str, raw: bytes) -> np.ndarray:
    """The elements of a binary BYTES tensor as ``bytes`` (an image input keeps the file as it
    was sent; :func:`texts` decodes the elements of text inputs)."""
    items, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidInput(f"Input '{name}' ends inside a BYTES length prefix.")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise InvalidInput(f"Input '{name}' has a BYTES element longer than the data left.")
        items.append(raw[offset : offset + length])
        offset += length
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def texts(inputs: dict[str, np.ndarray], binary: bool = True) -> dict[str, np.ndarray]:
    """The inputs with the ``bytes`` elements of binary BYTES tensors decoded as UTF-8 text
    (``binary``: whether the request had binary tensors at all; without, nothing to decode)."""
    if not binary:
        return inputs
    decoded = {}
    for name, array in inputs.items():
        if array.dtype == object and array.size and isinstance(array.flat[0], bytes):
            text = np.empty(array.shape, dtype=object)
            text.flat[:] = [_utf8(name, i, v) for i, v in enumerate(array.flat)]
            array = text
        decoded[name] = array
    return decoded


def _utf8(name: str, index: int, value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"Element {index} of input '{name}' is not UTF-8 text (byte {exc.start} is "
            f"{value[exc.start : exc.start + 1]!r}). Send text as UTF-8."
        ) from None


def classification(scores: np.ndarray, k: int, labels: list[Any] | None, name: str) -> np.ndarray:
    """Triton's classification extension: the ``k`` best classes of each row of ``scores``
    ([n, classes]) as BYTES ``"score:index:label"`` (``"score:index"`` without labels), best first."""
    if scores.ndim != 2 or scores.dtype.kind != "f":
        raise InvalidInput(
            f"Output '{name}' cannot be returned as a classification: it is not one score per "
            "class (ask for it on 'probabilities')."
        )
    best = best_classes(scores, k)
    return np.array(
        [
            [
                f"{float(row[j])}:{j}" + (f":{labels[j]}" if labels is not None else "")
                for j in order
            ]
            for row, order in zip(scores, best, strict=True)
        ],
        dtype=object,
    ).reshape(best.shape)


def _json_data(name: str, data: Any, datatype: str) -> np.ndarray:
    if not isinstance(data, list):
        raise InvalidInput(f"Input '{name}' needs its data as a JSON list.")
    if datatype == "BYTES":
        flat = data if data and isinstance(data[0], str) else np.array(data, dtype=object).ravel()
        if not all(isinstance(v, str) for v in flat):
            raise InvalidInput(f"Input '{name}' is BYTES: every value must be a string.")
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return array
    try:
        return np.asarray(data, dtype=DTYPES[datatype]).reshape(-1)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"Input '{name}' is {datatype}, but its data holds values that are not numbers."
        ) from None
    except OverflowError:
        raise InvalidInput(
            f"Input '{name}' is {datatype}, but its data holds a number out of that type's range."
        ) from None


def datatype_of(array: np.ndarray) -> str:
    if array.dtype.kind in "OUS":
        return "BYTES"
    name = DATATYPES.get(array.dtype.newbyteorder("<"))
    if name is None:
        raise InvalidInput(f"Cannot send a tensor of dtype {array.dtype}.")
    return name


def encode_response(
    header: dict[str, Any], outputs: dict[str, np.ndarray], request: InferRequest
) -> tuple[bytes, int | None]:
    """The response body, and the JSON length when binary tensors follow it."""
    items, blobs = [], []
    for name, array in outputs.items():
        datatype = datatype_of(array)
        item: dict[str, Any] = {"name": name, "shape": list(array.shape), "datatype": datatype}
        if request.binary_outputs.get(name, request.binary_default):
            blob = (
                _bytes_blob(array)
                if datatype == "BYTES"
                else np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            )
            item["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            item["data"] = (
                [str(v) for v in array.reshape(-1)]
                if datatype == "BYTES"
                else (array.reshape(-1).tolist())
            )
        items.append(item)
    header["outputs"] = items
    json_part = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return json_part, None
    return json_part + b"".join(blobs), len(json_part)


def _bytes_blob(array: np.ndarray) -> bytes:
    parts = []
    for value in array.reshape(-1):
        data = value if isinstance(value, bytes) else str(value).encode()
        parts.append(struct.pack("<I", len(data)))
        parts.append(data)
    return b"".join(parts)
