"""Fused op kinds, made by the ``fuse`` pass.

The accelerator runs a bias add and an activation inside the MAC lanes, and
an attention head's score, scale, mask, softmax and context steps as one job
whose intermediates never leave the chip.  These ops let the cost model see
such a job as one op: their cost is the sum of their parts' arithmetic, but
their bytes are only the job's real inputs and outputs.

``nn.linear(x, w, bias?) {activation}``
    ``act(x @ w + bias)``; ``w`` is ``[K, N]`` (matmul orientation, as the
    ONNX exporters store it), ``bias`` is ``[N]``, ``activation`` is
    ``none``, ``relu``, ``gelu`` (exact) or ``gelu_tanh``.

``nn.attention(q, kt, v, mask?) {scale}``
    ``softmax(q @ kt * scale + mask, axis=-1) @ v``, with ``q`` ``[..., Sq,
    D]``, ``kt`` ``[..., D, Sk]`` (the keys already transposed: the op takes
    the value that the exporter's score matmul read), ``v`` ``[..., Sk, Dv]``
    and ``mask`` broadcastable to the scores ``[..., Sq, Sk]``.  A division
    of the scores by ``c`` becomes ``scale = 1/c`` (one rounding step in
    float32, about 1e-7 relative).

:func:`fused_parts` splits a fused op's cost by the hardware module class
that runs each part (``matmul``, ``nonlinear``, ``softmax``), for cost models
that charge parts to different units.

Gradient rules: ``nn.linear`` with ``gelu`` recomputes its pre-activation
(one extra matmul) since the op does not keep it; ``nn.attention``
recomputes the probabilities from ``q``, ``kt`` and the mask, as
FlashAttention's backward pass does.  The ``training`` pipeline differentiates
before fusing, so neither recomputation appears there.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dialects.nn import gelu, softmax
from dialects.tensor import matmul_infer as _matmul_infer
from transcode_ir.core import Attributes, Op
from transcode_ir.opdefs import (
    MATMUL_CONTRACTION,
    Attr,
    Contraction,
    OpCost,
    OpDef,
    Operand,
    ShapeError,
    _bytes,
    _needs,
    _out_dtype,
    _scalar_like,
    define,
    grad_matmul,
    matmul_dims,
    reduce_to_shape,
)
from transcode_ir.types import TensorType

__all__ = ["ACTIVATIONS", "fused_parts"]

ACTIVATIONS = ("none", "relu", "gelu", "gelu_tanh")
_ACTIVATION_OPS = {"relu": 1, "gelu": 8, "gelu_tanh": 8, "none": 0}   # ops per element


# --------------------------------------------------------------------------- nn.linear


def _linear_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    x, w = types[0], types[1]
    if w.rank != 2:
        raise ShapeError(f"linear weight must be [K, N], got {list(w.shape)}")
    if x.rank < 1:
        raise ShapeError("linear input must have rank >= 1")
    (out,) = _matmul_infer([x, w], attrs)
    if len(types) > 2:
        b = types[2]
        if b.shape != (w.shape[1],):
            raise ShapeError(f"linear bias must have shape [{w.shape[1]}], got {list(b.shape)}")
        if b.dtype != x.dtype:
            raise ShapeError(f"bias element type {b.dtype} differs from {x.dtype}")
    return [out]


def _activate(z: np.ndarray, activation: str) -> np.ndarray:
    if activation == "relu":
        return np.maximum(z, 0).astype(z.dtype)
    if activation == "gelu":
        return gelu(z)
    if activation == "gelu_tanh":
        return gelu(z, "tanh")
    return z


def _linear_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    z = np.matmul(x[0], x[1]).astype(_out_dtype(op), copy=False)
    if len(x) > 2:
        z = (z + x[2]).astype(_out_dtype(op), copy=False)
    return [_activate(z, op.attr("activation"))]


def _linear_cost(op: Op) -> OpCost:
    batch, m, k, n = matmul_dims(op)
    out = op.results[0].type.numel
    ops = (out if op.operand("bias") is not None else 0) + \
        _ACTIVATION_OPS[op.attr("activation")] * out
    return OpCost(batch * m * k * n, ops, _bytes([v.type for v in op.operands]),
                  op.results[0].type.nbytes)


def _linear_grad(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    (g,) = grads
    x, w = op.operands[0], op.operands[1]
    bias = op.operand("bias")
    activation = op.attr("activation")
    if activation == "relu":
        zero = _scalar_like(b, 0.0, g)
        dz = b.op("arith.select", b.op("arith.greater", op.result, zero), g, zero)
    elif activation in ("gelu", "gelu_tanh"):
        # The fused op does not keep its pre-activation: recompute it.
        z = b.op("nn.linear", *op.operands, activation="none")
        dz = b.op("grad.gelu", g, z, approximate="tanh" if activation == "gelu_tanh" else "none")
    else:
        dz = g
    dx, dw = grad_matmul(b, x, w, dz)
    out: list[Any] = [dx, dw]
    if bias is not None:
        out.append(reduce_to_shape(b, dz, bias.type.shape) if _needs(b, bias) else None)
    return out


define(OpDef(
    "nn.linear",
    operands=(Operand("x"), Operand("weight"), Operand("bias", optional=True)),
    attributes={"activation": Attr("str", default="none", choices=ACTIVATIONS)},
    infer=_linear_infer,
    evaluate=_linear_eval,
    category="matmul",
    cost=_linear_cost,
    grad=_linear_grad,
    traits=(MATMUL_CONTRACTION,),
    doc="Fused dense layer act(x @ weight + bias): matmul, bias add and activation as one job "
        "(bias and activation run in the MAC lanes)."))


# --------------------------------------------------------------------------- nn.attention


def _attention_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    q, kt, v = types[0], types[1], types[2]
    if q.rank < 2 or kt.rank < 2 or v.rank < 2:
        raise ShapeError("attention operands must have rank >= 2")
    (scores,) = _matmul_infer([q, kt], attrs)
    if len(types) > 3:
        mask = types[3]
        try:
            shape = np.broadcast_shapes(scores.shape, mask.shape)
        except ValueError:
            shape = None
        if shape != scores.shape:
            raise ShapeError(f"mask {list(mask.shape)} does not broadcast to the scores "
                             f"{list(scores.shape)}")
        if mask.dtype != q.dtype:
            raise ShapeError(f"mask element type {mask.dtype} differs from {q.dtype}")
    return _matmul_infer([scores, v], attrs)


def _scores(op: Op, x: list[np.ndarray]) -> np.ndarray:
    dtype = _out_dtype(op)
    s = np.matmul(x[0], x[1]).astype(dtype, copy=False)
    scale = op.attr("scale")
    if scale != 1.0:
        s = (s * np.asarray(scale, dtype)).astype(dtype, copy=False)
    if len(x) > 3:
        s = (s + x[3]).astype(dtype, copy=False)
    return s


def _attention_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    tau = float(op.attr("tau"))
    if tau > 0.0:   # DynaProp inside the job: scores and probabilities pruned
        from dialects.sparsity import prune

        p = prune(softmax(prune(_scores(op, x), tau), -1), tau)
    else:
        with np.errstate(invalid="ignore"):
            p = softmax(_scores(op, x), -1)
    if op.attr("nan_to_zero"):
        p = np.where(np.isnan(p), np.zeros((), p.dtype), p)
    return [np.matmul(p, x[2]).astype(_out_dtype(op), copy=False)]


def _score_shape(op: Op) -> TensorType:
    return _matmul_infer([op.operands[0].type, op.operands[1].type], Attributes())[0]


def fused_parts(op: Op) -> list[tuple[str, OpCost]]:
    """The parts of a fused op's cost, each with the op category (hardware
    module class) that runs it.  Bytes are charged to the first part only:
    a fused job reads its inputs and writes its output once."""
    if op.name == "nn.linear":
        batch, m, k, n = matmul_dims(op)
        out = op.results[0].type.numel
        parts = [("matmul", OpCost(batch * m * k * n, out if len(op.operands) > 2 else 0,
                                   _bytes([v.type for v in op.operands]),
                                   op.results[0].type.nbytes))]
        act = op.attr("activation")
        if act != "none":
            parts.append(("nonlinear", OpCost(0, _ACTIVATION_OPS[act] * out)))
        return parts
    if op.name == "nn.attention":
        scores = _score_shape(op)
        q, kt, v = (o.type for o in op.operands[:3])
        b1 = scores.numel * q.shape[-1]
        b2 = op.results[0].type.numel * v.shape[-2]
        steps = (op.attr("scale") != 1.0) + (op.operand("mask") is not None)
        elementwise = scores.numel * steps
        guard = scores.numel if op.attr("nan_to_zero") else 0
        return [("matmul", OpCost(b1 + b2, elementwise, _bytes([o.type for o in op.operands]),
                                  op.results[0].type.nbytes)),
                ("softmax", OpCost(0, 5 * scores.numel + guard))]
    raise ValueError(f"{op.name} is not a fused op")


def _attention_products(op: Op) -> tuple[tuple[int, int, int, int], ...]:
    """Scores ``q @ kt`` [B, Sq, D] x [D, Sk], then context ``p @ v`` [B, Sq, Sk] x [Sk, Dv]."""
    q, kt, v = (o.type.shape for o in op.operands[:3])
    batch = math.prod(np.broadcast_shapes(q[:-2], kt[:-2]))
    return ((batch, q[-2], q[-1], kt[-1]), (batch, q[-2], v[-2], v[-1]))


def _attention_cost(op: Op) -> OpCost:
    total = OpCost()
    for _, part in fused_parts(op):
        total = total + part
    return total


def _attention_grad(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    (g,) = grads
    if float(op.attr("tau")) > 0.0:
        from transcode_ir.errors import UserError

        raise UserError("nn.attention with DynaProp pruning inside (tau > 0) has no gradient "
                        "rule: differentiate (autodiff) before the dynaprop pass")
    q, kt, v = op.operands[:3]
    mask = op.operand("mask")
    scale = op.attr("scale")
    # Recompute the probabilities (FlashAttention-style backward).
    s = b.op("tensor.matmul", q, kt)
    if scale != 1.0:
        s = b.op("arith.mul", s, _scalar_like(b, scale, s))
    if mask is not None:
        s = b.op("arith.add", s, mask)
    p = b.op("nn.softmax", s, axis=-1)
    if op.attr("nan_to_zero"):   # guarded rows: zero probabilities, no gradient
        p = b.op("arith.select", b.op("arith.isnan", p), _scalar_like(b, 0.0, p), p)
    dp, dv = grad_matmul(b, p, v, g, need_lhs=True, need_rhs=_needs(b, v))
    ds = b.op("grad.softmax", dp, p, axis=-1)
    dmask = None
    if mask is not None and _needs(b, mask):
        dmask = reduce_to_shape(b, ds, mask.type.shape)
    if scale != 1.0:
        ds = b.op("arith.mul", ds, _scalar_like(b, scale, ds))
    dq, dkt = grad_matmul(b, q, kt, ds)
    out = [dq, dkt, dv]
    if mask is not None:
        out.append(dmask)
    return out


define(OpDef(
    "nn.attention",
    operands=(Operand("q"), Operand("kt"), Operand("v"), Operand("mask", optional=True)),
    attributes={"scale": Attr("float", default=1.0),
     "nan_to_zero": Attr("bool", default=False, doc="NaN probabilities (a row of -inf scores: fully masked) become "
                                 "0, the guard torch's SDPA export writes as Where(IsNaN(p), 0, p)"),
     "tau": Attr("float", default=0.0, doc="DynaProp: scores and probabilities with |x| <= tau become 0 inside "
                         "the job (set by the dynaprop pass; 0: no pruning)")},
    infer=_attention_infer,
    evaluate=_attention_eval,
    category="matmul",
    cost=_attention_cost,
    grad=_attention_grad,
    traits=(Contraction(_attention_products, lambda op: ("bik", "bkj")),),
    doc="Fused attention softmax(q @ kt * scale + mask) @ v as one job: scores and "
        "probabilities stay on chip."))
