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
    Constant,
    Match,
    OneOf,
    OpPattern,
    PatternSet,
    Var,
    apply_patterns,
)

__all__ = ["RAISING_PATTERNS", "RaiseOpsPass"]

_FLOATS = ("f16", "f32", "f64")

x = Var("x")


def _scalar(value: float, rel_tol: float = 1e-4) -> Constant:
    """A one-element constant close to ``value``."""
    return Constant(value, scalar=True, rel_tol=rel_tol)


def _mul(*operands: object, **options: object) -> OpPattern:
    return OpPattern("arith.mul", *operands, commutative=True, **options)


# --------------------------------------------------------------------------- GELU

#: 1 + erf(x / sqrt 2) (or erf(x * 0.70710678)), every intermediate used once.
_CDF = OpPattern("arith.add", OpPattern("arith.erf", OneOf(
    OpPattern("arith.div", x, _scalar(math.sqrt(2.0)), one_use=True),
    _mul(x, _scalar(1.0 / math.sqrt(2.0)), one_use=True)), one_use=True),
    _scalar(1.0, 1e-7), commutative=True, one_use=True)
_HALF = _scalar(0.5, 1e-7)


def _gelu(m: Match) -> Value:
    return m.op("nn.gelu", m.x)


def _gelu_applies(m: Match) -> bool:
    return m.root.result.type.dtype in _FLOATS and m.x.type.dense() == m.root.result.type.dense()


RAISING_PATTERNS = PatternSet()
rule = RAISING_PATTERNS.add
# x * cdf * 0.5 in each association order (each product may have its operands either way)
rule(_mul(_mul(x, _CDF, one_use=True), _HALF), _gelu, "raise_gelu", where=_gelu_applies)
rule(_mul(_mul(x, _HALF, one_use=True), _CDF), _gelu, "raise_gelu", where=_gelu_applies)
rule(_mul(_mul(_CDF, _HALF, one_use=True), x), _gelu, "raise_gelu", where=_gelu_applies)


# --------------------------------------------------------------------------- layer norm

_CENTERED = OpPattern("arith.sub", x, OpPattern("tensor.reduce_mean", x, one_use=True,
                                                name="mean"), name="centered")
_SQUARE = OneOf(OpPattern("arith.pow", _CENTERED, _scalar(2.0, 1e-9), one_use=True, name="square"),
                OpPattern("arith.mul", _CENTERED, _CENTERED, one_use=True, name="square"))
_VARIANCE = OpPattern("tensor.reduce_mean", _SQUARE, one_use=True, name="variance")
_NORMALIZED = OpPattern("arith.div", _CENTERED, OpPattern("arith.sqrt", OpPattern(
    "arith.add", _VARIANCE, Constant(name="epsilon", scalar=True), commutative=True,
    one_use=True), one_use=True), one_use=True, name="normalized")


def _trailing_axes(op: Op) -> int | None:
    """The first axis when ``op`` reduces the trailing axes with keepdims."""
    rank = op.operands[0].type.rank
    axes = sorted(a % rank for a in op.attributes["axes"])
    if not axes or not op.attr("keepdims") or axes != list(range(axes[0], rank)):
        return None
    return axes[0]


def _fits_normalized(param: Value, x: Value, axis: int) -> bool:
    normalized = x.type.shape[axis:]
    if param.type.dtype != x.type.dtype or param.type.rank > len(normalized):
        return False
    try:
        return np.broadcast_shapes(param.type.shape, normalized) == tuple(normalized)
    except ValueError:
        return False


def _layer_norm_applies(m: Match) -> bool:
    """(x - mean) / sqrt(var + eps) * scale over the same trailing axes, the centred value
    read only by the square and the division, types and the scale's shape fitting."""
    x, dense = m.x, m.x.type.dense()
    axis = _trailing_axes(m.mean)
    centered = m.centered.result
    return (axis is not None and _trailing_axes(m.variance) == axis
            and x.type.dtype in _FLOATS
            and all(use.op is m.square or use.op is m.normalized for use in centered.uses)
            and centered.type.dense() == dense and m.normalized.result.type.dense() == dense
            and _fits_normalized(m.scale, x, axis) and m.root.result.type.dense() == dense)


rule(_mul(_NORMALIZED, Var("scale")),
     lambda m: m.op("nn.layer_norm", m.x, m.scale, axis=_trailing_axes(m.mean) - m.x.type.rank,
                    epsilon=float(m.array("epsilon").reshape(-1)[0])),
     "raise_layer_norm", where=_layer_norm_applies)


def _bias_fits(m: Match) -> bool:
    axis = m.ln.attr("axis") % m.x.type.rank
    return _fits_normalized(m.bias, m.x, axis) and m.root.result.type.dense() == m.x.type.dense()


# A bias added after a layer norm without one is folded into it.
rule(OpPattern("arith.add", OpPattern("nn.layer_norm", x, Var("scale"), one_use=True, name="ln"),
               Var("bias"), commutative=True),
     lambda m: m.op("nn.layer_norm", m.x, m.scale, m.bias, axis=m.ln.attr("axis"),
                    epsilon=m.ln.attr("epsilon")),
     "fold_bias_into_layer_norm", where=_bias_fits)
del rule


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
