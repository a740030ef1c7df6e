"""Why the event simulator and the analytical simulator differ: variants and notes.

The analytical simulator (:mod:`backends.elector.analytical`) times each op as
``max(compute + fill, transfers per level)``, lets an op start when its inputs
are ready *and the whole module class it uses is free*, and never ends the run
before any level's bandwidth floor (applied to every suffix of its schedule).
The event simulator (:mod:`backends.elector.event_sim`) schedules tiles on
modules and channels instead, so two things set them apart:

* **whole-class occupancy** (analytical conservative): an op holds its module
  class until it finishes, even when it uses a few of the modules
  (BERT-Tiny's projections use 256 of AccelTran-Server's 16,384 lanes); the
  event simulator issues the next op's tiles to the free modules;
* **packing of the levels** (analytical optimistic): the level floor assumes
  that a level busy in a phase is busy every cycle of it; in the event run,
  waves queue behind each other at the buffer ports and main-memory channels
  and a tile's compute waits for its operands (the stall classes say where).

:func:`analytical_variants` recomputes the analytical run with its own per-op
figures (:func:`~backends.elector.analytical.op_timing`): as is
(``analytical``), its critical path alone (``critical_path``), with only the
whole-run floor instead of the suffix floor (``whole_run_floor``), and with no
fill and ops of one class allowed to overlap (``relaxed``: each op ``max(longest
piece of work, transfers)``, and the whole-run floor).  ``relaxed`` is a lower
bound of the event simulator: there every op takes at least that long (its
tiles need that many rounds on its modules; its bytes pass through each
level's channel, which serves one transfer at a time, between the op's first
issue and its last store), starts after the ops it reads, and no level moves
more than its bandwidth.  :func:`explain_difference` turns the comparison
into report notes: the totals, what each analytical term contributes, the ops
that differ most and their stall classes.
"""

from __future__ import annotations

from collections.abc import Mapping

from backends.elector.analytical import op_timing, suffix_floor
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
    """The analytical run length (cycles) and its parts (see the module docstring)."""
    durations: dict[str, list[float]] = {"analytical": [], "relaxed": []}
    units = []
    transfers_by_op = []
    level_cycles: dict[str, float] = {}
    for op in mapped.ops:
        compute, memory, _, _ = op_timing(op, hw)
        transfers = max(memory.values(), default=0.0)
        durations["analytical"].append(max(compute + op.fill_cycles, transfers))
        # The pieces of a fused attention pipeline across heads and may overlap.
        longest = max((work.cycles for work in op.work), default=0)
        durations["relaxed"].append(max(longest, transfers))
        units.append({work.unit for work in op.work} or {op.unit})
        transfers_by_op.append(memory)
        for level, value in memory.items():
            level_cycles[level] = level_cycles.get(level, 0.0) + value
    floor = max(level_cycles.values(), default=0.0)
    out = {}
    for name, exclusive in (("analytical", True), ("relaxed", False)):
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
            starts = [e - d for e, d in zip(end, duration)]
            out["critical_path"] = max(end, default=0.0)
            out["whole_run_floor"] = out[name]
            out[name] = max(out[name], suffix_floor(starts, transfers_by_op))
    return out


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
    exclusive = variants["critical_path"] - variants["relaxed"]
    if analytical.cycles and exclusive > 0.005 * analytical.cycles:
        notes.append(
            f"the analytical critical path ({variants['critical_path']:,.0f} cycles) holds a "
            "whole module class per op (ops on disjoint modules of one class cannot overlap; "
            "the event simulator overlaps them) and charges every fill; without both it is "
            f"{variants['relaxed']:,.0f} cycles, a lower bound of the event simulator")
    floor = variants["analytical"] - variants["critical_path"]
    if analytical.cycles and floor > 0.005 * analytical.cycles:
        suffix = variants["analytical"] - variants["whole_run_floor"]
        notes.append(
            f"the analytical run is {floor:,.0f} cycles longer than its critical path: a "
            "level's bandwidth floor sets it (what starts at or after some time t moves its "
            f"bytes after t; {suffix:,.0f} cycles of it come from a phase bound by one level "
            "rather than the whole run's traffic); the event simulator finds how well that "
            "level's transfers pack (waits for it show as main_memory and buffer_bandwidth "
            "stalls)")
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
