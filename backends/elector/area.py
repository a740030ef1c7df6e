"""The area model, and the module inventory it shares with the power model.

Following AccelTran (``docs/sources.md``, "Area")::

    PE area  = lanes x (MAC lane + pre-sparsity + post-sparsity + FIFO
                        [+ stochastic rounding, for training])
             + softmax_per_pe x softmax(tile) + dataflow + DMA + layer-norm(tile)
    total    = PEs x PE area + sum over buffers of size (MB) x area per MB
             [+ PEs x per-PE buffer size (MB) x area per MB, when the design has one]

with MB the technology's megabyte (2**20 bytes in the shipped 14 nm table).
Checked against the published figures: AccelTran-Edge 54.06 mm2 and
AccelTran-Server 1,829.7 mm2 come out (54.064 and 1,829.696 mm2) when the
sparsity units are counted, the stochastic-rounding units are not (inference
hardware), and buffer sizes are charged in the same MB the table uses.  With
the stochastic-rounding units the edge design would be 54.145 mm2 (+0.15%);
charging decimal megabytes against the binary table would give 53.885 mm2
(-0.33%).  Main memory is off chip and its area is not characterised: it
appears as a row with no area, never as a number made up.

:func:`module_inventory` lists every module instance of a design with its
:class:`~backends.elector.technology.ModuleCosts` at the design's clock; the
energy model multiplies those by activity.
"""

from __future__ import annotations

from dataclasses import dataclass

from backends.elector.design import Accelerator
from backends.elector.hwdsl import format_quantity
from backends.elector.kinds import ModuleInstance, module_instances, module_kinds
from backends.elector.technology import BufferCosts, MainMemoryCosts

__all__ = [
    "AreaBreakdown",
    "AreaRow",
    "ModuleInstance",
    "area_breakdown",
    "module_inventory",
]

#: Readable names of module kinds, for tables (from the kind registry).
def _labels() -> dict[str, str]:
    return {kind.name: kind.label for kind in module_kinds()}


MODULE_LABELS = _labels()


def module_inventory(accelerator: Accelerator, training: bool = False
                     ) -> tuple[ModuleInstance, ...]:
    """Every on-chip compute module of the design, per kind present
    (:func:`backends.elector.kinds.module_instances`: the registry's
    instance counts; stochastic-rounding units when ``training`` or the
    design has them; sparsity units only when the design has them)."""
    return module_instances(accelerator, training)


@dataclass(frozen=True)
class AreaRow:
    """One line of an area breakdown.  ``area_um2`` is ``None`` when the
    technology does not characterise it (main memory)."""

    item: str
    kind: str
    count: int
    unit_area_um2: float | None
    area_um2: float | None
    note: str = ""
    inferred: bool = False

    @property
    def area_mm2(self) -> float | None:
        return None if self.area_um2 is None else self.area_um2 * 1e-6


@dataclass(frozen=True)
class AreaBreakdown:
    """Area of a design by module class; ``total_um2`` is the sum of the
    characterised rows."""

    design: str
    technology: str
    training: bool
    pe_area_um2: float
    rows: tuple[AreaRow, ...]

    @property
    def total_um2(self) -> float:
        return sum(row.area_um2 for row in self.rows if row.area_um2 is not None)

    @property
    def total_mm2(self) -> float:
        return self.total_um2 * 1e-6

    @property
    def pe_area_mm2(self) -> float:
        return self.pe_area_um2 * 1e-6

    @property
    def not_characterised(self) -> tuple[str, ...]:
        return tuple(row.item for row in self.rows if row.area_um2 is None)

    def by_kind(self) -> dict[str, float | None]:
        """``{kind: area in um2}``; kinds are module kinds, ``<kind>_buffer``
        and ``main_memory``."""
        return {row.kind: row.area_um2 for row in self.rows}

    def format_table(self) -> str:
        """A plain-text table: item, count, unit area, total, share."""
        header = ("item", "count", "unit um2", "total mm2", "share")
        body = []
        for row in self.rows:
            if row.area_um2 is None:
                body.append((row.item, f"{row.count:,}", "-", "not characterised", "-"))
                continue
            share = row.area_um2 / self.total_um2 if self.total_um2 else 0.0
            mark = " *" if row.inferred else ""
            body.append((row.item + mark, f"{row.count:,}", f"{row.unit_area_um2:,.2f}",
                         f"{row.area_mm2:,.3f}", f"{share:6.1%}"))
        from transcode_ir.tables import format_table

        lines = format_table(header, body, total=("total", "", "", f"{self.total_mm2:,.3f}",
                                                  "100.0%")).split("\n")
        mode = "training" if self.training else "inference"
        lines.insert(0, f"area of {self.design!r} ({mode} hardware, technology "
                        f"{self.technology}); PE area {self.pe_area_mm2:,.4f} mm2")
        notes = [row for row in self.rows if row.note]
        if any(row.inferred for row in self.rows):
            lines.append("* inferred figure (interpolated or scaled); see the technology file")
        for row in notes:
            lines.append(f"note: {row.item}: {row.note}")
        return "\n".join(lines)


def area_breakdown(accelerator: Accelerator, training: bool = False) -> AreaBreakdown:
    """Area by module class, following the reference formula (module docstring).

    ``training=True`` adds the stochastic-rounding units that training needs
    (designs that already have them count them either way).
    """
    rows: list[AreaRow] = []
    pe_area = 0.0
    for instance in module_inventory(accelerator, training):
        costs = instance.costs
        pe_area += instance.per_pe * costs.area_um2
        interpolated = costs.inferred and "interpolated" in costs.note
        rows.append(AreaRow(instance.label, instance.kind, instance.count, costs.area_um2,
                            instance.area_um2, inferred=interpolated))
    for buffer in accelerator.buffers:
        buffer_costs: BufferCosts = accelerator.buffer_costs(buffer.kind)
        size = format_quantity(buffer.size_bytes, "size")
        rows.append(AreaRow(f"{buffer.kind} buffer ({size})",
                            buffer.block_name, 1, buffer_costs.area_um2,
                            buffer_costs.area_um2))
    pe_costs = accelerator.pe_buffer_costs()
    if pe_costs is not None:   # one per PE; per-MB figure: technology.pe_buffer
        pes = accelerator.pe_array.pes
        size = format_quantity(accelerator.pe_buffer.size_bytes, "size")
        held = "+".join(accelerator.pe_buffer.holds)
        per_mb = pe_costs.area_um2 / pe_costs.size_mb
        rows.append(AreaRow(f"per-PE buffer ({size}, {held})", "pe_buffer", pes,
                            pe_costs.area_um2, pes * pe_costs.area_um2,
                            note=f"{per_mb:,.2f} um2 per MB, the {held} buffer table of the "
                                 "technology applied to a per-PE SRAM (an inference; "
                                 "buffers.pe_buffer_note)",
                            inferred=True))
    memory: MainMemoryCosts = accelerator.main_memory_costs()
    rows.append(AreaRow(f"main memory ({accelerator.main_memory.label}, off chip)",
                        "main_memory", 1, memory.area_um2, memory.area_um2,
                        note=memory.note if memory.area_um2 is None else ""))
    return AreaBreakdown(accelerator.name, accelerator.technology.name, training, pe_area,
                         tuple(rows))
