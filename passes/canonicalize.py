"""``canonicalize``: local simplifications that put the IR into one normal form.

Patterns (each a :class:`transcode_ir.rewrite.PatternSet` rule):

* ops with the Commutative trait (add, mul, max, min, equal, and, or) take a constant
  operand on the right;
* identities: ``x + 0``, ``x - 0``, ``x * 1``, ``x / 1``, ``x ** 1``, ``--x``
  become ``x`` -- when the result has ``x``'s type (a broadcasting constant
  that enlarges or retypes the result is kept);
* views and data movement: reshape of reshape becomes one reshape; a
  reshape to the operand's shape, a transpose by the identity permutation,
  a cast to the same element type, an expand to the same shape, a slice that
  keeps everything and a one-operand concat disappear; transpose of
  transpose becomes one transpose;
* with ``raise-ops`` (the default), the exporters' decomposed GELU and layer
  norm are raised to ``nn.gelu`` and ``nn.layer_norm``
  (:mod:`passes.raise_ops`).

Arithmetic on constants only is left to ``fold-constants``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from passes.raise_ops import RAISING_PATTERNS
from transcode_ir.core import Module, Value
from transcode_ir.opdefs import Commutative
from transcode_ir.passes import Pass, option, register_pass
from transcode_ir.rewrite import (
    Constant,
    Match,
    OpPattern,
    PatternSet,
    Var,
    apply_patterns,
    producer,
)

__all__ = ["CANONICALIZATION_PATTERNS", "CanonicalizePass"]

def _is_constant(value: Value) -> bool:
    return producer(value, "tensor.constant") is not None


def _composed(m: Match) -> Value:
    """transpose(transpose(x, inner), outer) as one transpose of x."""
    inner, outer = m.inner.attributes["perm"], m.root.attributes["perm"]
    return m.op("tensor.transpose", m.x, perm=tuple(inner[p] for p in outer))


def _uniform(array: np.ndarray) -> bool:
    return array.size > 0 and bool(array.all() or not array.any())


def _unit_axes(m: Match) -> bool:
    axes = m.root.attributes["axes"]
    return bool(axes) and all(m.x.type.shape[a] == 1 for a in axes)


x, y, z = Var("x"), Var("y"), Var("z")
non_constant = Var("y", where=lambda v: not _is_constant(v))
identity_perm = {"perm": lambda perm: tuple(perm) == tuple(range(len(perm)))}

#: The canonicalisation rules, tried in this order.  A rule whose replacement is an
#: existing value of another type (a broadcasting constant that enlarges or retypes the
#: result) does not apply.
CANONICALIZATION_PATTERNS = PatternSet()
rule = CANONICALIZATION_PATTERNS.add
rule(OpPattern(None, Constant(name="c"), non_constant, trait=Commutative),
     lambda m: m.set_operands(m.y, m.c), "constant_to_the_right")
rule(OpPattern(("arith.add", "arith.sub"), x, Constant(0.0)), lambda m: m.x, "add_zero")
rule(OpPattern(("arith.mul", "arith.div", "arith.pow"), x, Constant(1.0)), lambda m: m.x,
     "multiply_by_one")
rule(OpPattern("arith.neg", OpPattern("arith.neg", x)), lambda m: m.x, "double_negation")
rule(OpPattern("tensor.reshape", x), lambda m: m.x, "reshape_to_same_shape",
     where=lambda m: m.x.type.shape == tuple(m.root.attributes["shape"]))
rule(OpPattern("tensor.reshape", OpPattern("tensor.reshape", x)), lambda m: m.set_operands(m.x),
     "reshape_of_reshape")
rule(OpPattern("tensor.transpose", x, attrs=identity_perm), lambda m: m.x, "identity_transpose")
rule(OpPattern("tensor.transpose", OpPattern("tensor.transpose", x, name="inner")), _composed,
     "transpose_of_transpose")
rule(OpPattern("arith.cast", x), lambda m: m.x, "cast_to_same_type",
     where=lambda m: m.x.type.dtype == m.root.attributes["to"])
rule(OpPattern("tensor.expand", x), lambda m: m.x, "expand_to_same_shape")
rule(OpPattern("tensor.slice", x, attrs={"steps": lambda steps: all(s == 1 for s in steps)}),
     lambda m: m.x, "slice_keeping_everything")
rule(OpPattern("tensor.concat", x), lambda m: m.x, "concat_of_one")
# a reduction over axes of size 1 with keepdims is the identity
rule(OpPattern(("tensor.reduce_sum", "tensor.reduce_mean", "tensor.reduce_max"), x,
               attrs={"keepdims": bool}), lambda m: m.x, "reduce_over_unit_axes", where=_unit_axes)
rule(OpPattern("arith.select", Constant(name="c"), y, z),
     lambda m: m.y if m.array("c").all() else m.z, "select_on_constant_condition",
     where=lambda m: _uniform(m.array("c")))
del rule


@register_pass
@dataclass(frozen=True)
class CanonicalizePass(Pass):
    """Simplify algebraic identities and views; raise decomposed GELU and layer norm.

    Requires: verified IR.  Guarantees: the same values are computed (up to
    the float rounding of raised GELU/layer norm, which compute in float64);
    no pattern of the list in :mod:`passes.canonicalize` matches any more;
    ops left dead by a rewrite are erased.
    """

    name: ClassVar[str] = "canonicalize"
    raise_ops: bool = option(True, "also raise decomposed GELU and layer norm to single ops")

    def apply(self, module: Module) -> bool:
        patterns = CANONICALIZATION_PATTERNS + RAISING_PATTERNS if self.raise_ops \
            else CANONICALIZATION_PATTERNS
        return apply_patterns(module, patterns)
