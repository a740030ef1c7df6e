"""Evaluating ONNX nodes on constants at import time (numpy).

The importer folds every node whose inputs are all known when it is reached
(shape arithmetic, position ids, masks built from constants, ...).  Common ops
have a numpy implementation here; any other op with constant inputs is handed
to ``onnx.reference.ReferenceEvaluator`` (slow but complete), so folding never
depends on the list of ops the IR can express.

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
    "fold_with_reference",
    "normalize_axis",
    "numpy_dtype_of_onnx",
    "reshape_target",
    "slice_ranges",
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


for _name, _fn in {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": _int_divide,
    "Pow": lambda a, b: np.power(a, b.astype(a.dtype) if a.dtype.kind == "f" else b),
    "Neg": np.negative, "Abs": np.abs, "Sqrt": np.sqrt, "Reciprocal": np.reciprocal,
    "Exp": np.exp, "Log": np.log, "Floor": np.floor, "Ceil": np.ceil, "Round": np.round,
    "Tanh": np.tanh, "Sin": np.sin, "Cos": np.cos, "Sign": np.sign,
    "Sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)), "Relu": lambda x: np.maximum(x, 0),
    "MatMul": np.matmul,
}.items():
    FOLDERS[_name] = _same_dtype(_fn)


def _erf(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    from transcode_ir.opdefs import erf

    return [erf(x[0]).astype(x[0].dtype)]


FOLDERS["Erf"] = _erf

def _predicate(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Folder:
    def fold(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
        return [np.asarray(fn(x[0], x[1]))]
    return fold


for _name, _fn in {"Equal": np.equal, "Less": np.less, "Greater": np.greater,
                   "LessOrEqual": np.less_equal, "GreaterOrEqual": np.greater_equal,
                   "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor}.items():
    FOLDERS[_name] = _predicate(_fn)

FOLDERS["Not"] = lambda x, attrs, opset: [np.logical_not(x[0])]


def _variadic_folder(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], mean: bool = False) -> Folder:
    def fold(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
        result = x[0]
        for other in x[1:]:
            result = fn(result, other)
        if mean:
            result = result / len(x)
        return [np.asarray(result).astype(x[0].dtype, copy=False)]
    return fold


FOLDERS["Max"] = _variadic_folder(np.maximum)
FOLDERS["Min"] = _variadic_folder(np.minimum)
FOLDERS["Sum"] = _variadic_folder(np.add)
FOLDERS["Mean"] = _variadic_folder(np.add, mean=True)


@_folder("Mod")
def _mod(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    if attrs.get("fmod", 0):
        return [np.fmod(x[0], x[1])]
    return [np.mod(x[0], x[1])]


@_folder("Where")
def _where(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    return [np.where(x[0], x[1], x[2]).astype(x[1].dtype, copy=False)]


@_folder("Clip")
def _clip(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    low = x[1] if len(x) > 1 and x[1] is not None else attrs.get("min")
    high = x[2] if len(x) > 2 and x[2] is not None else attrs.get("max")
    out = x[0]
    if low is not None:
        out = np.maximum(out, low)
    if high is not None:
        out = np.minimum(out, high)
    return [np.asarray(out).astype(x[0].dtype, copy=False)]


@_folder("Identity", "Dropout")
def _identity(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    return [x[0], np.ones(x[0].shape, dtype=bool)]


@_folder("Cast")
def _cast(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    return [x[0].astype(numpy_dtype_of_onnx(attrs["to"]))]


@_folder("CastLike")
def _cast_like(x: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    return [x[0].astype(x[1].dtype)]


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
    return [np.full(tuple(_ints(x[0]) or ()), fill[0], dtype=fill.dtype)]


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
    return [np.ascontiguousarray(data[tuple(index)])]


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
    return [np.ascontiguousarray(np.broadcast_to(x[0], shape))]


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


# --------------------------------------------------------------------------- fallback


def fold_with_reference(node: Any, inputs: list[np.ndarray | None], opset_imports: Sequence[Any]
                        ) -> list[np.ndarray]:
    """Evaluate one node with ``onnx.reference`` (any op the reference knows)."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    feeds: dict[str, np.ndarray] = {}
    graph_inputs = []
    for name, value in zip(node.input, inputs):
        if not name or name in feeds or value is None:
            continue
        feeds[name] = value
        graph_inputs.append(helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(value.dtype), value.shape))
    outputs = [helper.make_empty_tensor_value_info(name) for name in node.output if name]
    graph = helper.make_graph([node], "fold", graph_inputs, outputs)
    model = helper.make_model(graph, opset_imports=list(opset_imports))
    results = ReferenceEvaluator(model).run(None, feeds)
    return [np.asarray(r) for r in results]
