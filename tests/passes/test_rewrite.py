"""The pattern-rewrite helper: patterns, the rewriter, the greedy driver."""

from __future__ import annotations

import numpy as np
import pytest

from transcode_ir import (
    Builder,
    Function,
    Module,
    Op,
    PatternSet,
    Rewriter,
    TensorType,
    Value,
    apply_patterns,
    verify_module,
)
from transcode_ir.rewrite import (
    Constant,
    Match,
    OpPattern,
    RewriteDidNotConverge,
    Var,
    constant_array,
    is_dead,
    producer,
    splat_value,
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


# --------------------------------------------------------------------------- declarative patterns


def products() -> Module:
    """y = (x * x) + (x * c), c = 2 broadcast over (3,) from shape (1,); z = x * w (w (2, 3))."""
    m = Module("m")
    f = m.add_function(Function("forward", [TensorType((3,))], ["x"], ["y"]))
    b = Builder(f)
    x = f.args[0]
    square = b.op("arith.mul", x, x)
    scaled = b.op("arith.mul", b.constant(np.float32([2.0])), x)
    y = b.op("arith.add", square, scaled)
    z = b.op("arith.mul", x, b.constant(np.ones((2, 3), np.float32)))
    f.set_outputs([y, z], ["y", "z"])
    return m


def test_nested_patterns_bind_names_consistently() -> None:
    x = Var("x")
    seen: list[str] = []
    patterns = PatternSet()
    # a square: the same value twice; x * c matches through commutative=True
    patterns.add(OpPattern("arith.mul", x, x), lambda m: seen.append("square") or None)
    patterns.add(OpPattern("arith.mul", x, Constant(2.0, name="c"), commutative=True),
                 lambda m: seen.append(f"double {m.x.name}") or None)
    patterns.add(OpPattern("arith.add", OpPattern("arith.mul", x, x, name="sq"), Var("rest")),
                 lambda m: seen.append(f"add of {m.sq.name}") or None)
    assert not apply_patterns(products(), patterns)      # every builder declined
    assert seen == ["square", "double x", "add of arith.mul"]


def test_a_replacement_of_another_type_is_declined_and_the_rule_name_is_the_pattern() -> None:
    x = Var("x")
    patterns = PatternSet()
    patterns.add(OpPattern("arith.mul", x, Constant(1.0)), lambda m: m.x)
    assert patterns.patterns[0].name == "arith.mul(x, const(1))"
    m = products()
    # x * ones((2, 3)) broadcasts to (2, 3): replacing it by x would change the type
    assert not apply_patterns(m, patterns)
    assert [op.name for op in m["forward"]].count("arith.mul") == 3


def test_attribute_predicates_use_the_declared_default_and_where_sees_the_match() -> None:
    m = Module("m")
    f = m.add_function(Function("forward", [TensorType((3, 1))], ["x"], ["y"]))
    b = Builder(f)
    y = b.op("tensor.reduce_sum", f.args[0], axes=(1,))          # keepdims defaults to true
    y = b.op("tensor.transpose", y, perm=(1, 0))
    f.set_outputs([y], ["y"])
    x = Var("x")
    patterns = PatternSet()
    patterns.add(OpPattern("tensor.reduce_sum", x, attrs={"keepdims": True, "axes": (1,)}),
                 lambda m: m.x, where=lambda m: m.x.type.shape[1] == 1)

    @patterns.rule(OpPattern("tensor.transpose", x, attrs={"perm": lambda p: len(p) == 2}))
    def reshape_instead(m: Match) -> Value:
        return m.op("tensor.reshape", m.x, shape=m.root.result.type.shape)

    assert apply_patterns(m, patterns)
    assert [op.name for op in m["forward"]] == ["tensor.reshape", "func.return"]
    verify_module(m)


def test_operand_counts_and_ellipsis() -> None:
    with pytest.raises(TypeError, match="operand pattern"):
        OpPattern("arith.add", "x")
    x = Var("x")
    m = products()
    add = next(op for op in m["forward"] if op.name == "arith.add")
    assert not OpPattern("arith.add", x).match_op(add, Match(None, add))   # two operands
    assert OpPattern("arith.add", x, ...).match_op(add, Match(None, add))
