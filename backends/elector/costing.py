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
* Leakage, ``power_gating = none`` (the default): every on-chip module and
  buffer leaks for the whole run (an idle module leaks as much as a busy
  one).  ``power_gating = idle``: a module leaks only while busy (its busy
  module-cycles x its leakage per cycle), plus a wake-up per busy interval
  (:data:`WAKE_UP_CYCLES` cycles of its leakage, for every module of its
  kind, once per op that puts work on its class); a kind whose wake-ups
  would cost more than staying on is not gated (its controller keeps it
  on: never more than ``none``).  Buffers stay powered (SRAM contents kept
  between ops; no retention mode) and leak for the whole run either way.
  Reports split leakage into busy (buffers: all) and idle.  Main-memory
  leakage (and area) is not characterised by the technology: it is reported
  as not characterised and left out of the totals, never invented.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

from backends.elector.area import area_breakdown, module_inventory
from backends.elector.design import Accelerator
from backends.elector.schedule import ENERGY_CLASSES, EnergyBreakdown, EnergyRow

__all__ = [
    "ENERGY_ASSUMPTIONS",
    "ENERGY_LABELS",
    "WAKE_UP_CYCLES",
    "area_by_class",
    "busy_intervals",
    "busy_module_cycles",
    "energy_assumptions",
    "energy_breakdown",
    "interval_units",
]

#: Energy of waking a power-gated module, in cycles of its own leakage (its
#: break-even time: idling longer than this pays for gating).  An assumption
#: of this project, not a published AccelTran figure (the published AccelTran
#: simulator gates idle modules and charges no wake-up at all): fine-grained
#: gating of functional units breaks even after about ten cycles in
#: Hu et al., "Microarchitectural techniques for power gating of execution
#: units", ISLPED 2004 (the order of magnitude is taken from there, not a
#: 14 nm figure).  The wake-up latency is not charged: the next op's first
#: tiles are fetched while its modules wake (double buffering).
WAKE_UP_CYCLES = 10

#: The unit classes (:data:`~backends.elector.schedule.UNITS`) whose ops wake
#: each module kind (the kinds :func:`busy_module_cycles` makes busy).
_WAKING_UNITS: Mapping[str, tuple[str, ...]] = {
    "mac_lane": ("mac",), "fifo": ("mac",), "pre_sparsity": ("mac",),
    "post_sparsity": ("mac", "sparsity"), "stochastic_rounding": ("mac",),
    "softmax": ("softmax",), "layer_norm": ("layernorm",),
    "dataflow": ("mac", "softmax", "layernorm"), "dma": ("dma",),
}

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
    "pe_buffer": "per-PE buffers",
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

_GATED_LEAKAGE = (
    "leakage (power_gating = idle): a module leaks only while busy, plus a wake-up per op that "
    f"uses its class ({WAKE_UP_CYCLES} cycles of its leakage per module: a break-even time of "
    "the order Hu et al., ISLPED 2004 report; no wake-up latency charged); a kind whose "
    "wake-ups cost more than staying on is kept on; buffers stay powered all run (SRAM "
    "contents kept, no retention mode)")


def energy_assumptions(power_gating: str = "none") -> tuple[str, ...]:
    """The energy model's assumptions for a design's ``power_gating`` mode."""
    if power_gating == "none":
        return ENERGY_ASSUMPTIONS
    return ENERGY_ASSUMPTIONS[:2] + (_GATED_LEAKAGE,) + ENERGY_ASSUMPTIONS[3:]


def busy_intervals(ops) -> dict[str, int]:
    """Busy intervals per unit class: the mapped ops (``MappedOp``) that put
    work on it (``dma`` also counts the ops that move main-memory bytes)."""
    out: dict[str, int] = {}
    for op in ops:
        for unit in interval_units(op):
            out[unit] = out.get(unit, 0) + 1
    return out


def interval_units(op) -> tuple[str, ...]:  # noqa: ANN001
    """The unit classes one mapped op puts a busy interval on (its work with
    tiles; ``dma`` too when it moves main-memory bytes)."""
    units = {work.unit for work in op.work if work.tiles > 0}
    if "dma" not in units and any(op.bytes_by_level().get("main_memory", (0.0, 0.0))):
        units.add("dma")
    return tuple(units)


def busy_module_cycles(accelerator: Accelerator, unit_busy: Mapping[str, float],
                       main_memory_cycles: float, training: bool) -> dict[str, float]:
    """Busy cycles per technology module kind from busy unit-cycles per unit
    class (``{"mac": lane-cycles, "softmax": module-cycles, ...}``) and the
    cycles main memory was transferring: the module-kind registry's one busy
    rule (:func:`backends.elector.kinds.busy_cycles`), kept for the kinds the
    design has (every energy class present, zero when idle or absent).  Both
    simulators call this, per op and per run."""
    from backends.elector.kinds import busy_cycles

    present = _present_kinds(accelerator, training)
    busy = dict.fromkeys(ENERGY_CLASSES, 0.0)
    for kind, cycles in busy_cycles(unit_busy, main_memory_cycles,
                                    lanes_per_pe=accelerator.pe_array.lanes,
                                    softmax_per_pe=accelerator.softmax.per_pe).items():
        if kind in present:
            busy[kind] = cycles
    return busy


@functools.lru_cache(maxsize=256)
def _present_kinds(accelerator: Accelerator, training: bool) -> frozenset[str]:
    from backends.elector.kinds import module_instances

    return frozenset(instance.kind for instance in module_instances(accelerator, training))


def energy_breakdown(accelerator: Accelerator, unit_busy: Mapping[str, float],
                     bytes_by_level: Mapping[str, tuple[float, float]], cycles: float,
                     training: bool, intervals: Mapping[str, int] | None = None
                     ) -> EnergyBreakdown:
    """Energy by class for a run of ``cycles`` cycles.

    ``unit_busy``: busy unit-cycles per unit class (:data:`UNITS`);
    ``bytes_by_level``: ``{level: (read bytes, written bytes)}``;
    ``intervals``: busy intervals per unit class (:func:`busy_intervals`),
    the wake-ups under ``power_gating = idle`` (None: one per busy class).
    """
    gating = accelerator.power_gating
    if intervals is None:
        intervals = {unit: 1 for unit, value in unit_busy.items() if value > 0}
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
        per_cycle = costs.leakage_mw * 1e-3 / accelerator.clock_hz * 1e9   # nJ, one module
        busy_leakage = min(busy.get(instance.kind, 0.0), instance.count * cycles) * per_cycle
        if gating == "idle":
            wakes = sum(intervals.get(unit, 0) for unit in _WAKING_UNITS.get(instance.kind, ()))
            wake_up = wakes * instance.count * WAKE_UP_CYCLES * per_cycle
            leakage = min(leakage, busy_leakage + wake_up)
        rows.append(EnergyRow(instance.kind, ENERGY_LABELS.get(instance.kind, instance.kind),
                              dynamic, leakage, min(busy_leakage, leakage)))
    for kind in ("activation", "weight", "mask"):
        level = f"{kind}_buffer"
        costs = accelerator.buffer_costs(kind)
        read, write = bytes_by_level.get(level, (0.0, 0.0))
        block = accelerator.buffer(kind).block_bytes
        accesses = math.ceil(read / block) + math.ceil(write / block)
        dynamic = accesses * costs.energy_per_access_nj * block / costs.access_bytes
        leakage = costs.leakage_mw * 1e-3 * seconds * 1e9   # powered all run: busy
        rows.append(EnergyRow(level, ENERGY_LABELS[level], dynamic, leakage, leakage))
    pe_costs = accelerator.pe_buffer_costs()
    if pe_costs is not None:   # the optional per-PE buffer: PEs copies, each leaking all run
        read, write = bytes_by_level.get("pe_buffer", (0.0, 0.0))
        block = accelerator.pe_buffer.block_bytes
        accesses = math.ceil(read / block) + math.ceil(write / block)
        dynamic = accesses * pe_costs.energy_per_access_nj * block / pe_costs.access_bytes
        leakage = accelerator.pe_array.pes * pe_costs.leakage_mw * 1e-3 * seconds * 1e9
        rows.append(EnergyRow("pe_buffer", ENERGY_LABELS["pe_buffer"], dynamic, leakage,
                              leakage))
    dynamic = (mm_read + mm_write) / memory.access_bytes * memory.energy_per_access_nj
    leakage = None if memory.leakage_mw is None else memory.leakage_mw * 1e-3 * seconds * 1e9
    rows.append(EnergyRow("main_memory", f"main memory ({accelerator.main_memory.label})",
                          dynamic, leakage))
    return EnergyBreakdown(tuple(rows), energy_assumptions(gating), gating)


def area_by_class(accelerator: Accelerator, training: bool) -> dict[str, float | None]:
    """Area in um2 by class (module kinds, ``<kind>_buffer``, ``main_memory``:
    None when not characterised), from :func:`area_breakdown`."""
    return dict(area_breakdown(accelerator, training).by_kind())
