"""Op dependency graphs: topological order, cycles, critical path, DOT and GraphML.

A function's ops form a directed graph: an edge ``p -> u`` for every value op
``p`` produces that op ``u`` reads.  The graph is a :class:`networkx.DiGraph`
whose nodes are the op positions in the function (0, 1, ... counting every op,
``func.return`` included) with these attributes:

``name``   the op name (``tensor.matmul``)
``loc``    its source name (module path) or ``""``
``label``  ``"<position> <name>"`` plus the source name, for viewers
``type``   the result types as the printer writes them (``tensor<2x16xf32>``)
``macs``, ``ops``, ``bytes``  hardware-independent cost counts (``op_cost``)
``weight`` a per-op weight given by the caller (cycles from a report), else 0

and each edge carries ``type`` (the value's type) and ``bytes`` (its size).
The backends build the same kind of graph for a mapped schedule
(:func:`backends.elector.graph.schedule_graph`) and use the algorithms here.

networkx is the project's graph library (ARCHITECTURE.md, the core "may
import numpy, lark, networkx"); it is imported inside the functions that use
it, so importing this module (and ``tcc --help``) does not load it.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from transcode_ir.errors import UserError

if TYPE_CHECKING:
    import networkx

    from transcode_ir.core import Function

__all__ = ["GRAPH_FORMATS", "CriticalPath", "check_acyclic", "critical_path", "dependency_graph",
           "find_cycle", "format_graph", "to_dot", "topological_order", "write_graph"]

#: Formats :func:`write_graph` and ``tcc opt --emit-graph`` write.
GRAPH_FORMATS = ("dot", "graphml")


def dependency_graph(function: Function,
                     weights: Mapping[int, float] | None = None) -> networkx.DiGraph:
    """The op dependency graph of ``function`` (see the module docstring).

    ``weights`` maps op positions to a per-op weight (e.g. cycles); ops not in
    it weigh 0.
    """
    import networkx as nx

    from transcode_ir.opdefs import op_cost
    from transcode_ir.printer import format_type

    graph = nx.DiGraph(name=function.name)
    position: dict[int, int] = {}
    for index, op in enumerate(function):
        position[id(op)] = index
        cost = op_cost(op) if op.name != "func.return" else None
        graph.add_node(index, name=op.name, loc=op.loc or "",
                       label=f"{index} {op.name}" + (f"\n{op.loc}" if op.loc else ""),
                       type=", ".join(format_type(r.type) for r in op.results),
                       macs=int(cost.macs) if cost else 0, ops=int(cost.ops) if cost else 0,
                       bytes=int(cost.bytes_in + cost.bytes_out) if cost else 0,
                       weight=float((weights or {}).get(index, 0.0)))
    for index, op in enumerate(function):
        for value in op.operands:
            producer = value.producer
            if producer is None:
                continue                    # a function argument
            if id(producer) not in position:
                raise UserError(f"op {index} ({op.name}) of @{function.name} reads a value of "
                                f"{producer.name}, which is not in the function")
            graph.add_edge(position[id(producer)], index, type=format_type(value.type),
                           bytes=int(value.type.nbytes))
    return graph


def find_cycle(graph: networkx.DiGraph) -> list[Hashable] | None:
    """The nodes of one dependency cycle (in edge order), or None when acyclic."""
    import networkx as nx

    try:
        edges = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return None
    return [source for source, _target in edges]


def check_acyclic(graph: networkx.DiGraph) -> None:
    """Raise a :class:`UserError` naming the ops of a cycle, if there is one."""
    cycle = find_cycle(graph)
    if cycle is not None:
        steps = " -> ".join(_describe(graph, node) for node in [*cycle, cycle[0]])
        raise UserError(f"{graph.graph.get('name') or 'the graph'} has a dependency cycle: "
                        f"{steps}; an op may only read values produced before it")


def topological_order(graph: networkx.DiGraph) -> list[Hashable]:
    """The nodes in dependency order, smallest node first among the ready ones
    (for a function graph: program order when the function is well formed)."""
    import networkx as nx

    check_acyclic(graph)
    return list(nx.lexicographical_topological_sort(graph))


@dataclass(frozen=True)
class CriticalPath:
    """The heaviest chain of dependent nodes: ``length`` is the sum of their
    weights, ``nodes`` the chain from first to last."""

    length: float
    nodes: tuple[Hashable, ...]


def critical_path(graph: networkx.DiGraph, weight: str = "weight") -> CriticalPath:
    """The node-weighted longest path of a DAG (node attribute ``weight``).

    With per-op cycles as weights this is the latency of the schedule if every
    op could start as soon as its inputs are ready and resources were
    unlimited: a lower bound on any schedule's length.  Ties: the path ends
    at the latest node (so it runs on through weightless ops such as the
    return) and goes through the smaller node id where two inputs tie.
    """
    best: dict[Hashable, tuple[float, Hashable | None]] = {}
    for node in topological_order(graph):
        own = float(graph.nodes[node].get(weight, 0.0) or 0.0)
        before = max(((best[p][0], p) for p in graph.predecessors(node)),
                     key=lambda item: (item[0], _neg(item[1])), default=(0.0, None))
        best[node] = (before[0] + own, before[1])
    if not best:
        return CriticalPath(0.0, ())
    end = max(best, key=lambda node: (best[node][0], _pos(node)))
    chain = [end]
    while best[chain[-1]][1] is not None:
        chain.append(best[chain[-1]][1])
    return CriticalPath(best[end][0], tuple(reversed(chain)))


def _neg(node: Hashable) -> Any:
    return -node if isinstance(node, (int, float)) else 0


def _pos(node: Hashable) -> Any:
    return node if isinstance(node, (int, float)) else 0


def _describe(graph: networkx.DiGraph, node: Hashable) -> str:
    name = graph.nodes[node].get("name")
    return f"op {node} ({name})" if name else f"op {node}"


def to_dot(graph: networkx.DiGraph, highlight: tuple[Hashable, ...] = ()) -> str:
    """Graphviz DOT text of ``graph``: one box per node (its ``label``), one
    arrow per edge (labelled with its ``type``); ``highlight`` nodes (e.g. a
    critical path) and the edges between consecutive ones are drawn bold red."""
    marked = set(highlight)
    path_edges = set(zip(highlight, highlight[1:]))
    lines = [f"digraph {_quote(str(graph.graph.get('name') or 'graph'))} {{",
             "  node [shape=box, fontname=\"monospace\"];"]
    for node, data in graph.nodes(data=True):
        attributes = [f"label={_quote(str(data.get('label', node)))}"]
        extra = {k: v for k, v in data.items() if k != "label" and v not in ("", None)}
        if extra:
            attributes.append("tooltip=" + _quote("; ".join(f"{k}={v}" for k, v in extra.items())))
        if node in marked:
            attributes.append('color="red", penwidth=2')
        lines.append(f"  {_quote(str(node))} [{', '.join(attributes)}];")
    for source, target, data in graph.edges(data=True):
        attributes = [f"label={_quote(str(data['type']))}"] if data.get("type") else []
        if (source, target) in path_edges:
            attributes.append('color="red", penwidth=2')
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"  {_quote(str(source))} -> {_quote(str(target))}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def format_graph(graph: networkx.DiGraph, fmt: str,
                 highlight: tuple[Hashable, ...] = ()) -> str:
    """``graph`` as DOT or GraphML text (:data:`GRAPH_FORMATS`)."""
    if fmt == "dot":
        return to_dot(graph, highlight)
    if fmt == "graphml":
        import networkx as nx

        marked = set(highlight)
        plain = graph.copy()
        for node in plain.nodes:
            plain.nodes[node]["critical"] = node in marked
        return "\n".join(nx.generate_graphml(plain)) + "\n"
    raise UserError(f"graph format {fmt!r}: accepted formats are {', '.join(GRAPH_FORMATS)}")


def write_graph(graph: networkx.DiGraph, path: str | os.PathLike[str], fmt: str | None = None,
                highlight: tuple[Hashable, ...] = ()) -> None:
    """Write ``graph`` to ``path`` as DOT or GraphML; ``fmt`` defaults to the
    file's suffix (``.dot``/``.gv`` or ``.graphml``)."""
    from transcode_ir.fileio import write_text

    if fmt is None:
        suffix = os.fspath(path).rsplit(".", 1)[-1].lower() if "." in os.fspath(path) else ""
        fmt = {"dot": "dot", "gv": "dot", "graphml": "graphml"}.get(suffix)
        if fmt is None:
            raise UserError(f"{os.fspath(path)}: cannot tell the graph format from the file name; "
                            "name it *.dot, *.gv or *.graphml")
    write_text(os.fspath(path), format_graph(graph, fmt, highlight))
