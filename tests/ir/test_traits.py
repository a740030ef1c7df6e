"""Op traits and typed attribute access on op definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from transcode_ir import Builder, Function, Module, TensorType, op_cost
from transcode_ir.opdefs import (
    Commutative,
    Contraction,
    DensityPreserving,
    Pure,
    ZeroPreserving,
    all_opdefs,
    contraction_dims,
    contraction_products,
    get_opdef,
)


def _builder(*arg_shapes: tuple[int, ...], params: dict[str, tuple[int, ...]] | None = None) -> Builder:
    m = Module("t")
    for name, shape in (params or {}).items():
        m.add_param(name, np.zeros(shape, np.float32))
    f = m.add_function(Function("forward", [TensorType(s) for s in arg_shapes],
                                [f"a{i}" for i in range(len(arg_shapes))], ["y"]))
    f.set_outputs([f.args[0]], ["y"])
    return Builder(f)


def _contractions() -> list[tuple[str, object]]:
    """One op of every contraction kind, with shapes that tell B, M, K and N apart."""
    cases = []
    b = _builder((3, 5, 7), (7, 11))
    cases.append(("matmul", b.create("tensor.matmul", b.func.args)))
    b = _builder((3, 5, 7), params={"w": (7, 11), "bias": (11,)})
    cases.append(("linear", b.create("nn.linear", (b.func.args[0], b.param("w"), b.param("bias")),
                                     {"activation": "gelu"})))
    b = _builder((2, 5, 4), (2, 4, 6), (2, 6, 3))
    cases.append(("attention", b.create("nn.attention", b.func.args, {"scale": 0.5})))
    b = _builder((2, 6, 9), params={"w": (4, 3, 3)})
    cases.append(("conv1d", b.create("nn.conv1d", (b.func.args[0], b.param("w")),
                                     {"groups": 2, "stride": 2, "pads": (1, 0)})))
    b = _builder((2, 4, 4), params={"w": (4, 3, 3)})
    cases.append(("conv1d_input", b.create("grad.conv1d_input", (b.func.args[0], b.param("w")),
                                           {"groups": 2, "stride": 2, "pads": (1, 0), "length": 9})))
    b = _builder((2, 4, 4), (2, 6, 9))
    cases.append(("conv1d_weight", b.create("grad.conv1d_weight", b.func.args,
                                            {"groups": 2, "stride": 2, "pads": (1, 0), "kernel": 3})))
    return cases


@pytest.mark.parametrize("name,op", _contractions(), ids=lambda c: c if isinstance(c, str) else "")
def test_contraction_macs_are_the_cost_models_macs(name: str, op) -> None:  # noqa: ANN001
    products = contraction_products(op)
    assert products and contraction_dims(op) == products[0]
    assert sum(math.prod(p) for p in products) == op_cost(op).macs
    lhs, rhs = op.definition.trait(Contraction).loops(op)
    assert set(lhs) >= {"i", "k"} and set(rhs) >= {"k", "j"}


def test_contraction_dims_by_hand() -> None:
    cases = dict(_contractions())
    assert contraction_dims(cases["matmul"]) == (3, 5, 7, 11)
    assert contraction_products(cases["attention"]) == ((2, 5, 4, 6), (2, 5, 6, 3))
    # conv1d: N=2, C=6, L=9, M=4 filters of C/groups=3 x K=3, groups 2, stride 2, pads (1, 0):
    # L_out = (9 + 1 - 3) // 2 + 1 = 4; per group [2*4, 3*3] windows by [9, 4/2] filters.
    assert contraction_dims(cases["conv1d"]) == (2, 8, 9, 2)
    assert contraction_dims(cases["conv1d_input"]) == (2, 8, 2, 9)
    assert contraction_dims(cases["conv1d_weight"]) == (2, 2, 8, 9)
    b = _builder((4,))
    assert contraction_dims(b.create("nn.relu", b.func.args)) is None


def test_traits_declared_where_the_passes_rely_on_them() -> None:
    opdefs = all_opdefs()

    def having(trait: type) -> set[str]:
        return {name for name, d in opdefs.items() if d.has_trait(trait)}

    assert having(Commutative) >= {"arith.add", "arith.mul", "arith.max", "arith.min"}
    assert not having(Commutative) & {"arith.sub", "arith.div", "arith.pow", "arith.less"}
    assert having(ZeroPreserving) >= {"nn.relu", "tensor.transpose"}
    assert "nn.softmax" not in having(ZeroPreserving) and "arith.exp" not in having(ZeroPreserving)
    assert having(DensityPreserving) >= {"tensor.transpose", "tensor.expand"}
    assert {n for n in opdefs if n not in having(Pure)} == {"tensor.assign", "func.return"}
    for name in having(Pure):
        assert not opdefs[name].side_effects


def test_attr_applies_the_declared_default() -> None:
    b = _builder((2, 3))
    plain = b.create("nn.softmax", b.func.args)
    assert "axis" not in plain.attributes and plain.attr("axis") == -1
    explicit = b.create("nn.softmax", b.func.args, {"axis": 0})
    assert explicit.attr("axis") == 0
    assert plain.attr("tile:x") is None                 # an annotation not added yet
    with pytest.raises(KeyError, match="declared: axis"):
        plain.attr("axes")                              # a typo is not a silent None
    assert get_opdef("nn.layer_norm").attributes["epsilon"].default == 1e-5


def test_op_definitions_declare_named_typed_fields() -> None:
    from transcode_ir.opdefs import Attr, OpDef, Operand

    def make(**fields):  # noqa: ANN202, ANN003
        return OpDef("test.op", evaluate=lambda op, x, ctx: x, category="elementwise", **fields)

    with pytest.raises(TypeError, match="Operand"):
        make(operands=("x", "bias?"))                       # no operand mini-syntax
    with pytest.raises(ValueError, match="followed by a required"):
        make(operands=(Operand("bias", optional=True), Operand("x")))
    with pytest.raises(ValueError, match="must be the last"):
        make(operands=(Operand("xs", variadic=True), Operand("y")))
    with pytest.raises(TypeError, match="Attr"):
        make(attributes={"axis": ("int", False, -1)})
    with pytest.raises(ValueError, match="unknown attribute kind"):
        Attr("integer")
    with pytest.raises(ValueError, match="not a valid int"):
        Attr("int", default=1.5)
    opdef = make(operands=(Operand("x"), Operand("bias", optional=True)),
                 attributes={"axis": Attr("int", default=-1), "to": Attr("str")})
    assert (opdef.min_operands, opdef.max_operands, opdef.num_results) == (1, 2, 1)
    assert opdef.attributes["to"].required and not opdef.attributes["axis"].required
    assert opdef.has_trait(Pure) and not opdef.has_trait(Commutative)


def test_named_operands() -> None:
    b = _builder((3, 5, 7), params={"w": (7, 11), "bias": (11,)})
    with_bias = b.create("nn.linear", (b.func.args[0], b.param("w"), b.param("bias")))
    without = b.create("nn.linear", (b.func.args[0], b.param("w")))
    assert with_bias.operand("bias") is with_bias.operands[2]
    assert without.operand("bias") is None and without.operand("x") is b.func.args[0]
    concat = b.create("tensor.concat", (b.func.args[0], b.func.args[0]), {"axis": 0})
    assert concat.operand("inputs") == [b.func.args[0], b.func.args[0]]
    with pytest.raises(KeyError, match="declared: x, weight, bias"):
        without.operand("weights")
