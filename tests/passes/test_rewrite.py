"""The pattern-rewrite helper: patterns, the rewriter, the greedy driver."""

from __future__ import annotations

import numpy as np
import pytest

from transcode_ir import (
    Builder, Function, Module, Op, PatternSet, Rewriter, TensorType, apply_patterns, verify_module,
)
from transcode_ir.rewrite import (
    RewriteDidNotConverge, constant_array, is_dead, producer, splat_value,
)


def chain() -> Module:
    m = Module("m")
    f = m.add_function(Function("forward", [TensorType((3,))], ["x"], ["y"]))
    f.set_outputs([f.args[0]], ["y"])
    b = Builder(f)
    y = b.op("arith.neg", f.args[0])
    y = b.op("arith.neg", y)
    y = b.op("arith.exp", y)
    b.op("arith.sin", y)                    # dead
    f.set_outputs([y], ["y"])
    return m


def test_helpers() -> None:
    m = chain()
    b = Builder(m["forward"])
    c = b.constant(np.full((2, 2), 3.0, np.float32))
    d = b.constant(np.array([1.0, 2.0], np.float32))
    assert splat_value(c) == 3.0 and splat_value(d) is None
    assert constant_array(d).tolist() == [1.0, 2.0]
    assert producer(c, "tensor.constant") is c.owner and producer(c, "arith.add") is None
    assert producer(m["forward"].args[0]) is None
    sin = next(op for op in m["forward"] if op.name == "arith.sin")
    assert is_dead(sin) and not is_dead(m["forward"].return_op)


def test_greedy_driver_reaches_a_fixpoint_and_erases_dead_ops() -> None:
    patterns = PatternSet()
    fired: list[str] = []

    @patterns.rule("arith.neg")
    def double_negation(rw: Rewriter, op: Op) -> bool:
        inner = producer(op.operands[0], "arith.neg")
        if inner is None:
            return False
        fired.append(op.name)
        rw.replace_op(op, inner.operands[0])
        return True

    m = chain()
    assert apply_patterns(m, patterns)
    assert [op.name for op in m["forward"]] == ["arith.exp", "func.return"]
    assert fired == ["arith.neg"]
    verify_module(m)
    assert not apply_patterns(m, patterns)       # nothing left to do


def test_rewriter_creates_before_the_matched_op_and_tracks_changes() -> None:
    patterns = PatternSet()

    @patterns.rule("arith.exp")
    def exp_to_mul(rw: Rewriter, op: Op) -> bool:
        x = op.operands[0]
        # exp(x) -> x * 2 (nonsense, but visible)
        rw.replace_op(op, rw.op("arith.mul", x, rw.constant(np.float32(2.0))))
        return True

    m = chain()
    assert apply_patterns(m, patterns, erase_dead=False)
    names = [op.name for op in m["forward"]]
    assert names == ["arith.neg", "arith.neg", "tensor.constant", "arith.mul", "arith.sin",
                     "func.return"]
    verify_module(m)


def test_pattern_sets_combine_and_index_by_name() -> None:
    a, b = PatternSet(), PatternSet()
    a.add("arith.add", lambda rw, op: False, name="first")
    b.add(("arith.add", "arith.mul"), lambda rw, op: False, name="second")
    b.add((), lambda rw, op: False, name="any")
    both = a + b
    assert len(both) == 3
    assert [p.name for p in both.for_op("arith.add")] == ["first", "second", "any"]
    assert [p.name for p in both.for_op("arith.exp")] == ["any"]


def test_patterns_that_undo_each_other_are_caught() -> None:
    patterns = PatternSet()

    @patterns.rule("arith.exp")
    def flip(rw: Rewriter, op: Op) -> bool:
        rw.set_attr(op, "_flip", not op.attributes.get("_flip", False))
        return True

    with pytest.raises(RewriteDidNotConverge, match="did not converge .*flip"):
        apply_patterns(chain(), patterns)


def test_replace_op_checks_types() -> None:
    patterns = PatternSet()

    @patterns.rule("arith.exp")
    def bad(rw: Rewriter, op: Op) -> bool:
        rw.replace_op(op, rw.constant(np.zeros((5,), np.float32)))
        return True

    with pytest.raises(ValueError, match="by a value of type"):
        apply_patterns(chain(), patterns)
