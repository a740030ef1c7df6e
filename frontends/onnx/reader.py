"""Reading ``.onnx`` files without copying their weights.

``onnx.load`` parses the whole protobuf, copying every weight into protobuf
memory, and ``numpy_helper.to_array`` copies it again; the checker serialises
the model once more.  For BERT-Base (440 MB) that is three passes over fresh
memory, which dominate the import time.  This reader instead:

1. maps the file into memory (``mmap``, read-only);
2. walks the protobuf wire format of ``ModelProto → graph → initializer``
   (a few thousand field headers, no weight bytes touched) and notes where
   each large initializer's ``raw_data`` lies in the file;
3. builds a *skeleton* model: the same bytes with those ``raw_data`` fields
   replaced by external-data references to the same file (location, offset,
   length), so ``onnx`` parses and checks a model of a few hundred kilobytes;
4. returns the weights as read-only numpy arrays that view the mapped file.

Initializers that already use ONNX external data (the dynamo exporter writes
them to ``model.onnx.data``) are mapped the same way from their files.

The arrays stay valid while anything references them (the mapping is closed
when the last array goes); do not overwrite the ``.onnx`` file in place while
a module imported from it is alive, or pass ``copy_weights=True``.  Anything
the walk does not understand makes the caller fall back to ``onnx.load``.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import onnx

__all__ = ["ExternalDataError", "MappedModel", "WireFormatError", "read_onnx_file"]

# Initializers whose raw data is at least this many bytes are mapped, not parsed.
MAP_THRESHOLD_BYTES = 1024

# ONNX TensorProto.DataType -> little-endian numpy dtype, for types numpy reads directly.
_RAW_DTYPES = {1: "<f4", 2: "u1", 3: "i1", 4: "<u2", 5: "<i2", 6: "<i4", 7: "<i8", 9: "?",
               10: "<f2", 11: "<f8", 12: "<u4", 13: "<u8"}

# Field numbers (onnx.proto3).
_MODEL_GRAPH = 7
_GRAPH_INITIALIZER = 5
_TENSOR_DIMS, _TENSOR_DATA_TYPE, _TENSOR_NAME = 1, 2, 8
_TENSOR_RAW_DATA, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 9, 13, 14
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


class WireFormatError(ValueError):
    """The bytes are not a protobuf message of the expected shape."""


class ExternalDataError(OSError):
    """A tensor's external data file is missing or unreadable."""


@dataclass
class MappedModel:
    """A skeleton model and its weights as arrays viewing the file."""

    model: onnx.ModelProto
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    #: The skeleton as bytes for ``onnx.checker``, each mapped initializer
    #: replaced by a placeholder scalar: the checker resolves external
    #: references against the working directory, not the model's.
    checker_bytes: bytes = b""


def _read_varint(buffer: mmap.mmap | bytes, position: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if position >= end:
            raise WireFormatError("varint runs past the end of its message")
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise WireFormatError("varint longer than 10 bytes")


def _fields(buffer: mmap.mmap | bytes, start: int, end: int):
    """Yield ``(field number, wire type, field start, value start, value end)``."""
    position = start
    while position < end:
        field_start = position
        tag, position = _read_varint(buffer, position, end)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise WireFormatError("field number 0")
        if wire_type == _VARINT:
            _, value_end = _read_varint(buffer, position, end)
            value_start = position
        elif wire_type == _FIXED64:
            value_start, value_end = position, position + 8
        elif wire_type == _LENGTH_DELIMITED:
            length, value_start = _read_varint(buffer, position, end)
            value_end = value_start + length
        elif wire_type == _FIXED32:
            value_start, value_end = position, position + 4
        else:
            raise WireFormatError(f"unsupported wire type {wire_type}")
        if value_end > end:
            raise WireFormatError("field runs past the end of its message (truncated file?)")
        yield number, wire_type, field_start, value_start, value_end
        position = value_end


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_field(number: int, payload: bytes) -> bytes:
    return _varint_bytes(number << 3 | _LENGTH_DELIMITED) + _varint_bytes(len(payload)) + payload


def _string_entry(key: str, value: str) -> bytes:
    return _length_field(1, key.encode()) + _length_field(2, value.encode())


@dataclass
class _TensorInfo:
    name: str = ""
    dims: list[int] = field(default_factory=list)
    data_type: int = 0
    raw: tuple[int, int] | None = None          # (start, end) of raw_data in the file
    external: dict[str, str] = field(default_factory=dict)
    data_location: int = 0
    # (field number, field start, value end) of every field, in order
    spans: list[tuple[int, int, int]] = field(default_factory=list)


def _scan_tensor(buffer: mmap.mmap, start: int, end: int) -> _TensorInfo:
    info = _TensorInfo()
    for number, wire_type, field_start, value_start, value_end in _fields(buffer, start, end):
        info.spans.append((number, field_start, value_end))
        if number == _TENSOR_NAME and wire_type == _LENGTH_DELIMITED:
            info.name = bytes(buffer[value_start:value_end]).decode("utf-8")
        elif number == _TENSOR_DATA_TYPE and wire_type == _VARINT:
            info.data_type = _read_varint(buffer, value_start, value_end)[0]
        elif number == _TENSOR_DIMS:
            if wire_type == _VARINT:
                info.dims.append(_read_varint(buffer, value_start, value_end)[0])
            else:
                position = value_start
                while position < value_end:
                    dim, position = _read_varint(buffer, position, value_end)
                    info.dims.append(dim)
        elif number == _TENSOR_RAW_DATA and wire_type == _LENGTH_DELIMITED:
            info.raw = (value_start, value_end)
        elif number == _TENSOR_DATA_LOCATION and wire_type == _VARINT:
            info.data_location = _read_varint(buffer, value_start, value_end)[0]
        elif number == _TENSOR_EXTERNAL_DATA and wire_type == _LENGTH_DELIMITED:
            key = value = ""
            for inner, inner_type, _, s, e in _fields(buffer, value_start, value_end):
                if inner_type == _LENGTH_DELIMITED and inner in (1, 2):
                    text = bytes(buffer[s:e]).decode("utf-8")
                    key, value = (text, value) if inner == 1 else (key, text)
            info.external[key] = value
    return info


def _array_view(buffer: mmap.mmap, dtype_code: str, dims: list[int], start: int, length: int
                ) -> np.ndarray | None:
    dtype = np.dtype(dtype_code)
    count = 1
    for dim in dims:
        count *= dim
    if count * dtype.itemsize != length:
        return None
    array = np.frombuffer(buffer, dtype=dtype, count=count, offset=start).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=False)


def _map_file(path: Path) -> mmap.mmap:
    with open(path, "rb") as handle:
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)


def read_onnx_file(path: str | os.PathLike[str], copy_weights: bool = False) -> MappedModel:
    """Read ``path`` as described in the module docstring.

    Raises :class:`WireFormatError` when the file is not a protobuf of the
    expected shape (the caller then tries ``onnx.load`` for a precise error).
    """
    import onnx

    path = Path(path)
    buffer = _map_file(path)
    size = len(buffer)
    top_parts: list[bytes] = []
    graph_ranges: list[tuple[int, int]] = []
    for number, wire_type, field_start, value_start, value_end in _fields(buffer, 0, size):
        if number == _MODEL_GRAPH and wire_type == _LENGTH_DELIMITED:
            graph_ranges.append((value_start, value_end))
        else:
            top_parts.append(bytes(buffer[field_start:value_end]))
    if not graph_ranges:
        raise WireFormatError("no graph")

    arrays: dict[str, np.ndarray] = {}
    external_maps: dict[Path, mmap.mmap] = {}
    graph_parts: list[bytes] = []
    checker_parts: dict[int, bytes] = {}   # index in graph_parts -> placeholder version
    for graph_start, graph_end in graph_ranges:
        for number, wire_type, field_start, value_start, value_end in _fields(
                buffer, graph_start, graph_end):
            if number != _GRAPH_INITIALIZER or wire_type != _LENGTH_DELIMITED:
                graph_parts.append(bytes(buffer[field_start:value_end]))
                continue
            info = _scan_tensor(buffer, value_start, value_end)
            dtype_code = _RAW_DTYPES.get(info.data_type)
            array = None
            if dtype_code is not None and info.raw is not None and info.data_location == 0 \
                    and info.raw[1] - info.raw[0] >= MAP_THRESHOLD_BYTES:
                array = _array_view(buffer, dtype_code, info.dims, info.raw[0],
                                    info.raw[1] - info.raw[0])
                if array is not None:
                    stripped, placeholder = _strip_raw_data(buffer, info, path.name,
                                                            array.dtype.itemsize)
                    checker_parts[len(graph_parts)] = _length_field(_GRAPH_INITIALIZER, placeholder)
                    graph_parts.append(_length_field(_GRAPH_INITIALIZER, stripped))
            elif dtype_code is not None and info.data_location == 1 and "location" in info.external:
                array = _external_view(path, info, dtype_code, external_maps)
                if array is not None:
                    _, placeholder = _strip_raw_data(buffer, info, "", array.dtype.itemsize)
                    checker_parts[len(graph_parts)] = _length_field(_GRAPH_INITIALIZER, placeholder)
                    graph_parts.append(bytes(buffer[field_start:value_end]))
            if array is None:
                graph_parts.append(bytes(buffer[field_start:value_end]))
                continue
            arrays[info.name] = np.array(array) if copy_weights else array

    top = b"".join(top_parts)
    skeleton = top + _length_field(_MODEL_GRAPH, b"".join(graph_parts))
    checker_bytes = top + _length_field(_MODEL_GRAPH, b"".join(
        checker_parts.get(index, part) for index, part in enumerate(graph_parts)))
    model = onnx.ModelProto()
    try:
        model.ParseFromString(skeleton)
    except Exception as err:  # noqa: BLE001 - google.protobuf.message.DecodeError
        raise WireFormatError(str(err)) from None
    # Mapped initializers keep their external references in the skeleton; any
    # other tensor stored outside the file is loaded by onnx, as onnx.load would.
    _load_unmapped_external_data(model, arrays, path.parent)
    if any(t.data_location == 1 and t.name not in arrays for t in model.graph.initializer):
        checker_bytes = b""  # pragma: no cover - every external tensor is loaded above
    return MappedModel(model, arrays, checker_bytes if arrays else b"")


def _strip_raw_data(buffer: mmap.mmap, info: _TensorInfo, location: str,
                    itemsize: int) -> tuple[bytes, bytes]:
    """The tensor without its raw data: with an external reference to where
    the data lies in ``location``, and as a placeholder scalar."""
    parts, scalar_parts = [], []
    for number, field_start, value_end in info.spans:
        if number in (_TENSOR_RAW_DATA, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION):
            continue
        parts.append(bytes(buffer[field_start:value_end]))
        if number != _TENSOR_DIMS:
            scalar_parts.append(parts[-1])
    common = b"".join(parts)
    external = [common]
    raw = info.raw or (0, 0)
    for key, value in (("location", location), ("offset", str(raw[0])),
                       ("length", str(raw[1] - raw[0]))):
        external.append(_length_field(_TENSOR_EXTERNAL_DATA, _string_entry(key, value)))
    external.append(_varint_bytes(_TENSOR_DATA_LOCATION << 3 | _VARINT) + _varint_bytes(1))
    # The checker wants raw data of the declared size: declare a scalar.
    placeholder = b"".join(scalar_parts) + _length_field(_TENSOR_RAW_DATA, b"\0" * itemsize)
    return b"".join(external), placeholder


def _external_view(model_path: Path, info: _TensorInfo, dtype_code: str,
                   maps: dict[Path, mmap.mmap]) -> np.ndarray | None:
    location = info.external["location"]
    target = (model_path.parent / location)
    if Path(location).is_absolute() or ".." in Path(location).parts or not target.is_file():
        return None  # let onnx report it
    if target not in maps:
        maps[target] = _map_file(target)
    buffer = maps[target]
    offset = int(info.external.get("offset", "0") or 0)
    length = info.external.get("length")
    length_value = int(length) if length else len(buffer) - offset
    if offset + length_value > len(buffer):
        return None
    return _array_view(buffer, dtype_code, info.dims, offset, length_value)


def _load_unmapped_external_data(model: onnx.ModelProto, arrays: dict[str, np.ndarray],
                                 base_dir: Path) -> None:
    from onnx import TensorProto
    from onnx.external_data_helper import load_external_data_for_tensor

    tensors = [t for t in model.graph.initializer if t.name not in arrays]
    for node in model.graph.node:
        tensors.extend(attr.t for attr in node.attribute if attr.HasField("t"))
    for tensor in tensors:
        if tensor.data_location == TensorProto.EXTERNAL:
            try:
                load_external_data_for_tensor(tensor, str(base_dir))
            except Exception as err:  # noqa: BLE001 - onnx raises ValidationError for it
                raise ExternalDataError(f"tensor {tensor.name!r}: {err}") from None
            tensor.data_location = TensorProto.DEFAULT
            del tensor.external_data[:]
