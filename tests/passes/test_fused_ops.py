"""Fused op kinds: the same values as their parts, costs that sum the parts'
arithmetic, shape rules that reject bad operands."""

from __future__ import annotations

import numpy as np
import pytest

from dialects.fused import fused_parts
from transcode_ir import (
    Builder,
    Function,
    Interpreter,
    Module,
    PassManager,
    TensorType,
    VerifyError,
    op_cost,
    parse_module,
    verify_module,
)
from transcode_ir.opdefs import OpCost


def unfused() -> Module:
    rng = np.random.default_rng(0)
    m = Module("m")
    m.add_param("w", rng.standard_normal((8, 16)).astype(np.float32))
    m.add_param("b", rng.standard_normal((16,)).astype(np.float32))
    f = m.add_function(Function("forward", [TensorType((2, 4, 6, 8)), TensorType((2, 4, 8, 6)),
                                            TensorType((2, 4, 6, 8)), TensorType((2, 1, 1, 6))],
                                ["q", "kt", "v", "mask"], ["y"]))
    f.set_outputs([f.args[0]], ["y"])
    b = Builder(f)
    s = b.op("tensor.matmul", f.args[0], f.args[1], loc="attention")
    s = b.op("arith.div", s, b.constant(np.float32(np.sqrt(8.0))))
    s = b.op("arith.add", s, f.args[3])
    p = b.op("nn.softmax", s, axis=-1)
    c = b.op("tensor.matmul", p, f.args[2])
    h = b.op("tensor.matmul", c, b.param("w"), loc="dense")
    h = b.op("arith.add", h, b.param("b"))
    h = b.op("nn.gelu", h)
    f.set_outputs([h], ["y"])
    verify_module(m)
    return m


def feeds() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    mask = np.zeros((2, 1, 1, 6), np.float32)
    mask[1, ..., 3:] = -10000.0
    return {"q": rng.standard_normal((2, 4, 6, 8)).astype(np.float32),
            "kt": rng.standard_normal((2, 4, 8, 6)).astype(np.float32),
            "v": rng.standard_normal((2, 4, 6, 8)).astype(np.float32), "mask": mask}


def test_fused_ops_compute_what_their_parts_compute() -> None:
    m = unfused()
    (before,) = Interpreter(m).run("forward", feeds())
    PassManager("fuse").run(m)
    assert [op.name for op in m["forward"] if op.name.startswith("nn.")] == ["nn.attention",
                                                                           "nn.linear"]
    (after,) = Interpreter(m).run("forward", feeds())
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)


def test_fused_cost_is_the_sum_of_the_parts_arithmetic() -> None:
    m = unfused()
    parts = {"attention": OpCost(), "linear": OpCost()}
    for op in m["forward"]:
        if op.name in ("tensor.param", "tensor.constant", "func.return"):
            continue
        key = "linear" if op.name in ("nn.gelu",) or op.loc == "dense" or (
            op.name == "arith.add" and op.operands[1].owner.name == "tensor.param") else "attention"
        parts[key] = parts[key] + op_cost(op)
    PassManager("fuse").run(m)
    attention = next(op for op in m["forward"] if op.name == "nn.attention")
    linear = next(op for op in m["forward"] if op.name == "nn.linear")
    for fused, key in ((attention, "attention"), (linear, "linear")):
        cost = op_cost(fused)
        assert (cost.macs, cost.ops) == (parts[key].macs, parts[key].ops), key
        # A fused job reads its inputs and writes its output once.
        assert cost.bytes_in == sum(v.type.nbytes for v in fused.operands)
        assert cost.bytes_out == fused.results[0].type.nbytes
        assert cost.bytes_in + cost.bytes_out < parts[key].bytes_in + parts[key].bytes_out
        split = fused_parts(fused)
        total = OpCost()
        for _, part in split:
            total = total + part
        assert total == cost
    assert [c for c, _ in fused_parts(attention)] == ["matmul", "softmax"]
    assert [c for c, _ in fused_parts(linear)] == ["matmul", "nonlinear"]


@pytest.mark.parametrize("op_text, message", [
    ("nn.linear(%x, %w, %w) : tensor<2x4xf32>", "linear bias must have shape [4]"),
    ("nn.linear(%x, %x) : tensor<2x4xf32>", "contracting dimensions differ"),
    ("nn.linear(%x, %w) {activation = \"swish\"} : tensor<2x4xf32>", "expected one of"),
    ("nn.attention(%x, %w, %x) : tensor<2x4xf32>", "contracting dimensions differ"),
    ("nn.attention(%x, %w, %w, %x) : tensor<2x4xf32>", "mask [2, 4] does not broadcast"),
])
def test_fused_shape_rules_reject_bad_operands(op_text: str, message: str) -> None:
    text = f"""module @m {{
  func @f(%x: tensor<2x4xf32>, %w: tensor<4x4xf32>) -> (y: tensor<2x4xf32>) {{
    %0 = {op_text}
    func.return(%0)
  }}
}}
"""
    if "mask" in message:
        text = text.replace("%x: tensor<2x4xf32>, %w",
                            "%x: tensor<2x4xf32>, %m: tensor<3x4xf32>, %w")
        text = text.replace("%w, %w, %x)", "%w, %w, %m)")
        message = "mask [3, 4] does not broadcast"
    with pytest.raises(VerifyError, match=message.replace("[", r"\[")):
        verify_module(parse_module(text))
