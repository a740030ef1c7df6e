"""Small IR modules, built with the Builder, that exercise every exportable op kind.

Each :class:`OpCase` builds a module whose ``forward`` uses the op kind(s) it is
about, with small random inputs (and parameters) drawn from a fixed seed.  The
set of op kinds the cases cover is read from the built modules themselves, so
the coverage test in ``test_op_kinds.py`` sees exactly what runs.

Add a case here whenever an emitter (or a decomposable op kind) is added:
the coverage test fails until one exists.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from transcode_ir import Builder, Function, Module, TensorType, Value, verify_module
from transcode_ir.types import numpy_dtype

__all__ = ["CASES", "OpCase", "build_case"]

Arrays = dict[str, np.ndarray]
BuildFn = Callable[[Builder, list[Value]], Sequence[Value]]


@dataclass(frozen=True)
class OpCase:
    """A module built around one op kind, and inputs to run it on."""

    id: str
    inputs: Callable[[np.random.Generator], Arrays]
    build: BuildFn
    params: Callable[[np.random.Generator], Arrays] = field(default=lambda rng: {})
    min_opset: int = 13


def build_case(case: OpCase) -> tuple[Module, Arrays]:
    """The verified module of a case, and its inputs (same seed every time)."""
    rng = np.random.default_rng(_seed(case.id))
    inputs = case.inputs(rng)
    module = Module(case.id.replace("-", "_").replace(".", "_"))
    for name, data in case.params(rng).items():
        module.add_param(name, data)
    func = module.add_function(Function(
        "forward", [TensorType(a.shape, _dtype(a)) for a in inputs.values()], list(inputs)))
    func.set_outputs([], [])
    builder = Builder(func, loc=f"case.{case.id}")
    outputs = list(case.build(builder, func.args))
    func.set_outputs(outputs, [f"out{i}" for i in range(len(outputs))])
    verify_module(module)
    return module, inputs


def _seed(text: str) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(text))


def _dtype(array: np.ndarray) -> str:
    from transcode_ir.types import dtype_of_numpy

    return dtype_of_numpy(array.dtype)


# --------------------------------------------------------------------------- input makers


def normal(*shapes: tuple[int, ...], dtype: str = "f32") -> Callable[[np.random.Generator], Arrays]:
    def make(rng: np.random.Generator) -> Arrays:
        return {f"x{i}": rng.standard_normal(s).astype(numpy_dtype(dtype))
                for i, s in enumerate(shapes)}
    return make


def positive(*shapes: tuple[int, ...]) -> Callable[[np.random.Generator], Arrays]:
    def make(rng: np.random.Generator) -> Arrays:
        return {f"x{i}": rng.uniform(0.5, 2.0, s).astype(np.float32) for i, s in enumerate(shapes)}
    return make


def bools(*shapes: tuple[int, ...]) -> Callable[[np.random.Generator], Arrays]:
    def make(rng: np.random.Generator) -> Arrays:
        return {f"x{i}": rng.random(s) < 0.5 for i, s in enumerate(shapes)}
    return make


def rounded(*shapes: tuple[int, ...]) -> Callable[[np.random.Generator], Arrays]:
    """Small integers as floats, so that equality comparisons hit both ways."""
    def make(rng: np.random.Generator) -> Arrays:
        return {f"x{i}": rng.integers(-2, 3, s).astype(np.float32) for i, s in enumerate(shapes)}
    return make


def weights(**shapes: tuple[int, ...]) -> Callable[[np.random.Generator], Arrays]:
    def make(rng: np.random.Generator) -> Arrays:
        return {name: rng.standard_normal(s).astype(np.float32) for name, s in shapes.items()}
    return make


def one(kind: str, **attrs: object) -> BuildFn:
    """Build a single op of ``kind`` over all the arguments."""
    return lambda b, args: [b.op(kind, *args, **attrs)]


# --------------------------------------------------------------------------- the cases

S = (2, 3, 4)
CASES: list[OpCase] = []


def case(id: str, inputs: Callable[[np.random.Generator], Arrays], build: BuildFn,
         **kwargs: object) -> None:
    CASES.append(OpCase(id, inputs, build, **kwargs))  # type: ignore[arg-type]


# arith: binary, with broadcasting
for _name in ("add", "sub", "mul", "max", "min"):
    case(f"arith.{_name}", normal(S, (3, 1)), one(f"arith.{_name}"))
case("arith.div", lambda rng: {"x0": rng.standard_normal(S).astype(np.float32),
                               "x1": rng.uniform(0.5, 2.0, (4,)).astype(np.float32)},
     one("arith.div"))
case("arith.div.i64", lambda rng: {"x0": rng.integers(-20, 20, S),
                                   "x1": rng.choice([-3, -2, 2, 5], (4,)).astype(np.int64)},
     one("arith.div"))
case("arith.add.i64", lambda rng: {"x0": rng.integers(-9, 9, S), "x1": rng.integers(-9, 9, (4,))},
     one("arith.add"))
case("arith.pow", lambda rng: {"x0": rng.uniform(0.5, 2.0, S).astype(np.float32),
                               "x1": rng.uniform(-2, 2, (3, 1)).astype(np.float32)},
     one("arith.pow"))
for _name in ("equal", "less", "greater"):
    case(f"arith.{_name}", rounded(S, (4,)), one(f"arith.{_name}"))
for _name in ("and", "or"):
    case(f"arith.{_name}", bools(S, (3, 1)), one(f"arith.{_name}"))

# arith: unary
for _name in ("neg", "abs", "exp", "erf", "tanh", "sigmoid", "sin", "cos"):
    case(f"arith.{_name}", normal(S), one(f"arith.{_name}"))
for _name in ("sqrt", "log", "reciprocal"):
    case(f"arith.{_name}", positive(S), one(f"arith.{_name}"))
case("arith.not", bools(S), one("arith.not"))
case("arith.select", lambda rng: {"c": rng.random((3, 1)) < 0.5,
                                  "a": rng.standard_normal(S).astype(np.float32),
                                  "b": rng.standard_normal((4,)).astype(np.float32)},
     one("arith.select"))


def _specials(rng: np.random.Generator) -> Arrays:
    """Normal values with NaN, +inf and -inf among them."""
    x = rng.standard_normal(S).astype(np.float32)
    x[0, 0, :3] = [np.nan, np.inf, -np.inf]
    x[1, 2, 1] = np.nan
    return {"x": x}


case("arith.isnan", _specials, one("arith.isnan"))
case("arith.isnan.i64", lambda rng: {"x": rng.integers(-9, 9, S)}, one("arith.isnan"))
case("arith.isinf", _specials, one("arith.isinf"))
case("arith.isinf.positive-only", _specials, one("arith.isinf", detect_negative=False))
case("arith.isinf.negative-only", _specials, one("arith.isinf", detect_positive=False))
case("arith.select.isnan-guard", _specials, lambda b, a: [b.op(
    "arith.select", b.op("arith.isnan", a[0]), b.constant(np.float32(0.0)), a[0])])
case("arith.cast.f32-i64", lambda rng: {"x": (rng.standard_normal(S) * 10).astype(np.float32)},
     one("arith.cast", to="i64"))
case("arith.cast.bool-f32", bools(S), one("arith.cast", to="f32"))
case("arith.cast.i64-f16", lambda rng: {"x": rng.integers(-100, 100, S)}, one("arith.cast", to="f16"))

# nn
case("nn.relu", normal(S), one("nn.relu"))
case("nn.gelu", normal(S), one("nn.gelu"))
case("nn.gelu.tanh", normal(S), one("nn.gelu", approximate="tanh"))
case("nn.softmax", normal(S), one("nn.softmax"))
case("nn.softmax.axis1", normal(S), one("nn.softmax", axis=1))
case("nn.layer_norm", normal(S), lambda b, a: [b.op("nn.layer_norm", a[0], b.param("g"),
                                                     b.param("beta"), epsilon=1e-6)],
     params=weights(g=(4,), beta=(4,)))
case("nn.layer_norm.no-bias-axis1", normal(S),
     lambda b, a: [b.op("nn.layer_norm", a[0], b.param("g"), axis=1)], params=weights(g=(3, 4)))
case("nn.layer_norm.broadcast-scale", normal(S),
     lambda b, a: [b.op("nn.layer_norm", a[0], b.param("g"), b.param("beta"), axis=-2)],
     params=weights(g=(1, 4), beta=(3, 1)))
case("nn.conv1d", normal((2, 4, 9)),
     lambda b, a: [b.op("nn.conv1d", a[0], b.param("w"), b.param("bias"), stride=2, pads=(1, 2),
                        dilation=2, groups=2)],
     params=weights(w=(6, 2, 3), bias=(6,)))
case("nn.conv1d.depthwise-same", normal((1, 4, 7)),
     lambda b, a: [b.op("nn.conv1d", a[0], b.param("w"), pads=(2, 2), groups=4)],
     params=weights(w=(4, 1, 5)))

# tensor: matrix products and data movement
case("tensor.matmul", normal(S, (4, 5)), one("tensor.matmul"))
case("tensor.matmul.batch-broadcast", normal((2, 1, 3, 4), (3, 4, 5)), one("tensor.matmul"))
case("tensor.matmul.vector", normal((4,), (2, 4, 3)), one("tensor.matmul"))
case("tensor.matmul.param", normal(S), lambda b, a: [b.op("tensor.matmul", a[0], b.param("w"))],
     params=weights(w=(4, 6)))
case("tensor.reshape", normal(S), one("tensor.reshape", shape=(6, 2, 2)))
case("tensor.reshape.empty", normal((0, 4)), one("tensor.reshape", shape=(2, 0, 2)), min_opset=14)
case("tensor.transpose", normal(S), one("tensor.transpose", perm=(2, 0, 1)))
case("tensor.gather", lambda rng: {"table": rng.standard_normal((10, 4)).astype(np.float32),
                                   "ids": np.array([[0, 9, -1], [3, -10, 4]], np.int64)},
     one("tensor.gather"))
case("tensor.gather.axis1-i32", lambda rng: {"x": rng.standard_normal(S).astype(np.float32),
                                             "ids": np.array([2, 0, -1], np.int32)},
     one("tensor.gather", axis=1))
case("tensor.concat", normal((2, 1, 4), (2, 3, 4), (2, 2, 4)), one("tensor.concat", axis=1))
case("tensor.slice", normal((5, 6, 7)),
     one("tensor.slice", starts=(1, -2, 0), ends=(4, 2**62, -1), axes=(0, 1, 2), steps=(2, 1, 3)))
case("tensor.slice.negative-step", normal((5, 6)),
     one("tensor.slice", starts=(-1, 4), ends=(-(2**62), 0), axes=(0, -1), steps=(-1, -2)))
case("tensor.expand", normal((3, 1)), one("tensor.expand", shape=(2, 3, 4)))
case("tensor.expand.bidirectional", normal((3, 4)), one("tensor.expand", shape=(2, 1, 1)))
case("tensor.cumsum", normal(S), one("tensor.cumsum", axis=1))
case("tensor.cumsum.exclusive-reverse", normal(S),
     one("tensor.cumsum", axis=-1, exclusive=True, reverse=True))
case("tensor.cumsum.i64", lambda rng: {"x": rng.integers(0, 2, (2, 7))}, one("tensor.cumsum", axis=1))
for _name in ("reduce_sum", "reduce_mean", "reduce_max"):
    case(f"tensor.{_name}", normal(S), one(f"tensor.{_name}", axes=(-1,)))
    case(f"tensor.{_name}.many-axes", normal(S), one(f"tensor.{_name}", axes=(0, 2), keepdims=False))
    case(f"tensor.{_name}.no-axes", normal(S), one(f"tensor.{_name}", axes=()))
case("tensor.reduce_sum.i64", lambda rng: {"x": rng.integers(-9, 9, S)},
     one("tensor.reduce_sum", axes=(1,)))

# tensor: constants, parameters, writes, returns
case("tensor.constant", normal(S), lambda b, a: [
    b.op("arith.mul", a[0], b.constant(np.linspace(-1, 1, 4, dtype=np.float32))),
    b.constant(np.array([1, -2, 3], np.int64)),
    b.constant(np.array(True))])
case("tensor.param", normal((4,)), lambda b, a: [b.param("w"), b.param("w"),
                                                 b.op("arith.add", a[0], b.param("w"))],
     params=weights(w=(4,)))
case("tensor.assign", normal((4,)), lambda b, a: _assign(b, a), params=weights(w=(4,)))
case("func.return.argument", normal((4,), (2,)), lambda b, a: [a[1], b.op("arith.neg", a[0]), a[0]])


def _assign(b: Builder, args: list[Value]) -> list[Value]:
    """An SGD-like update: w <- w - 0.1 x; also returns the loss-like sum."""
    w = b.param("w")
    new = b.op("arith.sub", w, b.op("arith.mul", args[0], b.constant(np.float32(0.1))))
    b.create("tensor.assign", [new], {"name": "w"})
    return [b.op("tensor.reduce_sum", new, axes=(0,))]


# --------------------------------------------------------------------------- fused ops (ops_fused)

def _linear(activation: str, bias: bool = True) -> BuildFn:
    def build(b: Builder, a: list[Value]) -> list[Value]:
        operands = [a[0], b.param("w")] + ([b.param("bias")] if bias else [])
        return [b.op("nn.linear", *operands, activation=activation)]
    return build


for _act in ("none", "relu", "gelu", "gelu_tanh"):
    case(f"nn.linear.{_act}", normal(S), _linear(_act), params=weights(w=(4, 5), bias=(5,)))
case("nn.linear.no-bias", normal((4,)), _linear("gelu", bias=False), params=weights(w=(4, 5)))


def _attention_inputs(mask: bool) -> Callable[[np.random.Generator], Arrays]:
    def make(rng: np.random.Generator) -> Arrays:
        arrays = {"q": rng.standard_normal((2, 2, 3, 4)).astype(np.float32),
                  "kt": rng.standard_normal((2, 2, 4, 5)).astype(np.float32),
                  "v": rng.standard_normal((2, 2, 5, 4)).astype(np.float32)}
        if mask:
            arrays["mask"] = np.where(rng.random((2, 1, 1, 5)) < 0.3, -1e4, 0.0).astype(np.float32)
        return arrays
    return make


case("nn.attention", _attention_inputs(True), one("nn.attention", scale=0.5))
case("nn.attention.no-mask", _attention_inputs(False), one("nn.attention"))


def _fully_masked(rng: np.random.Generator) -> Arrays:
    arrays = _attention_inputs(True)(rng)
    arrays["mask"] = np.zeros((2, 1, 3, 5), np.float32)
    arrays["mask"][1, 0, 2, :] = -np.inf          # one query row sees no key: NaN, guarded to 0
    arrays["mask"][0, 0, :, 4] = -np.inf
    return arrays


case("nn.attention.nan-to-zero", _fully_masked, one("nn.attention", scale=0.5, nan_to_zero=True))


# --------------------------------------------------------------------------- training ops (ops_training)

def _labels(shape: tuple[int, ...], classes: int, dtype: type = np.int64,
            ignored: float = 0.25) -> Callable[[np.random.Generator], np.ndarray]:
    def make(rng: np.random.Generator) -> np.ndarray:
        labels = rng.integers(0, classes, shape)
        return np.where(rng.random(shape) < ignored, -100, labels).astype(dtype)
    return make


def _ce_inputs(grad: bool, dtype: type = np.int64, ignored: float = 0.25
               ) -> Callable[[np.random.Generator], Arrays]:
    def make(rng: np.random.Generator) -> Arrays:
        arrays = {"dloss": np.float32(rng.uniform(0.5, 2.0)).reshape(())} if grad else {}
        arrays["logits"] = (rng.standard_normal((2, 3, 5)) * 3).astype(np.float32)
        arrays["labels"] = _labels((2, 3), 5, dtype, ignored)(rng)
        return arrays
    return make


case("loss.cross_entropy", _ce_inputs(False), one("loss.cross_entropy"))
case("loss.cross_entropy.i32-ignore7", _ce_inputs(False, np.int32, 0.0),
     lambda b, a: [b.op("loss.cross_entropy", a[0], a[1], ignore_index=3)])
case("loss.cross_entropy.all-ignored", _ce_inputs(False, np.int64, 1.0), one("loss.cross_entropy"))
case("grad.cross_entropy", _ce_inputs(True), one("grad.cross_entropy"))
case("grad.cross_entropy.i32", _ce_inputs(True, np.int32), one("grad.cross_entropy"))
case("loss.mse", normal(S, S), one("loss.mse"))
case("grad.mse", lambda rng: {"dloss": np.float32(1.5).reshape(()), **normal(S, S)(rng)},
     one("grad.mse"))
case("grad.gelu", normal(S, S), one("grad.gelu"))
case("grad.gelu.tanh", normal(S, S), one("grad.gelu", approximate="tanh"))
case("grad.softmax", normal(S, S), one("grad.softmax"))
case("grad.softmax.axis1", normal(S, S), one("grad.softmax", axis=1))
case("grad.layer_norm", normal(S, S),
     lambda b, a: list(b.create("grad.layer_norm", [a[0], a[1], b.param("g")],
                                {"epsilon": 1e-6}).results),
     params=weights(g=(4,)))
case("grad.layer_norm.axis1-broadcast-scale", normal(S, S),
     lambda b, a: list(b.create("grad.layer_norm", [a[0], a[1], b.param("g")], {"axis": 1}).results),
     params=weights(g=(1, 4)))
case("grad.layer_norm.axis0", normal(S, S),
     lambda b, a: list(b.create("grad.layer_norm", [a[0], a[1], b.param("g")], {"axis": 0}).results),
     params=weights(g=S))
case("grad.gather", lambda rng: {"dy": rng.standard_normal((2, 3, 4)).astype(np.float32),
                                 "ids": np.array([[0, 6, -1], [3, 6, 0]], np.int64)},
     one("grad.gather", size=7))
case("grad.gather.axis1-i32", lambda rng: {"dy": rng.standard_normal((2, 3, 4)).astype(np.float32),
                                           "ids": np.array([4, -5, 4], np.int32)},
     one("grad.gather", axis=1, size=5))
case("grad.slice", normal((3, 4, 2)),
     one("grad.slice", starts=(1, -2), ends=(4, 2**62), axes=(0, 2), steps=(1, 1), shape=(5, 4, 7)))
case("grad.slice.strided", normal((3, 6, 3)),
     one("grad.slice", starts=(-1, 0, 1), ends=(-(2**62), 2**62, 7), axes=(0, 1, 2),
         steps=(-2, 1, 2), shape=(5, 6, 7)))
case("grad.conv1d_input", normal((2, 6, 4)),
     lambda b, a: [b.op("grad.conv1d_input", a[0], b.param("w"), stride=2, pads=(1, 2),
                        dilation=2, groups=2, length=9)],
     params=weights(w=(6, 2, 3)))
case("grad.conv1d_input.same", normal((1, 4, 7)),
     lambda b, a: [b.op("grad.conv1d_input", a[0], b.param("w"), pads=(2, 2), length=7)],
     params=weights(w=(4, 3, 5)))
case("grad.conv1d_weight", normal((2, 6, 4), (2, 4, 9)),
     one("grad.conv1d_weight", stride=2, pads=(1, 2), dilation=2, groups=2, kernel=3))
case("grad.conv1d_weight.same", normal((1, 4, 7), (1, 3, 7)),
     one("grad.conv1d_weight", pads=(2, 2), kernel=5))
case("optim.sgd", normal((4, 3), (4, 3)), one("optim.sgd", lr=0.1))
case("optim.adam", lambda rng: {"p": rng.standard_normal((4, 3)).astype(np.float32),
                                "g": rng.standard_normal((4, 3)).astype(np.float32),
                                "m": rng.standard_normal((4, 3)).astype(np.float32) * 0.1,
                                "v": rng.uniform(0.01, 1.0, (4, 3)).astype(np.float32),
                                "step": np.int64(3).reshape(())},
     lambda b, a: list(b.create("optim.adam", a, {"lr": 1e-3}).results))


# --------------------------------------------------------------------------- DynaProp (ops_sparsity)

def _prunable(rng: np.random.Generator) -> Arrays:
    """Normal values plus the edge cases: exactly ±tau (pruned), NaN (kept), zero."""
    x = rng.standard_normal(S).astype(np.float32)
    x[0, 0, :4] = [0.3, -0.3, np.nan, 0.0]
    return {"x": x}


def _prune_with_density(b: Builder, a: list[Value]) -> list[Value]:
    from transcode_ir.types import SparsityEncoding

    dense = a[0].type
    typed = TensorType(dense.shape, dense.dtype, SparsityEncoding(0.6, "measured"))
    return [b.create("nn.prune", [a[0]], {"tau": 0.3, "point": "encoder.layer.0"}, [typed]).result]


case("nn.prune", _prunable, _prune_with_density)
case("nn.prune.tau0", _prunable, one("nn.prune", tau=0.0))
case("grad.prune", lambda rng: {"dy": rng.standard_normal(S).astype(np.float32),
                                "y": np.where(rng.random(S) < 0.5, 0.0,
                                              rng.standard_normal(S)).astype(np.float32)},
     one("grad.prune"))
