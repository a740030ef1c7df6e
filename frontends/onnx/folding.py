"""Evaluating ONNX nodes on constants at import time (numpy).

The importer folds every node whose inputs are all known when it is reached
(shape arithmetic, position ids, masks built from constants, ...).  Every op
that folds has a numpy implementation here (:data:`FOLDERS`); an op without
one is not folded (the importer lowers it or reports it).

**Broadcast arrays stay broadcast.**  ``ConstantOfShape`` and ``Expand`` give
read-only numpy views with zero strides (``np.broadcast_to``), and the
elementwise folders compute on the *compact* form of their inputs (each
zero-stride axis cut to length 1, :func:`compact`) and broadcast the result
back.  So a mask or id tensor of the input's shape (``ones(batch, seq)``, the
``token_type_ids`` buffer expanded to the batch) costs a few bytes whatever
the batch, and a tensor whose only use is its shape is never materialised.
The importer turns a broadcast array that an IR op reads into its compact form
and a ``tensor.expand``.

The shape helpers (:func:`reshape_target`, :func:`unsqueeze_shape`,
:func:`squeeze_shape`, :func:`split_sizes`, :func:`slice_ranges`, ...) are
shared with the lowering rules so that folding a node and lowering it agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from transcode_ir.errors import UserError

__all__ = [
    "FOLDERS",
    "FoldingError",
    "flatten_shape",
    "ELEMENTWISE",
    "compact",
    "fold_size",
    "cumsum",
    "gather_elements",
    "gather_nd",
    "normalize_axis",
    "numpy_dtype_of_onnx",
    "reshape_target",
    "slice_ranges",
    "wrap_indices",
    "split_sizes",
    "squeeze_shape",
    "unsqueeze_shape",
]


class FoldingError(UserError):
    """A node whose attributes or constant inputs are malformed."""


# --------------------------------------------------------------------------- shape helpers


def normalize_axis(axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < max(rank, 1):
        raise FoldingError(f"{what} {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def reshape_target(shape: Sequence[int], target: Sequence[int], allowzero: bool = False) -> tuple[int, ...]:
    """ONNX Reshape: 0 copies the input dimension (unless ``allowzero``), -1 is inferred."""
    out = [int(d) for d in target]
    for i, d in enumerate(out):
        if d == 0 and not allowzero:
            if i >= len(shape):
                raise FoldingError(f"reshape target {list(target)} copies axis {i}, which the "
                                   f"input {list(shape)} does not have")
            out[i] = int(shape[i])
    if out.count(-1) > 1:
        raise FoldingError(f"reshape target {list(target)} has more than one -1")
    total = math.prod(shape)
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        if known == 0 or total % known:
            raise FoldingError(f"cannot reshape {list(shape)} to {list(target)}")
        out[out.index(-1)] = total // known
    if math.prod(out) != total or any(d < 0 for d in out):
        raise FoldingError(f"cannot reshape {list(shape)} ({total} elements) to {list(target)}")
    return tuple(out)


def unsqueeze_shape(shape: Sequence[int], axes: Sequence[int]) -> tuple[int, ...]:
    rank = len(shape) + len(axes)
    normalized = sorted(normalize_axis(int(a), rank, "unsqueeze axis") for a in axes)
    if len(set(normalized)) != len(normalized):
        raise FoldingError(f"repeated unsqueeze axes {list(axes)}")
    out = list(shape)
    for axis in normalized:
        out.insert(axis, 1)
    return tuple(out)


def squeeze_shape(shape: Sequence[int], axes: Sequence[int] | None) -> tuple[int, ...]:
    if axes is None or len(axes) == 0:
        return tuple(d for d in shape if d != 1)
    normalized = {normalize_axis(int(a), len(shape), "squeeze axis") for a in axes}
    for axis in normalized:
        if shape[axis] != 1:
            raise FoldingError(f"cannot squeeze axis {axis} of size {shape[axis]} in {list(shape)}")
    return tuple(d for i, d in enumerate(shape) if i not in normalized)


def flatten_shape(shape: Sequence[int], axis: int) -> tuple[int, int]:
    rank = len(shape)
    if not -rank <= axis <= rank:
        raise FoldingError(f"flatten axis {axis} is out of range for rank {rank}")
    axis = axis % rank if axis < 0 else axis
    return math.prod(shape[:axis]), math.prod(shape[axis:])


def split_sizes(dim: int, outputs: int, split: Sequence[int] | None) -> list[int]:
    """Sizes of the pieces of ONNX Split (explicit, or equal with a smaller last piece)."""
    if split is not None and len(split) > 0:
        sizes = [int(s) for s in split]
        if sum(sizes) != dim or len(sizes) != outputs:
            raise FoldingError(f"split sizes {sizes} do not cover a dimension of {dim} "
                               f"in {outputs} pieces")
        return sizes
    chunk = -(-dim // outputs)
    sizes = [min(chunk, max(dim - i * chunk, 0)) for i in range(outputs)]
    return sizes


def slice_ranges(shape: Sequence[int], starts: Sequence[int], ends: Sequence[int],
                 axes: Sequence[int] | None, steps: Sequence[int] | None
                 ) -> list[tuple[int, int, int, int]]:
    """Normalised ``(axis, start, end, step)`` of an ONNX Slice, one per sliced
    axis, with Python slice semantics (an end before the first element of a
    backwards slice is written ``-(dim + 1)``)."""
    rank = len(shape)
    axes = list(axes) if axes is not None and len(axes) else list(range(len(starts)))
    steps = list(steps) if steps is not None and len(steps) else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise FoldingError("slice starts, ends, axes and steps differ in length")
    out = []
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = normalize_axis(int(axis), rank, "slice axis")
        step = int(step)
        if step == 0:
            raise FoldingError("slice step must not be zero")
        dim = shape[axis]
        begin, stop, step = slice(int(start), int(end), step).indices(dim)
        if step < 0 and stop < 0:
            stop = -(dim + 1)
        out.append((axis, begin, stop, step))
    return out


def numpy_dtype_of_onnx(elem_type: int) -> np.dtype:
    from onnx import helper

    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        raise FoldingError(f"ONNX element type {elem_type} has no numpy counterpart") from None


def _ints(array: np.ndarray | None) -> list[int] | None:
    if array is None:
        return None
    return [int(v) for v in np.asarray(array).reshape(-1)]


# --------------------------------------------------------------------------- broadcast views


def compact(array: np.ndarray) -> np.ndarray:
    """``array`` with every broadcast (zero-stride) axis cut to length 1: the
    smallest array that ``np.broadcast_to`` turns back into ``array``."""
    array = np.asarray(array)
    if array.ndim == 0 or all(s != 0 for s in array.strides) or array.size == 0:
        return array
    index = tuple(slice(0, 1) if stride == 0 and dim > 1 else slice(None)
                  for stride, dim in zip(array.strides, array.shape))
    return array[index]


def is_broadcast(array: np.ndarray) -> bool:
    """True if ``array`` is a view repeating a smaller array (zero strides)."""
    return array.ndim > 0 and array.size > 1 and any(
        stride == 0 and dim > 1 for stride, dim in zip(array.strides, array.shape))


def broadcast(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """``array`` broadcast to ``shape`` as a read-only view (no copy)."""
    shape = tuple(int(d) for d in shape)
    array = np.asarray(array)
    return array if array.shape == shape else np.broadcast_to(array, shape)


#: Ops whose folders broadcast their inputs elementwise (see :func:`fold_size`).
ELEMENTWISE = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Neg", "Abs", "Sqrt", "Reciprocal", "Exp", "Log", "Floor",
    "Ceil", "Round", "Tanh", "Sin", "Cos", "Sign", "Erf", "Sigmoid", "Relu", "Equal", "Less",
    "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Not", "IsNaN", "IsInf",
    "Max", "Min", "Sum", "Mean", "Mod", "Where", "Clip", "Cast", "CastLike"})


def fold_size(inputs: Sequence[np.ndarray | None]) -> int:
    """Elements an elementwise folder computes for ``inputs`` (broadcast axes
    of its inputs stay broadcast, so this can be far below the result's size)."""
    shapes = [compact(a).shape for a in inputs if a is not None]
    try:
        return math.prod(np.broadcast_shapes(*shapes)) if shapes else 0
    except ValueError:
        return 0


def _elementwise(fn: Callable[..., Any], same_dtype: bool = True) -> "Folder":
    """A folder computing ``fn`` on the compact forms of its inputs and
    broadcasting the result to the full shape (see the module docstring)."""
    def fold(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
        arrays = [np.asarray(v) for v in x if v is not None]
        shape = np.broadcast_shapes(*[a.shape for a in arrays])
        with np.errstate(all="ignore"):
            result = np.asarray(fn(*[compact(a) for a in arrays]))
        if same_dtype:
            result = result.astype(arrays[0].dtype, copy=False)
        return [broadcast(result, shape)]
    return fold


# --------------------------------------------------------------------------- folders

# A folder: (inputs, attributes, opset) -> outputs.  Missing optional inputs are None.
Folder = Callable[[list[Any], dict[str, Any], int], list[np.ndarray]]
FOLDERS: dict[str, Folder] = {}


def _folder(*names: str) -> Callable[[Folder], Folder]:
    def register(fn: Folder) -> Folder:
        for name in names:
            FOLDERS[name] = fn
        return fn
    return register


def _same_dtype(fn: Callable[..., Any]) -> Folder:
    def fold(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
        with np.errstate(all="ignore"):
            return [np.asarray(fn(*x)).astype(x[0].dtype, copy=False)]
    return fold


def _int_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "iu":
        return np.trunc(a / b).astype(a.dtype)
    return np.divide(a, b)


def _erf_numpy(x: np.ndarray) -> np.ndarray:
    from dialects.arith import erf

    return erf(x)


for _name, _fn in {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": _int_divide,
    "Pow": lambda a, b: np.power(a, b.astype(a.dtype) if a.dtype.kind == "f" else b),
    "Neg": np.negative, "Abs": np.abs, "Sqrt": np.sqrt, "Reciprocal": np.reciprocal,
    "Exp": np.exp, "Log": np.log, "Floor": np.floor, "Ceil": np.ceil, "Round": np.round,
    "Tanh": np.tanh, "Sin": np.sin, "Cos": np.cos, "Sign": np.sign, "Erf": _erf_numpy,
    "Sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)), "Relu": lambda x: np.maximum(x, 0),
}.items():
    FOLDERS[_name] = _elementwise(_fn)

FOLDERS["MatMul"] = _same_dtype(np.matmul)

for _name, _fn in {"Equal": np.equal, "Less": np.less, "Greater": np.greater,
                   "LessOrEqual": np.less_equal, "GreaterOrEqual": np.greater_equal,
                   "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor,
                   "Not": np.logical_not, "IsNaN": np.isnan}.items():
    FOLDERS[_name] = _elementwise(_fn, same_dtype=False)


@_folder("IsInf")
def _isinf(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    positive, negative = bool(attrs.get("detect_positive", 1)), bool(attrs.get("detect_negative", 1))
    from dialects.arith import isinf

    return _elementwise(lambda v: isinf(v, positive, negative), same_dtype=False)(x, attrs, opset)


def _variadic_folder(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], mean: bool = False) -> Folder:
    def fold(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
        arrays = [np.asarray(v) for v in x if v is not None]
        shape = np.broadcast_shapes(*[a.shape for a in arrays])
        result = compact(arrays[0])
        for other in arrays[1:]:
            result = fn(result, compact(other))
        if mean:
            result = result / len(arrays)
        return [broadcast(np.asarray(result).astype(arrays[0].dtype, copy=False), shape)]
    return fold


FOLDERS["Max"] = _variadic_folder(np.maximum)
FOLDERS["Min"] = _variadic_folder(np.minimum)
FOLDERS["Sum"] = _variadic_folder(np.add)
FOLDERS["Mean"] = _variadic_folder(np.add, mean=True)


@_folder("Mod")
def _mod(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    return _elementwise(np.fmod if attrs.get("fmod", 0) else np.mod)(x, attrs, opset)


@_folder("Where")
def _where(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    return _elementwise(lambda c, a, b: np.where(c, a, b).astype(a.dtype, copy=False),
                        same_dtype=False)(x, attrs, opset)


@_folder("Clip")
def _clip(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    low = x[1] if len(x) > 1 and x[1] is not None else attrs.get("min")
    high = x[2] if len(x) > 2 and x[2] is not None else attrs.get("max")
    out = compact(x[0])
    if low is not None:
        out = np.maximum(out, low)
    if high is not None:
        out = np.minimum(out, high)
    return [broadcast(np.asarray(out).astype(x[0].dtype, copy=False), x[0].shape)]


@_folder("Identity", "Dropout")
def _identity(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    return [x[0], np.ones(x[0].shape, dtype=bool)]


@_folder("Cast")
def _cast(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    return [broadcast(compact(x[0]).astype(numpy_dtype_of_onnx(attrs["to"])), x[0].shape)]


@_folder("CastLike")
def _cast_like(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    return [broadcast(compact(x[0]).astype(x[1].dtype), x[0].shape)]


@_folder("Shape")
def _shape(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    return [shape_of(x[0].shape, attrs)]


def shape_of(shape: Sequence[int], attrs: dict[str, Any]) -> np.ndarray:
    """ONNX Shape (with the opset-15 ``start``/``end`` attributes)."""
    dims = list(shape)
    start = attrs.get("start", 0)
    end = attrs.get("end", len(dims))
    return np.array(dims[slice(start, end)], dtype=np.int64)


@_folder("Size")
def _size(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    return [np.array(x[0].size, dtype=np.int64)]


@_folder("ConstantOfShape")
def _constant_of_shape(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    value = attrs.get("value")
    fill = np.asarray(value).reshape(-1) if value is not None else np.zeros(1, np.float32)
    return [broadcast(np.array(fill[0], dtype=fill.dtype), tuple(_ints(x[0]) or ()))]


@_folder("Range")
def _range(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    start, limit, delta = (np.asarray(v).reshape(()) for v in x[:3])
    return [np.arange(start, limit, delta).astype(start.dtype)]


@_folder("Gather")
def _gather(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    data, indices = x
    axis = normalize_axis(attrs.get("axis", 0), data.ndim, "gather axis")
    indices = np.where(indices < 0, indices + data.shape[axis], indices)
    return [np.take(data, indices, axis=axis)]


@_folder("Unsqueeze")
def _unsqueeze(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    axes = _ints(x[1]) if len(x) > 1 and x[1] is not None else list(attrs.get("axes", ()))
    return [x[0].reshape(unsqueeze_shape(x[0].shape, axes))]


@_folder("Squeeze")
def _squeeze(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    axes = _ints(x[1]) if len(x) > 1 and x[1] is not None else attrs.get("axes")
    return [x[0].reshape(squeeze_shape(x[0].shape, axes))]


@_folder("Reshape")
def _reshape(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    target = _ints(x[1]) if len(x) > 1 and x[1] is not None else list(attrs.get("shape", ()))
    return [x[0].reshape(reshape_target(x[0].shape, target, bool(attrs.get("allowzero", 0))))]


@_folder("Flatten")
def _flatten(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    return [x[0].reshape(flatten_shape(x[0].shape, attrs.get("axis", 1)))]


@_folder("Transpose")
def _transpose(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    perm = attrs.get("perm")
    if is_broadcast(x[0]):
        return [np.transpose(x[0], perm)]
    return [np.ascontiguousarray(np.transpose(x[0], perm))]


@_folder("Concat")
def _concat(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    parts = [v for v in x if v is not None]
    return [np.concatenate(parts, axis=attrs["axis"])]


@_folder("Slice")
def _slice(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    data = x[0]
    if opset < 10:
        starts, ends = attrs["starts"], attrs["ends"]
        axes, steps = attrs.get("axes"), None
    else:
        starts, ends = _ints(x[1]), _ints(x[2])
        axes = _ints(x[3]) if len(x) > 3 else None
        steps = _ints(x[4]) if len(x) > 4 else None
    index: list[Any] = [slice(None)] * data.ndim
    for axis, start, end, step in slice_ranges(data.shape, starts, ends, axes, steps):
        index[axis] = slice(start, end if end >= 0 or step > 0 else None, step)
    piece = data[tuple(index)]
    return [piece if is_broadcast(data) else np.ascontiguousarray(piece)]


def fold_split(data: np.ndarray, split: Sequence[int] | None, attrs: dict[str, Any],
               outputs: int) -> list[np.ndarray]:
    axis = normalize_axis(attrs.get("axis", 0), data.ndim, "split axis")
    sizes = split_sizes(data.shape[axis], outputs, split if split is not None else attrs.get("split"))
    pieces, start = [], 0
    for size in sizes:
        index: list[Any] = [slice(None)] * data.ndim
        index[axis] = slice(start, start + size)
        pieces.append(np.ascontiguousarray(data[tuple(index)]))
        start += size
    return pieces


@_folder("Expand")
def _expand(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    shape = np.broadcast_shapes(x[0].shape, tuple(_ints(x[1]) or ()))
    return [broadcast(compact(x[0]), shape)]


@_folder("Tile")
def _tile(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    return [np.tile(x[0], _ints(x[1]))]


def reduce_axes(x: list[Any], attrs: dict[str, Any], opset: int, op_type: str) -> list[int] | None:
    """Axes of an ONNX Reduce* node (attribute before opset 13 for ReduceSum and
    before 18 for the others, input after); None means every axis."""
    axes = _ints(x[1]) if len(x) > 1 and x[1] is not None else attrs.get("axes")
    if axes is None or len(axes) == 0:
        return None
    return [int(a) for a in axes]


def _reducer(fn: Callable[..., np.ndarray], op_type: str) -> Folder:
    def fold(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
        axes = reduce_axes(x, attrs, opset, op_type)
        if axes is None and attrs.get("noop_with_empty_axes", 0):
            return [x[0]]
        axis = tuple(axes) if axes is not None else None
        keep = bool(attrs.get("keepdims", 1))
        return [np.asarray(fn(x[0], axis=axis, keepdims=keep)).astype(x[0].dtype, copy=False)]
    return fold


for _name, _fn in {"ReduceSum": np.sum, "ReduceMean": np.mean, "ReduceMax": np.max,
                   "ReduceMin": np.min, "ReduceProd": np.prod}.items():
    FOLDERS[_name] = _reducer(_fn, _name)


# --------------------------------------------------------------------------- indexing, scans, masks


def wrap_indices(indices: np.ndarray, dims: Any, what: str) -> np.ndarray:
    """Negative indices counted from the end; out-of-range ones are an error."""
    indices = np.asarray(indices).astype(np.int64, copy=False)
    dims = np.asarray(dims, dtype=np.int64)
    wrapped = np.where(indices < 0, indices + dims, indices)
    if wrapped.size and (np.any(wrapped < 0) or np.any(wrapped >= dims)):
        raise FoldingError(f"{what} indices out of range for dimension(s) {dims.tolist()}")
    return wrapped


def gather_elements(data: np.ndarray, indices: np.ndarray, axis: int) -> np.ndarray:
    """ONNX GatherElements: ``out[i][j][k] = data[i][indices[i][j][k]][k]`` (axis 1)."""
    if data.ndim != indices.ndim:
        raise FoldingError(f"GatherElements indices of rank {indices.ndim} for data of rank "
                           f"{data.ndim}; they must have the same rank")
    axis = normalize_axis(axis, data.ndim, "GatherElements axis")
    for i, (d, n) in enumerate(zip(data.shape, indices.shape)):
        if i != axis and n > d:
            raise FoldingError(f"GatherElements indices {list(indices.shape)} exceed data "
                               f"{list(data.shape)} on axis {i}")
    index = wrap_indices(indices, data.shape[axis], "GatherElements")
    cut = tuple(slice(None) if i == axis else slice(0, n) for i, n in enumerate(index.shape))
    return np.take_along_axis(data[cut], index, axis=axis)


def gather_nd(data: np.ndarray, indices: np.ndarray, batch_dims: int = 0) -> np.ndarray:
    """ONNX GatherND: the last axis of ``indices`` addresses the leading axes of
    ``data`` after its ``batch_dims`` batch axes."""
    b = int(batch_dims)
    k = indices.shape[-1] if indices.ndim else 0
    if indices.ndim < 1 or b + k > data.ndim or data.shape[:b] != indices.shape[:b]:
        raise FoldingError(f"GatherND indices {list(indices.shape)} (batch_dims={b}) do not "
                           f"fit data {list(data.shape)}")
    index = wrap_indices(indices, data.shape[b:b + k], "GatherND")
    out_shape = indices.shape[:-1] + data.shape[b + k:]
    batch = math.prod(data.shape[:b])
    flat_data = data.reshape((batch,) + data.shape[b:])
    flat_index = index.reshape((batch,) + index.shape[b:])
    pieces = [flat_data[j][tuple(np.moveaxis(flat_index[j], -1, 0))] if k else
              np.broadcast_to(flat_data[j], flat_index.shape[1:-1] + flat_data.shape[1:])
              for j in range(batch)]
    return np.stack(pieces).reshape(out_shape) if pieces else np.zeros(out_shape, data.dtype)


def cumsum(x: np.ndarray, axis: int, exclusive: bool = False, reverse: bool = False) -> np.ndarray:
    """ONNX CumSum (the IR's ``tensor.cumsum`` semantics)."""
    from dialects.tensor import cumsum as running_sum

    return running_sum(x, normalize_axis(int(axis), x.ndim, "CumSum axis"), exclusive, reverse)


def trilu(x: np.ndarray, k: int, upper: bool) -> np.ndarray:
    """ONNX Trilu on the last two axes."""
    if x.ndim < 2:
        raise FoldingError(f"Trilu needs rank >= 2, got {list(x.shape)}")
    return np.triu(x, k) if upper else np.tril(x, k)


@_folder("GatherElements")
def _gather_elements(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    return [gather_elements(x[0], x[1], attrs.get("axis", 0))]


@_folder("GatherND")
def _gather_nd(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    return [gather_nd(x[0], x[1], attrs.get("batch_dims", 0))]


@_folder("CumSum")
def _cumsum(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    return [cumsum(x[0], int(np.asarray(x[1]).reshape(-1)[0]), bool(attrs.get("exclusive", 0)),
                   bool(attrs.get("reverse", 0)))]


@_folder("Trilu")
def _trilu(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    k = int(np.asarray(x[1]).reshape(-1)[0]) if len(x) > 1 and x[1] is not None else 0
    return [trilu(x[0], k, bool(attrs.get("upper", 1)))]


@_folder("NonZero")
def _nonzero(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    data = np.asarray(x[0])
    return [np.array(np.nonzero(data.reshape(1) if data.ndim == 0 else data), dtype=np.int64)]


def _scatter_reduce(reduction: str) -> Callable[[np.ndarray, Any, np.ndarray], None]:
    ufunc = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}.get(reduction)
    if reduction == "none":
        def assign(target: np.ndarray, index: Any, values: np.ndarray) -> None:
            target[index] = values
        return assign
    if ufunc is None:
        raise FoldingError(f"scatter reduction {reduction!r} is not an ONNX value")
    return lambda target, index, values: ufunc.at(target, index, values)


@_folder("ScatterND")
def _scatter_nd(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    data, indices, updates = np.array(x[0]), np.asarray(x[1]), np.asarray(x[2])
    k = indices.shape[-1]
    index = wrap_indices(indices, data.shape[:k], "ScatterND").reshape(-1, k)
    values = updates.reshape((index.shape[0],) + data.shape[k:])
    apply = _scatter_reduce(attrs.get("reduction", "none"))
    for row, value in zip(index, values):
        apply(data, tuple(row), value)
    return [data]


@_folder("ScatterElements", "Scatter")
def _scatter_elements(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    data, indices, updates = np.array(x[0]), np.asarray(x[1]), np.asarray(x[2])
    axis = normalize_axis(attrs.get("axis", 0), data.ndim, "ScatterElements axis")
    index = wrap_indices(indices, data.shape[axis], "ScatterElements")
    grid = list(np.indices(index.shape, sparse=True))
    grid[axis] = index
    _scatter_reduce(attrs.get("reduction", "none"))(data, tuple(grid), updates)
    return [data]


@_folder("OneHot")
def _one_hot(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    indices, depth, values = np.asarray(x[0]), int(np.asarray(x[1]).reshape(-1)[0]), np.asarray(x[2])
    axis = attrs.get("axis", -1)
    index = np.where(indices < 0, indices + depth, indices).astype(np.int64)
    hot = index[..., None] == np.arange(depth)
    out = np.where(hot, values.reshape(-1)[1], values.reshape(-1)[0])
    return [np.moveaxis(out, -1, normalize_axis(axis, out.ndim, "OneHot axis"))]


@_folder("Einsum")
def _einsum(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    arrays = [v for v in x if v is not None]
    return [np.asarray(np.einsum(attrs["equation"].replace(" ", ""), *arrays)).astype(
        arrays[0].dtype, copy=False)]


def _arg_reduce(largest: bool) -> Folder:
    def fold(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
        data = x[0]
        axis = normalize_axis(attrs.get("axis", 0), data.ndim, "axis")
        fn = np.argmax if largest else np.argmin
        if attrs.get("select_last_index", 0):
            flipped = np.flip(data, axis)
            out = data.shape[axis] - 1 - fn(flipped, axis=axis)
        else:
            out = fn(data, axis=axis)
        if attrs.get("keepdims", 1):
            out = np.expand_dims(out, axis)
        return [np.asarray(out, dtype=np.int64)]
    return fold


FOLDERS["ArgMax"] = _arg_reduce(True)
FOLDERS["ArgMin"] = _arg_reduce(False)


def _softmax_folder(log: bool) -> Folder:
    def fold(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
        data = x[0]
        if opset >= 13:
            axes: Any = normalize_axis(attrs.get("axis", -1), data.ndim)
        else:  # before opset 13: over the flattened trailing axes from 'axis'
            axes = tuple(range(normalize_axis(attrs.get("axis", 1), data.ndim), data.ndim))
        shifted = data - np.max(data, axis=axes, keepdims=True)
        log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=axes, keepdims=True))
        return [(log_probs if log else np.exp(log_probs)).astype(data.dtype)]
    return fold


FOLDERS["Softmax"] = _softmax_folder(False)
FOLDERS["LogSoftmax"] = _softmax_folder(True)


@_folder("Pad")
def _pad(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    data = x[0]
    if opset < 11:
        pads, fill, axes = list(attrs.get("pads", [])), attrs.get("value", 0.0), None
    else:
        pads = _ints(x[1]) or []
        fill = np.asarray(x[2]).reshape(-1)[0] if len(x) > 2 and x[2] is not None else 0
        axes = _ints(x[3]) if len(x) > 3 and x[3] is not None else None
    axes = [normalize_axis(a, data.ndim, "pad axis") for a in (axes or range(data.ndim))]
    widths = [[0, 0] for _ in range(data.ndim)]
    for i, axis in enumerate(axes):
        widths[axis] = [pads[i], pads[i + len(axes)]]
    cut = tuple(slice(max(-b, 0), data.shape[a] - max(-e, 0)) for a, (b, e) in enumerate(widths))
    data = data[cut]
    widths = [(max(b, 0), max(e, 0)) for b, e in widths]
    mode = attrs.get("mode", "constant")
    if mode == "constant":
        return [np.pad(data, widths, constant_values=fill)]
    if mode in ("reflect", "edge", "wrap"):
        return [np.pad(data, widths, mode=mode)]
    raise FoldingError(f"Pad mode {mode!r} is not an ONNX value")
