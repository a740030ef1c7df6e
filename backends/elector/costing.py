"""Prices shared by both ELECTOR simulators: energy from activity, area by class.

A simulator measures *activity* -- busy unit-cycles per module class
(:data:`backends.elector.schedule.UNITS`), bytes moved per storage level and
the run's length in cycles -- and calls :func:`energy_breakdown` to turn it
into joules with the design's technology tables, so the analytical and the
event-driven simulator price the same activity identically.

Energy model (stated in every report through ``EnergyBreakdown.assumptions``)
-----------------------------------------------------------------------------

* Dynamic energy of a module = its dynamic power (at the design's clock) x
  the cycles it is busy.  MAC lanes, their FIFOs and their pre- and
  post-sparsity units (when the design has them) and, in training, their
  stochastic-rounding units are busy together, for every lane-cycle of work
  (the sparsity units sit in the lane pipeline and run on every tile).
  Elementwise arithmetic and the bias/activation epilogue of a fused linear
  run in the lanes too.  Softmax and layer-norm modules are busy for their
  module-cycles.  A PE's dataflow module is busy while any module of the PE
  is (lane-cycles / lanes per PE + softmax module-cycles / modules per PE +
  layer-norm module-cycles).  DMA engines are busy for main-memory transfer
  cycles.
* Buffers: energy per 64-byte block access (technology table,
  coefficient x sqrt(size in MB)) x ceil(bytes / block) for reads and writes.
* Main memory: energy per access (64 bytes) x bytes / 64.
* Leakage: every on-chip module and buffer leaks for the whole run -- no
  power gating (an idle module leaks as much as a busy one).  Main-memory
  leakage (and area) is not characterised by the technology: it is reported
  as not characterised and left out of the totals, never invented.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from backends.elector.area import area_breakdown, module_inventory
from backends.elector.design import Accelerator
from backends.elector.schedule import ENERGY_CLASSES, EnergyBreakdown, EnergyRow

__all__ = [
    "ENERGY_ASSUMPTIONS",
    "ENERGY_LABELS",
    "area_by_class",
    "busy_module_cycles",
    "energy_breakdown",
]

ENERGY_LABELS: Mapping[str, str] = {
    "mac_lane": "MAC lanes",
    "pre_sparsity": "pre-sparsity units",
    "post_sparsity": "post-sparsity units",
    "fifo": "lane FIFOs",
    "stochastic_rounding": "stochastic-rounding units",
    "softmax": "softmax modules",
    "layer_norm": "layer-norm modules",
    "dataflow": "dataflow modules",
    "dma": "DMA engines",
    "activation_buffer": "activation buffer",
    "weight_buffer": "weight buffer",
    "mask_buffer": "mask buffer",
    "main_memory": "main memory",
}

ENERGY_ASSUMPTIONS: tuple[str, ...] = (
    "dynamic energy = module dynamic power x busy cycles; sparsity units, FIFOs (and, in "
    "training, stochastic-rounding units) are busy whenever their MAC lane is",
    "buffer energy = energy per 64-byte block access x blocks read and written; main-memory "
    "energy = energy per 64-byte access x bytes / 64",
    "leakage: all on-chip modules and buffers leak for the whole run (no power gating)",
    "main-memory leakage and area are not characterised by the technology: not included",
)


def busy_module_cycles(accelerator: Accelerator, unit_busy: Mapping[str, float],
                       main_memory_cycles: float, training: bool) -> dict[str, float]:
    """Busy cycles per technology module kind from busy unit-cycles per unit
    class (``{"mac": lane-cycles, "softmax": module-cycles, ...}``) and the
    cycles main memory was transferring."""
    sparsity = accelerator.sparsity
    lanes = unit_busy.get("mac", 0.0)
    busy = {kind: 0.0 for kind in ENERGY_CLASSES}
    busy["mac_lane"] = lanes
    busy["fifo"] = lanes
    if sparsity.pre:
        busy["pre_sparsity"] = lanes
    if sparsity.post:
        busy["post_sparsity"] = lanes + unit_busy.get("sparsity", 0.0)
    if training or sparsity.stochastic_rounding:
        busy["stochastic_rounding"] = lanes
    busy["softmax"] = unit_busy.get("softmax", 0.0)
    busy["layer_norm"] = unit_busy.get("layernorm", 0.0)
    busy["dataflow"] = (lanes / accelerator.pe_array.lanes
                        + busy["softmax"] / accelerator.softmax.per_pe + busy["layer_norm"])
    busy["dma"] = unit_busy.get("dma", 0.0) + main_memory_cycles
    return busy


def energy_breakdown(accelerator: Accelerator, unit_busy: Mapping[str, float],
                     bytes_by_level: Mapping[str, tuple[float, float]], cycles: float,
                     training: bool) -> EnergyBreakdown:
    """Energy by class for a run of ``cycles`` cycles.

    ``unit_busy``: busy unit-cycles per unit class (:data:`UNITS`);
    ``bytes_by_level``: ``{level: (read bytes, written bytes)}``.
    """
    memory = accelerator.main_memory_costs()
    mm_read, mm_write = bytes_by_level.get("main_memory", (0.0, 0.0))
    mm_cycles = (mm_read + mm_write) / memory.bandwidth_bytes_per_s * accelerator.clock_hz
    busy = busy_module_cycles(accelerator, unit_busy, mm_cycles, training)
    rows: list[EnergyRow] = []
    seconds = cycles / accelerator.clock_hz
    for instance in module_inventory(accelerator, training):
        costs = instance.costs
        dynamic = busy.get(instance.kind, 0.0) * costs.dynamic_energy_per_cycle_pj * 1e-3
        leakage = instance.count * costs.leakage_mw * 1e-3 * seconds * 1e9   # W * s -> nJ
        rows.append(EnergyRow(instance.kind, ENERGY_LABELS.get(instance.kind, instance.kind),
                              dynamic, leakage))
    for kind in ("activation", "weight", "mask"):
        level = f"{kind}_buffer"
        costs = accelerator.buffer_costs(kind)
        read, write = bytes_by_level.get(level, (0.0, 0.0))
        block = accelerator.buffer(kind).block_bytes
        accesses = math.ceil(read / block) + math.ceil(write / block)
        dynamic = accesses * costs.energy_per_access_nj * block / costs.access_bytes
        leakage = costs.leakage_mw * 1e-3 * seconds * 1e9
        rows.append(EnergyRow(level, ENERGY_LABELS[level], dynamic, leakage))
    dynamic = (mm_read + mm_write) / memory.access_bytes * memory.energy_per_access_nj
    leakage = None if memory.leakage_mw is None else memory.leakage_mw * 1e-3 * seconds * 1e9
    rows.append(EnergyRow("main_memory", f"main memory ({accelerator.main_memory.label})",
                          dynamic, leakage))
    return EnergyBreakdown(tuple(rows), ENERGY_ASSUMPTIONS)


def area_by_class(accelerator: Accelerator, training: bool) -> dict[str, float | None]:
    """Area in um2 by class (module kinds, ``<kind>_buffer``, ``main_memory``:
    None when not characterised), from :func:`area_breakdown`."""
    return dict(area_breakdown(accelerator, training).by_kind())
