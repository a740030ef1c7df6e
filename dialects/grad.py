"""Backward kernels (``grad.*``): the parts of gradient rules that a cost model
should see as one job on one unit, rather than as a dozen elementwise ops.
The rules that emit them live with the forward ops (:mod:`dialects.nn`,
:mod:`dialects.tensor`); losses' own backward kernels (``grad.cross_entropy``,
``grad.mse``) live with the losses in :mod:`dialects.training`.

``grad.gelu(dy, x)``, ``grad.softmax(dy, y)``,
``grad.layer_norm(dy, x, scale) -> (dx, dscale, dbias)``,
``grad.conv1d_input(dy, weight)``, ``grad.conv1d_weight(dy, x)`` (both
contractions, with their im2col (B, M, K, N)),
``grad.gather(dy, indices)`` (scatter-add: the embedding-table gradient),
``grad.slice(dy)`` (zero-pad back to the sliced tensor's shape).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dialects.arith import erf
from dialects.training import _check_same_shape, _elementwise_cost
from transcode_ir.core import Attributes, Op
from transcode_ir.opdefs import (
    Attr,
    Contraction,
    OpCost,
    OpDef,
    Operand,
    Result,
    ShapeError,
    _bytes,
    _norm_axis,
    _out_dtype,
    define,
)
from transcode_ir.types import TensorType

__all__ = ["gelu_derivative"]

_FLOATS = ("f16", "f32", "f64")


# --------------------------------------------------------------------------- activation kernels


def gelu_derivative(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    x64 = x.astype(np.float64)
    if approximate == "tanh":
        k = math.sqrt(2.0 / math.pi)
        inner = k * (x64 + 0.044715 * x64 ** 3)
        t = np.tanh(inner)
        return 0.5 * (1 + t) + 0.5 * x64 * (1 - t * t) * k * (1 + 3 * 0.044715 * x64 ** 2)
    cdf = 0.5 * (1.0 + erf(x64 / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * x64 * x64) / math.sqrt(2.0 * math.pi)
    return cdf + x64 * pdf


def _check_dy(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    _check_same_shape(types, "dy and the saved forward value")
    return [types[1].dense()]


define(OpDef(
    "grad.gelu",
    operands=(Operand("dy"), Operand("x")),
    attributes={"approximate": Attr("str", default="none", choices=("none", "tanh"))},
    infer=_check_dy,
    evaluate=lambda op, x, ctx: [(x[0].astype(np.float64) * gelu_derivative(
        x[1], op.attr("approximate"))).astype(_out_dtype(op))],
    category="nonlinear",
    cost=_elementwise_cost(10),
    doc="dy * gelu'(x)."))


def _softmax_grad_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    _norm_axis(attrs["axis"], types[1].rank)
    return _check_dy(types, attrs)


def _softmax_grad_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    dy, y = x[0].astype(np.float64), x[1].astype(np.float64)
    axis = op.attr("axis")
    return [(y * (dy - (dy * y).sum(axis=axis, keepdims=True))).astype(_out_dtype(op))]


define(OpDef(
    "grad.softmax",
    operands=(Operand("dy"), Operand("y")),
    attributes={"axis": Attr("int", default=-1)},
    infer=_softmax_grad_infer,
    evaluate=_softmax_grad_eval,
    category="softmax",
    cost=_elementwise_cost(4),
    doc="Softmax backward from its output y: y * (dy - sum(dy * y, axis))."))


def _ln_grad_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    dy, x = types[0], types[1]
    _check_same_shape([dy, x], "dy and x")
    axis = _norm_axis(attrs["axis"], x.rank)
    normalized = TensorType(x.shape[axis:], x.dtype)
    return [x.dense(), normalized, normalized]


def _ln_grad_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    dy, xs, scale = (a.astype(np.float64) for a in x)
    axis = op.attr("axis") % xs.ndim
    eps = op.attr("epsilon")
    axes = tuple(range(axis, xs.ndim))
    lead = tuple(range(axis))
    mean = xs.mean(axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(((xs - mean) ** 2).mean(axis=axes, keepdims=True) + eps)
    xhat = (xs - mean) * inv
    scale_full = np.broadcast_to(scale, xs.shape[axis:])
    dxhat = dy * scale_full
    n = math.prod(xs.shape[axis:])
    dx = inv * (dxhat - dxhat.sum(axis=axes, keepdims=True) / n
                - xhat * (dxhat * xhat).sum(axis=axes, keepdims=True) / n)
    dtype = _out_dtype(op)
    return [dx.astype(dtype), (dy * xhat).sum(axis=lead).astype(dtype),
            dy.sum(axis=lead).astype(dtype)]


define(OpDef(
    "grad.layer_norm",
    operands=(Operand("dy"), Operand("x"), Operand("scale")),
    attributes={"axis": Attr("int", default=-1), "epsilon": Attr("float", default=1e-5)},
    infer=_ln_grad_infer,
    evaluate=_ln_grad_eval,
    category="layernorm",
    results=(Result("dx"), Result("dscale"), Result("dbias")),
    cost=lambda op: OpCost(0, 12 * op.operands[1].type.numel, _bytes([v.type for v in op.operands]),
                           _bytes([r.type for r in op.results])),
    doc="Layer-norm backward: (dx, dscale, dbias), the last two over the normalized shape."))


# --------------------------------------------------------------------------- data-movement kernels


def _gather_grad_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    dy, idx = types
    if idx.dtype not in ("i64", "i32"):
        raise ShapeError(f"indices must be integers, got {idx.dtype}")
    axis = attrs["axis"]
    rank = dy.rank - idx.rank + 1
    axis = _norm_axis(axis, rank)
    if dy.shape[axis:axis + idx.rank] != idx.shape:
        raise ShapeError(f"dy {list(dy.shape)} does not hold indices {list(idx.shape)} "
                         f"at axis {axis}")
    return [TensorType(dy.shape[:axis] + (attrs["size"],) + dy.shape[axis + idx.rank:], dy.dtype)]


def _gather_grad_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    dy, idx = x
    out_type = op.results[0].type
    axis = op.attr("axis") % out_type.rank
    size = op.attributes["size"]
    idx = np.where(idx < 0, idx + size, idx).reshape(-1)
    moved = np.moveaxis(dy, list(range(axis, axis + x[1].ndim)), list(range(x[1].ndim)))
    moved = moved.reshape((idx.size,) + moved.shape[x[1].ndim:]).astype(np.float64)
    acc = np.zeros((size,) + moved.shape[1:], np.float64)
    np.add.at(acc, idx, moved)
    return [np.moveaxis(acc, 0, axis).astype(_out_dtype(op))]


define(OpDef(
    "grad.gather",
    operands=(Operand("dy"), Operand("indices")),
    attributes={"axis": Attr("int", default=0), "size": Attr("int")},
    infer=_gather_grad_infer,
    evaluate=_gather_grad_eval,
    category="data",
    cost=lambda op: OpCost(0, op.operands[0].type.numel, _bytes([v.type for v in op.operands]),
                           op.results[0].type.nbytes),
    doc="Gather backward: scatter-add dy into zeros of the gathered tensor's shape "
        "(embedding-table gradient)."))


def _slice_grad_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    return [TensorType(tuple(attrs["shape"]), types[0].dtype)]


def _slice_grad_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    a = op.attributes
    out = np.zeros(tuple(a["shape"]), x[0].dtype)
    index: list[Any] = [slice(None)] * out.ndim
    for s, e, ax, st in zip(a["starts"], a["ends"], a["axes"], a["steps"]):
        index[ax % out.ndim] = slice(s, e, st)
    out[tuple(index)] = x[0]
    return [out]


def _slice_grad_verify(op: Op) -> str | None:
    from dialects.tensor import _slice_infer

    a = op.attributes
    try:
        (sliced,) = _slice_infer([op.results[0].type], Attributes(
            {k: a[k] for k in ("starts", "ends", "axes", "steps")}))
    except ShapeError as err:
        return str(err)
    if sliced.shape != op.operands[0].type.shape:
        return f"dy {list(op.operands[0].type.shape)} is not the slice's shape {list(sliced.shape)}"
    return None


define(OpDef(
    "grad.slice",
    operands=(Operand("dy"),),
    attributes={"starts": Attr("ints"), "ends": Attr("ints"), "axes": Attr("ints"),
     "steps": Attr("ints"), "shape": Attr("ints")},
    infer=_slice_grad_infer,
    evaluate=_slice_grad_eval,
    category="data",
    verify=_slice_grad_verify,
    doc="Slice backward: dy placed into zeros of the sliced tensor's shape."))


# --------------------------------------------------------------------------- conv1d kernels


def _conv_attrs(op: Op) -> tuple[int, tuple[int, int], int, int]:
    return (op.attr("stride"), tuple(op.attr("pads")), op.attr("dilation"), op.attr("groups"))


_CONV_ATTRS = {"stride": Attr("int", default=1), "pads": Attr("ints", default=(0, 0)),
               "dilation": Attr("int", default=1), "groups": Attr("int", default=1)}


def _windows_index(length: int, kernel: int, stride: int, dilation: int,
                   pads: tuple[int, int]) -> tuple[np.ndarray, int]:
    out_len = (length + pads[0] + pads[1] - dilation * (kernel - 1) - 1) // stride + 1
    idx = np.arange(out_len)[:, None] * stride + np.arange(kernel)[None, :] * dilation
    return idx, out_len


def _conv_input_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    dy, w = types
    if dy.rank != 3 or w.rank != 3 or dy.shape[1] != w.shape[0]:
        raise ShapeError(f"dy {list(dy.shape)} and weight {list(w.shape)} do not fit a conv1d")
    return [TensorType((dy.shape[0], w.shape[1] * attrs["groups"], attrs["length"]), dy.dtype)]


def _conv_input_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    dy, w = x[0].astype(np.float64), x[1].astype(np.float64)
    stride, pads, dilation, groups = _conv_attrs(op)
    n, m, out_len = dy.shape
    _, cg, k = w.shape
    length = op.attributes["length"]
    idx, _ = _windows_index(length, k, stride, dilation, pads)
    padded = np.zeros((n, cg * groups, length + pads[0] + pads[1]))
    mg = m // groups
    for g in range(groups):
        # contributions[n, c, l, k] = sum_m dy[n, m, l] w[m, c, k]
        contrib = np.einsum("nml,mck->nclk", dy[:, g * mg:(g + 1) * mg], w[g * mg:(g + 1) * mg])
        target = padded[:, g * cg:(g + 1) * cg]
        np.add.at(target, (slice(None), slice(None), idx), contrib)
        padded[:, g * cg:(g + 1) * cg] = target
    return [padded[:, :, pads[0]:pads[0] + length].astype(_out_dtype(op))]


def _conv_loops(op: Op) -> tuple[str, str]:
    return ("ik", "kj") if op.attr("groups") == 1 else ("bik", "bkj")


def _conv_input_products(op: Op) -> tuple[tuple[int, int, int, int], ...]:
    """Per group: dy's [N*L_out, M/groups] by the filters [M/groups, C/groups*K]
    (the contributions, scattered back onto the input's windows)."""
    n, m, out_len = op.operands[0].type.shape
    _, cg, k = op.operands[1].type.shape
    groups = op.attr("groups")
    return ((groups, n * out_len, m // groups, cg * k),)


def _conv_weight_products(op: Op) -> tuple[tuple[int, int, int, int], ...]:
    """Per group: dy transposed [M/groups, N*L_out] by the windows [N*L_out, C/groups*K]."""
    n, m, out_len = op.operands[0].type.shape
    _, cg, k = op.results[0].type.shape
    groups = op.attr("groups")
    return ((groups, m // groups, n * out_len, cg * k),)


define(OpDef(
    "grad.conv1d_input",
    operands=(Operand("dy"), Operand("weight")),
    attributes=dict(_CONV_ATTRS, length=Attr("int")),
    infer=_conv_input_infer,
    evaluate=_conv_input_eval,
    category="conv",
    traits=(Contraction(_conv_input_products, _conv_loops),),
    cost=lambda op: OpCost(op.operands[0].type.numel * op.operands[1].type.shape[1]
                           * op.operands[1].type.shape[2], 0,
                           _bytes([v.type for v in op.operands]), op.results[0].type.nbytes),
    doc="Conv1d backward to its input (a transposed convolution)."))


def _conv_weight_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    dy, x = types
    if dy.rank != 3 or x.rank != 3 or dy.shape[0] != x.shape[0]:
        raise ShapeError(f"dy {list(dy.shape)} and x {list(x.shape)} do not fit a conv1d")
    groups = attrs["groups"]
    return [TensorType((dy.shape[1], x.shape[1] // groups, attrs["kernel"]), dy.dtype)]


def _conv_weight_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    dy, xs = x[0].astype(np.float64), x[1].astype(np.float64)
    stride, pads, dilation, groups = _conv_attrs(op)
    k = op.attributes["kernel"]
    n, c, length = xs.shape
    m = dy.shape[1]
    idx, _ = _windows_index(length, k, stride, dilation, pads)
    windows = np.pad(xs, ((0, 0), (0, 0), pads))[:, :, idx]       # n, c, l, k
    cg, mg = c // groups, m // groups
    out = np.empty((m, cg, k))
    for g in range(groups):
        out[g * mg:(g + 1) * mg] = np.einsum("nml,nclk->mck", dy[:, g * mg:(g + 1) * mg],
                                             windows[:, g * cg:(g + 1) * cg])
    return [out.astype(_out_dtype(op))]


define(OpDef(
    "grad.conv1d_weight",
    operands=(Operand("dy"), Operand("x")),
    attributes=dict(_CONV_ATTRS, kernel=Attr("int")),
    infer=_conv_weight_infer,
    evaluate=_conv_weight_eval,
    category="conv",
    traits=(Contraction(_conv_weight_products, _conv_loops),),
    cost=lambda op: OpCost(op.operands[0].type.numel * op.results[0].type.shape[1]
                           * op.results[0].type.shape[2], 0,
                           _bytes([v.type for v in op.operands]), op.results[0].type.nbytes),
    doc="Conv1d backward to its weight (correlation of the input with dy)."))


