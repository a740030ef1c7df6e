"""Op kinds of training graphs, made by the ``autodiff`` pass and by the
gradient rules of the other dialects (``loss``, ``grad`` and ``optim`` ops).

Losses (category ``loss``), each a scalar ``tensor<f32>``:

``loss.cross_entropy(logits, labels) {ignore_index}``
    Mean over all positions of ``-log softmax(logits)[label]``; classes lie
    along the last axis of ``logits``, ``labels`` (i64) has the other axes.
    Positions whose label is ``ignore_index`` (-100, as in torch) are left out.
``loss.mse(prediction, target)``
    Mean of the squared differences.

The losses' backward kernels: ``grad.cross_entropy(dloss, logits, labels)``,
``grad.mse(dloss, prediction, target)``.  The other backward kernels
(``grad.gelu``, ``grad.softmax``, ``grad.layer_norm``, ...) are in
:mod:`dialects.grad`.

Optimizer updates (category ``optimizer``), whose results ``tensor.assign``
writes back into the parameters:

``optim.sgd(param, grad) {lr} -> param'``
    ``param - lr * grad``.
``optim.adam(param, grad, m, v, step) {lr, beta1, beta2, epsilon} -> (param', m', v')``
    Adam with bias correction, step by step as ``torch.optim.Adam``; ``step``
    is the i64 step count *after* this update (1 on the first step).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from transcode_ir.core import Attributes, Op
from transcode_ir.opdefs import (
    Attr,
    OpCost,
    OpDef,
    Operand,
    Result,
    ShapeError,
    _bytes,
    _out_dtype,
    define,
)
from transcode_ir.types import TensorType

__all__: list[str] = []

_FLOATS = ("f16", "f32", "f64")


def _elementwise_cost(per_element: int, reads: int | None = None):  # noqa: ANN202
    def cost(op: Op) -> OpCost:
        ins = op.operands if reads is None else op.operands[:reads]
        return OpCost(0, per_element * op.results[0].type.numel, _bytes([v.type for v in ins]),
                      _bytes([r.type for r in op.results]))
    return cost


def _check_same_shape(types: list[TensorType], what: str) -> None:
    if types[0].shape != types[1].shape:
        raise ShapeError(f"{what}: {list(types[0].shape)} and {list(types[1].shape)} differ")


# --------------------------------------------------------------------------- losses


def _ce_check(logits: TensorType, labels: TensorType) -> None:
    if logits.dtype not in _FLOATS:
        raise ShapeError(f"logits must be floating point, got {logits.dtype}")
    if labels.dtype not in ("i64", "i32"):
        raise ShapeError(f"labels must be integers, got {labels.dtype}")
    if logits.rank < 1 or labels.shape != logits.shape[:-1]:
        raise ShapeError(f"labels {list(labels.shape)} must have the shape of the logits "
                         f"{list(logits.shape)} without the class axis")


def _ce_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    _ce_check(types[0], types[1])
    return [TensorType((), types[0].dtype)]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    shifted = x64 - x64.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _ce_parts(logits: np.ndarray, labels: np.ndarray,
              ignore: int) -> tuple[np.ndarray, np.ndarray, int]:
    flat = logits.reshape(-1, logits.shape[-1])
    lab = labels.reshape(-1).astype(np.int64)
    keep = lab != ignore
    count = int(keep.sum())
    return flat, np.where(keep, lab, 0), count


def _ce_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    flat, lab, count = _ce_parts(x[0], x[1], op.attr("ignore_index"))
    keep = x[1].reshape(-1) != op.attr("ignore_index")
    logp = _log_softmax(flat)
    picked = logp[np.arange(flat.shape[0]), lab]
    loss = -(picked * keep).sum() / max(count, 1) if count else np.nan
    return [np.asarray(loss, dtype=_out_dtype(op))]


def _ce_grad_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    dloss, logits, labels = x
    ignore = op.attr("ignore_index")
    flat, lab, count = _ce_parts(logits, labels, ignore)
    keep = (labels.reshape(-1) != ignore).astype(np.float64)
    p = np.exp(_log_softmax(flat))
    p[np.arange(flat.shape[0]), lab] -= 1.0
    p *= keep[:, None] * (float(dloss) / max(count, 1))
    return [p.reshape(logits.shape).astype(_out_dtype(op))]


def _ce_grad(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    (g,) = grads
    return [b.op("grad.cross_entropy", g, op.operands[0], op.operands[1],
                 ignore_index=op.attr("ignore_index")), None]


define(OpDef(
    "loss.cross_entropy",
    operands=(Operand("logits"), Operand("labels")),
    attributes={"ignore_index": Attr("int", default=-100)},
    infer=_ce_infer,
    evaluate=_ce_eval,
    category="loss",
    grad=_ce_grad,
    cost=lambda op: OpCost(0, 5 * op.operands[0].type.numel, _bytes([v.type for v in op.operands]),
                           op.results[0].type.nbytes),
    doc="Mean cross-entropy of logits (classes on the last axis) against integer labels."))


def _ce_grad_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    if types[0].shape != ():
        raise ShapeError(f"the loss gradient must be a scalar, got {list(types[0].shape)}")
    _ce_check(types[1], types[2])
    return [types[1].dense()]


define(OpDef(
    "grad.cross_entropy",
    operands=(Operand("dloss"), Operand("logits"), Operand("labels")),
    attributes={"ignore_index": Attr("int", default=-100)},
    infer=_ce_grad_infer,
    evaluate=_ce_grad_eval,
    category="loss",
    cost=lambda op: OpCost(0, 6 * op.results[0].type.numel, _bytes([v.type for v in op.operands]),
                           op.results[0].type.nbytes),
    doc="Gradient of loss.cross_entropy with respect to the logits: (softmax - onehot) / count."))


def _mse_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    _check_same_shape(types, "prediction and target shapes")
    if types[0].dtype not in _FLOATS or types[1].dtype != types[0].dtype:
        raise ShapeError(f"mse needs matching floating-point operands, got {types[0].dtype} "
                         f"and {types[1].dtype}")
    return [TensorType((), types[0].dtype)]


def _mse_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    d = x[0].astype(np.float64) - x[1].astype(np.float64)
    return [np.asarray(np.mean(d * d), dtype=_out_dtype(op))]


def _mse_grad(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    (g,) = grads
    dy = b.op("grad.mse", g, op.operands[0], op.operands[1])
    return [dy, b.op("arith.neg", dy)]


define(OpDef(
    "loss.mse",
    operands=(Operand("prediction"), Operand("target")),
    infer=_mse_infer,
    evaluate=_mse_eval,
    category="loss",
    grad=_mse_grad,
    cost=_elementwise_cost(3),
    doc="Mean squared error."))


def _mse_grad_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    _check_same_shape(types[1:], "prediction and target shapes")
    return [types[1].dense()]


def _mse_grad_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    dloss, y, t = x
    d = y.astype(np.float64) - t.astype(np.float64)
    return [(d * (2.0 * float(dloss) / max(d.size, 1))).astype(_out_dtype(op))]


define(OpDef(
    "grad.mse",
    operands=(Operand("dloss"), Operand("prediction"), Operand("target")),
    infer=_mse_grad_infer,
    evaluate=_mse_grad_eval,
    category="loss",
    cost=_elementwise_cost(3),
    doc="Gradient of loss.mse with respect to the prediction."))


# --------------------------------------------------------------------------- optimizers


def _sgd_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    _check_same_shape(types, "parameter and gradient")
    return [types[0].dense()]


define(OpDef(
    "optim.sgd",
    operands=(Operand("param"), Operand("grad")),
    attributes={"lr": Attr("float")},
    infer=_sgd_infer,
    evaluate=lambda op, x, ctx: [(x[0] - np.asarray(op.attributes["lr"], x[0].dtype) * x[1])
                        .astype(x[0].dtype)],
    category="optimizer",
    cost=_elementwise_cost(2),
    doc="Plain SGD update: param - lr * grad."))


def _adam_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    p, g, m, v, step = types
    for t, what in ((g, "gradient"), (m, "first moment"), (v, "second moment")):
        if t.shape != p.shape:
            raise ShapeError(f"{what} {list(t.shape)} differs from the parameter {list(p.shape)}")
    if step.shape != () or step.dtype not in ("i64", "i32"):
        raise ShapeError(f"step must be an integer scalar, got {step}")
    return [p.dense(), m.dense(), v.dense()]


def _adam_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    p, g, m, v, step = x
    a = op.attributes
    beta1, beta2 = op.attr("beta1"), op.attr("beta2")
    lr, eps = a["lr"], op.attr("epsilon")
    t = int(step)
    dtype = p.dtype
    m = (beta1 * m.astype(np.float64) + (1 - beta1) * g.astype(np.float64)).astype(dtype)
    v = (beta2 * v.astype(np.float64) + (1 - beta2) * np.square(g.astype(np.float64))).astype(dtype)
    bias1 = 1 - beta1 ** t
    bias2 = 1 - beta2 ** t
    denom = np.sqrt(v.astype(np.float64)) / math.sqrt(bias2) + eps
    p = (p.astype(np.float64) - (lr / bias1) * m.astype(np.float64) / denom).astype(dtype)
    return [p, m, v]


define(OpDef(
    "optim.adam",
    operands=(Operand("param"), Operand("grad"), Operand("m"), Operand("v"), Operand("step")),
    attributes={"lr": Attr("float"), "beta1": Attr("float", default=0.9),
     "beta2": Attr("float", default=0.999), "epsilon": Attr("float", default=1e-8)},
    infer=_adam_infer,
    evaluate=_adam_eval,
    category="optimizer",
    results=(Result("param"), Result("m"), Result("v")),
    cost=lambda op: OpCost(0, 12 * op.operands[0].type.numel, _bytes([v.type for v in op.operands]),
                           _bytes([r.type for r in op.results])),
    doc="Adam update with bias correction (torch.optim.Adam): returns the new parameter and "
        "moments."))

