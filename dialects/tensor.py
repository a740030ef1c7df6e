"""The ``tensor`` dialect: matrix products, data movement (reshape, transpose,
gather, concat, slice, expand), running sums and reductions, constants,
parameter reads and writes, and ``func.return`` (the last op of every
function).  Kernel others use: :func:`cumsum`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from transcode_ir.core import Attributes, Op
from transcode_ir.opdefs import (
    MATMUL_CONTRACTION,
    Attr,
    DensityPreserving,
    GradFn,
    OpCost,
    OpDef,
    Operand,
    ShapeError,
    ZeroPreserving,
    _bytes,
    _needs,
    _norm_axis,
    _out_dtype,
    _scalar_like,
    _zero_grad,
    define,
    grad_matmul,
    matmul_dims,
    reduce_to_shape,
)
from transcode_ir.types import TensorType

__all__ = ["cumsum", "matmul_infer"]

# --------------------------------------------------------------------------- tensor: matmul



def matmul_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    a, b = types
    if a.dtype != b.dtype:
        raise ShapeError(f"operand element types differ: {a.dtype} and {b.dtype}")
    if a.rank < 1 or b.rank < 1:
        raise ShapeError("matmul operands must have rank >= 1")
    a_shape = (1,) + a.shape if a.rank == 1 else a.shape
    b_shape = b.shape + (1,) if b.rank == 1 else b.shape
    if a_shape[-1] != b_shape[-2]:
        raise ShapeError(f"contracting dimensions differ: {list(a.shape)} @ {list(b.shape)}")
    try:
        batch = np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    except ValueError:
        raise ShapeError(f"batch dimensions do not broadcast: {list(a.shape)} @ {list(b.shape)}") from None
    shape = tuple(batch) + (a_shape[-2], b_shape[-1])
    if a.rank == 1:
        shape = shape[:-2] + shape[-1:]
    if b.rank == 1:
        shape = shape[:-1]
    return [TensorType(shape, a.dtype)]


def _matmul_cost(op: Op) -> OpCost:
    batch, m, k, n = matmul_dims(op)
    return OpCost(batch * m * k * n, 0, _bytes([v.type for v in op.operands]),
                  op.results[0].type.nbytes)


def _matmul_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    return [np.matmul(x[0], x[1]).astype(_out_dtype(op), copy=False)]


def _grad_matmul(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    return list(grad_matmul(b, op.operands[0], op.operands[1], grads[0]))


define(OpDef(
    "tensor.matmul",
    operands=(Operand("lhs"), Operand("rhs")),
    infer=matmul_infer,
    evaluate=_matmul_eval,
    category="matmul",
    cost=_matmul_cost,
    grad=_grad_matmul,
    traits=(MATMUL_CONTRACTION,),
    doc="Matrix product with numpy semantics (batched, broadcasting batch dimensions)."))


# --------------------------------------------------------------------------- tensor: data movement


def _reshape_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    shape = tuple(attrs["shape"])
    if any(d < 0 for d in shape):
        raise ShapeError(f"reshape target {list(shape)} must be fully static (no -1 or 0 left)")
    if math.prod(shape) != types[0].numel:
        raise ShapeError(f"cannot reshape {list(types[0].shape)} ({types[0].numel} elements) "
                         f"to {list(shape)} ({math.prod(shape)} elements)")
    return [TensorType(shape, types[0].dtype)]


def _grad_reshape(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    return [b.op("tensor.reshape", grads[0], shape=op.operands[0].type.shape)]


define(OpDef(
    "tensor.reshape",
    operands=(Operand("x"),),
    attributes={"shape": Attr("ints")},
    infer=_reshape_infer,
    evaluate=lambda op, x, ctx: [x[0].reshape(op.attributes["shape"])],
    category="view",
    grad=_grad_reshape,
    traits=(ZeroPreserving(), DensityPreserving()),
    doc="Reshape to a static shape (a view: moves no data)."))


def _transpose_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    perm = tuple(attrs["perm"])
    if sorted(perm) != list(range(types[0].rank)):
        raise ShapeError(f"perm {list(perm)} is not a permutation of the {types[0].rank} axes")
    return [TensorType(tuple(types[0].shape[p] for p in perm), types[0].dtype)]


def _grad_transpose(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    perm = op.attributes["perm"]
    inverse = tuple(sorted(range(len(perm)), key=lambda i: perm[i]))
    return [b.op("tensor.transpose", grads[0], perm=inverse)]


define(OpDef(
    "tensor.transpose",
    operands=(Operand("x"),),
    attributes={"perm": Attr("ints")},
    infer=_transpose_infer,
    evaluate=lambda op, x, ctx: [np.ascontiguousarray(np.transpose(x[0], op.attributes["perm"]))],
    category="data",
    grad=_grad_transpose,
    traits=(ZeroPreserving(), DensityPreserving()),
    doc="Permute axes."))


def _gather_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    data, idx = types
    if idx.dtype not in ("i64", "i32"):
        raise ShapeError(f"indices must be integers, got {idx.dtype}")
    axis = _norm_axis(attrs["axis"], data.rank)
    return [TensorType(data.shape[:axis] + idx.shape + data.shape[axis + 1:], data.dtype)]


def _gather_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    data, idx = x
    axis = op.attr("axis") % data.ndim
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    return [np.take(data, idx, axis=axis)]


def _grad_gather(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    data, indices = op.operands
    if not _needs(b, data):
        return [None, None]
    axis = op.attr("axis") % data.type.rank
    return [b.op("grad.gather", grads[0], indices, axis=axis, size=data.type.shape[axis]), None]


define(OpDef(
    "tensor.gather",
    operands=(Operand("data"), Operand("indices")),
    attributes={"axis": Attr("int", default=0)},
    infer=_gather_infer,
    evaluate=_gather_eval,
    category="data",
    cost=lambda op: OpCost(0, 0, op.operands[1].type.nbytes + op.results[0].type.nbytes,
                           op.results[0].type.nbytes),
    grad=_grad_gather,
    doc="Take slices of data along an axis by index (embedding lookup): reads only the "
        "gathered rows."))


def _concat_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    if not types:
        raise ShapeError("concat needs at least one operand")
    axis = _norm_axis(attrs["axis"], types[0].rank)
    first = types[0]
    total = 0
    for t in types:
        if t.rank != first.rank or t.dtype != first.dtype or \
                t.shape[:axis] + t.shape[axis + 1:] != first.shape[:axis] + first.shape[axis + 1:]:
            raise ShapeError("concat operands differ outside the concatenation axis: "
                             + ", ".join(str(list(t.shape)) for t in types))
        total += t.shape[axis]
    return [TensorType(first.shape[:axis] + (total,) + first.shape[axis + 1:], first.dtype)]


def _grad_concat(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    g = grads[0]
    axis = op.attributes["axis"] % g.type.rank
    out, offset = [], 0
    for x in op.operands:
        size = x.type.shape[axis]
        out.append(b.op("tensor.slice", g, starts=(offset,), ends=(offset + size,), axes=(axis,),
                        steps=(1,)) if _needs(b, x) else None)
        offset += size
    return out


define(OpDef(
    "tensor.concat",
    operands=(Operand("inputs", variadic=True),),
    attributes={"axis": Attr("int")},
    infer=_concat_infer,
    evaluate=lambda op, x, ctx: [np.concatenate(x, axis=op.attributes["axis"])],
    category="data",
    grad=_grad_concat,
    doc="Concatenate along an axis."))


def _slice_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    x = types[0]
    starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs["axes"], attrs["steps"]
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ShapeError("starts, ends, axes and steps must have equal lengths")
    shape = list(x.shape)
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = _norm_axis(a, x.rank)
        if st == 0:
            raise ShapeError("slice step must not be zero")
        shape[a] = len(range(*slice(s, e, st).indices(x.shape[a])))
    return [TensorType(tuple(shape), x.dtype)]


def _slice_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    a = op.attributes
    index: list[Any] = [slice(None)] * x[0].ndim
    for s, e, ax, st in zip(a["starts"], a["ends"], a["axes"], a["steps"]):
        index[ax % x[0].ndim] = slice(s, e, st)
    return [np.ascontiguousarray(x[0][tuple(index)])]


def _grad_slice(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    a = op.attributes
    return [b.op("grad.slice", grads[0], starts=a["starts"], ends=a["ends"], axes=a["axes"],
                 steps=a["steps"], shape=op.operands[0].type.shape)]


define(OpDef(
    "tensor.slice",
    operands=(Operand("x"),),
    attributes={"starts": Attr("ints"), "ends": Attr("ints"), "axes": Attr("ints"), "steps": Attr("ints")},
    infer=_slice_infer,
    evaluate=_slice_eval,
    category="data",
    grad=_grad_slice,
    traits=(DensityPreserving(),),
    doc="Static strided slice (Python slice semantics)."))


def _expand_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    try:
        shape = np.broadcast_shapes(types[0].shape, tuple(attrs["shape"]))
    except ValueError:
        raise ShapeError(f"cannot expand {list(types[0].shape)} to {list(attrs['shape'])}") from None
    return [TensorType(tuple(shape), types[0].dtype)]


def _grad_expand(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    return [reduce_to_shape(b, grads[0], op.operands[0].type.shape)]


define(OpDef(
    "tensor.expand",
    operands=(Operand("x"),),
    attributes={"shape": Attr("ints")},
    infer=_expand_infer,
    evaluate=lambda op, x, ctx: [np.ascontiguousarray(np.broadcast_to(x[0], op.results[0].type.shape))],
    category="data",
    grad=_grad_expand,
    traits=(DensityPreserving(),),
    doc="Broadcast to a shape (ONNX Expand)."))


def cumsum(x: np.ndarray, axis: int, exclusive: bool = False, reverse: bool = False) -> np.ndarray:
    """Running sum along ``axis`` (ONNX CumSum): ``exclusive`` leaves each
    element out of its own sum, ``reverse`` sums from the end."""
    axis = axis % x.ndim
    data = np.flip(x, axis) if reverse else x
    out = np.cumsum(data, axis=axis, dtype=x.dtype)
    if exclusive:
        out = np.concatenate([np.zeros_like(np.take(out, [0], axis=axis)),
                              np.take(out, np.arange(out.shape[axis] - 1), axis=axis)], axis)
    return np.ascontiguousarray(np.flip(out, axis) if reverse else out)


def _cumsum_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    _norm_axis(attrs["axis"], types[0].rank)
    if types[0].dtype == "bool":
        raise ShapeError("cumsum of bool; cast to an integer or float type first")
    return [types[0].dense()]


def _grad_cumsum(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    """The gradient of a running sum is the running sum of the gradient the
    other way round (same exclusiveness)."""
    if not _needs(b, op.operands[0]):
        return [None]
    a = op.attributes
    return [b.op("tensor.cumsum", grads[0], axis=a["axis"], exclusive=op.attr("exclusive"),
                 reverse=not op.attr("reverse"))]


define(OpDef(
    "tensor.cumsum",
    operands=(Operand("x"),),
    attributes={"axis": Attr("int"), "exclusive": Attr("bool", default=False), "reverse": Attr("bool", default=False)},
    infer=_cumsum_infer,
    evaluate=lambda op, x, ctx: [cumsum(x[0], op.attributes["axis"], op.attr("exclusive"),
                               op.attr("reverse"))],
    category="reduce",
    cost=lambda op: OpCost(0, op.operands[0].type.numel, op.operands[0].type.nbytes,
                           op.results[0].type.nbytes),
    grad=_grad_cumsum,
    doc="Running sum along an axis (ONNX CumSum; RoBERTa's position ids): one add per element."))


def _reduce_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    x = types[0]
    axes = tuple(_norm_axis(a, x.rank) for a in attrs["axes"])
    if len(set(axes)) != len(axes):
        raise ShapeError(f"repeated reduction axes {list(attrs['axes'])}")
    keep = attrs["keepdims"]
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keep or i not in axes)
    return [TensorType(shape, x.dtype)]


def _reduction(name: str, fn: Callable[..., np.ndarray], doc: str,
               grad: GradFn | None = None) -> None:
    def evaluate(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
        axes = tuple(op.attributes["axes"])
        keep = op.attr("keepdims")
        acc = x[0].astype(np.float64) if x[0].dtype.kind == "f" else x[0]
        return [np.asarray(fn(acc, axis=axes, keepdims=keep)).astype(_out_dtype(op))]

    define(OpDef(
        f"tensor.{name}",
        operands=(Operand("x"),),
        attributes={"axes": Attr("ints"), "keepdims": Attr("bool", default=True)},
        infer=_reduce_infer,
        evaluate=evaluate,
        category="reduce",
        grad=grad,
        doc=doc))


def _spread(b: Any, op: Op, g: Any) -> Any:
    """A reduction's result gradient, broadcast back over the reduced axes."""
    x = op.operands[0]
    axes = {a % x.type.rank for a in op.attributes["axes"]}
    kept = tuple(1 if i in axes else d for i, d in enumerate(x.type.shape))
    if g.type.shape != kept:
        g = b.op("tensor.reshape", g, shape=kept)
    return b.op("tensor.expand", g, shape=x.type.shape) if kept != x.type.shape else g


def _grad_reduce_sum(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    return [_spread(b, op, grads[0])]


def _grad_reduce_mean(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    x = op.operands[0]
    count = x.type.numel // max(op.result.type.numel, 1)
    return [_spread(b, op, b.op("arith.mul", grads[0], _scalar_like(b, 1.0 / count, grads[0])))]


def _grad_reduce_max(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    """Every element equal to the maximum receives the gradient (torch's amax
    splits it evenly among ties; ties are rare in real activations)."""
    x = op.operands[0]
    hit = b.op("arith.equal", x, _spread(b, op, op.result))
    return [b.op("arith.select", hit, _spread(b, op, grads[0]), _scalar_like(b, 0.0, grads[0]))]


_reduction("reduce_sum", np.sum, "Sum over axes.", grad=_grad_reduce_sum)
_reduction("reduce_mean", np.mean, "Mean over axes.", grad=_grad_reduce_mean)
_reduction("reduce_max", np.max, "Maximum over axes.", grad=_grad_reduce_max)


# --------------------------------------------------------------------------- tensor: constants, params, control


def _constant_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    return [attrs["value"].type]


define(OpDef(
    "tensor.constant",
    attributes={"value": Attr("dense")},
    infer=_constant_infer,
    evaluate=lambda op, x, ctx: [op.attributes["value"].array()],
    category="constant",
    grad=_zero_grad,
    doc="A small constant tensor kept inline (large ones are parameters)."))


def _param_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    return [ctx.param(op.attributes["name"])]


def _param_verify(op: Op) -> str | None:
    func = op.parent
    module = func.module if func is not None else None
    if module is None:
        return None
    name = op.attributes["name"]
    param = module.params.get(name)
    if param is None:
        return f"refers to parameter {name!r}, which the module does not declare"
    if param.type.dense() != op.results[0].type.dense():
        return f"declares {op.results[0].type} but parameter {name!r} is {param.type}"
    return None


define(OpDef(
    "tensor.param",
    attributes={"name": Attr("str")},
    evaluate=_param_eval,
    category="constant",
    verify=_param_verify,
    grad=_zero_grad,
    doc="Read a module parameter.  Its memory traffic is charged to the ops that use it."))


def _assign_verify(op: Op) -> str | None:
    func = op.parent
    module = func.module if func is not None else None
    if module is None:
        return None
    name = op.attributes["name"]
    param = module.params.get(name)
    if param is None:
        return f"assigns parameter {name!r}, which the module does not declare"
    if param.type.dense() != op.operands[0].type.dense():
        return f"assigns a {op.operands[0].type} to parameter {name!r} of type {param.type}"
    return None


def _assign_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    ctx.assign(op.attributes["name"], x[0])
    return []


define(OpDef(
    "tensor.assign",
    operands=(Operand("value"),),
    attributes={"name": Attr("str")},
    infer=lambda t, a: [],
    evaluate=_assign_eval,
    category="data",
    verify=_assign_verify,
    side_effects=True,
    results=(),
    cost=lambda op: OpCost(0, 0, 0, op.operands[0].type.nbytes),
    grad=_zero_grad,
    doc="Write a new value into a module parameter (optimizer updates); the write goes to "
        "main memory."))


define(OpDef(
    "func.return",
    operands=(Operand("values", variadic=True),),
    infer=lambda t, a: [],
    evaluate=lambda op, x, ctx: [],
    category="control",
    side_effects=True,
    results=(),
    grad=_zero_grad,
    doc="Return values from the function (last op)."))
