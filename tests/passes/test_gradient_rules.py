"""The gradient rule of every differentiable op kind, against central finite
differences in float64.

Each case builds a one-op (or few-op) ``@forward`` whose float inputs are
module weights, runs ``autodiff{loss=mse,optimizer=sgd}`` and compares every
weight gradient of ``@backward`` with ``(L(p + h) - L(p - h)) / 2h`` computed
by running the same module's loss with perturbed weights.  The metric is
``max |g - fd| / max |fd|`` per weight; float64 and h = 1e-6 make it about
1e-8 for smooth ops, so the bound 1e-5 leaves room without hiding a wrong rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from transcode_ir import Builder, Function, Interpreter, Module, TensorType, verify_module
from transcode_ir.passes import get_pass

RNG_SEED = 0
BuildFn = Callable[[Builder, dict[str, Any]], Any]


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    scale = float(np.max(np.abs(expected), initial=0.0))
    diff = float(np.max(np.abs(actual - expected), initial=0.0))
    return diff / scale if scale else diff


def make_module(weights: dict[str, np.ndarray], build: BuildFn) -> Module:
    m = Module("case")
    for name, data in weights.items():
        m.add_param(name, data)
    f = m.add_function(Function("forward", [], [], []))
    f.set_outputs([], [])
    b = Builder(f)
    values = {name: b.param(name) for name in weights}
    out = build(b, values)
    f.set_outputs([out], ["y"])
    verify_module(m)
    return m


def check_gradients(weights: dict[str, np.ndarray], build: BuildFn, h: float = 1e-6,
                    bound: float = 1e-5) -> None:
    module = make_module(weights, build)
    get_pass("autodiff", loss="mse", optimizer="sgd").apply(module)
    verify_module(module)
    out_type = module["forward"].outputs[0].type
    rng = np.random.default_rng(RNG_SEED + 1)
    target = rng.standard_normal(out_type.shape).astype(np.float64)
    backward = module["backward"]
    results = Interpreter(module).run("backward", {"target": target})
    grads = dict(zip(backward.result_names[1:], results[1:]))

    def loss(overrides: dict[str, np.ndarray]) -> float:
        return float(Interpreter(module, overrides).run("backward", {"target": target})[0])

    trained = [n for n in weights if weights[n].dtype == np.float64]
    assert sorted(grads) == sorted(f"{n}.grad" for n in trained), grads.keys()
    for name in trained:
        data = weights[name]
        fd = np.zeros_like(data)
        for index in np.ndindex(data.shape):
            plus, minus = data.copy(), data.copy()
            plus[index] += h
            minus[index] -= h
            fd[index] = (loss({name: plus}) - loss({name: minus})) / (2 * h)
        error = relative_error(grads[f"{name}.grad"], fd)
        assert error < bound, f"gradient of {name}: relative error {error:.2e}\n" \
                              f"autodiff {grads[f'{name}.grad']}\nfinite differences {fd}"


def rand(*shape: int, positive: bool = False, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed + sum(shape))
    x = rng.standard_normal(shape)
    return np.abs(x) + 0.5 if positive else x


def const(b: Builder, value: Any, dtype: str | None = None) -> Any:
    return b.constant(np.asarray(value), dtype)


# name -> (weights, build)
CASES: dict[str, tuple[dict[str, np.ndarray], BuildFn]] = {
    "add-broadcast": ({"a": rand(2, 3), "b": rand(3), "c": rand(2, 1)},
                      lambda b, v: b.op("arith.add", b.op("arith.add", v["a"], v["b"]), v["c"])),
    "sub": ({"a": rand(2, 3), "b": rand(1, 3)}, lambda b, v: b.op("arith.sub", v["a"], v["b"])),
    "mul-fan-out": ({"a": rand(2, 3), "b": rand(3)},
                    lambda b, v: b.op("arith.mul", b.op("arith.mul", v["a"], v["b"]), v["a"])),
    "div": ({"a": rand(2, 3), "b": rand(2, 3, positive=True)},
            lambda b, v: b.op("arith.div", v["a"], v["b"])),
    "pow-constant": ({"a": rand(4, positive=True)},
                     lambda b, v: b.op("arith.pow", v["a"], const(b, 3.0, "f64"))),
    "pow-square": ({"a": rand(4)}, lambda b, v: b.op("arith.pow", v["a"], const(b, 2.0, "f64"))),
    "pow-variable": ({"a": rand(4, positive=True), "b": rand(4)},
                     lambda b, v: b.op("arith.pow", v["a"], v["b"])),
    "max-min": ({"a": rand(2, 3), "b": rand(2, 3, seed=5)},
                lambda b, v: b.op("arith.add", b.op("arith.max", v["a"], v["b"]),
                                  b.op("arith.min", v["a"], b.op("arith.neg", v["b"])))),
    "select": ({"a": rand(2, 3), "b": rand(3)},
               lambda b, v: b.op("arith.select",
                                 const(b, [[True, False, True], [False, False, True]]),
                                 v["a"], v["b"])),
    "cast-through-f32": ({"a": rand(3)},
                         lambda b, v: b.op("arith.cast", b.op("arith.mul", b.op(
                             "arith.cast", v["a"], to="f32"), const(b, 2.0, "f32")), to="f64")),
    "relu": ({"a": rand(3, 4)}, lambda b, v: b.op("nn.relu", v["a"])),
    "gelu": ({"a": rand(3, 4)}, lambda b, v: b.op("nn.gelu", v["a"])),
    "gelu-tanh": ({"a": rand(3, 4)}, lambda b, v: b.op("nn.gelu", v["a"], approximate="tanh")),
    "softmax": ({"a": rand(2, 3, 4)}, lambda b, v: b.op("nn.softmax", v["a"], axis=1)),
    "layer-norm": ({"x": rand(2, 3, 4), "g": rand(4), "beta": rand(4)},
                   lambda b, v: b.op("nn.layer_norm", v["x"], v["g"], v["beta"], epsilon=1e-5)),
    "layer-norm-two-axes": ({"x": rand(2, 3, 4), "g": rand(3, 4)},
                            lambda b, v: b.op("nn.layer_norm", v["x"], v["g"], axis=-2)),
    "conv1d": ({"x": rand(2, 4, 7), "w": rand(6, 2, 3), "bias": rand(6)},
               lambda b, v: b.op("nn.conv1d", v["x"], v["w"], v["bias"], stride=2, pads=(1, 2),
                                 dilation=2, groups=2)),
    "conv1d-depthwise": ({"x": rand(1, 3, 6), "w": rand(3, 1, 5)},
                         lambda b, v: b.op("nn.conv1d", v["x"], v["w"], pads=(2, 2), groups=3)),
    "matmul-batched-weight": ({"x": rand(2, 3, 4), "w": rand(4, 5)},
                              lambda b, v: b.op("tensor.matmul", v["x"], v["w"])),
    "matmul-broadcast-batch": ({"x": rand(2, 1, 3, 4), "y": rand(3, 4, 2)},
                               lambda b, v: b.op("tensor.matmul", v["x"], v["y"])),
    "matmul-rank-one": ({"x": rand(4), "y": rand(2, 4, 3), "z": rand(3)},
                        lambda b, v: b.op("tensor.matmul", b.op("tensor.matmul", v["x"], v["y"]),
                                          v["z"])),
    "matmul-left-matrix": ({"c": rand(3, 3), "x": rand(2, 3, 4)},
                           lambda b, v: b.op("tensor.matmul", v["c"], v["x"])),
    "reshape-transpose": ({"a": rand(2, 3, 4)},
                          lambda b, v: b.op("tensor.transpose", b.op(
                              "tensor.reshape", v["a"], shape=(6, 4)), perm=(1, 0))),
    "gather": ({"table": rand(5, 3)},
               lambda b, v: b.op("tensor.gather", v["table"], const(b, [[0, 4, 0], [-1, 2, 2]])), ),
    "gather-axis-1": ({"table": rand(2, 5)},
                      lambda b, v: b.op("tensor.gather", v["table"], const(b, [3, 3, 1]), axis=1)),
    "concat-slice": ({"a": rand(2, 3), "b": rand(2, 2)},
                     lambda b, v: b.op("tensor.slice",
                                       b.op("tensor.concat", v["a"], v["b"], axis=1),
                                       starts=(4,), ends=(0,), axes=(1,), steps=(-2,))),
    "expand": ({"a": rand(3, 1)}, lambda b, v: b.op("tensor.expand", v["a"], shape=(2, 3, 4))),
    "reduce-sum-mean": ({"a": rand(2, 3, 4)},
                        lambda b, v: b.op("arith.add",
                                          b.op("tensor.reduce_sum", v["a"], axes=(0, 2),
                                               keepdims=False),
                                          b.op("tensor.reduce_mean", v["a"], axes=(0, 2),
                                               keepdims=False))),
    "reduce-max": ({"a": rand(2, 3, 4)},
                   lambda b, v: b.op("tensor.reduce_max", v["a"], axes=(-1,))),
    "linear-gelu": ({"x": rand(2, 3, 4), "w": rand(4, 5), "bias": rand(5)},
                    lambda b, v: b.op("nn.linear", v["x"], v["w"], v["bias"], activation="gelu")),
    "linear-relu": ({"x": rand(3, 4), "w": rand(4, 5), "bias": rand(5)},
                    lambda b, v: b.op("nn.linear", v["x"], v["w"], v["bias"], activation="relu")),
    "linear-tanh-gelu": ({"x": rand(3, 4), "w": rand(4, 2)},
                         lambda b, v: b.op("nn.linear", v["x"], v["w"], activation="gelu_tanh")),
    "attention-mask": ({"q": rand(2, 3, 4), "kt": rand(2, 4, 5), "v": rand(2, 5, 2),
                        "m": rand(2, 1, 5)},
                       lambda b, v: b.op("nn.attention", v["q"], v["kt"], v["v"], v["m"],
                                         scale=0.5)),
    "attention": ({"q": rand(3, 4), "kt": rand(4, 3), "v": rand(3, 2)},
                  lambda b, v: b.op("nn.attention", v["q"], v["kt"], v["v"])),
}

UNARY = ["neg", "abs", "sqrt", "reciprocal", "exp", "log", "erf", "tanh", "sigmoid", "sin", "cos"]
for _name in UNARY:
    CASES[f"unary-{_name}"] = (
        {"a": rand(2, 3, positive=_name in ("sqrt", "log", "reciprocal"))},
        (lambda n: lambda b, v: b.op(f"arith.{n}", v["a"]))(_name))


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradient_rule(case: str) -> None:
    weights, build = CASES[case]
    # The f32 round trip limits finite differences to float32 precision.
    h, bound = (1e-2, 1e-3) if case == "cast-through-f32" else (1e-6, 1e-5)
    check_gradients(weights, build, h, bound)


def test_cross_entropy_gradient() -> None:
    """The cross-entropy loss and its gradient, with an ignored position."""
    logits = rand(2, 3, 4)
    module = make_module({"logits": logits}, lambda b, v: b.op("arith.mul", v["logits"],
                                                                 const(b, 1.0, "f64")))
    get_pass("autodiff", loss="cross-entropy", optimizer="sgd").apply(module)
    labels = np.array([[0, 3, -100], [1, 1, 2]])
    loss, grad = Interpreter(module).run("backward", {"labels": labels})
    # reference: mean over the 5 labelled positions of -log softmax
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    keep = labels != -100
    picked = np.take_along_axis(logp, np.where(keep, labels, 0)[..., None], -1)[..., 0]
    assert np.isclose(loss, -(picked * keep).sum() / keep.sum())
    expected = (np.exp(logp) - np.eye(4)[np.where(keep, labels, 0)]) * keep[..., None] / keep.sum()
    np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-12)


def test_every_forward_op_kind_has_a_gradient_rule() -> None:
    from transcode_ir import all_opdefs

    # Backward kernels, losses' own gradients and optimizer updates are not
    # differentiated again (no second-order autodiff).
    no_rule = {"grad.", "optim."}
    missing = [name for name, d in all_opdefs().items()
               if d.grad is None and not any(name.startswith(p) for p in no_rule)]
    assert missing == []


def test_typed_signature_of_grad_ops() -> None:
    """Backward kernels verify their shapes like any op."""
    m = Module("m")
    f = m.add_function(Function("forward", [TensorType((2, 3)), TensorType((2, 4))],
                                ["dy", "x"], []))
    f.set_outputs([], [])
    b = Builder(f)
    with pytest.raises(ValueError, match="differ"):
        b.op("grad.gelu", f.args[0], f.args[1])
