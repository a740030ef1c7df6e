"""``dce``: dead-code elimination.

An op is dead when it has no side effects (its definition says so:
``tensor.assign`` and ``func.return`` have them) and none of its results is
used.  One backward walk removes dead ops and, transitively, the ops that
only they used.  Parameters of kind ``constant`` that no function reads any
more (left behind by folding) are removed too; weights and optimizer state
are never removed -- they are the model, not code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from transcode_ir.core import Function, Module
from transcode_ir.passes import Pass, option, register_pass
from transcode_ir.rewrite import is_dead

__all__ = ["DCEPass", "eliminate_dead_code", "unused_parameters"]


def eliminate_dead_code(func: Function) -> bool:
    changed = False
    op = func.last
    while op is not None:
        prev = op.prev
        if op.results and is_dead(op):
            op.erase()
            changed = True
        op = prev
    return changed


def unused_parameters(module: Module) -> set[str]:
    used: set[str] = set()
    for func in module.functions.values():
        for op in func:
            if op.name in ("tensor.param", "tensor.assign"):
                used.add(op.attributes["name"])
    return set(module.params) - used


@register_pass
@dataclass(frozen=True)
class DCEPass(Pass):
    """Erase ops without side effects whose results are unused, and unread constant parameters.

    Requires: verified IR.  Guarantees: every remaining op without side
    effects has a used result; with ``remove-constants`` every parameter of
    kind ``constant`` is read by some function.
    """

    name: ClassVar[str] = "dce"
    remove_constants: bool = option(True, "drop parameters of kind 'constant' that nothing reads")

    def apply(self, module: Module) -> bool:
        changed = False
        for func in module.functions.values():
            changed |= eliminate_dead_code(func)
        if self.remove_constants:
            for name in sorted(unused_parameters(module)):
                if module.params[name].kind == "constant":
                    del module.params[name]
                    changed = True
        return changed
