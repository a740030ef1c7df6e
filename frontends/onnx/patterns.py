"""Subgraph patterns the importer turns into one IR op.

Only one for now: the exact GELU, ``x * 0.5 * (1 + erf(x / √2))``, which both
torch exporters write as five nodes below opset 20 (TorchScript:
``Div(x, √2) → Erf → Add 1 → Mul x → Mul 0.5``; dynamo: ``Mul(x, 1/√2) → Erf →
Add 1 → Mul 0.5 → Mul x``).  Every association of the three factors is
recognised.  A match needs its intermediate values to have exactly one user and
not to be graph outputs, so removing the nodes changes nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import onnx

__all__ = ["GeluPattern", "find_gelu_patterns"]

ConstantLookup = Callable[[str], "np.ndarray | None"]


@dataclass(frozen=True)
class GeluPattern:
    """A matched GELU: ``root`` computes ``gelu(x)``; ``nodes`` are all its nodes."""

    root: Any
    nodes: tuple[Any, ...]
    x: str
    approximate: str = "none"


def _is_scalar(lookup: ConstantLookup, name: str, expected: float) -> bool:
    array = lookup(name)
    if array is None or array.size != 1 or array.dtype.kind != "f":
        return False
    return math.isclose(float(array.reshape(-1)[0]), expected, rel_tol=1e-4)


def find_gelu_patterns(graph: onnx.GraphProto, lookup: ConstantLookup) -> list[GeluPattern]:
    producers: dict[str, Any] = {}
    users: dict[str, list[Any]] = {}
    for node in graph.node:
        for output in node.output:
            producers[output] = node
        for name in node.input:
            users.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}

    def sole_user(name: str, op_type: str) -> Any | None:
        found = users.get(name, [])
        if len(found) != 1 or name in graph_outputs or found[0].op_type != op_type:
            return None
        return found[0]

    def other_input(node: Any, name: str) -> str | None:
        if len(node.input) != 2 or node.input[0] == node.input[1]:
            return None
        return node.input[1] if node.input[0] == name else node.input[0]

    def scaled_input(node: Any) -> str | None:
        """x for ``Div(x, √2)`` or ``Mul(x, 1/√2)``."""
        if node is None or len(node.input) != 2:
            return None
        if node.op_type == "Div" and _is_scalar(lookup, node.input[1], math.sqrt(2.0)):
            return node.input[0]
        if node.op_type == "Mul":
            for first, second in ((0, 1), (1, 0)):
                if _is_scalar(lookup, node.input[second], 1.0 / math.sqrt(2.0)):
                    return node.input[first]
        return None

    def half_of(node: Any) -> str | None:
        """x for ``Mul(x, 0.5)`` (either order)."""
        if node is None or node.op_type != "Mul" or len(node.input) != 2:
            return None
        for first, second in ((0, 1), (1, 0)):
            if _is_scalar(lookup, node.input[second], 0.5):
                return node.input[first]
        return None

    patterns = []
    for erf in graph.node:
        if erf.op_type != "Erf" or len(erf.input) != 1:
            continue
        scale = producers.get(erf.input[0])
        x = scaled_input(scale)
        if x is None or sole_user(scale.output[0], "Erf") is None:
            continue
        add = sole_user(erf.output[0], "Add")
        if add is None:
            continue
        one = other_input(add, erf.output[0])
        if one is None or not _is_scalar(lookup, one, 1.0):
            continue
        product = sole_user(add.output[0], "Mul")
        if product is None:
            continue
        partner = other_input(product, add.output[0])
        if partner is None:
            continue
        found: tuple[Any, tuple[Any, ...]] | None = None
        if partner == x:                                      # (x * (1 + erf)) * 0.5
            last = sole_user(product.output[0], "Mul")
            if last is not None and half_of(last) == product.output[0]:
                found = (last, (scale, erf, add, product, last))
        elif _is_scalar(lookup, partner, 0.5):                # x * (0.5 * (1 + erf))
            last = sole_user(product.output[0], "Mul")
            if last is not None and other_input(last, product.output[0]) == x:
                found = (last, (scale, erf, add, product, last))
        else:                                                 # (x * 0.5) * (1 + erf)
            halve = producers.get(partner)
            if half_of(halve) == x and sole_user(partner, "Mul") is product:
                found = (product, (scale, erf, add, halve, product))
        if found is not None:
            patterns.append(GeluPattern(found[0], found[1], x))
    return patterns
