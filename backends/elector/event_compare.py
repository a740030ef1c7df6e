"""Why the event simulator and the analytical simulator differ: variants and notes.

The analytical simulator (:mod:`backends.elector.analytical`) times each op as
``max(compute, transfers per level) + fill`` and lets an op start when its
inputs are ready *and the whole module class it uses is free*.  Two of its
terms are conservative, and the event simulator
(:mod:`backends.elector.event_sim`) does not have them:

* **fill on transfer-bound ops**: the fill (the first tiles arriving before
  compute can start; for whole-tensor ops ``min(tensor, 64 B x PEs)`` from
  its source) is added even when the op is transfer-bound, where those bytes
  are already part of the transfer time.  Only ``max(compute + fill,
  transfers)`` is unavoidable;
* **whole-class occupancy**: an op holds its module class until it
  finishes, even when it uses a few of the modules (BERT-Tiny's projections
  use 256 of AccelTran-Server's 16,384 lanes); the event simulator issues the
  next op's tiles to the free modules.

And one is optimistic:

* **the run-level floor**: the run is never shorter than any level's total
  transfer time, and when that floor sets the analytical run length it
  assumes the level is busy every cycle.  Where phases of the program are
  bound by different levels (a training step's forward pass by the weight
  buffer, its backward pass and optimizer by the activation buffer),
  dependencies keep the level idle in the other phases; the event simulator
  shows how much.

:func:`analytical_variants` recomputes the analytical critical path with its
own per-op figures (:func:`~backends.elector.analytical.op_timing`) three
ways -- as is (``analytical``), with the fill charged only where it cannot
overlap (``no_double_fill``), and with no fill at all and ops of one class
allowed to overlap (``relaxed``: each op ``max(longest piece of work,
transfers)``).  ``relaxed`` is a lower bound of the event simulator: there
every op takes at least that long (its tiles need that many rounds on its
modules; its bytes pass through each level's channel, which serves one
transfer at a time, between the op's first issue and its last store),
starts after the ops it reads, and no level moves more than its bandwidth.
``suffix_floor`` is the analytical run with its level floor applied to every
suffix of its own schedule (the ops it starts at or after time ``t`` move
their bytes after ``t``), which the analytical model does not do: where its
run length is a level's total transfer time, this says how much its own
schedule cannot pack.  :func:`explain_difference`
turns the comparison into report notes: the totals, the part of the gap each
analytical term accounts for, the ops that differ most and their stall
classes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from backends.elector.analytical import op_timing
from backends.elector.schedule import MappedFunction, SimulationResult
from backends.elector.tiling import HardwareConsts

__all__ = ["STALL_EXPLANATIONS", "analytical_variants", "explain_difference"]

#: What each stall class means, for the notes.
STALL_EXPLANATIONS: Mapping[str, str] = {
    "dependency": "tiles waiting for inputs that earlier ops (or the previous stage of a fused "
                  "attention) had not produced yet: the critical path through the op graph",
    "unit_busy": "tiles waiting for modules still busy with the previous op of their class",
    "main_memory": "tiles waiting for main-memory bandwidth (their own transfers, or bursts of "
                   "other ops queued before them)",
    "buffer_bandwidth": "tiles waiting for an on-chip buffer port (loads and stores of a wave, "
                        "and of concurrent ops, share it)",
    "buffer_capacity": "tiles waiting for a slot: a module's next tile cannot load until its "
                       "tile two back has finished (double buffering), and streamed inputs need "
                       "room in their buffer",
}


def analytical_variants(mapped: MappedFunction, hw: HardwareConsts) -> dict[str, float]:
    """The analytical run length (cycles) as is and without its two
    conservative terms (see the module docstring)."""
    durations: dict[str, list[float]] = {"analytical": [], "no_double_fill": [], "relaxed": []}
    units = []
    level_cycles: dict[str, float] = {}
    for op in mapped.ops:
        compute, memory, _, _ = op_timing(op, hw)
        transfers = max(memory.values(), default=0.0)
        durations["analytical"].append(max(compute, transfers) + op.fill_cycles)
        durations["no_double_fill"].append(max(compute + op.fill_cycles, transfers))
        # The pieces of a fused attention pipeline across heads and may overlap.
        longest = max((work.cycles for work in op.work), default=0)
        durations["relaxed"].append(max(longest, transfers))
        units.append({work.unit for work in op.work} or {op.unit})
        for level, value in memory.items():
            level_cycles[level] = level_cycles.get(level, 0.0) + value
    floor = max(level_cycles.values(), default=0.0)
    out = {}
    for name, exclusive in (("analytical", True), ("no_double_fill", True),
                            ("relaxed", False)):
        duration = durations[name]
        end = [0.0] * len(mapped.ops)
        free: dict[str, float] = {}
        for op, length, classes in zip(mapped.ops, duration, units):
            start = max([end[d] for d in op.deps] + [0.0])
            if exclusive:
                start = max([start] + [free.get(u, 0.0) for u in classes])
            end[op.index] = start + length
            if exclusive:
                for unit in classes:
                    free[unit] = end[op.index]
        out[name] = max([floor] + end)
        if name == "analytical":
            start = [e - d for e, d in zip(end, duration)]
            out["suffix_floor"] = max(out[name], _suffix_floor(mapped, start, level_cycles))
    return out


def _suffix_floor(mapped: MappedFunction, start: list[float],
                  level_cycles: Mapping[str, float]) -> float:
    """``max over ops i and levels l`` of ``start_i + transfer time at l of
    the ops that start at or after start_i`` -- the level floor applied to
    every suffix of a schedule, not only to the whole run."""
    if not mapped.ops:
        return 0.0
    order = np.argsort(np.array(start), kind="stable")
    starts = np.array(start)[order]
    best = 0.0
    for level, total in level_cycles.items():
        if total <= 0:
            continue
        cycles = np.array([sum(mapped.ops[i].bytes_by_level()[level]) for i in order])
        share = cycles / cycles.sum() * total                    # transfer cycles per op
        after = np.cumsum(share[::-1])[::-1]                     # from op k to the end
        best = max(best, float(np.max(starts + after)))
    return best


def explain_difference(mapped: MappedFunction, event: SimulationResult,
                       analytical: SimulationResult, hw: HardwareConsts,
                       top: int = 4) -> tuple[str, ...]:
    """Notes that say where the event simulator differs from the analytical
    one and why: the totals, the analytical terms that account for the gap,
    the largest stall classes and the ops that differ most."""
    notes = []
    gap = (event.cycles - analytical.cycles) / analytical.cycles if analytical.cycles else 0.0
    energy_gap = ((event.energy.total_nj - analytical.energy.total_nj)
                  / analytical.energy.total_nj if analytical.energy.total_nj else 0.0)
    notes.append(f"event vs analytical: {event.cycles:,.0f} vs {analytical.cycles:,.0f} cycles "
                 f"({gap:+.1%}); energy {energy_gap:+.1%} (the same activity is priced; "
                 "leakage runs for the different run lengths)")
    variants = analytical_variants(mapped, hw)
    fill = variants["analytical"] - variants["no_double_fill"]
    exclusive = variants["no_double_fill"] - variants["relaxed"]
    if analytical.cycles and (fill > 0.005 * analytical.cycles
                              or exclusive > 0.005 * analytical.cycles):
        notes.append(
            f"of the analytical {variants['analytical']:,.0f} cycles, {fill:,.0f} come from "
            "fills added to transfer-bound ops (their first bytes are already in the transfer "
            f"time) and {exclusive:,.0f} from holding a whole module class per op (ops on "
            "disjoint modules of one class cannot overlap); without both the analytical "
            f"critical path is {variants['relaxed']:,.0f} cycles, a lower bound of the event "
            "simulator")
    if analytical.cycles:
        for level, (read, write) in analytical.bytes_by_level.items():
            transfer = (read + write) / hw.bandwidth[level]
            if transfer > 0 and abs(transfer - analytical.cycles) <= 1e-9 * analytical.cycles:
                idle = event.cycles - transfer
                notes.append(
                    f"the analytical run length is the {level.replace('_', ' ')}'s total "
                    f"transfer time ({transfer:,.0f} cycles: that level busy every cycle); in "
                    f"the event run it is busy {transfer / event.cycles:.1%} of the time and "
                    f"idle {idle:,.0f} cycles, while dependencies hold its traffic back "
                    "(phases bound by other levels or by compute); applied to every suffix of "
                    "the analytical model's own schedule (what it starts after time t moves "
                    f"its bytes after t) the floor is {variants['suffix_floor']:,.0f} cycles")
    total = sum(event.stalls.values())
    if total > 0:
        ranked = sorted(((v, k) for k, v in event.stalls.items() if v > 0), reverse=True)
        parts = ", ".join(f"{k} {v:,.0f}" for v, k in ranked)
        notes.append(f"stall cycles (each op's module array, summed over ops): {parts}; largest: "
                     f"{ranked[0][1]} = {STALL_EXPLANATIONS[ranked[0][1]]}")
    diffs = sorted(((ev.cycles - an.cycles, op, ev, an)
                    for op, ev, an in zip(mapped.ops, event.ops, analytical.ops)),
                   key=lambda d: -abs(d[0]))
    for delta, op, ev, an in diffs[:top]:
        if abs(delta) < 1:
            break
        ranked = sorted(((v, k) for k, v in ev.stalls.items() if v >= 1), reverse=True)
        why = ", ".join(f"{k} {v:,.0f}" for v, k in ranked[:3]) or "no stalls"
        notes.append(f"op {op.index} {op.kind} ({op.loc or op.result}): event {ev.cycles:,.0f} "
                     f"vs analytical {an.cycles:,.0f} cycles ({delta:+,.0f}); its stalls: {why}")
    return tuple(notes)
