"""``raise-ops``: recognise decomposed GELU and layer norm and raise them to
single ops, so both ONNX exporters' output of one model canonicalises alike.

GELU (the TorchScript exporter writes ``x * (erf(x / 1.4142135) + 1) * 0.5``;
other association orders and ``x * 0.70710678`` for the division occur too)::

    a product whose factors, through single-use multiplications, are exactly
    x, 0.5 and (1 + erf(x / sqrt 2))        ->  nn.gelu(x)

Layer norm (exporters before opset 17 decompose it)::

    m = reduce_mean(x, axes)     d = x - m
    v = reduce_mean(d ** 2 | d * d, axes)
    y = d / sqrt(v + eps) * scale [+ bias]  ->  nn.layer_norm(x, scale, bias) {axis, epsilon}

over trailing axes with ``keepdims``; every intermediate must have no other
use.  A bias added after an ``nn.layer_norm`` without one is folded into it.
The raised ops compute in float64 and round once, so results can differ
from the decomposition in the last float32 bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from transcode_ir.core import Module, Op, Value
from transcode_ir.passes import Pass, register_pass
from transcode_ir.rewrite import (
    PatternSet, Rewriter, apply_patterns, has_one_use, producer, splat_value,
)

__all__ = ["RAISING_PATTERNS", "RaiseOpsPass"]

RAISING_PATTERNS = PatternSet()
rule = RAISING_PATTERNS.rule

_FLOATS = ("f16", "f32", "f64")


def _close(value: float | None, target: float, rel: float = 1e-4) -> bool:
    return value is not None and math.isclose(value, target, rel_tol=rel)


def _scalar_constant(v: Value, target: float, rel: float = 1e-4) -> bool:
    return v.type.numel == 1 and _close(splat_value(v), target, rel)


def _product_factors(root: Op, limit: int = 4) -> list[Value] | None:
    """The leaves of the single-use multiplication tree under ``root``."""
    leaves: list[Value] = []
    stack = list(reversed(root.operands))
    while stack:
        v = stack.pop()
        inner = producer(v, "arith.mul")
        if inner is not None and has_one_use(v):
            stack.extend(reversed(inner.operands))
        else:
            leaves.append(v)
        if len(leaves) > limit:
            return None
    return leaves


def _erf_argument(v: Value) -> Value | None:
    """``x`` when ``v`` is ``1 + erf(x / sqrt 2)`` (either operand order) made
    of single-use ops."""
    add = producer(v, "arith.add")
    if add is None or not has_one_use(v):
        return None
    for erf_side, one_side in ((0, 1), (1, 0)):
        erf = producer(add.operands[erf_side], "arith.erf")
        if erf is None or not has_one_use(erf.result) or \
                not _scalar_constant(add.operands[one_side], 1.0, 1e-7):
            continue
        scaled = erf.operands[0]
        inner = producer(scaled, ("arith.div", "arith.mul"))
        if inner is None or not has_one_use(scaled):
            continue
        factor = math.sqrt(2.0) if inner.name == "arith.div" else 1.0 / math.sqrt(2.0)
        for x_side in ((0,) if inner.name == "arith.div" else (0, 1)):
            if _scalar_constant(inner.operands[1 - x_side], factor):
                return inner.operands[x_side]
    return None


@rule("arith.mul")
def raise_gelu(rw: Rewriter, op: Op) -> bool:
    if op.result.type.dtype not in _FLOATS:
        return False
    leaves = _product_factors(op, 3)
    if leaves is None or len(leaves) != 3:
        return False
    halves = [i for i, v in enumerate(leaves) if _scalar_constant(v, 0.5, 1e-7)]
    for h in halves:
        rest = [v for i, v in enumerate(leaves) if i != h]
        for cdf_index in (0, 1):
            x = _erf_argument(rest[cdf_index])
            if x is not None and x is rest[1 - cdf_index] and \
                    x.type.dense() == op.result.type.dense():
                rw.replace_op(op, rw.op("nn.gelu", x))
                return True
    return False


def _trailing_axes(op: Op) -> int | None:
    """The first axis when ``op`` reduces the trailing axes with keepdims."""
    rank = op.operands[0].type.rank
    axes = sorted(a % rank for a in op.attributes["axes"])
    if not axes or not op.attributes.get("keepdims", True) or axes != list(range(axes[0], rank)):
        return None
    return axes[0]


def _match_normalized(v: Value) -> tuple[Value, int, float] | None:
    """(x, axis, epsilon) when ``v`` is ``(x - mean) / sqrt(var + eps)``."""
    div = producer(v, "arith.div")
    if div is None or not has_one_use(v):
        return None
    centered, denominator = div.operands
    sub = producer(centered, "arith.sub")
    sqrt = producer(denominator, "arith.sqrt")
    if sub is None or sqrt is None or not has_one_use(denominator):
        return None
    add = producer(sqrt.operands[0], "arith.add")
    if add is None or not has_one_use(add.result):
        return None
    var_value, eps_value = add.operands
    if producer(var_value, "tensor.reduce_mean") is None:
        var_value, eps_value = eps_value, var_value
    var = producer(var_value, "tensor.reduce_mean")
    eps = splat_value(eps_value)
    if var is None or eps is None or eps_value.type.numel != 1 or not has_one_use(var_value):
        return None
    square = producer(var.operands[0], ("arith.pow", "arith.mul"))
    if square is None or not has_one_use(var.operands[0]):
        return None
    if square.name == "arith.pow":
        if square.operands[0] is not centered or \
                not _scalar_constant(square.operands[1], 2.0, 1e-9):
            return None
    elif not (square.operands[0] is centered and square.operands[1] is centered):
        return None
    if any(use.op is not square and use.op is not div for use in centered.uses):
        return None
    x, mean_value = sub.operands
    mean = producer(mean_value, "tensor.reduce_mean")
    if mean is None or mean.operands[0] is not x or not has_one_use(mean_value):
        return None
    axis = _trailing_axes(mean)
    if axis is None or _trailing_axes(var) != axis or x.type.dtype not in _FLOATS:
        return None
    if centered.type.dense() != x.type.dense() or v.type.dense() != x.type.dense():
        return None
    return x, axis, eps


def _fits_normalized(param: Value, x: Value, axis: int) -> bool:
    normalized = x.type.shape[axis:]
    if param.type.dtype != x.type.dtype or param.type.rank > len(normalized):
        return False
    try:
        return np.broadcast_shapes(param.type.shape, normalized) == tuple(normalized)
    except ValueError:
        return False


@rule("arith.mul")
def raise_layer_norm(rw: Rewriter, op: Op) -> bool:
    for n_side in (0, 1):
        match = _match_normalized(op.operands[n_side])
        if match is None:
            continue
        x, axis, eps = match
        scale = op.operands[1 - n_side]
        if not _fits_normalized(scale, x, axis) or op.result.type.dense() != x.type.dense():
            return False
        rw.replace_op(op, rw.op("nn.layer_norm", x, scale, axis=axis - x.type.rank, epsilon=eps))
        return True
    return False


@rule("arith.add")
def fold_bias_into_layer_norm(rw: Rewriter, op: Op) -> bool:
    for ln_side in (0, 1):
        ln = producer(op.operands[ln_side], "nn.layer_norm")
        if ln is None or len(ln.operands) != 2 or not has_one_use(ln.result):
            continue
        bias = op.operands[1 - ln_side]
        x = ln.operands[0]
        axis = ln.attributes.get("axis", -1) % x.type.rank
        if not _fits_normalized(bias, x, axis) or op.result.type.dense() != x.type.dense():
            return False
        rw.replace_op(op, rw.op("nn.layer_norm", x, ln.operands[1], bias,
                                axis=ln.attributes.get("axis", -1),
                                epsilon=ln.attributes.get("epsilon", 1e-5)))
        return True
    return False


@register_pass
@dataclass(frozen=True)
class RaiseOpsPass(Pass):
    """Raise decomposed GELU and layer norm to nn.gelu and nn.layer_norm.

    Requires: verified IR.  Guarantees: every decomposition matched by the
    patterns in :mod:`passes.raise_ops` is one op; values are unchanged up to
    float rounding.  (``canonicalize`` runs these patterns too.)
    """

    name: ClassVar[str] = "raise-ops"

    def apply(self, module: Module) -> bool:
        return apply_patterns(module, RAISING_PATTERNS)
