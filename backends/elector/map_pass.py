"""``elector-map{hw=NAME}``: map every op onto an ELECTOR design (a backend pass).

Registered in the pass registry through the ``transcode.passes`` entry point
(and imported by ``tcc compile``), so ``tcc opt -p 'default,elector-map{hw=acceltran-edge}'``
finds it.  See :mod:`backends.elector.mapping` for the constraints and the
search, :mod:`backends.elector.schedule` for the attributes it writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from backends.elector.schedule import ATTR_DESIGN
from transcode_ir.core import Module
from transcode_ir.defaults import MAPPER_OBJECTIVE, MAPPER_OBJECTIVES
from transcode_ir.passes import Pass, option, register_pass, required_option

__all__ = ["ElectorMapPass", "map_module"]


def map_module(module: Module, accelerator, objective: str = MAPPER_OBJECTIVE,  # noqa: ANN001
               functions: tuple[str, ...] = ()) -> bool:
    """Choose (or check) the mapping of every op of ``functions`` (default:
    all) for ``accelerator`` and record it as attributes.  Returns whether
    any attribute changed.  Inside a :func:`~backends.elector.target.compile_context`
    the static view, mappings and plan of each function are also left in
    the context, so the compiler does not build or search them again."""
    from backends.elector.mapping import map_function
    from backends.elector.target import MappingRecord, current_context
    from backends.elector.tiling import StaticFunction, design_hash

    context = current_context()
    changed = False
    names = functions or tuple(module.functions)
    for name in names:
        static = StaticFunction(module, name)
        mappings, plan = map_function(static, accelerator, objective)
        if context is not None:
            context.record(name, MappingRecord(static.function, accelerator, objective, static,
                                               tuple(mappings), plan))
        for info, mapping in zip(static.ops, mappings):
            new = info.op.attributes.with_(**mapping.attributes())
            if new != info.op.attributes:
                info.op.attributes = new
                changed = True
    stamp = f"{accelerator.name}@{design_hash(accelerator)}"
    if module.attributes.get(ATTR_DESIGN) != stamp:
        module.attributes = module.attributes.with_(**{ATTR_DESIGN: stamp})
        changed = True
    return changed


@register_pass
@dataclass(frozen=True)
class ElectorMapPass(Pass):
    """Choose tiles, loop order and module class of every op for an ELECTOR design (z3-checked).

    Requires: ops with static shapes (any pipeline).  Guarantees: every op that
    does work carries map:unit; matrix products tile:b, tile:x, tile:y,
    tile:order and (with a weight operand) map:weights; softmax and layer-norm
    ops tile:x and tile:y; the module carries map:design = "<name>@<hash>".
    Mappings already in the IR (from the tile pass or written by hand) are
    kept and checked; one that breaks a constraint is an error naming the
    constraints that conflict."""

    name: ClassVar[str] = "elector-map"
    hw: str = required_option("library design name or .hwdsl file")
    objective: Literal[MAPPER_OBJECTIVES] = option(  # type: ignore[valid-type]
        MAPPER_OBJECTIVE, "what the search minimises")
    function: str = option("", "map only this function (default: all)")

    def apply(self, module: Module) -> bool:
        from backends.elector.target import target_for

        # The compile context's target when it is this design (parsed once
        # by `tcc compile`); otherwise the design is resolved here.
        accelerator = target_for(self.hw).accelerator
        functions = (self.function,) if self.function else ()
        if self.function:
            module.function(self.function)   # a clear KeyError-style message when absent
        return map_module(module, accelerator, self.objective, functions)
