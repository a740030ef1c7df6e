"""``autodiff``: build the training graph -- ``@backward`` and ``@train_step``.

Reverse-mode differentiation of ``@forward`` with a loss on one of its
results, using the gradient rule of each op definition
(:attr:`transcode_ir.opdefs.OpDef.grad`).  The result is an ordinary module:
it prints, parses, verifies and runs in the interpreter.

Calling convention
==================

Both new functions take the forward function's arguments followed by one
more argument, the loss's reference:

* ``labels`` for ``loss=cross-entropy``: integer class indices (i64) with the
  shape of the prediction without its last (class) axis; positions labelled
  -100 are ignored, as in torch;
* ``target`` for ``loss=mse``: a tensor of the prediction's type.

``@backward(inputs..., labels) -> (loss, <param>.grad, ...)``
    recomputes the forward pass, the scalar loss (the mean over positions)
    and returns it with the gradient of every trained parameter, named
    ``<parameter name>.grad``, in the module's parameter order.  It writes
    nothing.

``@train_step(inputs..., labels) -> (loss)``
    the same forward and backward computation followed by the optimizer
    update: ``tensor.assign`` writes each trained parameter (and, for Adam,
    its moments and the step counter).  It is self-contained -- a cost model
    costs ``@train_step`` alone for one training iteration.

Trained parameters are those of kind ``weight`` with a floating-point
element type on which the loss depends; parameters the loss does not reach
(a pooler when the loss reads another output) get no gradient and no update,
as torch leaves their ``.grad`` at None and its optimizers skip them.

Optimizer state lives in module parameters of kind ``state``, so its memory
traffic is visible to the cost model: ``optimizer.step`` (i64 scalar, the
number of updates done) and, for Adam, ``<param>.adam_m`` and
``<param>.adam_v`` (zeros initially).  SGD is ``p - lr * g``; Adam follows
``torch.optim.Adam`` (bias-corrected, ``eps`` added to the corrected root).

Gradients of a value used several times are summed (``arith.add``); the
gradient of a broadcast operand is summed over the broadcast axes.  Backward
ops keep the source location of the forward op they differentiate, so
per-layer reports attribute them to the right layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from passes.dce import eliminate_dead_code
from transcode_ir.core import Builder, Function, Module, Op, Value
from transcode_ir.errors import UserError
from transcode_ir.opdefs import _scalar_like, get_opdef
from transcode_ir.passes import Pass, option, register_pass, required_option
from transcode_ir.printer import format_type
from transcode_ir.types import TensorType

__all__ = [
    "STEP_PARAMETER",
    "AutodiffPass",
    "GradientBuilder",
    "GradientHook",
    "differentiate",
    "needs_gradient",
    "parameter_gradients",
    "trainable_parameters",
]

FLOATS = ("f16", "f32", "f64")
STEP_PARAMETER = "optimizer.step"


class GradientBuilder(Builder):
    """The builder gradient rules receive: appends to the function being
    built and answers :meth:`needs_grad` so rules skip unneeded work."""

    def __init__(self, func: Function, needs: set[int]) -> None:
        super().__init__(func)
        self.needed = needs

    def needs_grad(self, value: Value) -> bool:
        return id(value) in self.needed


def trainable_parameters(module: Module) -> list[str]:
    """Parameters autodiff trains: kind ``weight`` with a floating-point type."""
    return [n for n, p in module.params.items() if p.kind == "weight" and p.type.dtype in FLOATS]


@register_pass
@dataclass(frozen=True)
class AutodiffPass(Pass):
    """Build @backward (loss and weight gradients) and @train_step (with the optimizer update).

    Requires: a verified module with ``@forward`` (without side effects) whose
    ops all have gradient rules on the path from the trained parameters to the
    loss, and no ``@backward``/``@train_step`` yet.  Guarantees: ``@forward`` is unchanged;
    ``@backward`` and ``@train_step`` follow the calling convention of
    :mod:`passes.autodiff`; optimizer state parameters (kind ``state``) exist.
    """

    name: ClassVar[str] = "autodiff"
    loss: Literal["cross-entropy", "mse"] = required_option(
        "cross-entropy (integer labels) or mse (a target tensor)")
    optimizer: Literal["sgd", "adam"] = required_option("sgd or adam")
    lr: float = option(1e-3, "learning rate")
    beta1: float = option(0.9, "Adam's first-moment decay")
    beta2: float = option(0.999, "Adam's second-moment decay")
    epsilon: float = option(1e-8, "Adam's epsilon")
    output: str = option(
        "", "the forward result the loss reads (default: the only one, or 'logits')")

    def apply(self, module: Module) -> bool:
        forward = module.functions.get("forward")
        if forward is None:
            raise UserError("autodiff needs a function @forward; the module has "
                            + (", ".join("@" + f for f in module.functions) or "none"))
        for name in ("backward", "train_step"):
            if name in module.functions:
                raise UserError(f"the module already has @{name} (autodiff ran already?)")
        for op in forward:
            if op.name != "func.return" and get_opdef(op.name).side_effects:
                raise UserError(f"autodiff: @forward has an op with side effects ({op.name}"
                                f"{_where(op)}); @backward recomputes the forward pass and must "
                                "not repeat them")
        index = self._output_index(forward)
        label_name = "labels" if self.loss == "cross-entropy" else "target"
        if label_name in {a.name for a in forward.args}:
            raise UserError(f"@forward already has an argument %{label_name}; the loss needs "
                            "that name for its reference")
        backward = self._build(module, forward, index, "backward", label_name, update=False)
        train_step = self._build(module, forward, index, "train_step", label_name, update=True)
        for func in (backward, train_step):
            eliminate_dead_code(func)
        return True

    # -- choosing the prediction
    def _output_index(self, forward: Function) -> int:
        names = forward.result_names
        if not forward.outputs:
            raise UserError("@forward returns nothing; autodiff needs an output to put a loss on")
        if self.output:
            if self.output not in names:
                raise UserError(f"autodiff: @forward has no result named {self.output!r}; its "
                                f"results are {', '.join(names)}")
            return names.index(self.output)
        if len(names) == 1:
            return 0
        if "logits" in names:
            return names.index("logits")
        raise UserError(f"autodiff: @forward has several results ({', '.join(names)}); name the "
                        "one the loss reads, e.g. autodiff{...,output=" + names[0] + "}")

    def _label_type(self, prediction: Value) -> TensorType:
        t = prediction.type
        if t.dtype not in FLOATS:
            raise UserError("autodiff: the prediction must be floating point, got "
                            f"{format_type(t)}")
        if self.loss == "cross-entropy":
            if t.rank < 1:
                raise UserError("autodiff: cross-entropy needs logits with a class axis, "
                                "got a scalar")
            return TensorType(t.shape[:-1], "i64")
        return t.dense()

    # -- building one function
    def _build(self, module: Module, forward: Function, index: int, name: str, label_name: str,
               update: bool) -> Function:
        prediction_type = forward.outputs[index].type
        label_type = self._label_type(forward.outputs[index])
        func = Function(name, [a.type for a in forward.args] + [label_type],
                        [a.name or f"arg{a.index}" for a in forward.args] + [label_name])
        module.add_function(func)
        mapping: dict[int, Value] = {id(a): b for a, b in zip(forward.args, func.args)}
        ops: list[Op] = []
        for op in forward:
            if op.name == "func.return":
                break
            new = Op(op.name, [mapping[id(v)] for v in op.operands], [r.type for r in op.results],
                     op.attributes, op.loc)
            func.append(new)
            mapping.update((id(r), n) for r, n in zip(op.results, new.results))
            ops.append(new)
        prediction = mapping[id(forward.outputs[index])]
        assert prediction.type == prediction_type
        labels = func.args[-1]
        builder = GradientBuilder(func, set())
        builder.loc = "loss"
        loss_kind = "loss.cross_entropy" if self.loss == "cross-entropy" else "loss.mse"
        loss_op = builder.create(loss_kind, (prediction, labels))
        ops.append(loss_op)
        loss = loss_op.result

        trainable = set(trainable_parameters(module))
        builder.needed = needs_gradient(ops, loss, trainable)
        grads = differentiate(builder, ops, loss)
        param_grads = parameter_gradients(builder, ops, grads, trainable)
        order = [n for n in module.params if n in param_grads]
        if not order:
            raise UserError("autodiff: the loss depends on no trained parameter (kind 'weight', "
                            "floating point)")
        if not update:
            func.set_outputs([loss] + [param_grads[n] for n in order],
                             ["loss"] + [f"{n}.grad" for n in order])
            return func
        self._update(module, builder, {n: param_grads[n] for n in order})
        func.set_outputs([loss], ["loss"])
        return func

    # -- the optimizer
    def _update(self, module: Module, b: GradientBuilder, grads: dict[str, Value]) -> None:
        b.loc = "optimizer"
        if STEP_PARAMETER not in module.params:
            module.add_param(STEP_PARAMETER, np.zeros((), np.int64), kind="state")
        step = b.param(STEP_PARAMETER)
        step = b.op("arith.add", step, _scalar_like(b, 1, step))
        for pname, g in grads.items():
            b.loc = pname
            param = module.params[pname]
            p = b.param(pname)
            if self.optimizer == "sgd":
                b.create("tensor.assign", (b.op("optim.sgd", p, g, lr=self.lr),), {"name": pname})
                continue
            moments = []
            for suffix in ("adam_m", "adam_v"):
                state = f"{pname}.{suffix}"
                if state not in module.params:
                    # np.zeros maps zero pages lazily; zeros_like would write 2x the model
                    data = None if param.data is None else \
                        np.zeros(param.data.shape, param.data.dtype)
                    module.add_param(state, data, type=param.type.dense(), kind="state")
                moments.append(b.param(state))
            new_p, new_m, new_v = b.create(
                "optim.adam", (p, g, moments[0], moments[1], step),
                {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2,
                 "epsilon": self.epsilon}).results
            b.create("tensor.assign", (new_p,), {"name": pname})
            b.create("tensor.assign", (new_m,), {"name": f"{pname}.adam_m"})
            b.create("tensor.assign", (new_v,), {"name": f"{pname}.adam_v"})
        b.loc = "optimizer"
        b.create("tensor.assign", (step,), {"name": STEP_PARAMETER})


#: ``on_gradient(value, gradient) -> gradient``: see :func:`differentiate`.
GradientHook = Callable[[Value, Value], Value]


def needs_gradient(ops: Sequence[Op], loss: Value, trainable: set[str]) -> set[int]:
    """Values (by id) on a path from a trained parameter to the loss."""
    depends: set[int] = set()
    for op in ops:
        if op.name == "tensor.param":
            if op.attributes["name"] in trainable:
                depends.add(id(op.result))
        elif any(id(v) in depends for v in op.operands):
            depends.update(id(r) for r in op.results if r.type.dtype in FLOATS)
    reaches_loss: set[int] = {id(loss)}
    for op in reversed(ops):
        if any(id(r) in reaches_loss for r in op.results):
            reaches_loss.update(id(v) for v in op.operands)
    return depends & reaches_loss


def differentiate(b: GradientBuilder, ops: Sequence[Op], loss: Value, *,
                  on_gradient: GradientHook | None = None) -> dict[int, Value]:
    """Reverse-mode differentiation of ``ops`` (in program order, ending with the op
    computing the scalar ``loss``): the gradient of every value that needs one
    (``b.needs_grad``), by id, built with ``b`` from the op definitions' gradient rules.
    Contributions of a value used several times are summed.

    ``on_gradient`` is the hook passes extend the loop with (DynaProp prunes gradients
    with it): it is called with each op result and its complete gradient -- every
    contribution summed -- when the loop reaches the result's producer, before the
    producer's rule reads it; the value it returns is the gradient from then on (return
    the gradient itself to leave it).  It is not called for ops the loop skips (no
    operand needs a gradient).
    """
    grads: dict[int, Value] = {}
    b.loc = "loss"
    grads[id(loss)] = _scalar_like(b, 1.0, loss)
    for op in reversed(ops):
        outs = [grads.get(id(r)) for r in op.results]
        if all(g is None for g in outs) or not any(b.needs_grad(v) for v in op.operands):
            continue
        if on_gradient is not None:
            for index, (result, g) in enumerate(zip(op.results, outs)):
                if g is not None:
                    outs[index] = grads[id(result)] = on_gradient(result, g)
        rule = get_opdef(op.name).grad
        if rule is None:
            raise UserError(f"autodiff: op {op.name}{_where(op)} has no gradient rule, and a "
                            "trained parameter reaches the loss through it")
        b.loc = op.loc
        operand_grads = rule(b, op, outs)
        if len(operand_grads) != len(op.operands):
            raise RuntimeError(f"gradient rule of {op.name} returned {len(operand_grads)} "
                               f"gradient(s) for {len(op.operands)} operand(s)")
        for v, g in zip(op.operands, operand_grads):
            if g is None or not b.needs_grad(v):
                continue
            if g.type.shape != v.type.shape or g.type.dtype != v.type.dtype:
                raise RuntimeError(f"gradient rule of {op.name}{_where(op)} returned "
                                   f"{format_type(g.type)} for an operand of type "
                                   f"{format_type(v.type)}")
            prev = grads.get(id(v))
            grads[id(v)] = g if prev is None else b.op("arith.add", prev, g)
    return grads


def parameter_gradients(b: GradientBuilder, ops: Sequence[Op], grads: Mapping[int, Value],
                        trainable: set[str]) -> dict[str, Value]:
    """The gradient of each trained parameter, summed over its ``tensor.param`` reads, in
    the order the parameters are first read."""
    out: dict[str, Value] = {}
    for op in ops:
        if op.name == "tensor.param" and op.attributes["name"] in trainable:
            g = grads.get(id(op.result))
            if g is None:
                continue
            name = op.attributes["name"]
            b.loc = name
            prev = out.get(name)
            out[name] = g if prev is None else b.op("arith.add", prev, g)
    return out


def _where(op: Op) -> str:
    return f' (loc "{op.loc}")' if op.loc else ""
