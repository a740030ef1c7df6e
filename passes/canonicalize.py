"""``canonicalize``: local simplifications that put the IR into one normal form.

Patterns (each a :class:`transcode_ir.rewrite.PatternSet` rule):

* commutative ops (add, mul, max, min, equal, and, or) take a constant
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

from transcode_ir.core import Module, Op
from transcode_ir.passes import Pass, option, register_pass
from transcode_ir.rewrite import (
    PatternSet, Rewriter, apply_patterns, constant_array, producer, splat_value,
)

from passes.raise_ops import RAISING_PATTERNS

__all__ = ["CANONICALIZATION_PATTERNS", "CanonicalizePass"]

CANONICALIZATION_PATTERNS = PatternSet()
rule = CANONICALIZATION_PATTERNS.rule

COMMUTATIVE = ("arith.add", "arith.mul", "arith.max", "arith.min", "arith.equal", "arith.and",
               "arith.or")


def _is_constant(op: Op | None) -> bool:
    return op is not None and op.name == "tensor.constant"


@rule(*COMMUTATIVE)
def constant_to_the_right(rw: Rewriter, op: Op) -> bool:
    lhs, rhs = op.operands
    if _is_constant(producer(lhs)) and not _is_constant(producer(rhs)):
        rw.set_operand(op, 0, rhs)
        rw.set_operand(op, 1, lhs)
        return True
    return False


def _keeps_type(op: Op, value_index: int = 0) -> bool:
    return op.results[0].type.dense() == op.operands[value_index].type.dense()


def _forward(rw: Rewriter, op: Op, value_index: int = 0) -> bool:
    """Replace ``op`` by its operand when that keeps the type."""
    if not _keeps_type(op, value_index):
        return False
    rw.replace_op(op, op.operands[value_index])
    return True


@rule("arith.add", "arith.sub")
def add_zero(rw: Rewriter, op: Op) -> bool:
    return splat_value(op.operands[1]) == 0.0 and _forward(rw, op)


@rule("arith.mul", "arith.div", "arith.pow")
def multiply_by_one(rw: Rewriter, op: Op) -> bool:
    return splat_value(op.operands[1]) == 1.0 and _forward(rw, op)


@rule("arith.neg")
def double_negation(rw: Rewriter, op: Op) -> bool:
    inner = producer(op.operands[0], "arith.neg")
    if inner is None:
        return False
    rw.replace_op(op, inner.operands[0])
    return True


@rule("tensor.reshape")
def reshape_to_same_shape(rw: Rewriter, op: Op) -> bool:
    return op.operands[0].type.shape == tuple(op.attributes["shape"]) and _forward(rw, op)


@rule("tensor.reshape")
def reshape_of_reshape(rw: Rewriter, op: Op) -> bool:
    inner = producer(op.operands[0], "tensor.reshape")
    if inner is None:
        return False
    rw.set_operand(op, 0, inner.operands[0])
    return True


@rule("tensor.transpose")
def identity_transpose(rw: Rewriter, op: Op) -> bool:
    perm = tuple(op.attributes["perm"])
    return perm == tuple(range(len(perm))) and _forward(rw, op)


@rule("tensor.transpose")
def transpose_of_transpose(rw: Rewriter, op: Op) -> bool:
    inner = producer(op.operands[0], "tensor.transpose")
    if inner is None:
        return False
    outer_perm, inner_perm = op.attributes["perm"], inner.attributes["perm"]
    composed = tuple(inner_perm[p] for p in outer_perm)
    new = rw.op("tensor.transpose", inner.operands[0], perm=composed)
    rw.replace_op(op, new)
    return True


@rule("arith.cast")
def cast_to_same_type(rw: Rewriter, op: Op) -> bool:
    return op.operands[0].type.dtype == op.attributes["to"] and _forward(rw, op)


@rule("tensor.expand")
def expand_to_same_shape(rw: Rewriter, op: Op) -> bool:
    return _forward(rw, op)


@rule("tensor.slice")
def slice_keeping_everything(rw: Rewriter, op: Op) -> bool:
    steps = op.attributes["steps"]
    return all(s == 1 for s in steps) and _forward(rw, op)


@rule("tensor.concat")
def concat_of_one(rw: Rewriter, op: Op) -> bool:
    return len(op.operands) == 1 and _forward(rw, op)


@rule("tensor.reduce_sum", "tensor.reduce_mean", "tensor.reduce_max")
def reduce_over_unit_axes(rw: Rewriter, op: Op) -> bool:
    """A reduction over axes of size 1 with keepdims is the identity."""
    x = op.operands[0]
    axes = op.attributes["axes"]
    if axes and all(x.type.shape[a] == 1 for a in axes) and op.attributes.get("keepdims", True):
        return _forward(rw, op)
    return False


@rule("arith.select")
def select_on_constant_condition(rw: Rewriter, op: Op) -> bool:
    cond = constant_array(op.operands[0])
    if cond is None or cond.size == 0 or not (cond.all() or not cond.any()):
        return False
    return _forward(rw, op, 1 if cond.all() else 2)


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
