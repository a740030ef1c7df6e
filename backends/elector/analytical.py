"""The analytical simulator of ELECTOR: per-op cycles and energy in milliseconds.

``simulate_analytical(mapped, accelerator)`` turns a
:class:`~backends.elector.schedule.MappedFunction` into a
:class:`~backends.elector.schedule.SimulationResult`:

* **per op**: the busiest module class sets the compute time (``waves x
  cycles per tile`` per class, from the mapping's tiles at the op's input
  density); each storage level's transfers take ``bytes / (bandwidth per
  cycle)``; with double buffering compute and transfers overlap, so the op
  takes ``max(compute + fill, transfers per level)`` (``fill``: the first
  tiles arriving before anything can start, and the pipeline fill between
  the stages of a fused job; on a transfer-bound op those bytes are already
  part of the transfer time);
* **concurrency**: ops start when their inputs are ready and the module
  classes they use are free (in program order per class), so independent
  ops on different classes (a softmax and a matrix product, a transpose on
  the DMA engines) overlap: a critical path over the op graph with resources;
* **whole run**: ``max(critical path, level floor)`` where ops that overlap
  still share each level's bandwidth: for every op start ``t`` and level,
  the ops that start at or after ``t`` move their bytes after ``t``, so the
  run takes at least ``t + their transfer time`` (at ``t = 0``: the level's
  total transfer time; later suffixes catch phases bound by one level, such
  as a training step's backward pass on the activation buffer, whose
  traffic the whole-run total would spread over the forward pass too);
* **roofline**: per op ``max(useful work / peak throughput of its class,
  compulsory bytes / bandwidth per level)``; for the run the same with all
  ops' work and bytes.  The simulator is never faster than either (the
  tests check it);
* **energy**: priced by :func:`backends.elector.costing.energy_breakdown`
  from busy unit-cycles and bytes per level (leakage over the whole run, or
  with ``power_gating = idle`` while busy plus a wake-up per op and class).

Everything is plain arithmetic over the precomputed mapped ops: BERT-Base
(batch 4, seq 128) simulates in a few milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from backends.elector.area import module_inventory
from backends.elector.costing import (
    area_by_class,
    busy_module_cycles,
    energy_breakdown,
    interval_units,
)
from backends.elector.design import Accelerator
from backends.elector.schedule import (
    LEVELS,
    MappedFunction,
    MappedOp,
    OpResult,
    SimulationResult,
    TimelinePoint,
    bounding_level,
    level_utilisation,
)
from backends.elector.tiling import HardwareConsts, hardware_consts

__all__ = ["ANALYTICAL_NOTES", "op_timing", "simulate_analytical", "suffix_floor"]

ANALYTICAL_NOTES = (
    "analytical simulator: per-op max(compute + fill, transfers per level), double buffering; "
    "independent ops on different module classes overlap (critical path with resources); "
    "what starts at or after any time t moves its bytes after t at each level's bandwidth",
)

_UNIT_OF_KIND = {"mac_lane": "mac", "softmax": "softmax", "layer_norm": "layernorm",
                 "dma": "dma"}


def op_timing(op: MappedOp, hw: HardwareConsts) -> tuple[float, dict[str, float], float, str]:
    """``(compute cycles, transfer cycles per level, roofline cycles, bound)`` of one op."""
    per_unit: dict[str, float] = {}
    ideal: dict[str, float] = {}
    for work in op.work:
        per_unit[work.unit] = per_unit.get(work.unit, 0.0) + work.cycles
        ideal[work.unit] = ideal.get(work.unit, 0.0) + work.ideal_cycles
    compute = max(per_unit.values(), default=0.0)
    memory = {level: (read + write) / hw.bandwidth[level]
              for level, (read, write) in op.bytes_by_level().items()}
    roof, bound = max(ideal.values(), default=0.0), "compute"
    for level, value in op.compulsory_bytes.items():
        cycles = value / hw.bandwidth[level]
        if cycles > roof:
            roof, bound = cycles, level
    return compute, memory, roof, bound


def simulate_analytical(mapped: MappedFunction, accelerator: Accelerator,
                        timeline: bool = True) -> SimulationResult:
    """Simulate a mapped function analytically (see the module docstring).
    ``timeline=False`` skips the utilisation timeline (only plots use it)."""
    hw = hardware_consts(accelerator, mapped.training)
    prices = _dynamic_prices(accelerator, mapped.training)
    end: list[float] = [0.0] * len(mapped.ops)
    free: dict[str, float] = {}
    results: list[OpResult] = []
    unit_busy: dict[str, float] = {}
    ideal_by_unit: dict[str, float] = {}
    level_bytes = {level: [0.0, 0.0] for level in LEVELS}
    compulsory_by_level = {level: 0.0 for level in LEVELS}
    intervals: list[tuple[float, float, dict[str, float]]] = []
    starts: list[float] = []
    op_transfers: list[dict[str, float]] = []
    memo: dict = {}
    # Ops that are renamed copies of one template (a model's repeated layers)
    # share its work, byte and compulsory objects: their per-op figures are
    # computed once (the memo keeps the objects alive, so ids stay unique).
    per_op: dict[tuple, tuple] = {}
    intervals_by_unit: dict[str, int] = {}     # busy intervals (costing.busy_intervals)
    for op in mapped.ops:
        by_level = op.bytes_by_level()
        shape_key = (id(op.work), id(by_level), id(op.compulsory_bytes), op.fill_cycles, op.unit)
        shape = per_op.get(shape_key)
        if shape is None:
            compute, memory, roof, bound = op_timing(op, hw)
            duration = max(compute + op.fill_cycles, max(memory.values(), default=0.0))
            units = tuple({work.unit for work in op.work} or {op.unit})
            busy: dict[str, float] = {}
            ideal = []
            for work in op.work:
                busy[work.unit] = busy.get(work.unit, 0.0) + work.busy_unit_cycles
                ideal.append((work.unit, work.ideal_cycles))
            dynamic = _op_dynamic(prices, busy, by_level, hw, accelerator, mapped.training, memo)
            shape = per_op[shape_key] = (
                compute, memory, roof, bound, duration, units, busy, tuple(ideal), dynamic,
                bounding_level(compute + op.fill_cycles, memory),
                level_utilisation(memory, duration), tuple(busy.items()),
                tuple(by_level.items()), tuple(op.compulsory_bytes.items()), interval_units(op),
                (op.work, by_level, op.compulsory_bytes))
        (compute, memory, roof, bound, duration, units, busy, ideal, dynamic, bounding,
         utilised, busy_items, level_items, compulsory_items, busy_units, _) = shape
        start = max([end[d] for d in op.deps] + [free.get(u, 0.0) for u in units] + [0.0])
        finish = start + duration
        end[op.index] = finish
        for unit in units:
            free[unit] = finish
        for unit, value in ideal:
            ideal_by_unit[unit] = ideal_by_unit.get(unit, 0.0) + value
        for unit, value in busy_items:
            unit_busy[unit] = unit_busy.get(unit, 0.0) + value
        for level, (read, write) in level_items:
            rw = level_bytes.get(level) or level_bytes.setdefault(level, [0.0, 0.0])  # pe_buffer
            rw[0] += read
            rw[1] += write
        for level, value in compulsory_items:
            compulsory_by_level[level] += value
        for unit in busy_units:
            intervals_by_unit[unit] = intervals_by_unit.get(unit, 0) + 1
        starts.append(start)
        op_transfers.append(memory)
        results.append(OpResult(op.index, start, finish, compute, dict(memory), roof, bound,
                                dict(dynamic), bounding_level=bounding,
                                level_utilisation=dict(utilised)))
        if timeline and duration > 0:
            intervals.append((start, finish, {u: v / duration for u, v in busy.items()}))
    makespan = max(end, default=0.0)
    transfer = {level: (rw[0] + rw[1]) / hw.bandwidth[level] for level, rw in level_bytes.items()}
    cycles = max([makespan, suffix_floor(starts, op_transfers)] + list(transfer.values()))
    bytes_by_level = {level: (rw[0], rw[1]) for level, rw in level_bytes.items()}
    energy = energy_breakdown(accelerator, unit_busy, bytes_by_level, cycles, mapped.training,
                              intervals_by_unit)
    roof, roof_bound = max(ideal_by_unit.values(), default=0.0), "compute"
    for level, value in compulsory_by_level.items():
        if value / hw.bandwidth[level] > roof:
            roof, roof_bound = value / hw.bandwidth[level], level
    utilisation = _utilisation(accelerator, unit_busy, transfer, cycles, mapped.training)
    notes = ANALYTICAL_NOTES + energy.assumptions + mapped.notes
    return SimulationResult(
        simulator="analytical", cycles=cycles, seconds=cycles / accelerator.clock_hz,
        energy=energy, area_um2=area_by_class(accelerator, mapped.training),
        utilisation=utilisation, bytes_by_level=bytes_by_level, roofline_cycles=roof,
        roofline_bound=roof_bound, ops=tuple(results),
        timeline=_timeline(intervals, hw) if timeline else (), notes=notes)


# --------------------------------------------------------------------------- helpers


def suffix_floor(starts: Sequence[float], transfers: Sequence[Mapping[str, float]]) -> float:
    """``max over ops i and levels l`` of ``starts[i] + transfer cycles at l of
    the ops that start at or after starts[i]``: each level's bandwidth floor
    applied to every suffix of the schedule, not only to the whole run."""
    if not starts:
        return 0.0
    order = np.argsort(np.asarray(starts, dtype=float), kind="stable")
    ordered = np.asarray(starts, dtype=float)[order]
    best = 0.0
    for level in LEVELS:
        cycles = np.array([transfers[i].get(level, 0.0) for i in order])
        if not cycles.any():
            continue
        after = np.cumsum(cycles[::-1])[::-1]
        best = max(best, float(np.max(ordered + after)))
    return best


def _dynamic_prices(accelerator: Accelerator, training: bool) -> dict[str, float]:
    """nJ per busy cycle of each module kind (one module)."""
    return {instance.kind: instance.costs.dynamic_energy_per_cycle_pj * 1e-3
            for instance in module_inventory(accelerator, training)}


def _op_dynamic(prices: Mapping[str, float], busy: Mapping[str, float],
                by_level: Mapping[str, tuple[float, float]], hw: HardwareConsts,
                accelerator: Accelerator, training: bool, memo: dict) -> dict[str, float]:
    """Dynamic energy of one op by class (modules and levels), in nJ: busy
    cycles per module kind from the one busy rule
    (:func:`backends.elector.costing.busy_module_cycles`)."""
    out: dict[str, float] = {}
    if busy:
        mm_cycles = sum(by_level["main_memory"]) / hw.bandwidth["main_memory"]
        key = (tuple(busy.items()), mm_cycles)
        modules = memo.get(key)
        if modules is None:
            # Ops equal but for their names (a model's repeated layers) share it.
            modules = memo[key] = {
                kind: cycles * prices[kind] for kind, cycles
                in busy_module_cycles(accelerator, busy, mm_cycles, training).items()
                if cycles and kind in prices}
        out.update(modules)
    for level, (read, write) in by_level.items():
        if read or write:
            out[level] = (read + write) * hw.energy_per_byte[level]
    return out


def _utilisation(accelerator: Accelerator, unit_busy: Mapping[str, float],
                 transfer: Mapping[str, float], cycles: float, training: bool
                 ) -> dict[str, float]:
    """Busy fraction per module kind, bandwidth fraction per level."""
    if cycles <= 0:
        return {}
    mm_cycles = transfer.get("main_memory", 0.0)
    busy = busy_module_cycles(accelerator, unit_busy, mm_cycles, training)
    out: dict[str, float] = {}
    for instance in module_inventory(accelerator, training):
        out[instance.kind] = min(busy.get(instance.kind, 0.0) / (instance.count * cycles), 1.0)
    for level, value in transfer.items():
        out[level] = min(value / cycles, 1.0)
    return out


def _timeline(intervals: list[tuple[float, float, dict[str, float]]], hw: HardwareConsts,
              max_points: int = 4000) -> tuple[TimelinePoint, ...]:
    """Utilisation per unit class over time, from the per-op intervals."""
    capacity = {"mac": hw.lanes, "softmax": hw.softmax_units, "layernorm": hw.layernorm_units,
                "dma": hw.pes, "sparsity": hw.lanes}
    events: list[tuple[float, str, float]] = []
    for start, finish, rates in intervals:
        for unit, rate in rates.items():
            share = rate / capacity.get(unit, 1)
            events.append((start, unit, share))
            events.append((finish, unit, -share))
    events.sort(key=lambda e: e[0])
    level = {unit: 0.0 for unit in capacity}
    points: list[TimelinePoint] = []
    i = 0
    while i < len(events):
        t = events[i][0]
        while i < len(events) and events[i][0] == t:
            level[events[i][1]] += events[i][2]
            i += 1
        points.append(TimelinePoint(t, {u: max(0.0, min(1.0, v)) for u, v in level.items()}))
    if len(points) > max_points:
        step = math.ceil(len(points) / max_points)
        points = points[::step] + [points[-1]]
    return tuple(points)
