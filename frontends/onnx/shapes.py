"""Binding the symbolic dimensions of an ONNX model's inputs to sizes.

The IR has static shapes only, so every symbolic dimension (``batch``,
``sequence``, dynamo's ``s43``) gets a size before anything is built:

1. ``input_shapes`` (``{"input_ids": (4, 128)}``) gives whole input shapes.
   Each symbolic dimension named there is bound by name, so inputs that share
   the name (``attention_mask`` shares ``batch`` and ``sequence`` with
   ``input_ids``) get the same size.
2. A symbolic dimension still unbound gets a default, also shared by name:

   * a name containing ``batch`` → :data:`DEFAULT_BATCH` (1);
   * a name that says sequence (``seq``, ``sequence``, ``len``, ``length``,
     ``token``, ``position``, ``time``) → :data:`DEFAULT_SEQUENCE` (128);
   * any other name, or no name (dynamo's ``s43``, a ``?``): axis 0 of an input
     of rank ≥ 2 is taken as the batch (1), every other axis as a sequence (128).

Mistakes are :class:`~transcode_ir.errors.UserError` s that name the input: an
unknown input name, a wrong rank, a size that contradicts a fixed dimension of
the model, a non-positive size, or two inputs binding one symbol differently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from transcode_ir.defaults import SEQUENCE_LENGTH
from transcode_ir.errors import UserError

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_SEQUENCE",
    "InputSignature",
    "ShapeBindingError",
    "onnx_dims",
    "bind_input_shapes",
    "default_size",
]

DEFAULT_BATCH = 1
DEFAULT_SEQUENCE = SEQUENCE_LENGTH       # transcode_ir/defaults.py

_SEQUENCE_WORDS = ("seq", "len", "token", "position", "time")


class ShapeBindingError(UserError):
    """An ``input_shapes`` binding that does not fit the model."""


@dataclass(frozen=True)
class InputSignature:
    """An ONNX graph input: its name and dims (an int, a symbol name, or None)."""

    name: str
    dims: tuple[int | str | None, ...]

    def describe(self) -> str:
        shown = [str(d) if d is not None else "?" for d in self.dims]
        return "[" + ", ".join(shown) + "]"


def onnx_dims(shape) -> tuple[int | str | None, ...]:  # noqa: ANN001 - onnx.TensorShapeProto
    """The dims of an ONNX tensor shape: an int, a symbol name, or None (unknown)."""
    dims: list[int | str | None] = []
    for dim in shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return tuple(dims)


def default_size(symbol: str | None, axis: int, rank: int) -> int:
    """The size given to an unbound symbolic dimension (see the module docstring)."""
    name = (symbol or "").lower()
    if "batch" in name:
        return DEFAULT_BATCH
    if any(word in name for word in _SEQUENCE_WORDS):
        return DEFAULT_SEQUENCE
    if axis == 0 and rank >= 2:
        return DEFAULT_BATCH
    return DEFAULT_SEQUENCE


def bind_input_shapes(
    inputs: Sequence[InputSignature],
    input_shapes: Mapping[str, Sequence[int]] | None,
) -> tuple[dict[str, tuple[int, ...]], dict[str, int]]:
    """Static shapes for every input, and the size given to each symbol.

    Returns ``(shapes by input name, sizes by symbol name)``.
    """
    requested = dict(input_shapes or {})
    by_name = {sig.name: sig for sig in inputs}
    accepted = ", ".join(f"{sig.name} {sig.describe()}" for sig in inputs) or "none"
    for name in requested:
        if name not in by_name:
            raise ShapeBindingError(
                f"input shape given for {name!r}, which is not an input of the model; "
                f"its inputs are {accepted}")

    symbols: dict[str, int] = {}
    symbol_origin: dict[str, str] = {}
    shapes: dict[str, tuple[int, ...]] = {}

    for name, shape in requested.items():
        sig = by_name[name]
        sizes = _check_sizes(name, shape)
        if len(sizes) != len(sig.dims):
            raise ShapeBindingError(
                f"input shape {_format(sizes)} for {name!r} has rank {len(sizes)}, but the "
                f"model's input {name!r} has rank {len(sig.dims)} (dims {sig.describe()})")
        for axis, (dim, size) in enumerate(zip(sig.dims, sizes)):
            if isinstance(dim, int):
                if dim != size:
                    raise ShapeBindingError(
                        f"input shape {_format(sizes)} for {name!r} sets axis {axis} to {size}, "
                        f"but the model fixes it at {dim} (dims {sig.describe()})")
            elif isinstance(dim, str):
                if dim in symbols and symbols[dim] != size:
                    raise ShapeBindingError(
                        f"input shape {_format(sizes)} for {name!r} sets dimension {dim!r} to "
                        f"{size}, but the shape given for {symbol_origin[dim]!r} sets it to "
                        f"{symbols[dim]}; inputs that share a dimension name must agree")
                symbols[dim] = size
                symbol_origin[dim] = name
        shapes[name] = sizes

    for sig in inputs:
        if sig.name in shapes:
            continue
        sizes_list = []
        for axis, dim in enumerate(sig.dims):
            if isinstance(dim, int):
                sizes_list.append(dim)
            elif isinstance(dim, str):
                if dim not in symbols:
                    symbols[dim] = default_size(dim, axis, len(sig.dims))
                sizes_list.append(symbols[dim])
            else:
                sizes_list.append(default_size(None, axis, len(sig.dims)))
        shapes[sig.name] = tuple(sizes_list)
    return shapes, symbols


def _check_sizes(name: str, shape: Sequence[int]) -> tuple[int, ...]:
    try:
        sizes = tuple(shape)
    except TypeError:
        raise ShapeBindingError(
            f"input shape for {name!r} must be a sequence of positive integers such as "
            f"(4, 128), got {shape!r}") from None
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            if hasattr(size, "__index__") and not isinstance(size, bool) and int(size) > 0:
                continue
            raise ShapeBindingError(
                f"input shape for {name!r} must be a sequence of positive integers such as "
                f"(4, 128), got {shape!r}")
    return tuple(int(size) for size in sizes)


def _format(sizes: Sequence[int]) -> str:
    return "x".join(str(s) for s in sizes) if sizes else "a scalar"
