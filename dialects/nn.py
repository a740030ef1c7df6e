"""The ``nn`` dialect: neural-network layers -- activations (relu, gelu),
softmax, layer norm, 1-D convolution -- with their numpy kernels
(:func:`gelu`, :func:`softmax`, :func:`layer_norm`, :func:`conv1d`).
The fused ``nn.linear`` / ``nn.attention`` live in :mod:`dialects.fused`,
the DynaProp ``nn.prune`` in :mod:`dialects.sparsity`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dialects.arith import erf
from transcode_ir.core import Attributes, Op
from transcode_ir.opdefs import (
    Attr,
    Contraction,
    Dims,
    OpCost,
    OpDef,
    Operand,
    ShapeError,
    ZeroPreserving,
    _bytes,
    _needs,
    _norm_axis,
    _same,
    _scalar_like,
    define,
    reduce_to_shape,
)
from transcode_ir.types import TensorType

__all__ = ["conv1d", "gelu", "layer_norm", "softmax"]


# --------------------------------------------------------------------------- nn: activations


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    x64 = x.astype(np.float64)
    if approximate == "tanh":
        y = 0.5 * x64 * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x64 + 0.044715 * x64 ** 3)))
    else:
        y = 0.5 * x64 * (1.0 + erf(x64 / math.sqrt(2.0)))
    return y.astype(x.dtype)


def _grad_relu(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    g = grads[0]
    zero = _scalar_like(b, 0.0, g)
    return [b.op("arith.select", b.op("arith.greater", op.result, zero), g, zero)]


def _grad_gelu(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    return [b.op("grad.gelu", grads[0], op.operands[0],
                 approximate=op.attr("approximate"))]


define(OpDef(
    "nn.relu",
    operands=(Operand("x"),),
    infer=_same,
    evaluate=lambda op, x, ctx: [np.maximum(x[0], 0).astype(x[0].dtype)],
    category="nonlinear",
    grad=_grad_relu,
    traits=(ZeroPreserving(),),
    doc="Rectified linear unit."))
define(OpDef(
    "nn.gelu",
    operands=(Operand("x"),),
    attributes={"approximate": Attr("str", default="none", choices=("none", "tanh"))},
    infer=_same,
    evaluate=lambda op, x, ctx: [gelu(x[0], op.attr("approximate"))],
    category="nonlinear",
    cost=lambda op: OpCost(0, 8 * op.results[0].type.numel, op.operands[0].type.nbytes,
                           op.results[0].type.nbytes),
    grad=_grad_gelu,
    traits=(ZeroPreserving(),),
    doc="Gaussian error linear unit (exact erf form, or the tanh approximation)."))


# --------------------------------------------------------------------------- nn: softmax, layer norm


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return (e / np.sum(e, axis=axis, keepdims=True)).astype(x.dtype)


def _softmax_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    _norm_axis(attrs["axis"], types[0].rank)
    return [types[0].dense()]


def _grad_softmax(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    return [b.op("grad.softmax", grads[0], op.result, axis=op.attr("axis"))]


define(OpDef(
    "nn.softmax",
    operands=(Operand("x"),),
    attributes={"axis": Attr("int", default=-1)},
    infer=_softmax_infer,
    evaluate=lambda op, x, ctx: [softmax(x[0], op.attr("axis"))],
    category="softmax",
    cost=lambda op: OpCost(0, 5 * op.results[0].type.numel, op.operands[0].type.nbytes,
                           op.results[0].type.nbytes),
    grad=_grad_softmax,
    doc="Softmax along one axis (max-shifted): about 5 elementary ops per element."))


def layer_norm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray | None, axis: int,
               epsilon: float) -> np.ndarray:
    axes = tuple(range(axis % x.ndim, x.ndim))
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x64 - mean) / np.sqrt(var + epsilon) * scale
    if bias is not None:
        y = y + bias
    return y.astype(x.dtype)


def _layer_norm_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    x = types[0]
    axis = _norm_axis(attrs["axis"], x.rank)
    normalized = x.shape[axis:]
    for t in types[1:]:
        if np.broadcast_shapes(t.shape, normalized) != tuple(normalized):
            raise ShapeError(f"scale/bias shape {list(t.shape)} does not match the "
                             f"normalized shape {list(normalized)}")
    return [x.dense()]


def _grad_layer_norm(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    x, scale = op.operands[0], op.operands[1]
    bias = op.operand("bias")
    dx, dscale, dbias = b.create(
        "grad.layer_norm", (grads[0], x, scale),
        {"axis": op.attr("axis"), "epsilon": op.attr("epsilon")}).results
    out = [dx if _needs(b, x) else None,
           reduce_to_shape(b, dscale, scale.type.shape) if _needs(b, scale) else None]
    if bias is not None:
        out.append(reduce_to_shape(b, dbias, bias.type.shape) if _needs(b, bias) else None)
    return out


define(OpDef(
    "nn.layer_norm",
    operands=(Operand("x"), Operand("scale"), Operand("bias", optional=True)),
    attributes={"axis": Attr("int", default=-1), "epsilon": Attr("float", default=1e-5)},
    infer=_layer_norm_infer,
    evaluate=lambda op, x, ctx: [layer_norm(x[0], x[1], x[2] if len(x) > 2 else None,
                                   op.attr("axis"), op.attr("epsilon"))],
    category="layernorm",
    cost=lambda op: OpCost(0, 8 * op.results[0].type.numel, _bytes([v.type for v in op.operands]),
                           op.results[0].type.nbytes),
    grad=_grad_layer_norm,
    doc="Layer normalisation over the trailing axes from 'axis': about 8 ops per element."))


# --------------------------------------------------------------------------- nn: conv1d


def _conv1d_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    x, w = types[0], types[1]
    if x.rank != 3 or w.rank != 3:
        raise ShapeError(f"conv1d takes x as [N, C, L] and weight as [M, C/groups, K], got "
                         f"{list(x.shape)} and {list(w.shape)}")
    n, c, length = x.shape
    m, cg, k = w.shape
    groups = attrs["groups"]
    if c % groups or m % groups or cg != c // groups:
        raise ShapeError(f"channels {c} and filters {m} do not fit groups={groups} "
                         f"with weight {list(w.shape)}")
    if len(types) > 2 and types[2].shape != (m,):
        raise ShapeError(f"bias must have shape [{m}], got {list(types[2].shape)}")
    pads = attrs["pads"]
    stride, dilation = attrs["stride"], attrs["dilation"]
    out_len = (length + pads[0] + pads[1] - dilation * (k - 1) - 1) // stride + 1
    if out_len <= 0:
        raise ShapeError("conv1d output length would be non-positive")
    return [TensorType((n, m, out_len), x.dtype)]


def conv1d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int, pads: tuple[int, int],
           dilation: int, groups: int) -> np.ndarray:
    n, c, _ = x.shape
    m, cg, k = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[1])))
    out_len = (xp.shape[2] - dilation * (k - 1) - 1) // stride + 1
    # windows: [N, C, out_len, K]
    idx = np.arange(out_len)[:, None] * stride + np.arange(k)[None, :] * dilation
    windows = xp[:, :, idx]
    mg = m // groups
    out = np.empty((n, m, out_len), dtype=np.float64)
    for g in range(groups):
        xs = windows[:, g * cg:(g + 1) * cg].astype(np.float64)       # N, cg, L, K
        ws = w[g * mg:(g + 1) * mg].astype(np.float64)                 # mg, cg, K
        out[:, g * mg:(g + 1) * mg] = np.einsum("nclk,mck->nml", xs, ws)
    if b is not None:
        out += b[None, :, None]
    return out.astype(x.dtype)


def _conv1d_products(op: Op) -> tuple[Dims, ...]:
    """im2col view: per group, [N*L_out, C/groups*K] windows by [C/groups*K, M/groups] filters."""
    n = op.operands[0].type.shape[0]
    m, cg, k = op.operands[1].type.shape
    groups = op.attr("groups")
    out_len = op.results[0].type.shape[2]
    return ((groups, n * out_len, cg * k, m // groups),)


def _conv1d_cost(op: Op) -> OpCost:
    out = op.results[0].type
    ((groups, rows, depth, cols),) = _conv1d_products(op)
    macs = groups * rows * depth * cols
    return OpCost(macs, out.numel if len(op.operands) > 2 else 0,
                  _bytes([v.type for v in op.operands]), out.nbytes)


def _grad_conv1d(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    g = grads[0]
    x, w = op.operands[0], op.operands[1]
    attrs = {k: op.attr(k) for k in ("stride", "pads", "dilation", "groups")}
    out = [b.op("grad.conv1d_input", g, w, length=x.type.shape[2], **attrs) if _needs(b, x) else None,
           b.op("grad.conv1d_weight", g, x, kernel=w.type.shape[2], **attrs) if _needs(b, w) else None]
    if len(op.operands) > 2:
        out.append(b.op("tensor.reduce_sum", g, axes=(0, 2), keepdims=False)
                   if _needs(b, op.operands[2]) else None)
    return out


define(OpDef(
    "nn.conv1d",
    operands=(Operand("x"), Operand("weight"), Operand("bias", optional=True)),
    attributes={"stride": Attr("int", default=1), "pads": Attr("ints", default=(0, 0)), "dilation": Attr("int", default=1), "groups": Attr("int", default=1)},
    infer=_conv1d_infer,
    evaluate=lambda op, x, ctx: [conv1d(x[0], x[1], x[2] if len(x) > 2 else None,
                               op.attr("stride"), op.attr("pads"),
                               op.attr("dilation"), op.attr("groups"))],
    category="conv",
    cost=_conv1d_cost,
    traits=(Contraction(_conv1d_products, lambda op: ("bik", "bkj")),),
    grad=_grad_conv1d,
    doc="1-D convolution over [N, C, L] (ONNX Conv with one spatial axis)."))

