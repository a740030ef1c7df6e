"""Cost one prepared model on one design under a schedule, through ELECTOR.

The path is the one ``tcc compile`` takes after the passes
(:mod:`backends.elector.compile_pipeline`), minus the parts a search must not
repeat: the model's :class:`~backends.elector.tiling.StaticFunction` is built
once per model (:mod:`tools.codesign.modelcache`) and reused for every design.
Per design:

1. :func:`backends.elector.mapping.map_function` chooses every op's mapping
   (tiles, loop order, weight residency) for the mapper objective, with the
   numpy-filtered constraints (the z3 re-check is off in search; it is on for
   the final report).  An op no mapping fits raises
   :class:`~backends.elector.mapping.MappingError`: an infeasible point.
2. A schedule that fixes the tile (``design`` or ``BxXxY``) replaces the tile of
   every matrix product (and fused attention), clipped to the op's dimensions
   (``b <= B``, ``x <= M``, ``y <= max(K, N)``, as the mapper's own
   candidates are); its loop order is the
   schedule's, or the best of the 24 for that tile (same cost formulas the
   mapper uses).  Each forced mapping is checked against the design's
   constraints (z3, cached per op signature): breaking one is infeasible.
3. :func:`backends.elector.tiling.schedule_function` builds the mapped IR,
   and the analytical simulator (``backends.elector.analytical``) or, on
   request, the event simulator (``backends.elector.event_sim``) runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from transcode_ir.defaults import MAPPER_OBJECTIVE
from transcode_ir.errors import UserError

__all__ = ["CostResult", "cost_on_design", "map_with_schedule", "simulate_on_design"]


@dataclass(frozen=True)
class CostResult:
    """The numbers a search keeps from a :class:`SimulationResult`."""

    simulator: str
    cycles: float
    seconds: float
    dynamic_energy_nj: float
    leakage_energy_nj: float
    area_mm2: float
    notes: tuple[str, ...] = ()

    def metrics(self) -> dict[str, float]:
        return {"latency_cycles": self.cycles, "latency_ms": self.seconds * 1e3,
                "dynamic_energy_nj": self.dynamic_energy_nj,
                "leakage_energy_nj": self.leakage_energy_nj,
                "energy_nj": self.dynamic_energy_nj + self.leakage_energy_nj,
                "area_mm2": self.area_mm2}


def _best_order(info: Any, hw: Any, plan: Any, tile: tuple[int, int, int]) -> str:
    """The loop order with the fewest cycles (then least energy) for ``tile``."""
    from backends.elector.schedule import LOOP_ORDERS
    from backends.elector.tiling import matmul_costs, operand_specs, spill_level_bytes

    inputs, outputs = operand_specs(info, plan, None)
    n = len(LOOP_ORDERS)
    b, x, y = (np.full(n, v, dtype=np.int64) for v in tile)
    costs = matmul_costs(info, hw, b, x, y, np.arange(n), inputs, outputs[0],
                         spill_level_bytes(info, plan))
    best = int(np.lexsort((costs.energy_nj, np.round(costs.cycles, 6)))[0])
    return LOOP_ORDERS[best]


def map_with_schedule(static: Any, accelerator: Any, tile: tuple[int, int, int] | None = None,
                      order: str = "auto", objective: str = MAPPER_OBJECTIVE,
                      check: bool = False) -> tuple[list[Any], Any]:
    """Mappings and residency plan of ``static`` on ``accelerator``, every
    matrix product forced to ``tile`` (None: the mapper's choice) with loop
    ``order`` (``auto``: the best for that tile) -- steps 1-2 of the module
    docstring."""
    from backends.elector.mapping import check_mapping, map_function
    from backends.elector.schedule import OpMapping, TileShape
    from backends.elector.tiling import hardware_consts

    mappings, plan = map_function(static, accelerator, objective, True, check)
    if tile is None:
        return mappings, plan
    hw = hardware_consts(accelerator, static.training)
    orders: dict[tuple, str] = {}
    forced = list(mappings)
    for position, info in enumerate(static.ops):
        if info.form not in ("matmul", "attention"):
            continue
        current = mappings[position]
        batch, rows, inner, columns = info.dims
        shape = (min(tile[0], batch), min(tile[1], rows), min(tile[2], max(inner, columns)))
        if order != "auto":
            chosen = order
        else:
            signature = (info.form, info.dims, info.dims2, shape, current.weights,
                         tuple(sorted(plan.streamed[info.index])),
                         tuple(sorted(plan.fills[info.index].items())))
            chosen = orders.get(signature)
            if chosen is None:
                chosen = _best_order(info, hw, plan, shape)
                orders[signature] = chosen
        mapping = OpMapping(current.unit, TileShape(*shape), chosen, current.weights)
        check_mapping(info, mapping, hw, plan, forced=True)
        forced[position] = mapping
    return forced, plan


def cost_on_design(static: Any, accelerator: Any, *, tile: tuple[int, int, int] | None = None,
                   order: str = "auto", simulator: str = "analytical",
                   objective: str = MAPPER_OBJECTIVE, pipeline: str = "",
                   check: bool = False) -> CostResult:
    """Cost ``static`` (a prepared function) on ``accelerator`` with the
    schedule's ``tile`` and ``order``; raises ``MappingError`` for an
    infeasible point."""
    result, _ = simulate_on_design(static, accelerator, tile=tile, order=order,
                                   simulator=simulator, objective=objective, pipeline=pipeline,
                                   check=check, timeline=False)
    energy = result.energy
    area = sum(v for v in result.area_um2.values() if v is not None) / 1e6
    return CostResult(simulator, float(result.cycles), float(result.seconds),
                      float(energy.dynamic_nj), float(energy.leakage_nj), float(area),
                      tuple(result.notes))


def simulate_on_design(static: Any, accelerator: Any, *,
                       tile: tuple[int, int, int] | None = None, order: str = "auto",
                       simulator: str = "analytical", objective: str = MAPPER_OBJECTIVE,
                       pipeline: str = "", check: bool = False,
                       timeline: bool = True) -> tuple[Any, Any]:
    """``(SimulationResult, MappedFunction)`` of ``static`` on ``accelerator``
    (the simulators of ``tcc compile``: :func:`backends.elector.compile_pipeline.simulator`).
    ``timeline=False``: the analytical simulator skips the utilisation
    timeline (only plots read it; a search does not)."""
    from backends.elector.compile_pipeline import simulator as simulator_named
    from backends.elector.tiling import schedule_function

    simulate = simulator_named(simulator)
    mappings, plan = map_with_schedule(static, accelerator, tile, order, objective, check)
    mapped = schedule_function(static, accelerator, mappings, pipeline, plan)
    if simulator == "analytical" and not timeline:
        return simulate(mapped, accelerator, timeline=False), mapped
    return simulate(mapped, accelerator), mapped
