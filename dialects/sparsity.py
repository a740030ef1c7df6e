"""DynaProp prune ops (category ``sparsity``), made by the ``dynaprop`` pass.

DynaProp (DynaTran in inference) prunes small values at run time: an element
with ``|x| ≤ τ`` becomes zero, every other element passes unchanged.  The
accelerator does it in the pre-/post-sparsity units beside each MAC lane,
one comparison per element, and keeps a 1-bit mask per element so that the
MAC lanes skip the zeros.

``nn.prune(x) {tau, point?, role?} -> y``
    ``y = 0 where |x| ≤ tau else x`` (written ``Where(Abs(x) <= tau, 0, x)``
    in ONNX).  τ is compared in ``x``'s element type (rounded to float32 for
    a float32 tensor, as ``torch.nn.functional.hardshrink`` does); NaN is
    never pruned (``|NaN| ≤ τ`` is false); with ``tau = 0`` only exact zeros
    are "pruned" and the op is the identity up to the sign of zero.
    ``point`` names the prune point by its module path
    (``encoder.layer.0.attention.self.query``), and ``role`` says what is
    pruned: ``activation`` (τ_I, forward), ``gradient`` (τ_T, the gradient
    of a pruned activation flowing back into its producer) or
    ``weight_gradient`` (τ_T, a parameter's gradient; ``point`` is then the
    parameter name).  The result type may carry a
    :class:`~transcode_ir.types.SparsityEncoding` -- the density of ``y`` and
    where that figure came from (measured, profile, assumed); the shape rule
    itself gives the dense type, and the verifier compares types without
    their encodings.

``grad.prune(dy, y) -> dx``
    The gradient rule's kernel: ``dx = 0 where y == 0 else dy``, with ``y``
    the *pruned* result of the ``nn.prune`` being differentiated.  This is
    the straight-through estimator of the surviving elements,
    ``dy · (|x| > τ)``: ``y`` is zero exactly where ``|x| ≤ τ`` (an ``x``
    that is already zero gets no gradient either way, NaN passes), and
    reading ``y`` rather than ``x`` lets the backward pass reuse the pruned,
    compressed activation (or its mask) instead of keeping ``x`` alive.  With
    ``tau = 0`` the prune op is the identity and its gradient rule passes
    ``dy`` on unchanged (no ``grad.prune``), as the torch runtime leaves a
    τ = 0 point alone.

Costs: one comparison (or select) per element, bytes of the operands read
and of the result written at the IR's element types (the op's own figure; the
ELECTOR model folds a prune into the op producing its operand -- the
post-sparsity unit prunes on the way out of the lane -- when nothing else reads
that operand).  What the pruned value
costs to store and move (nonzeros plus a mask) is the cost model's business,
from the density in the result's type; :mod:`transcode_ir.activation_memory`
computes the activation-memory figure the same way.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from transcode_ir.core import Attributes, Op
from transcode_ir.opdefs import Attr, OpCost, OpDef, Operand, ShapeError, _bytes, _needs, define
from transcode_ir.types import TensorType

__all__ = ["PRUNE_ROLES", "prune", "prune_gradient"]

#: What a prune op prunes (the ``role`` attribute of ``nn.prune``).
PRUNE_ROLES = ("activation", "gradient", "weight_gradient")

_FLOATS = ("f16", "f32", "f64")


# --------------------------------------------------------------------------- numpy semantics


def prune(x: np.ndarray, tau: float) -> np.ndarray:
    """``x`` with every element of ``|x| ≤ tau`` set to zero (NaN kept), in ``x``'s dtype."""
    x = np.asarray(x)
    threshold = np.asarray(tau, dtype=x.dtype)
    with np.errstate(invalid="ignore"):
        pruned = np.abs(x) <= threshold
    return np.where(pruned, np.zeros((), x.dtype), x).astype(x.dtype, copy=False)


def prune_gradient(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``dy`` where the pruned activation ``y`` is nonzero, else zero."""
    return np.where(y == 0, np.zeros((), dy.dtype), dy).astype(dy.dtype, copy=False)


# --------------------------------------------------------------------------- nn.prune


def _prune_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    x = types[0]
    if x.dtype not in _FLOATS:
        raise ShapeError(f"nn.prune prunes floating-point tensors, got {x.dtype}")
    return [x.dense()]


def _prune_verify(op: Op) -> str | None:
    tau = float(op.attributes["tau"])
    if not math.isfinite(tau) or tau < 0:
        return f"tau must be a finite number >= 0, got {op.attributes['tau']!r}"
    return None


def _prune_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    return [prune(x[0], float(op.attributes["tau"]))]


def _prune_cost(op: Op) -> OpCost:
    numel = op.results[0].type.numel
    return OpCost(0, numel, op.operands[0].type.nbytes, op.results[0].type.nbytes)


def _prune_grad(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    """Straight-through for the surviving elements: ``dy · (|x| > τ)``.  With τ = 0 the op
    is the identity (it zeroes only zeros), so the gradient is ``dy`` itself -- as in the
    torch runtime, which leaves a τ = 0 point alone."""
    (g,) = grads
    if g is None or not _needs(b, op.operands[0]):
        return [None]
    if float(op.attributes["tau"]) == 0.0:
        return [g]
    return [b.op("grad.prune", g, op.result)]


define(OpDef(
    "nn.prune",
    operands=(Operand("x"),),
    attributes={"tau": Attr("float", doc="threshold: elements with |x| <= tau become 0"),
     "point": Attr("str", default="", doc="prune point: module path (or parameter name)"),
     "role": Attr("str", default="activation", choices=PRUNE_ROLES, doc="activation (tau_I), gradient or weight_gradient (tau_T)")},
    infer=_prune_infer,
    evaluate=_prune_eval,
    category="sparsity",
    cost=_prune_cost,
    verify=_prune_verify,
    grad=_prune_grad,
    doc="DynaProp pruning: 0 where |x| <= tau, else x (one comparison per element on the "
        "sparsity units).  The result type may carry the measured density."))


# --------------------------------------------------------------------------- grad.prune


def _prune_grad_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    dy, y = types
    if dy.shape != y.shape:
        raise ShapeError(f"gradient {list(dy.shape)} and pruned value {list(y.shape)} differ "
                         "in shape")
    if dy.dtype != y.dtype:
        raise ShapeError(f"gradient element type {dy.dtype} differs from {y.dtype}")
    return [dy.dense()]


def _prune_grad_cost(op: Op) -> OpCost:
    numel = op.results[0].type.numel
    return OpCost(0, numel, _bytes([v.type for v in op.operands]), op.results[0].type.nbytes)


def _grad_of_prune_grad(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    """The kernel is linear in ``dy`` with the same mask; ``y`` gets nothing."""
    (g,) = grads
    dy, y = op.operands
    return [b.op("grad.prune", g, y) if g is not None and _needs(b, dy) else None, None]


define(OpDef(
    "grad.prune",
    operands=(Operand("dy"), Operand("y")),
    infer=_prune_grad_infer,
    evaluate=lambda op, x, ctx: [prune_gradient(x[0], x[1])],
    category="sparsity",
    cost=_prune_grad_cost,
    grad=_grad_of_prune_grad,
    doc="Backward of nn.prune: dy where the pruned activation y is nonzero, else 0 (the "
        "straight-through estimator of the surviving elements)."))
