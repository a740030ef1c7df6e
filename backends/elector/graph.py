"""The dependency graph of a mapped schedule, for viewers and critical-path checks.

:func:`schedule_graph` turns a :class:`~backends.elector.schedule.MappedFunction`
(and, when given, the simulator's :class:`~backends.elector.schedule.SimulationResult`)
into the same kind of :class:`networkx.DiGraph` as
:func:`transcode_ir.graph.dependency_graph`: nodes are mapped-op indices, edges
are :attr:`MappedOp.deps`, and ``weight`` is the op's simulated cycles.  The
algorithms (critical path, DOT and GraphML) are the core's.

Node attributes: ``name`` (op kind), ``loc``, ``label``, ``unit``, ``tile``,
``order``, ``macs``, ``density``; with a result also ``start_cycle``,
``end_cycle``, ``cycles`` (= ``weight``) and ``bound``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import networkx

    from backends.elector.schedule import MappedFunction, SimulationResult

__all__ = ["schedule_graph"]


def schedule_graph(mapped: MappedFunction,
                   result: SimulationResult | None = None) -> networkx.DiGraph:
    """The mapped ops of ``mapped`` as a dependency graph (see the module docstring)."""
    import networkx as nx

    timing = {op.index: op for op in result.ops} if result is not None else {}
    graph = nx.DiGraph(name=f"{mapped.function} on {mapped.design}")
    for op in mapped.ops:
        data = {"name": op.kind, "loc": op.loc or "", "unit": op.unit,
                "tile": str(op.tile) if op.tile is not None else "", "order": op.order or "",
                "macs": int(op.macs), "density": float(op.density)}
        label = f"{op.index} {op.kind} [{op.unit}]"
        if op.index in timing:
            run = timing[op.index]
            data.update(start_cycle=float(run.start_cycle), end_cycle=float(run.end_cycle),
                        cycles=float(run.cycles), bound=run.bound)
            label += f"\n{run.cycles:,.0f} cycles, {run.bound}-bound"
        if op.loc:
            label += f"\n{op.loc}"
        graph.add_node(op.index, label=label, weight=data.get("cycles", 0.0), **data)
    for op in mapped.ops:
        for dep in op.deps:
            graph.add_edge(dep, op.index)
    return graph
