"""autodiff's reverse-mode loop and its gradient hook (what DynaProp's pruning uses)."""

from __future__ import annotations

import numpy as np

from passes.autodiff import (
    GradientBuilder,
    differentiate,
    needs_gradient,
    parameter_gradients,
)
from transcode_ir import Function, Interpreter, Module, TensorType, Value


def test_the_hook_sees_each_complete_gradient_once_and_can_replace_it() -> None:
    """loss = mse(a + a, t) with a = x * w: the hook gets a's gradient after both
    contributions are summed; doubling it there doubles dL/dw."""
    w = np.array([0.5, -1.0, 2.0], np.float32)
    x = np.array([1.0, 2.0, 3.0], np.float32)
    target = np.zeros(3, np.float32)

    def grad_w(double_a: bool) -> tuple[np.ndarray, list[str]]:
        m = Module("m")
        m.add_param("w", w)
        f = m.add_function(Function("g", [TensorType((3,)), TensorType((3,))], ["x", "t"]))
        b = GradientBuilder(f, set())
        a = b.op("arith.mul", f.args[0], b.param("w"))
        y = b.op("arith.add", a, a)
        loss = b.op("loss.mse", y, f.args[1])
        ops = list(f)
        b.needed = needs_gradient(ops, loss, {"w"})
        seen: list[str] = []

        def hook(value: Value, gradient: Value) -> Value:
            seen.append(value.owner.name)
            if value is a:
                assert gradient.owner.name == "arith.add"      # both uses summed already
                if double_a:
                    return b.op("arith.add", gradient, gradient)
            return gradient

        grads = differentiate(b, ops, loss, on_gradient=hook)
        dw = parameter_gradients(b, ops, grads, {"w"})["w"]
        f.set_outputs([dw], ["dw"])
        (out,) = Interpreter(m).run("g", {"x": x, "t": target})
        return out, seen

    plain, seen = grad_w(False)
    # by hand: L = mean((2xw)^2) -> dL/dw = 8 x^2 w / 3
    np.testing.assert_allclose(plain, 8 * x * x * w / 3, rtol=1e-6)
    assert seen == ["loss.mse", "arith.add", "arith.mul"]      # each producer once, in reverse
    doubled, _ = grad_w(True)
    np.testing.assert_allclose(doubled, 2 * plain, rtol=1e-6)
