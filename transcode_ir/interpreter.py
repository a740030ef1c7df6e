"""The reference interpreter: runs any function of a module in numpy.

Like torch.fx's ``Interpreter``, it dispatches each op to the numpy semantics
in its definition.  Values are freed after their last use, so training graphs
of large models fit in memory.  An optional ``observer`` sees every op's
outputs (the DynaProp calibration uses it to measure densities).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from transcode_ir.core import Function, Module, Op
from transcode_ir.errors import UserError
from transcode_ir.opdefs import get_opdef
from transcode_ir.types import numpy_dtype

__all__ = ["Interpreter", "run_function"]

Observer = Callable[[Op, list[np.ndarray]], None]


class InterpreterError(UserError):
    """Bad inputs to the interpreter (missing, wrong shape or dtype)."""


class _Context:
    def __init__(self, module: Module, params: Mapping[str, np.ndarray] | None) -> None:
        self.module = module
        self.overrides = dict(params or {})
        self.updates: dict[str, np.ndarray] = {}

    def param(self, name: str) -> np.ndarray:
        if name in self.overrides:
            return self.overrides[name]
        data = self.module.params[name].data
        if data is None:
            raise InterpreterError(f"parameter {name!r} has no data (was the .npz beside the "
                                   ".tir file loaded?)")
        return data

    def assign(self, name: str, value: np.ndarray) -> None:
        self.updates[name] = value


class Interpreter:
    def __init__(self, module: Module, params: Mapping[str, np.ndarray] | None = None,
                 observer: Observer | None = None) -> None:
        self.module = module
        self.params = params
        self.observer = observer
        self.last_updates: dict[str, np.ndarray] = {}

    def run(self, func_name: str, inputs: Mapping[str, Any] | Sequence[Any],
            update_params: bool = False) -> list[np.ndarray]:
        """Run a function; returns its results in order.

        ``inputs`` maps argument names to arrays (or lists them in order).
        Writes by ``tensor.assign`` are collected in ``last_updates`` and, with
        ``update_params``, stored into the module's parameters.
        """
        func = self.module.function(func_name)
        env: dict[int, np.ndarray] = {}
        for arg, bound in zip(func.args, self._bind(func, inputs)):
            env[id(arg)] = bound
        last_use = _last_uses(func)
        ctx = _Context(self.module, self.params)
        outputs: list[np.ndarray] = []
        for index, op in enumerate(func):
            args = [env[id(v)] for v in op.operands]
            if op.name == "func.return":
                outputs = list(args)
                break
            results = get_opdef(op.name).evaluate(op, args, ctx)
            for value, array in zip(op.results, results):
                env[id(value)] = array
            if self.observer is not None:
                self.observer(op, results)
            for v in last_use.get(index, ()):
                env.pop(v, None)
        self.last_updates = ctx.updates
        if update_params:
            for name, update in ctx.updates.items():
                self.module.params[name].data = update
        return outputs

    @staticmethod
    def _bind(func: Function, inputs: Mapping[str, Any] | Sequence[Any]) -> list[np.ndarray]:
        if isinstance(inputs, Mapping):
            missing = [str(a.name) for a in func.args if a.name not in inputs]
            if missing:
                raise InterpreterError(f"@{func.name} needs input(s) {', '.join(missing)}; got "
                                       f"{', '.join(inputs) or 'none'}")
            values = [inputs[str(a.name)] for a in func.args]
        else:
            values = list(inputs)
            if len(values) != len(func.args):
                raise InterpreterError(f"@{func.name} takes {len(func.args)} input(s), got {len(values)}")
        bound = []
        for arg, value in zip(func.args, values):
            arr = np.asarray(value)
            if tuple(arr.shape) != arg.type.shape:
                raise InterpreterError(f"input %{arg.name} of @{func.name} must have shape "
                                       f"{list(arg.type.shape)}, got {list(arr.shape)}")
            bound.append(arr.astype(numpy_dtype(arg.type.dtype), copy=False))
        return bound


def _last_uses(func: Function) -> dict[int, list[int]]:
    """Map op index -> ids of values whose last use is that op."""
    last: dict[int, int] = {}
    for index, op in enumerate(func):
        for v in op.operands:
            last[id(v)] = index
    out: dict[int, list[int]] = {}
    for vid, index in last.items():
        out.setdefault(index, []).append(vid)
    return out


def run_function(module: Module, func_name: str, inputs: Mapping[str, Any] | Sequence[Any],
                 params: Mapping[str, np.ndarray] | None = None) -> list[np.ndarray]:
    """Run ``func_name`` of ``module`` on ``inputs`` and return its results."""
    return Interpreter(module, params).run(func_name, inputs)
