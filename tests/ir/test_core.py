"""Core IR: building, use-lists, printing, parsing, verifying, interpreting."""

from __future__ import annotations

import numpy as np
import pytest

from transcode_ir import (
    Builder,
    Function,
    Module,
    ParseError,
    TensorType,
    VerifyError,
    parse_module,
    print_module,
    run_function,
    verify_module,
)
from transcode_ir.types import SparsityEncoding


def small_module() -> Module:
    rng = np.random.default_rng(0)
    m = Module("tiny")
    m.add_param("w", rng.standard_normal((4, 3)).astype(np.float32))
    m.add_param("gamma", rng.standard_normal((3,)).astype(np.float32))
    f = m.add_function(Function("forward", [TensorType((2, 4))], ["x"], ["y"]))
    f.set_outputs([f.args[0]], ["y"])
    b = Builder(f)
    y = b.op("tensor.matmul", f.args[0], b.param("w"), loc="layer.0.dense")
    y = b.op("nn.gelu", y)
    y = b.op("nn.layer_norm", y, b.param("gamma"), epsilon=1e-12)
    y = b.op("nn.softmax", y, axis=-1)
    f.set_outputs([y], ["y"])
    return m


def test_print_parse_print_is_identical():
    m = small_module()
    verify_module(m)
    text = print_module(m)
    again = parse_module(text, params={k: p.data for k, p in m.params.items()})
    assert print_module(again) == text
    verify_module(again)


def test_interpreter_matches_numpy():
    m = small_module()
    x = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    (y,) = run_function(m, "forward", {"x": x})
    h = x @ m.params["w"].data
    from math import erf
    h = h * 0.5 * (1 + np.vectorize(erf)(h / np.sqrt(2)))
    mu, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
    h = (h - mu) / np.sqrt(var + 1e-12) * m.params["gamma"].data
    e = np.exp(h - h.max(-1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_use_lists_and_replace_all_uses():
    m = small_module()
    f = m["forward"]
    matmul = next(op for op in f if op.name == "tensor.matmul")
    gelu = matmul.result.users[0]
    assert gelu.name == "nn.gelu"
    # Replace gelu by its input: the layer norm now reads the matmul directly.
    gelu.result.replace_all_uses_with(matmul.result)
    assert not gelu.result.uses
    gelu.erase()
    assert [op.name for op in f][:4] == ["tensor.param", "tensor.matmul", "tensor.param", "nn.layer_norm"]
    verify_module(m)


def test_erase_with_uses_is_refused():
    m = small_module()
    matmul = next(op for op in m["forward"] if op.name == "tensor.matmul")
    with pytest.raises(ValueError, match="still has"):
        matmul.erase()


def test_sparsity_encoding_prints_and_parses():
    t = TensorType((2, 3), "f32", SparsityEncoding(0.25, "measured"))
    m = Module("enc")
    f = m.add_function(Function("forward", [t], ["x"], ["y"]))
    f.set_outputs([f.args[0]], ["y"])
    text = print_module(m)
    assert "#sparse<0.25, measured>" in text
    assert print_module(parse_module(text)) == text


def test_verifier_names_op_and_position():
    text = """module @m {
  func @forward(%x: tensor<2x4xf32>, %w: tensor<5x3xf32>) -> (y: tensor<2x3xf32>) {
    %0 = tensor.matmul(%x, %w) : tensor<2x3xf32> loc("encoder.layer.0.attention.self.query")
    func.return(%0)
  }
}
"""
    m = parse_module(text)
    with pytest.raises(VerifyError) as err:
        verify_module(m)
    msg = str(err.value)
    assert "op #0 'tensor.matmul'" in msg and "encoder.layer.0.attention.self.query" in msg
    assert "contracting dimensions differ" in msg


def test_verifier_rejects_wrong_declared_type():
    text = """module @m {
  func @f(%x: tensor<2x4xf32>) -> (y: tensor<2x5xf32>) {
    %0 = nn.relu(%x) : tensor<2x5xf32>
    func.return(%0)
  }
}
"""
    with pytest.raises(VerifyError, match="differ from the shape rule"):
        verify_module(parse_module(text))


def test_unknown_attribute_and_unknown_op():
    bad_attr = """module @m {
  func @f(%x: tensor<2x4xf32>) -> (y: tensor<2x4xf32>) {
    %0 = nn.softmax(%x) {axes = 1} : tensor<2x4xf32>
    func.return(%0)
  }
}
"""
    with pytest.raises(VerifyError, match="unknown attribute 'axes'"):
        verify_module(parse_module(bad_attr))
    bad_op = bad_attr.replace("nn.softmax(%x) {axes = 1}", "nn.frobnicate(%x)")
    with pytest.raises(VerifyError, match="unknown op"):
        verify_module(parse_module(bad_op))


@pytest.mark.parametrize("text, where, what", [
    ("module @m {\n  func @f(%x: tensor<2xf32>) -> (y: tensor<2xf32>) {\n    func.return(%z)\n  }\n}\n",
     "3:17", "undefined value %z"),
    ("module @m {\n  func @f(%x: tensor<2xf32>) -> (y: tensor<2xf32>) {\n    %0 = arith.neg(%x) : tensor<2xq7>\n    func.return(%0)\n  }\n}\n",
     "3:26", "unknown element type"),
    ("module @m {\n  func @f(%x: tensor<2xf32>) -> (y: tensor<2xf32>) {\n    %0 = arith.neg(%x) : \n  }\n}\n",
     "4:3", "expected a type"),
    ("module @m {\n  param @w : tensor<2xf32>\n  param @w : tensor<2xf32>\n}\n", "3:9", "declared twice"),
])
def test_parse_errors_have_location_and_caret(text, where, what):
    with pytest.raises(ParseError) as err:
        parse_module(text, "in.tir")
    msg = str(err.value)
    assert f"in.tir:{where}" in msg, msg
    assert what in msg
    assert "^" in msg


def test_dense_and_special_floats_round_trip():
    m = Module("c")
    f = m.add_function(Function("forward", [], [], []))
    f.set_outputs([], [])
    b = Builder(f)
    c1 = b.constant(np.array([[np.inf, -np.inf], [0.1, -3e-20]], np.float32))
    c2 = b.constant(np.array([1, -2, 3], np.int64))
    c3 = b.constant(np.array(True))
    f.set_outputs([c1, c2, c3], ["a", "b", "c"])
    text = print_module(m)
    m2 = parse_module(text)
    assert print_module(m2) == text
    outs = run_function(m2, "forward", {})
    np.testing.assert_array_equal(outs[0], np.array([[np.inf, -np.inf], [0.1, -3e-20]], np.float32))
    assert outs[1].dtype == np.int64 and outs[2].dtype == np.bool_
