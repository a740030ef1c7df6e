"""The ``arith`` dialect: elementwise arithmetic, comparisons, logic, casts.

Binary ops broadcast with numpy's rules; ``arith.div`` truncates integer
quotients toward zero (ONNX).  Unary ops of category ``nonlinear`` (exp,
log, erf, tanh, ...) run on the lanes' nonlinear units.  Kernels others use:
:func:`erf`, :func:`isinf`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from transcode_ir.core import Attributes, Op
from transcode_ir.opdefs import (
    Attr,
    Commutative,
    GradFn,
    OpDef,
    Operand,
    ShapeError,
    Trait,
    ZeroPreserving,
    _broadcast,
    _constant_scalar,
    _needs,
    _np,
    _out_dtype,
    _same,
    _scalar_like,
    _zero_grad,
    define,
    reduce_to_shape,
)
from transcode_ir.types import TensorType

__all__ = ["erf", "isinf"]

# --------------------------------------------------------------------------- erf


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise, to about 1.2e-7 relative error in
    erfc (Numerical Recipes' Chebyshev fit), computed in float64."""
    z = np.abs(x.astype(np.float64))
    t = 1.0 / (1.0 + 0.5 * z)
    poly = (-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277)))))))))
    erfc = t * np.exp(poly)
    result = np.where(x >= 0, 1.0 - erfc, erfc - 1.0)
    return result.astype(x.dtype if x.dtype.kind == "f" else np.float64)


# --------------------------------------------------------------------------- arith: elementwise


def _binary(name: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], doc: str,
            result_dtype: str | None = None, grad: GradFn | None = None,
            traits: tuple[Trait, ...] = ()) -> None:
    def infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
        if types[0].dtype != types[1].dtype:
            raise ShapeError(f"operand element types differ: {types[0].dtype} and {types[1].dtype}")
        return _broadcast(types, attrs, result_dtype)

    def evaluate(op: Op, inputs: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
        with np.errstate(all="ignore"):
            return [np.asarray(fn(inputs[0], inputs[1])).astype(_out_dtype(op), copy=False)]

    define(OpDef(
        f"arith.{name}",
        operands=(Operand("lhs"), Operand("rhs")),
        infer=infer,
        evaluate=evaluate,
        category="elementwise",
        grad=grad,
        doc=doc,
        traits=traits))


def _grad_add(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    (g,), (x, y) = grads, op.operands
    return [reduce_to_shape(b, g, x.type.shape) if _needs(b, x) else None,
            reduce_to_shape(b, g, y.type.shape) if _needs(b, y) else None]


def _grad_sub(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    (g,), (x, y) = grads, op.operands
    return [reduce_to_shape(b, g, x.type.shape) if _needs(b, x) else None,
            reduce_to_shape(b, b.op("arith.neg", g), y.type.shape) if _needs(b, y) else None]


def _grad_mul(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    (g,), (x, y) = grads, op.operands
    return [reduce_to_shape(b, b.op("arith.mul", g, y), x.type.shape) if _needs(b, x) else None,
            reduce_to_shape(b, b.op("arith.mul", g, x), y.type.shape) if _needs(b, y) else None]


def _grad_div(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    (g,), (x, y) = grads, op.operands
    dx = reduce_to_shape(b, b.op("arith.div", g, y), x.type.shape) if _needs(b, x) else None
    dy = None
    if _needs(b, y):   # d(x/y)/dy = -(x/y)/y
        dy = b.op("arith.neg", b.op("arith.div", b.op("arith.mul", g, op.result), y))
        dy = reduce_to_shape(b, dy, y.type.shape)
    return [dx, dy]


def _grad_pow(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    (g,), (x, y) = grads, op.operands
    dx = dy = None
    if _needs(b, x):
        c = _constant_scalar(y)
        if c == 2.0:
            local = b.op("arith.mul", x, _scalar_like(b, 2.0, x))
        elif c is not None:
            local = b.op("arith.mul", b.op("arith.pow", x, _scalar_like(b, c - 1.0, x)),
                         _scalar_like(b, c, x))
        else:
            local = b.op("arith.mul", y, b.op("arith.pow", x, b.op("arith.sub", y, _scalar_like(b, 1.0, y))))
        dx = reduce_to_shape(b, b.op("arith.mul", g, local), x.type.shape)
    if _needs(b, y):
        dy = b.op("arith.mul", b.op("arith.mul", g, op.result), b.op("arith.log", x))
        dy = reduce_to_shape(b, dy, y.type.shape)
    return [dx, dy]


def _grad_select_between(b: Any, op: Op, grads: list[Any], first_wins: str) -> list[Any]:
    """max/min: the gradient goes to the operand that was chosen (to the
    first operand on ties)."""
    (g,), (x, y) = grads, op.operands
    other_wins = b.op(first_wins, x, y)        # arith.less for max, arith.greater for min
    zero = _scalar_like(b, 0.0, g)
    dx = reduce_to_shape(b, b.op("arith.select", other_wins, zero, g), x.type.shape) \
        if _needs(b, x) else None
    dy = reduce_to_shape(b, b.op("arith.select", other_wins, g, zero), y.type.shape) \
        if _needs(b, y) else None
    return [dx, dy]


def _grad_max(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    return _grad_select_between(b, op, grads, "arith.less")


def _grad_min(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    return _grad_select_between(b, op, grads, "arith.greater")


_binary("add", np.add, "Elementwise sum with numpy broadcasting.", grad=_grad_add, traits=(Commutative(),))
_binary("sub", np.subtract, "Elementwise difference with numpy broadcasting.", grad=_grad_sub)
_binary("mul", np.multiply, "Elementwise product with numpy broadcasting.", grad=_grad_mul, traits=(Commutative(),))


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "iu":
        # ONNX integer division truncates toward zero.
        return np.trunc(a / b).astype(a.dtype)
    return np.divide(a, b)


_binary("div", _divide, "Elementwise quotient (integer division truncates toward zero).", grad=_grad_div)
_binary("pow", np.power, "Elementwise power.", grad=_grad_pow)
_binary("max", np.maximum, "Elementwise maximum.", grad=_grad_max, traits=(Commutative(),))
_binary("min", np.minimum, "Elementwise minimum.", grad=_grad_min, traits=(Commutative(),))
_binary("equal", np.equal, "Elementwise equality, giving bool.", "bool", grad=_zero_grad, traits=(Commutative(),))
_binary("less", np.less, "Elementwise a < b, giving bool.", "bool", grad=_zero_grad)
_binary("greater", np.greater, "Elementwise a > b, giving bool.", "bool", grad=_zero_grad)
_binary("and", np.logical_and, "Elementwise logical and of bools.", grad=_zero_grad, traits=(Commutative(),))
_binary("or", np.logical_or, "Elementwise logical or of bools.", grad=_zero_grad, traits=(Commutative(),))


def _unary(name: str, fn: Callable[[np.ndarray], np.ndarray], doc: str,
           category: str = "elementwise", dialect: str = "arith",
           grad: GradFn | None = None, traits: tuple[Trait, ...] = ()) -> None:
    def evaluate(op: Op, inputs: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
        with np.errstate(all="ignore"):
            return [np.asarray(fn(inputs[0])).astype(_out_dtype(op), copy=False)]

    define(OpDef(
        f"{dialect}.{name}",
        operands=(Operand("x"),),
        infer=_same,
        evaluate=evaluate,
        category=category,
        grad=grad,
        doc=doc,
        traits=traits))


def _unary_rule(local: Callable[[Any, Op, Any], Any]) -> GradFn:
    """A rule ``dx = local(b, op, g)`` for a one-operand op."""
    def rule(b: Any, op: Op, grads: list[Any]) -> list[Any]:
        return [local(b, op, grads[0]) if _needs(b, op.operands[0]) else None]
    return rule


def _mul_by(b: Any, g: Any, *factors: Any) -> Any:
    for f in factors:
        g = b.op("arith.mul", g, f)
    return g


_grad_neg = _unary_rule(lambda b, op, g: b.op("arith.neg", g))
_grad_abs = _unary_rule(lambda b, op, g: b.op(
    "arith.select", b.op("arith.less", op.operands[0], _scalar_like(b, 0.0, g)), b.op("arith.neg", g), g))
_grad_sqrt = _unary_rule(lambda b, op, g: b.op(
    "arith.div", b.op("arith.mul", g, _scalar_like(b, 0.5, g)), op.result))
_grad_reciprocal = _unary_rule(lambda b, op, g: b.op("arith.neg", _mul_by(b, g, op.result, op.result)))
_grad_exp = _unary_rule(lambda b, op, g: b.op("arith.mul", g, op.result))
_grad_log = _unary_rule(lambda b, op, g: b.op("arith.div", g, op.operands[0]))
_grad_erf = _unary_rule(lambda b, op, g: _mul_by(
    b, g, b.op("arith.exp", b.op("arith.neg", b.op("arith.mul", op.operands[0], op.operands[0]))),
    _scalar_like(b, 2.0 / math.sqrt(math.pi), g)))
_grad_tanh = _unary_rule(lambda b, op, g: b.op("arith.mul", g, b.op(
    "arith.sub", _scalar_like(b, 1.0, g), b.op("arith.mul", op.result, op.result))))
_grad_sigmoid = _unary_rule(lambda b, op, g: _mul_by(
    b, g, op.result, b.op("arith.sub", _scalar_like(b, 1.0, g), op.result)))
_grad_sin = _unary_rule(lambda b, op, g: b.op("arith.mul", g, b.op("arith.cos", op.operands[0])))
_grad_cos = _unary_rule(lambda b, op, g: b.op("arith.neg", b.op(
    "arith.mul", g, b.op("arith.sin", op.operands[0]))))


_unary("neg", np.negative, "Elementwise negation.", grad=_grad_neg)
_unary("abs", np.abs, "Elementwise absolute value.", grad=_grad_abs)
_unary("sqrt", np.sqrt, "Elementwise square root.", "nonlinear", grad=_grad_sqrt)
_unary("reciprocal", np.reciprocal, "Elementwise 1/x.", "nonlinear", grad=_grad_reciprocal)
_unary("exp", np.exp, "Elementwise exponential.", "nonlinear", grad=_grad_exp)
_unary("log", np.log, "Elementwise natural logarithm.", "nonlinear", grad=_grad_log)
_unary("erf", erf, "Elementwise error function.", "nonlinear", grad=_grad_erf)
_unary("tanh", np.tanh, "Elementwise hyperbolic tangent.", "nonlinear", grad=_grad_tanh,
       traits=(ZeroPreserving(),))
_unary("sigmoid", lambda x: 1.0 / (1.0 + np.exp(-x)), "Elementwise logistic sigmoid.", "nonlinear", grad=_grad_sigmoid)
_unary("sin", np.sin, "Elementwise sine.", "nonlinear", grad=_grad_sin)
_unary("cos", np.cos, "Elementwise cosine.", "nonlinear", grad=_grad_cos)
_unary("not", np.logical_not, "Elementwise logical not of bools.", grad=_zero_grad)


def _predicate_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    return [TensorType(types[0].shape, "bool")]


def isinf(x: np.ndarray, detect_positive: bool = True, detect_negative: bool = True) -> np.ndarray:
    """ONNX IsInf: true where ``x`` is +inf (if ``detect_positive``) or -inf
    (if ``detect_negative``); never for integers."""
    if x.dtype.kind != "f":
        return np.zeros(x.shape, dtype=bool)
    return (np.isposinf(x) & bool(detect_positive)) | (np.isneginf(x) & bool(detect_negative))


define(OpDef(
    "arith.isnan",
    operands=(Operand("x"),),
    infer=_predicate_infer,
    evaluate=lambda op, x, ctx: [np.isnan(x[0]) if x[0].dtype.kind == "f" else np.zeros(x[0].shape, bool)],
    category="elementwise",
    grad=_zero_grad,
    doc="Elementwise test for NaN, giving bool (ONNX IsNaN; torch's SDPA export guards the "
        "attention probabilities with Where(IsNaN(p), 0, p))."))
define(OpDef(
    "arith.isinf",
    operands=(Operand("x"),),
    attributes={"detect_positive": Attr("bool", default=True), "detect_negative": Attr("bool", default=True)},
    infer=_predicate_infer,
    evaluate=lambda op, x, ctx: [isinf(x[0], op.attr("detect_positive"),
                              op.attr("detect_negative"))],
    category="elementwise",
    grad=_zero_grad,
    doc="Elementwise test for +inf and/or -inf, giving bool (ONNX IsInf)."))


def _where_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    if types[0].dtype != "bool":
        raise ShapeError(f"condition must be bool, got {types[0].dtype}")
    if types[1].dtype != types[2].dtype:
        raise ShapeError(f"branches differ in element type: {types[1].dtype} and {types[2].dtype}")
    return [_broadcast(types, attrs, types[1].dtype)[0]]


def _grad_select(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    (g,), (cond, x, y) = grads, op.operands
    zero = _scalar_like(b, 0.0, g)
    return [None,
            reduce_to_shape(b, b.op("arith.select", cond, g, zero), x.type.shape) if _needs(b, x) else None,
            reduce_to_shape(b, b.op("arith.select", cond, zero, g), y.type.shape) if _needs(b, y) else None]


define(OpDef(
    "arith.select",
    operands=(Operand("condition"), Operand("on_true"), Operand("on_false")),
    infer=_where_infer,
    evaluate=lambda op, x, ctx: [np.where(x[0], x[1], x[2]).astype(_out_dtype(op), copy=False)],
    category="elementwise",
    grad=_grad_select,
    doc="Elementwise choice: condition ? on_true : on_false (ONNX Where)."))


def _cast_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    return [types[0].dense().with_dtype(attrs["to"])]


def _grad_cast(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    x = op.operands[0]
    if not _needs(b, x) or grads[0].type.dtype not in ("f16", "f32", "f64"):
        return [None]
    return [b.op("arith.cast", grads[0], to=x.type.dtype)]


define(OpDef(
    "arith.cast",
    operands=(Operand("x"),),
    attributes={"to": Attr("str", choices=("f16", "f32", "f64", "i8", "i32", "i64", "bool"))},
    infer=_cast_infer,
    evaluate=lambda op, x, ctx: [x[0].astype(_np(op.attributes["to"]))],
    category="elementwise",
    grad=_grad_cast,
    doc="Convert the element type."))

