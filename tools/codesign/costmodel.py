"""Cost one prepared model on one design under a schedule, through ELECTOR.

The path is ``tcc compile``'s own after the passes:
:func:`backends.elector.compile_pipeline.evaluate_mapped` (map, build the
mapped function, simulate), minus what a search must not repeat: the model's
:class:`~backends.elector.tiling.StaticFunction` is built once per model
(:mod:`tools.codesign.modelcache`) and reused for every design.  Per design:

1. :func:`backends.elector.mapping.map_function` chooses every op's mapping
   (tiles, loop order, weight residency) for the mapper objective, with the
   numpy-filtered constraints (the z3 re-check is off in search; it is on for
   the final report).  An op no mapping fits raises
   :class:`~backends.elector.mapping.MappingError`: an infeasible point.
   A schedule that fixes the tile (``design`` or ``(b, x, y)``) has the mapper
   map every matrix product (and fused attention) with it, cut down to the
   op (:func:`~backends.elector.mapping.clamp_tile`: the bounds of its own
   candidates), in the schedule's loop order or the best one for that tile
   (:func:`~backends.elector.mapping.best_order`); each forced mapping is
   checked against the design's constraints: breaking one is infeasible.
2. :func:`backends.elector.tiling.schedule_function` builds the mapped IR,
   and the analytical simulator or, on request, the event simulator runs it
   (:func:`backends.elector.compile_pipeline.simulator`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transcode_ir.defaults import MAPPER_OBJECTIVE

__all__ = ["CostResult", "cost_on_design", "simulate_on_design"]


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
    """``(SimulationResult, MappedFunction)`` of ``static`` on ``accelerator``:
    ``tcc compile``'s own evaluation path
    (:func:`backends.elector.compile_pipeline.evaluate_mapped`).
    ``timeline=False``: the analytical simulator skips the utilisation
    timeline (only plots read it; a search does not)."""
    from backends.elector.compile_pipeline import evaluate_mapped

    return evaluate_mapped(static, accelerator, objective, True, check, sim=simulator,
                           pipeline=pipeline, timeline=timeline, tile=tile, order=order)
