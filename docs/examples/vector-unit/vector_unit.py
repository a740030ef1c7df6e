"""A GELU vector unit per PE: the worked example of docs/adding-a-module-kind.md.

Import this file (or pass it to a tool that loads plugins) and designs may
write ``vector_unit { per_pe = 2  width = 16 }``; area, leakage and the
inventory include the units, the technology looks them up by ``width``.
"""

from __future__ import annotations

from backends.elector.hwdsl import FieldSpec
from backends.elector.kinds import ModuleKind, register_module_kind


def _per_pe(accelerator, training: bool) -> int:  # noqa: ANN001
    # The block is optional: a design without it has no vector units.
    return accelerator.block_settings("vector_unit").get("per_pe", 0)


def _parameters(accelerator) -> dict:  # noqa: ANN001
    return {"width": accelerator.block_settings("vector_unit")["width"]}


VECTOR_UNIT = register_module_kind(ModuleKind(
    name="vector_unit",                      # technology module kind and energy class
    label="GELU vector units",
    unit="vector",                           # the unit class whose busy cycles make it busy
    per_pe_rule=_per_pe,
    busy_rule=lambda inputs: inputs.unit("vector"),
    technology_parameters=("width",),
    parameter_rule=_parameters,
    block="vector_unit",
    fields=("per_pe", "width"),
    dsl_fields={
        "per_pe": FieldSpec("count", "GELU vector units per PE", default=1),
        "width": FieldSpec("count", "elements per cycle of one unit", default=16),
    },
    description="a vector unit that applies GELU to `width` elements per cycle",
))
