"""``cse``: common-subexpression elimination.

Two ops are the same expression when they have the same name, the same
operand values (in order), equal attributes and equal result types; the
later one is replaced by the earlier.  Ops with side effects are never
merged.  Functions are straight-line, so "earlier" dominates "later" and one
forward walk suffices.  Source locations do not take part: the surviving op
keeps its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from transcode_ir.core import Function, Module, Op
from transcode_ir.passes import Pass, register_pass
from transcode_ir.rewrite import has_side_effects

__all__ = ["CSEPass", "eliminate_common_subexpressions"]


def eliminate_common_subexpressions(func: Function) -> bool:
    seen: dict[Any, Op] = {}
    changed = False
    for op in func:
        if not op.results or has_side_effects(op.name):
            continue
        key = (op.name, tuple(id(v) for v in op.operands), op.attributes,
               tuple(r.type for r in op.results))
        first = seen.get(key)
        if first is None:
            seen[key] = op
            continue
        for old, new in zip(op.results, first.results):
            old.replace_all_uses_with(new)
        op.erase()
        changed = True
    return changed


@register_pass
@dataclass(frozen=True)
class CSEPass(Pass):
    """Merge ops that compute the same expression from the same operands.

    Requires: verified IR.  Guarantees: no two ops without side effects in
    one function have the same name, operands, attributes and result types.
    """

    name: ClassVar[str] = "cse"

    def apply(self, module: Module) -> bool:
        changed = False
        for func in module.functions.values():
            changed |= eliminate_common_subexpressions(func)
        return changed
