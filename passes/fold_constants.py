"""``fold-constants``: evaluate ops whose operands are all constant.

Reads of constant parameters small enough to inline (see below) become
``tensor.constant`` ops first.  An operand is constant when a
``tensor.constant`` produces it, or a
``tensor.param`` of a parameter of kind ``constant`` that has data (the
exporters store buffers such as position ids and the DFT/DCT matrices as
initializers; they are not trained).  The op is evaluated with the numpy
semantics of its definition -- the same code the interpreter runs -- so
folding never changes a value.

Small results (at most ``max-inline-elements`` elements) become
``tensor.constant`` ops, kept inline in the text.  Larger results become
module parameters of kind ``constant`` named ``folded.<hash>``, the hash
being a digest of the element type, shape and bytes: equal results share a
parameter and the name does not depend on op order, so two modules folding
the same data get the same names.  ``dce`` later drops constant parameters
that nothing reads any more.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from transcode_ir.core import DenseAttr, Module, Op, Value
from transcode_ir.opdefs import get_opdef
from transcode_ir.passes import Pass, option, register_pass
from transcode_ir.types import dtype_of_numpy, numpy_dtype

__all__ = ["FoldConstantsPass", "folded_parameter_name"]

_NEVER_FOLD = ("tensor.constant", "tensor.param", "func.return")


def folded_parameter_name(array: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return f"folded.{digest.hexdigest()[:16]}"


class _NoParams:
    """The evaluation context of folding: folded ops never read parameters."""

    def param(self, name: str) -> Any:
        raise KeyError(name)

    def assign(self, name: str, value: Any) -> None:
        raise KeyError(name)


@register_pass
@dataclass(frozen=True)
class FoldConstantsPass(Pass):
    """Evaluate ops whose operands are all constants; big results become parameters.

    Requires: verified IR whose constant parameters have data (those without
    data are left alone).  Guarantees: no op without side effects has only
    constant operands; no constant parameter of at most max-inline-elements
    elements is read; values are unchanged (bit for bit).
    """

    name: ClassVar[str] = "fold-constants"
    max_inline_elements: int = option(
        256, "results with more elements become parameters of kind 'constant'")

    def apply(self, module: Module) -> bool:
        changed = False
        for func in module.functions.values():
            changed |= self._fold_function(module, func)
        return changed

    def _constant_data(self, module: Module, value: Value) -> np.ndarray | None:
        op = value.owner
        if not isinstance(op, Op):
            return None
        if op.name == "tensor.constant":
            return op.attributes["value"].array()
        if op.name == "tensor.param":
            param = module.params.get(op.attributes["name"])
            if param is not None and param.kind == "constant" and param.data is not None:
                return param.data
        return None

    def _fold_function(self, module: Module, func: Any) -> bool:
        changed = False
        ctx = _NoParams()
        for op in func:
            if op.name == "tensor.param":
                changed |= self._inline_small_constant_parameter(module, op)
                continue
            if op.name in _NEVER_FOLD or not op.operands or not op.results:
                continue
            opdef = get_opdef(op.name)
            if opdef.side_effects:
                continue
            inputs = [self._constant_data(module, v) for v in op.operands]
            if any(x is None for x in inputs):
                continue
            results = opdef.evaluate(op, inputs, ctx)  # type: ignore[arg-type]
            replacements = [self._materialize(module, op, value, array)
                            for value, array in zip(op.results, results)]
            for value, new in zip(op.results, replacements):
                value.replace_all_uses_with(new)
            operands = list(op.operands)
            op.erase()
            for v in operands:       # erase constants that only fed this op
                producer = v.owner
                if isinstance(producer, Op) and not v.uses and producer.parent is func \
                        and all(not r.uses for r in producer.results):
                    producer.erase()
            changed = True
        return changed

    def _inline_small_constant_parameter(self, module: Module, op: Op) -> bool:
        """A read of a small constant parameter becomes a ``tensor.constant``
        (exporters differ in whether they store scalars such as 1/sqrt(d)
        as initializers or as Constant nodes; this makes them agree)."""
        param = module.params.get(op.attributes["name"])
        if param is None or param.kind != "constant" or param.data is None \
                or param.type.numel > self.max_inline_elements:
            return False
        new = Op("tensor.constant", (), [op.result.type.dense()],
                 {"value": DenseAttr.from_array(param.data)}, op.loc)
        op.parent.insert_before(new, op)  # type: ignore[union-attr]
        op.result.replace_all_uses_with(new.result)
        op.erase()
        return True

    def _materialize(self, module: Module, op: Op, value: Value, array: np.ndarray) -> Value:
        array = np.asarray(array)
        want = value.type
        if dtype_of_numpy(array.dtype) != want.dtype or tuple(array.shape) != want.shape:
            array = np.asarray(array, dtype=numpy_dtype(want.dtype)).reshape(want.shape)
        if array.size <= self.max_inline_elements:
            new = Op("tensor.constant", (), [want.dense()],
                     {"value": DenseAttr.from_array(array)}, op.loc)
        else:
            name = folded_parameter_name(array)
            if name not in module.params:
                module.add_param(name, np.ascontiguousarray(array).copy(), kind="constant")
            new = Op("tensor.param", (), [module.params[name].type], {"name": name}, op.loc)
        op.parent.insert_before(new, op)  # type: ignore[union-attr]
        return new.result
