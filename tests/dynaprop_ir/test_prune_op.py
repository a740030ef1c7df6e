"""The prune ops of :mod:`dialects.sparsity`: numpy semantics, interpreter, text
form, verifier, costs, gradient rule, and ONNX export run by onnxruntime (bit-exact)."""

from __future__ import annotations

import numpy as np
import pytest

from dialects.sparsity import prune, prune_gradient
from transcode_ir import (
    Builder,
    Function,
    Module,
    VerifyError,
    op_cost,
    parse_module,
    print_module,
    run_function,
    verify_module,
)
from transcode_ir.opdefs import OpCost, get_opdef
from transcode_ir.types import SparsityEncoding, TensorType

SPECIAL = np.array([0.0, -0.0, 0.01, -0.01, 0.0100001, -0.0099999, 1.5, -2.0,
                    np.nan, np.inf, -np.inf], dtype=np.float64)


def reference(x: np.ndarray, tau: float) -> np.ndarray:
    """|x| <= tau -> 0, compared in x's own precision; NaN kept."""
    t = np.asarray(tau, dtype=x.dtype)
    out = x.copy()
    with np.errstate(invalid="ignore"):
        out[np.abs(x) <= t] = 0
    return out


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("tau", [0.0, 0.01, 0.5])
def test_numpy_semantics(dtype: type, tau: float) -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([SPECIAL, rng.normal(scale=0.05, size=200)]).astype(dtype)
    y = prune(x, tau)
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y, reference(x, tau))
    assert np.isnan(y[np.isnan(x)]).all(), "NaN is never pruned"
    kept = (y != 0) & ~np.isnan(x)
    assert (np.abs(x[kept]) > np.asarray(tau, dtype)).all()
    np.testing.assert_array_equal(y[kept], x[kept])       # survivors bit for bit


def test_threshold_is_compared_in_the_tensor_precision() -> None:
    # float32(0.1) is slightly above 0.1; with tau rounded to float32 too, it is pruned, as
    # torch.nn.functional.hardshrink does for a float32 tensor.
    x = np.array([0.1, 0.2], dtype=np.float32)
    np.testing.assert_array_equal(prune(x, 0.1), np.array([0.0, 0.2], dtype=np.float32))


def test_prune_gradient_passes_where_the_value_survived() -> None:
    y = np.array([0.0, 2.0, -0.0, np.nan, -3.0], dtype=np.float32)
    dy = np.arange(1, 6, dtype=np.float32)
    np.testing.assert_array_equal(prune_gradient(dy, y), [0.0, 2.0, 0.0, 4.0, 5.0])


def _prune_module(tau: float = 0.01, shape: tuple[int, ...] = (3, 40)) -> Module:
    t = f"tensor<{'x'.join(map(str, shape))}xf32"
    point = "encoder.layer.0.attention.self.query"
    return parse_module(f"""module @m {{
  func @forward(%x: {t}>, %g: {t}>) -> (y: {t}, #sparse<0.25, measured>>, dx: {t}>) {{
    %0 = nn.prune(%x) {{point = "{point}", tau = {tau!r}}} : {t}, #sparse<0.25, measured>> loc("{point}")
    %1 = grad.prune(%g, %0) : {t}>
    func.return(%0, %1)
  }}
}}
""")


def _inputs(shape: tuple[int, ...] = (3, 40)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.normal(scale=0.02, size=shape).astype(np.float32)
    x.reshape(-1)[: len(SPECIAL)] = SPECIAL.astype(np.float32)
    return {"x": x, "g": rng.normal(size=shape).astype(np.float32)}


def test_interpreter_runs_the_definition() -> None:
    module = _prune_module()
    verify_module(module)
    inputs = _inputs()
    y, dx = run_function(module, "forward", inputs)
    np.testing.assert_array_equal(y, reference(inputs["x"], 0.01))
    np.testing.assert_array_equal(dx, np.where(y == 0, 0, inputs["g"]).astype(np.float32))


def test_text_form_round_trips_with_the_encoding() -> None:
    module = _prune_module()
    text = print_module(module)
    assert 'nn.prune(%x) {point = "encoder.layer.0.attention.self.query", tau = 0.01} : ' \
           "tensor<3x40xf32, #sparse<0.25, measured>>" in text
    assert print_module(parse_module(text)) == text
    result = module["forward"].outputs[0]
    assert result.type.encoding == SparsityEncoding(0.25, "measured")
    assert result.type.density == 0.25


def test_definition_category_cost_and_doc() -> None:
    opdef = get_opdef("nn.prune")
    assert opdef.category == "sparsity" and get_opdef("grad.prune").category == "sparsity"
    assert "tau" in opdef.doc
    module = _prune_module(shape=(4, 8))
    prune_op, grad_op = module["forward"].ops[:2]
    # One comparison per element; bytes of the dense operand in and the result out.
    assert op_cost(prune_op) == OpCost(0, 32, 32 * 4, 32 * 4)
    assert op_cost(grad_op) == OpCost(0, 32, 2 * 32 * 4, 32 * 4)


@pytest.mark.parametrize("text, message", [
    ('nn.prune(%x) {tau = -1.0} : tensor<4xf32>', "tau must be a finite number >= 0"),
    ('nn.prune(%x) {tau = inf} : tensor<4xf32>', "tau must be a finite number >= 0"),
    ('nn.prune(%x) : tensor<4xf32>', "missing required attribute 'tau'"),
    ('nn.prune(%x) {tau = 0.1, role = "weights"} : tensor<4xf32>', "attribute 'role'"),
    ('nn.prune(%x) {tau = 0.1} : tensor<5xf32>', "differ from the shape rule"),
    ('nn.prune(%i) {tau = 0.1} : tensor<4xi64>', "prunes floating-point tensors"),
])
def test_verifier_rejects(text: str, message: str) -> None:
    module = parse_module(f"""module @m {{
  func @forward(%x: tensor<4xf32>, %i: tensor<4xi64>) -> (y: tensor<4xf32>) {{
    %0 = {text}
    func.return(%x)
  }}
}}
""")
    with pytest.raises(VerifyError, match=message):
        verify_module(module)


@pytest.mark.parametrize("tau", [0.01, 0.0])
def test_gradient_rule_is_straight_through_for_survivors(tau: float) -> None:
    """The rule of nn.prune gives g where |x| > tau (grad.prune on the pruned value); with
    tau = 0 nothing is pruned and the gradient is g itself."""
    func = Function("forward", [TensorType((3, 40)), TensorType((3, 40))], ["x", "g"])
    module = Module("m")
    module.add_function(func)
    func.set_outputs([], [])
    b = Builder(func)
    x, g = func.args
    y = b.op("nn.prune", x, tau=tau)
    (dx,) = get_opdef("nn.prune").grad(b, y.owner, [g])
    func.set_outputs([y, dx], ["y", "dx"])
    verify_module(module)
    if tau == 0.0:
        assert dx is g
        return
    assert dx.owner.name == "grad.prune" and dx.owner.operands[1] is y
    inputs = _inputs()
    _, got = run_function(module, "forward", inputs)
    survive = np.abs(inputs["x"]) > np.float32(tau)
    survive |= np.isnan(inputs["x"])
    np.testing.assert_array_equal(got, np.where(survive, inputs["g"], 0).astype(np.float32))


@pytest.mark.parametrize("opset", [13, 18])
def test_onnx_export_is_bit_exact_in_onnxruntime(opset: int) -> None:
    from backends.onnx import export_function
    from tests.backend_onnx.checks import run_onnx

    module = _prune_module()
    inputs = _inputs()
    expected = run_function(module, "forward", inputs)
    model = export_function(module, opset=opset)       # onnx.checker full check
    types = [node.op_type for node in model.graph.node]
    assert {"Abs", "LessOrEqual", "Where", "Equal"} <= set(types)
    for got, want in zip(run_onnx(model, inputs), expected):
        np.testing.assert_array_equal(got, want)        # NaN-aware, bit for bit
