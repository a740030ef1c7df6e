"""``dynaprop``: insert DynaProp prune ops and record the density each one leaves.

DynaProp prunes small values at run time (``|x| ≤ τ`` becomes 0): activations
with τ_I in inference and training, gradients with τ_T in training.  This pass
makes the pruning explicit in the IR -- an ``nn.prune`` op at every prune
point (:mod:`dialects.sparsity`) -- and gives each pruned value a
:class:`~transcode_ir.types.SparsityEncoding`: the fraction of nonzeros it
holds and where that figure came from.  Densities are measured, never assumed
silently: with τ > 0 the pass needs one of three sources and fails without.

Options (``dynaprop{tau-i=0.01,tau-t=1e-4,calibration=inputs.npz}``)
=====================================================================

``tau-i``        τ_I for activations (default: the profile's, else 0)
``tau-t``        τ_T for gradients (default: the profile's, else 0)
``profile``      a DynaProp density profile (JSON) written by the torch
                 runtime (frontends/dynaprop, docs/dynaprop.md): source
                 ``profile``.  Its τ must agree with ``tau-i``/``tau-t`` when
                 those are given.
``calibration``  an ``.npz`` of real inputs named like ``@forward``'s
                 arguments (plus ``labels``/``target`` for training graphs),
                 each either of the argument's shape or with one more leading
                 axis of samples; the reference interpreter runs every
                 function on them and counts the nonzeros of every pruned
                 value: source ``measured``.
``density``      one density for every prune point, given by hand: source
                 ``assumed`` (reports say so).

At most one source may be given.  With every τ = 0 and no source the pass does
nothing.  With a source and τ = 0 it still inserts the (identity) prune ops,
so that the natural sparsity of each point (exact zeros, such as attention
probabilities of padded keys) is recorded.

Prune points and their names
============================

Found by **structure** (:func:`find_structural_points` on :func:`ir_graph`), in
``@forward`` and in the forward part of ``@backward`` and ``@train_step``; the
module path the importer records (``loc``) is kept only as a label (the prune
op's ``loc``).  The torch runtime runs the same matcher on the torch calls of
the model (:mod:`frontends.dynaprop.tracing`), so a profile's keys are the
pass's names.  Per attention block ``i`` (numbered in graph order):

=================  =========================  =============================================
role               point name                 the value pruned
=================  =========================  =============================================
query, key, value  ``layer.i.query`` ...      output of a Linear that reaches the q / k
                                              operand of the score product (or v of
                                              probs·v) through moves and elementwise ops
qkv                ``layer.i.qkv``            one Linear feeding several (GPT-2, MHA)
attention_input    ``layer.i.attention_input`` other Linears feeding the scores (DeBERTa's
                                              relative-position projections)
scores             ``layer.i.scores``         the softmax input: q·kᵀ, scaled, masked
probs              ``layer.i.probs``          the softmax output
context            ``layer.i.context``        probs·v (before the heads are merged)
attention_output   ``layer.i.attention_output`` output of the Linear reading the context
intermediate       ``layer.i.intermediate``   the FFN's activation output (act·up when
                                              gated): the second Linear's input
output             ``layer.i.output``         output of the FFN's last Linear
=================  =========================  =============================================

A Linear is a ``tensor.matmul`` by a rank-2 weight (bias add included) or an
``nn.linear``; an FFN is a Linear ``d -> f`` reaching an activation and then a
Linear ``f -> d`` (stacked FFNs: ``intermediate_1``, ... per activation).
**Fused ops stay fused**: a prune op follows an ``nn.linear`` (with or without
activation -- the accelerator's post-sparsity unit prunes on the way out of
the lane, and the cost model folds the prune into the producing op); the
scores and probabilities inside a fused ``nn.attention`` are pruned by the op
itself (its ``tau`` attribute, set by this pass; ONNX export and interpreter
both honour it), and their densities and names are attributes of it:
``dynaprop:scores_density``/``_source``/``_point`` and the same for ``probs``.

Training graphs (after ``autodiff``)
====================================

In ``@backward`` and ``@train_step`` the forward part is pruned as above and
the gradients are derived again from it with the op definitions' rules (the
gradient of ``nn.prune`` is ``grad.prune``, the straight-through estimator of
the surviving elements) by autodiff's reverse-mode loop
(:func:`passes.autodiff.differentiate`, whose ``on_gradient`` hook prunes),
then pruned with τ_T, as the torch runtime does:

* **activation gradients** -- the gradient with respect to each prune
  point's unpruned value, which the producing layer's backward matrix
  products read: ``nn.prune {role = "gradient", point = <point>}``;
* **weight gradients** -- the gradient of every Linear weight and bias, before
  the optimizer reads it (or ``@backward`` returns it):
  ``nn.prune {role = "weight_gradient", point = <parameter>}``.  A profile
  names them by the torch parameter (``....query.weight``); the IR's
  ``....query.weight_transposed`` is the same tensor transposed.

The old gradient ops are removed (their results are no longer read); the new
ones are not fused or cleaned up -- run ``cleanup`` (and ``fuse``) after
``dynaprop`` if wanted.  Gradient prune ops exist only where τ_T > 0.

Propagation
===========

A pruned value's zeros survive the ops that only move or map elements with
f(0) = 0 -- those whose definition has the ``ZeroPreserving`` trait
(``tensor.reshape``, ``tensor.transpose``, ``nn.gelu``, ``arith.tanh``,
``nn.relu``, ...): their results get an encoding too, so the matrix product
that reads Q after the heads are split sees Q's density on its operand.
With a calibration they are measured; otherwise they carry the prune
point's figure (exact for reshape and transpose; GELU and tanh map nonzeros
to nonzeros except for underflow far in the tail).

The pass records the thresholds in module attributes ``dynaprop:tau_i`` and
``dynaprop:tau_t`` (a number; when a profile gives different thresholds per
point, the largest, with ``dynaprop:per_point_thresholds = true``), the
density source in ``dynaprop:density_source`` and its origin (file or
number) in ``dynaprop:density_from``.  :func:`prune_records` lists every
prune op with its density for reports.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dialects.nn import softmax
from dialects.sparsity import prune
from passes.autodiff import (
    GradientBuilder,
    differentiate,
    needs_gradient,
    parameter_gradients,
    trainable_parameters,
)
from passes.dce import eliminate_dead_code
from transcode_ir.core import Function, Module, Op, Value
from transcode_ir.errors import UserError
from transcode_ir.interpreter import Interpreter
from transcode_ir.opdefs import ZeroPreserving, get_opdef
from transcode_ir.passes import Pass, option, register_pass
from transcode_ir.types import SparsityEncoding, TensorType

__all__ = [
    "DensityProfile",
    "DynaPropPass",
    "PruneRecord",
    "PruneSite",
    "find_prune_sites",
    "GraphNode",
    "StructuralPoint",
    "find_structural_points",
    "ir_graph",
    "load_profile",
    "prune_records",
]

TRAINING_FUNCTIONS = ("backward", "train_step")

SOURCES = ("profile", "measured", "assumed")

# --------------------------------------------------------------------------- structure


#: Roles of prune points, in the order a layer's points are listed.
ROLES = ("query", "key", "value", "qkv", "attention_input", "scores", "probs", "context",
         "attention_output", "intermediate", "output")


@dataclass
class GraphNode:
    """One computation of a model graph, as the structural matcher sees it.

    ``kind``: ``linear`` (a product by a rank-2 weight, bias included;
    ``width = (in, out)``), ``matmul`` (a product of two activations),
    ``attention`` (a fused softmax(q·kᵀ)·v), ``softmax`` (over the last axis),
    ``act`` (an FFN nonlinearity: GELU, ReLU, SiLU's sigmoid, erf, tanh),
    ``move`` (reshape, transpose, slice, concat, cast, dropout: values move),
    ``ew`` (other elementwise arithmetic) or ``other`` (a barrier: layer norm,
    gather, reductions, ...).  ``inputs``: indices of the nodes producing its
    activation operands in operand order (``None`` for an argument, parameter
    or constant).  ``label``: the module path, when the graph records one.
    ``handle``: the adapter's own object (the IR op, the torch call site).
    """

    index: int
    kind: str
    inputs: list[int | None]
    label: str = ""
    width: tuple[int, int] | None = None
    handle: Any = None


@dataclass(frozen=True)
class StructuralPoint:
    """A prune point found by structure: ``name`` (``layer.<i>.<role>``), ``role``,
    ``layer``, ``label`` (the module path of the op, for people), ``node`` whose output
    is pruned, and ``internal`` (``scores``/``probs`` inside a fused attention node)."""

    name: str
    role: str
    layer: int
    label: str
    node: int
    internal: str | None = None


_TRACE_THROUGH = ("move", "ew")
_MAX_STACKED_FFN = 4


def _consumers(nodes: list[GraphNode]) -> list[list[int]]:
    users: list[list[int]] = [[] for _ in nodes]
    for node in nodes:
        for i in node.inputs:
            if i is not None:
                users[i].append(node.index)
    return users


def _back(nodes: list[GraphNode], start: int | None, through: tuple[str, ...],
          targets: tuple[str, ...]) -> list[int]:
    """Nodes of a kind in ``targets`` reached backwards from ``start`` through nodes of a
    kind in ``through`` (``start`` itself counts), in graph order."""
    found: set[int] = set()
    seen: set[int] = set()
    frontier = [start] if start is not None else []
    while frontier:
        i = frontier.pop()
        if i is None or i in seen:
            continue
        seen.add(i)
        node = nodes[i]
        if node.kind in targets:
            found.add(i)
        elif node.kind in through:
            frontier.extend(node.inputs)
    return sorted(found)


def _forward(nodes: list[GraphNode], users: list[list[int]], start: int, through: tuple[str, ...],
             targets: tuple[str, ...]) -> list[tuple[int, int]]:
    """``(node, operand index)`` of nodes of a kind in ``targets`` that read ``start``'s
    output through nodes of a kind in ``through``."""
    found: list[tuple[int, int]] = []
    seen: set[int] = set()
    frontier = [start]
    while frontier:
        i = frontier.pop()
        for user in users[i]:
            node = nodes[user]
            if node.kind in targets:
                for k, src in enumerate(node.inputs):
                    if src == i and (user, k) not in found:
                        found.append((user, k))
            elif node.kind in through and user not in seen:
                seen.add(user)
                frontier.append(user)
    return sorted(found)


def find_structural_points(nodes: list[GraphNode]) -> list[StructuralPoint]:
    """The DynaProp prune points of a model graph, found by structure alone.

    Per attention block ``i`` (numbered in graph order by its softmax or fused
    attention): the projections feeding it -- ``query``/``key`` (Linears whose
    outputs reach the two operands of the score product q·kᵀ through moves and
    elementwise ops such as scaling or rotary embeddings), ``value`` (reaching
    the value operand of probs·v), ``qkv`` (one Linear reaching several), and
    ``attention_input`` (other Linears feeding the score, e.g. relative-position
    projections); ``scores`` (the softmax input: q·kᵀ, scaled, masked, biased),
    ``probs`` (the softmax output), ``context`` (probs·v) and
    ``attention_output`` (the Linear reading the context).  Per feed-forward
    block: ``intermediate``, the input of the FFN's second Linear (the
    activation's output, or activation·up for gated FFNs), and ``output``, that
    Linear's output.  An FFN is a Linear ``d -> f`` whose output reaches an
    activation, and from there a Linear ``f -> d``.  Module paths are only labels.
    """
    users = _consumers(nodes)
    points: list[StructuralPoint] = []
    taken: set[tuple[int, str | None]] = set()
    names: set[str] = set()
    layer = -1

    def add(role: str, node: int, internal: str | None = None) -> None:
        if (node, internal) in taken:
            return
        taken.add((node, internal))
        index = max(layer, 0)
        name = f"layer.{index}.{role}"
        k = 1
        while name in names:
            name = f"layer.{index}.{role}_{k}"
            k += 1
        names.add(name)
        points.append(StructuralPoint(name, role, index, nodes[node].label, node, internal))

    for node in nodes:
        if node.kind == "softmax":
            scores = node.inputs[0] if node.inputs else None
            products = [i for i in _back(nodes, scores, _TRACE_THROUGH, ("matmul",))]
            if scores is None or not products:
                continue
            # probs · v: through moves, dropout and guards such as where(isnan(p), 0, p)
            pv = [(u, k) for u, k in _forward(nodes, users, node.index, _TRACE_THROUGH,
                                               ("matmul",)) if k == 0]
            layer += 1
            qk = products[0]
            q_side = _back(nodes, nodes[qk].inputs[0], _TRACE_THROUGH, ("linear",))
            k_side = _back(nodes, nodes[qk].inputs[1], _TRACE_THROUGH, ("linear",))
            v_side = _back(nodes, nodes[pv[0][0]].inputs[1], _TRACE_THROUGH, ("linear",)) \
                if pv else []
            other = [lin for p in products[1:] for side in nodes[p].inputs
                     for lin in _back(nodes, side, _TRACE_THROUGH, ("linear",))]
            _add_projections(add, q_side, k_side, v_side, other)
            add("scores", scores)
            add("probs", node.index)
            if pv:
                context = pv[0][0]
                add("context", context)
                for user, _ in _forward(nodes, users, context, ("move",), ("linear",))[:1]:
                    add("attention_output", user)
        elif node.kind == "attention":
            layer += 1
            q_side, k_side, v_side = (
                _back(nodes, node.inputs[i] if len(node.inputs) > i else None,
                      _TRACE_THROUGH, ("linear",)) for i in range(3))
            _add_projections(add, q_side, k_side, v_side, [])
            add("scores", node.index, "scores")
            add("probs", node.index, "probs")
            add("context", node.index)
            for user, _ in _forward(nodes, users, node.index, ("move",), ("linear",))[:1]:
                add("attention_output", user)
        elif node.kind == "linear" and node.width is not None:
            # The FFN's last Linear: back from its input through an activation to a
            # Linear, and on through stacked (activation, Linear) pairs, until a Linear
            # whose input width is this one's output width (d -> f ... -> d).
            d_out = node.width[1]
            current, reads = node.index, []
            for _ in range(_MAX_STACKED_FFN):
                source = nodes[current].inputs[0] if nodes[current].inputs else None
                acts = _back(nodes, source, _TRACE_THROUGH, ("act",))
                if acts:
                    firsts = [i for a in acts for i in _back(
                        nodes, nodes[a].inputs[0] if nodes[a].inputs else None,
                        _TRACE_THROUGH, ("linear",))]
                else:   # a fused Linear+activation reads like an activation of its own
                    firsts = [i for i in _back(nodes, source, _TRACE_THROUGH, ("linear",))
                              if _fused_activation(nodes[i])]
                firsts = [i for i in firsts if nodes[i].width is not None and i < current]
                if source is None or not firsts:
                    break
                reads.append(source)
                current = max(firsts)
                if nodes[current].width[0] == d_out:
                    if (node.index, None) not in taken:
                        for value in reversed(reads):
                            add("intermediate", value)
                        add("output", node.index)
                    break
    return points


def _fused_activation(node: GraphNode) -> bool:
    return bool(getattr(node, "fused_activation", False)) or (
        isinstance(node.handle, Op) and node.handle.name == "nn.linear"
        and node.handle.attr("activation") != "none")


def _add_projections(add: Callable[..., None], q_side: list[int], k_side: list[int],
                     v_side: list[int], other: list[int]) -> None:
    sides = {}
    for role, found in (("query", q_side), ("key", k_side), ("value", v_side)):
        for node in found:
            sides.setdefault(node, []).append(role)
    for node in sorted(sides):
        roles = sides[node]
        add(roles[0] if len(roles) == 1 else "qkv", node)
    for node in sorted(set(other) - set(sides)):
        add("attention_input", node)


# --------------------------------------------------------------------------- the IR as a graph

#: IR ops by the matcher's node kind (anything else is ``other``).
_IR_ACT = ("nn.gelu", "nn.relu", "arith.sigmoid", "arith.erf", "arith.tanh")
_IR_MOVE = ("tensor.reshape", "tensor.transpose", "tensor.slice", "tensor.expand", "tensor.gather",
            "tensor.concat", "arith.cast", "nn.prune")
_IR_EW = ("arith.add", "arith.sub", "arith.mul", "arith.div", "arith.neg", "arith.select",
          "arith.max", "arith.min")


@dataclass
class PruneSite:
    """A prune point found in a function.

    ``name`` is the structural name (``layer.<i>.<role>``), ``label`` the
    module path of the op that computes it (the importer's ``loc``).
    ``value`` is the value to prune; it is None for ``scores``/``probs``
    inside a fused ``nn.attention`` (``op``), which the op prunes itself
    (its ``tau``).  ``op`` is the op the point was found at.
    """

    name: str
    role: str
    value: Value | None
    op: Op
    label: str = ""
    layer: int = 0


def ir_graph(ops: Iterable[Op]) -> tuple[list[GraphNode], list[Value | None]]:
    """The matcher's graph of ``ops`` and each node's output value (a Linear's is its
    bias add's result).  Values computed only from parameters and constants are weights,
    not nodes; a prune op is transparent (the pass can run again)."""
    nodes: list[GraphNode] = []
    outputs: list[Value | None] = []
    node_of: dict[int, int] = {}          # id(Value) -> node
    folded: set[int] = set()              # bias adds folded into their Linear
    for op in ops:
        if id(op) in folded or op.name in ("func.return", "tensor.param", "tensor.constant"):
            continue
        active = [o for o in op.operands if id(o) in node_of or _is_argument(o)]
        if not active:
            continue                      # arithmetic on weights and constants
        if op.name == "nn.prune":
            if op.operands and id(op.operands[0]) in node_of:
                node_of[id(op.results[0])] = node_of[id(op.operands[0])]
            continue
        inputs = [node_of.get(id(o)) for o in op.operands]
        weight = op.name == "tensor.matmul" and _is_dense(op) and \
            id(op.operands[1]) not in node_of and not _is_argument(op.operands[1])
        index = len(nodes)
        if op.name == "nn.linear" or weight:
            w = op.operands[1].type.shape
            out = _linear_output(op) if weight else op.results[0]
            if out is not op.results[0]:
                folded.add(id(out.owner))
            node = GraphNode(index, "linear", inputs[:1], op.loc or "", (w[-2], w[-1]), op)
        elif op.name == "tensor.matmul":
            node, out = GraphNode(index, "matmul", inputs[:2], op.loc or "", None, op), \
                op.results[0]
        elif op.name == "nn.attention":
            node, out = GraphNode(index, "attention", inputs, op.loc or "", None, op), \
                op.results[0]
        else:
            x = op.operands[0] if op.operands else None
            if op.name == "nn.softmax" and x is not None and \
                    op.attr("axis") % max(x.type.rank, 1) == x.type.rank - 1:
                kind = "softmax"
            elif op.name in _IR_ACT:
                kind = "act"
            elif op.name in _IR_MOVE:
                kind = "move"
            elif op.name in _IR_EW:
                kind = "ew"
            else:
                kind = "other"
            node, out = GraphNode(index, kind, inputs, op.loc or "", None, op), \
                (op.results[0] if op.results else None)
        nodes.append(node)
        outputs.append(out)
        for result in op.results:
            node_of[id(result)] = index
        if out is not None:
            node_of[id(out)] = index
    return nodes, outputs


def _is_argument(value: Value) -> bool:
    return not isinstance(value.owner, Op)


def _is_dense(op: Op) -> bool:
    """A Linear: a matmul by a rank-2 weight, or a fused nn.linear."""
    if op.name == "nn.linear":
        return True
    return (op.name == "tensor.matmul" and op.operands[1].type.rank == 2
            and op.operands[0].type.rank >= 2)


def _linear_output(op: Op) -> Value:
    """The Linear's output: the bias add after a matmul, or the op's result."""
    result = op.results[0]
    if op.name == "tensor.matmul" and len(result.uses) == 1:
        add = result.uses[0].op
        if add.name == "arith.add":
            other = add.operands[1 - result.uses[0].index]
            if other.type.rank == 1 and other.type.shape == (op.operands[1].type.shape[1],) \
                    and add.results[0].type.shape == result.type.shape:
                return add.results[0]
    return result


def find_prune_sites(ops: Iterable[Op]) -> list[PruneSite]:
    """The activation prune points among ``ops`` (a function's ops or its forward part), in
    the order they are found (:func:`find_structural_points` on :func:`ir_graph`)."""
    nodes, outputs = ir_graph(ops)
    sites = []
    for point in find_structural_points(nodes):
        op = nodes[point.node].handle
        value = None if point.internal else outputs[point.node]
        if value is not None:
            value = _unpruned(value, point.name)
        sites.append(PruneSite(point.name, point.role, value, op, point.label, point.layer))
    return sites


def _unpruned(value: Value, name: str) -> Value:
    """The value before the prune op of ``name`` that produced ``value`` (a rerun of the pass)."""
    owner = value.owner
    if isinstance(owner, Op) and owner.name == "nn.prune" and owner.attr("point") == name \
            and owner.attr("role") == "activation":
        return owner.operands[0]
    return value


def _existing_prune(value: Value, name: str, role: str = "activation") -> Op | None:
    """A prune op of ``name`` that already prunes ``value`` (the pass is idempotent)."""
    for use in value.uses:
        op = use.op
        if op.name == "nn.prune" and op.attr("point") == name and \
                op.attr("role") == role:
            return op
    return None


def _insert_prune(func: Function, value: Value, name: str, tau: float, role: str = "activation",
                  loc: str | None = None, label: str = "") -> Op:
    """``nn.prune(value)`` right after ``value`` is made; every other use reads the pruned value."""
    existing = _existing_prune(value, name, role)
    if existing is not None:
        existing.set_attr("tau", float(tau))
        return existing
    attrs: dict[str, Any] = {"tau": float(tau), "point": name}
    if role != "activation":
        attrs["role"] = role
    op = Op("nn.prune", [value], [value.type.dense()], attrs,
            loc if loc is not None else (label or name))
    producer = value.owner if isinstance(value.owner, Op) else None
    if producer is not None and producer.parent is func:
        func.insert_after(op, producer)
    else:
        func.insert_before(op, func.first)
    for use in list(value.uses):
        if use.op is not op:
            use.op.set_operand(use.index, op.results[0])
    return op


# --------------------------------------------------------------------------- density profiles


@dataclass(frozen=True)
class DensityProfile:
    """Densities (fractions of nonzeros after pruning) and thresholds read from a profile.

    ``forward`` and ``backward`` map prune-point paths to densities;
    ``weight_gradients`` maps parameter names (torch's) to densities;
    ``tau_i``/``tau_t`` map paths to the thresholds the profile was measured
    with, ``default_tau_i``/``default_tau_t`` are the profile-wide ones.
    ``module_prefix`` is the encoder prefix the runtime removed from the keys
    (``bert.`` for a classifier); names are looked up with and without it.
    """

    path: str
    forward: Mapping[str, float] = field(default_factory=dict)
    backward: Mapping[str, float] = field(default_factory=dict)
    weight_gradients: Mapping[str, float] = field(default_factory=dict)
    tau_i: Mapping[str, float] = field(default_factory=dict)
    tau_t: Mapping[str, float] = field(default_factory=dict)
    default_tau_i: float | None = None
    default_tau_t: float | None = None
    module_prefix: str = ""
    mode: str = ""

    def key(self, name: str) -> str:
        """``name`` as the profile spells it (without the module prefix)."""
        prefix = self.module_prefix
        return name[len(prefix):] if prefix and name.startswith(prefix) else name

    def threshold(self, kind: str, name: str) -> float | None:
        table, default = (self.tau_i, self.default_tau_i) if kind == "i" else \
            (self.tau_t, self.default_tau_t)
        return table.get(self.key(name), default)

    def lookup(self, table: Mapping[str, float], name: str) -> float | None:
        key = self.key(name)
        return table.get(key, table.get(name))


def _density_of(entry: Any, where: str) -> float | None:
    """A density from ``{"elements": n, "zeros": z, "density": d}`` (the runtime's form), a
    bare number, or None (not measured)."""
    if entry is None:
        return None
    if isinstance(entry, bool):
        raise UserError(f"{where}: expected a density, got {entry!r}")
    if isinstance(entry, (int, float)):
        value = float(entry)
    elif isinstance(entry, Mapping):
        if "elements" in entry and "zeros" in entry:
            elements = int(entry["elements"])
            if elements == 0:
                return None
            value = (elements - int(entry["zeros"])) / elements
        elif "density" in entry:
            return _density_of(entry["density"], where)
        else:
            raise UserError(f"{where}: expected a density object {{elements, zeros, density}}, "
                            f"got keys {sorted(entry)}")
    else:
        raise UserError(f"{where}: expected a density, got {entry!r}")
    if not 0.0 <= value <= 1.0:
        raise UserError(f"{where}: a density lies in [0, 1], got {value}")
    return value


def _threshold_of(entry: Any, where: str) -> float | None:
    if entry is None:
        return None
    if isinstance(entry, bool) or not isinstance(entry, (int, float)) or \
            not math.isfinite(entry) or entry < 0:
        raise UserError(f"{where}: expected a threshold >= 0, got {entry!r}")
    return float(entry)


PROFILE_FORMAT = "transcode.dynaprop-profile"
PROFILE_VERSION = 1


def load_profile(path: str | Path) -> DensityProfile:
    """Read a DynaProp density profile (JSON, schema version 1 of docs/dynaprop.md).

    The torch runtime writes it (``frontends.dynaprop.profile``, ``tcc dynaprop
    profile``); this reader lives in the passes layer, which does not import
    the frontends, and takes only what the pass needs: ``points`` keyed by
    prune-point path, each with ``tau_i``, ``tau_t``, ``forward`` and
    ``backward`` ({elements, zeros, density} or null), ``thresholds``,
    ``module_prefix``, ``mode`` and ``weight_gradients`` keyed by parameter.
    """
    path = Path(path)
    where = f"dynaprop: profile {path}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{where}: no such file") from None
    except OSError as err:
        raise UserError(f"{where}: cannot read it: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{where}:{err.lineno}:{err.colno}: not JSON: {err.msg}") from None
    if not isinstance(data, Mapping):
        raise UserError(f"{where}: expected a JSON object at the top")
    if data.get("format", PROFILE_FORMAT) != PROFILE_FORMAT:
        raise UserError(f"{where}: format is {data.get('format')!r}, expected {PROFILE_FORMAT!r}")
    if data.get("version", PROFILE_VERSION) != PROFILE_VERSION:
        raise UserError(f"{where}: schema version {data.get('version')!r}; this pass reads "
                        f"version {PROFILE_VERSION}")
    raw_points = data.get("points")
    if not isinstance(raw_points, Mapping) or not raw_points:
        raise UserError(f"{where}: field 'points' must be a non-empty object keyed by prune-point "
                        "path (see docs/dynaprop.md)")
    thresholds = data.get("thresholds") if isinstance(data.get("thresholds"), Mapping) else {}
    default_i = _threshold_of(thresholds.get("tau_i"), f"{where}: thresholds.tau_i")
    default_t = _threshold_of(thresholds.get("tau_t"), f"{where}: thresholds.tau_t")
    forward: dict[str, float] = {}
    backward: dict[str, float] = {}
    tau_i: dict[str, float] = {}
    tau_t: dict[str, float] = {}
    for name, point in raw_points.items():
        if not isinstance(point, Mapping):
            raise UserError(f"{where}: points[{name!r}] must be an object")
        label = f"{where}: points[{name!r}]"
        for key, table in (("forward", forward), ("backward", backward)):
            density = _density_of(point.get(key), f"{label}.{key}")
            if density is not None:
                table[name] = density
        for key, table in (("tau_i", tau_i), ("tau_t", tau_t)):
            tau = _threshold_of(point.get(key), f"{label}.{key}")
            if tau is not None:
                table[name] = tau
    weights: dict[str, float] = {}
    raw_weights = data.get("weight_gradients") or {}
    if not isinstance(raw_weights, Mapping):
        raise UserError(f"{where}: field 'weight_gradients' must be an object")
    for name, entry in raw_weights.items():
        density = _density_of(entry, f"{where}: weight_gradients[{name!r}]")
        if density is not None:
            weights[str(name)] = density
    prefix = data.get("module_prefix") or ""
    return DensityProfile(str(path), forward, backward, weights, tau_i, tau_t, default_i,
                          default_t, str(prefix), str(data.get("mode") or ""))


def torch_parameter_name(name: str) -> str:
    """The torch parameter an IR parameter holds (the exporter stores ``W`` transposed as
    ``<path>.weight_transposed``)."""
    return name[: -len("_transposed")] if name.endswith(".weight_transposed") else name


# --------------------------------------------------------------------------- the pass


@dataclass
class _Pruned:
    """A prune op the pass made or updated: what to look its density up by."""

    op: Op
    function: str
    key: tuple[str, str]            # (role, point)
    label: str = ""                 # the module path, for profiles keyed by it


@register_pass
@dataclass(frozen=True)
class DynaPropPass(Pass):
    """Insert DynaProp prune ops (|x| <= tau -> 0) at the prune points and record their densities.

    Requires: a verified module with ``@forward`` whose ops carry module-path
    locations (the ONNX importer's), optionally ``@backward``/``@train_step``
    from ``autodiff``; with any τ > 0, one density source (``profile``,
    ``calibration`` or ``density``); parameter data for ``calibration``.
    Guarantees: an ``nn.prune`` at every prune point of ``@forward`` and of
    the forward part of the training functions, and -- where τ_T > 0 -- at
    the activation and weight gradients of the training functions, whose
    gradients are re-derived from the pruned forward computation; every
    prune result (and the reshapes, transposes, GELUs and tanhs after it)
    carries a SparsityEncoding whose source is the one given; fused
    ``nn.attention`` ops carry their internal densities as ``dynaprop:*``
    attributes; module attributes record τ_I, τ_T and the source.  Running
    it again updates the existing prune ops instead of adding more.
    """

    name: ClassVar[str] = "dynaprop"
    tau_i: float | None = option(None, "threshold for activations (default: the profile's, else 0)")
    tau_t: float | None = option(None, "threshold for gradients in training graphs (default: the "
                                       "profile's, else 0)")
    profile: str = option("", "density profile (JSON) from the torch runtime: source 'profile'")
    calibration: str = option("", ".npz of real inputs (and labels): the interpreter measures "
                                  "every prune point, source 'measured'")
    density: float | None = option(None, "one density for every prune point: source 'assumed'")

    def __post_init__(self) -> None:
        for label, value in (("tau-i", self.tau_i), ("tau-t", self.tau_t)):
            if value is not None and (not math.isfinite(value) or value < 0):
                raise ValueError(f"{label} must be a finite number >= 0, got {value}")
        if self.density is not None and not 0.0 <= self.density <= 1.0:
            raise ValueError(f"density is a fraction of nonzeros in [0, 1], got {self.density}")
        given = [f"{key}={value}" for key, value in (("profile", self.profile),
                                                       ("calibration", self.calibration)) if value]
        if self.density is not None:
            given.append(f"density={self.density}")
        if len(given) > 1:
            raise ValueError(f"give one density source, not {len(given)} ({', '.join(given)})")

    # -- options
    @property
    def source(self) -> str | None:
        if self.profile:
            return "profile"
        if self.calibration:
            return "measured"
        if self.density is not None:
            return "assumed"
        return None

    def _thresholds(self, profile: DensityProfile | None) -> tuple[Callable[[str], float],
                                                                    Callable[[str], float]]:
        """τ_I and τ_T as functions of a point (or parameter) name."""
        def make(kind: str, given: float | None) -> Callable[[str], float]:
            label = "tau-i" if kind == "i" else "tau-t"

            def tau(name: str) -> float:
                if profile is None:
                    return given if given is not None else 0.0
                measured_with = profile.threshold(kind, name)
                if given is None:
                    return measured_with if measured_with is not None else 0.0
                if measured_with is not None and not math.isclose(measured_with, given,
                                                                  rel_tol=1e-6, abs_tol=1e-12):
                    raise UserError(
                        f"dynaprop: {label}={given!r} but profile {profile.path} was measured "
                        f"with {label}={measured_with!r} at {name!r}; its densities describe "
                        f"that threshold -- drop {label} to use the profile's, or profile again")
                return given
            return tau

        return make("i", self.tau_i), make("t", self.tau_t)

    # -- the pass
    def apply(self, module: Module) -> bool:
        profile = load_profile(self.profile) if self.profile else None
        source = self.source
        if source is None:
            if not (self.tau_i or self.tau_t):
                return False        # nothing pruned, nothing to record
            raise UserError(_NO_SOURCE_MESSAGE.format(pipeline=str(self)))
        forward = module.functions.get("forward")
        if forward is None:
            raise UserError("dynaprop needs a function @forward; the module has "
                            + (", ".join("@" + f for f in module.functions) or "none"))
        tau_i, tau_t = self._thresholds(profile)
        pruned: list[_Pruned] = []
        attention_ops: list[tuple[str, Op]] = []
        sites = self._prune_activations(forward, list(forward), tau_i, pruned, attention_ops)
        if not sites:
            raise UserError(
                "dynaprop: found no prune point in @forward: no attention (a softmax over "
                "the last axis of a product of two activations, or a fused nn.attention) and "
                "no feed-forward block (a Linear d->f whose output reaches an activation and "
                "then a Linear f->d).  Prune points are found by this structure, whatever "
                "the modules are called")
        for name in TRAINING_FUNCTIONS:
            func = module.functions.get(name)
            if func is not None:
                self._prune_training(module, func, tau_i, tau_t, pruned, attention_ops)
        self._assign_densities(module, source, profile, pruned, attention_ops)
        self._record(module, source, pruned, attention_ops)
        return True

    # -- forward
    def _prune_activations(self, func: Function, ops: list[Op], tau_i: Callable[[str], float],
                           pruned: list[_Pruned], attention_ops: list[tuple[str, Op]]
                           ) -> list[PruneSite]:
        sites = find_prune_sites(ops)
        for site in sites:
            tau = tau_i(site.name)
            if site.value is None:
                # scores / probs inside a fused attention: the op prunes them itself
                # (its ``tau``), so it stays one job.
                site.op.set_attr("tau", float(tau))
                site.op.set_attr(f"dynaprop:{site.role}_point", site.name)
                if not any(op is site.op for _, op in attention_ops):
                    attention_ops.append((func.name, site.op))
                continue
            op = _insert_prune(func, site.value, site.name, tau, label=site.label)
            pruned.append(_Pruned(op, func.name, ("activation", site.name), site.label))
        return sites

    # -- training graphs
    def _prune_training(self, module: Module, func: Function, tau_i: Callable[[str], float],
                        tau_t: Callable[[str], float], pruned: list[_Pruned],
                        attention_ops: list[tuple[str, Op]]) -> None:
        loss_op = next((op for op in func if get_opdef(op.name).category == "loss"), None)
        if loss_op is None:
            raise UserError(f"dynaprop: @{func.name} has no loss op; expected the training "
                            "function that autodiff builds")
        forward_ops = []
        for op in func:
            if op is loss_op:
                break
            forward_ops.append(op)
        mine: list[_Pruned] = []
        self._prune_activations(func, forward_ops, tau_i, mine, attention_ops)
        pruned.extend(mine)
        self._rederive_gradients(module, func, loss_op, tau_t, pruned)

    def _rederive_gradients(self, module: Module, func: Function, loss_op: Op,
                            tau_t: Callable[[str], float], pruned: list[_Pruned]) -> None:
        """Differentiate the (now pruned) forward part again, prune the gradients with τ_T,
        rewire the results and the optimizer to the new gradients, drop the old ones."""
        ops = []
        for op in func:
            ops.append(op)
            if op is loss_op:
                break
        loss = loss_op.results[0]
        trainable = set(trainable_parameters(module))
        builder = GradientBuilder(func, set())
        builder.anchor = loss_op.next
        builder.needed = needs_gradient(ops, loss, trainable)
        # The gradient of each prune point's unpruned value y is pruned with τ_T before the
        # rule of y's producer reads it -- where the torch runtime's tensor hook prunes it.
        hooks: dict[int, tuple[Op, float]] = {}
        for op in ops:
            if op.name == "nn.prune" and op.attr("role") == "activation":
                tau = tau_t(op.attr("point"))
                if tau > 0:
                    hooks[id(op.operands[0])] = (op, tau)

        def prune_gradient(value: Value, gradient: Value) -> Value:
            if id(value) not in hooks:
                return gradient
            forward_prune, tau = hooks[id(value)]
            point = forward_prune.attr("point")
            builder.loc = forward_prune.loc
            new = builder.create("nn.prune", (gradient,),
                                 {"tau": float(tau), "point": point, "role": "gradient"})
            pruned.append(_Pruned(new, func.name, ("gradient", point)))
            return new.results[0]

        grads = differentiate(builder, ops, loss, on_gradient=prune_gradient)

        # Weight gradients: summed over the reads of each parameter, then pruned.
        linear_params = _linear_parameters(ops)
        param_grads = parameter_gradients(builder, ops, grads, trainable)
        for pname in list(param_grads):
            tau = tau_t(torch_parameter_name(pname))
            if pname in linear_params and tau > 0:
                builder.loc = pname
                new_op = builder.create("nn.prune", (param_grads[pname],),
                                        {"tau": float(tau), "point": pname,
                                         "role": "weight_gradient"})
                param_grads[pname] = new_op.results[0]
                pruned.append(_Pruned(new_op, func.name, ("weight_gradient", pname)))
        _rewire_gradients(func, param_grads)
        eliminate_dead_code(func)
        alive = {id(op) for op in func}
        pruned[:] = [p for p in pruned if p.function != func.name or id(p.op) in alive]

    # -- densities
    def _assign_densities(self, module: Module, source: str, profile: DensityProfile | None,
                          pruned: list[_Pruned], attention_ops: list[tuple[str, Op]]) -> None:
        followers = {id(p.op): _zero_preserving_followers(p.op.results[0]) for p in pruned}
        if source == "measured":
            measured = _measure(module, Path(self.calibration), pruned, followers, attention_ops)
            for p in pruned:
                for value in [p.op.results[0], *followers[id(p.op)]]:
                    value.type = value.type.with_encoding(
                        SparsityEncoding(measured.density(value), "measured"))
            for _, op in attention_ops:
                for part in ("scores", "probs"):
                    _set_attention_density(op, part, measured.attention(op, part), "measured")
            return
        for p in pruned:
            density = self._looked_up(source, profile, p.key)
            encoding = SparsityEncoding(density, source)
            for value in [p.op.results[0], *followers[id(p.op)]]:
                value.type = value.type.with_encoding(encoding)
        for _, op in attention_ops:
            for part in ("scores", "probs"):
                density = self._looked_up(source, profile,
                                          ("activation", op.attr(f"dynaprop:{part}_point", "")))
                _set_attention_density(op, part, density, source)

    def _looked_up(self, source: str, profile: DensityProfile | None,
                   key: tuple[str, str]) -> float:
        if source == "assumed":
            return float(self.density)  # type: ignore[arg-type]
        assert profile is not None
        role, name = key
        if role == "weight_gradient":
            table, lookup, what = profile.weight_gradients, torch_parameter_name(name), \
                "weight-gradient density"
        elif role == "gradient":
            table, lookup, what = profile.backward, name, "backward (gradient) density"
        else:
            table, lookup, what = profile.forward, name, "forward density"
        found = profile.lookup(table, lookup)
        if found is not None:
            return found
        known = sorted(table)
        shown = ", ".join(known[:4]) + (", ..." if len(known) > 4 else "")
        hint = (" (it is an inference profile: profile in training mode for gradients)"
                if role != "activation" and profile.mode == "inference" else "")
        raise UserError(f"dynaprop: profile {profile.path} has no {what} for prune point "
                        f"{profile.key(lookup)!r}{hint}; it has {len(known)}: {shown or 'none'}.  "
                        "Profile the same model, or use calibration=FILE to measure")

    def _record(self, module: Module, source: str, pruned: list[_Pruned],
                attention_ops: list[tuple[str, Op]]) -> None:
        taus_i = [float(p.op.attributes["tau"]) for p in pruned if p.key[0] == "activation"] + \
            [float(op.attr("tau")) for _, op in attention_ops]
        taus_t = [float(p.op.attributes["tau"]) for p in pruned if p.key[0] != "activation"]
        tau_t_value = self.tau_t if self.tau_t is not None else (max(taus_t) if taus_t else 0.0)
        per_point = len(set(taus_i)) > 1 or len(set(taus_t)) > 1
        origin = {"profile": self.profile, "measured": self.calibration,
                  "assumed": f"density={self.density!r}"}[source]
        module.attributes = module.attributes.with_(**{
            "dynaprop:tau_i": max(taus_i) if taus_i else 0.0,
            "dynaprop:tau_t": float(tau_t_value),
            "dynaprop:density_source": source,
            "dynaprop:density_from": origin,
            "dynaprop:per_point_thresholds": True if per_point else None,
        })


_NO_SOURCE_MESSAGE = (
    "{pipeline} needs a density source: with tau > 0 it prunes values, and the cost model "
    "needs the density (fraction of nonzeros) that each prune point leaves, measured rather "
    "than assumed silently.  Give one of: profile=FILE (a density profile written by the "
    "torch runtime in frontends/dynaprop, see docs/dynaprop.md; source 'profile'), "
    "calibration=FILE (an .npz of "
    "real inputs named like @forward's arguments, plus 'labels' for training graphs; the "
    "interpreter measures every prune point; source 'measured'), or density=D (one density for "
    "every prune point, 0 <= D <= 1; source 'assumed', and reports mark it as assumed)")


def _linear_parameters(ops: Iterable[Op]) -> set[str]:
    """Parameters that are a Linear's weight or bias (their gradients are pruned with τ_T)."""
    names: set[str] = set()

    def param_name(value: Value) -> str | None:
        owner = value.owner
        if isinstance(owner, Op) and owner.name == "tensor.param":
            return owner.attributes["name"]
        return None

    for op in ops:
        if not _is_dense(op):
            continue
        for operand in op.operands[1:3]:
            name = param_name(operand)
            if name is not None:
                names.add(name)
        if op.name == "tensor.matmul":
            output = _linear_output(op)
            add = output.owner
            if isinstance(add, Op) and add is not op:
                for operand in add.operands:
                    name = param_name(operand)
                    if name is not None:
                        names.add(name)
    return names


def _rewire_gradients(func: Function, param_grads: Mapping[str, Value]) -> None:
    """Point @backward's ``<param>.grad`` results and @train_step's optimizer ops at the new
    gradients."""
    ret = func.return_op
    if ret is not None:
        for index, name in enumerate(func.result_names):
            if name.endswith(".grad") and name[: -len(".grad")] in param_grads:
                ret.set_operand(index, param_grads[name[: -len(".grad")]])
    for op in func:
        if get_opdef(op.name).category != "optimizer":
            continue
        owner = op.operands[0].owner
        if isinstance(owner, Op) and owner.name == "tensor.param":
            pname = owner.attributes["name"]
            if pname not in param_grads:
                raise UserError(f"dynaprop: @{func.name}: the optimizer updates {pname!r}, but "
                                "the re-derived gradients have none for it")
            op.set_operand(1, param_grads[pname])


def _zero_preserving_followers(value: Value) -> list[Value]:
    """Values computed from ``value`` by ops that keep its zeros (reshape, transpose, ...)."""
    out: list[Value] = []
    frontier = [value]
    while frontier:
        current = frontier.pop()
        for use in current.uses:
            op = use.op
            if use.index == 0 and len(op.results) == 1 and op.has_trait(ZeroPreserving):
                out.append(op.results[0])
                frontier.append(op.results[0])
    return out


def _set_attention_density(op: Op, part: str, density: float, source: str) -> None:
    op.set_attr(f"dynaprop:{part}_density", float(density))
    op.set_attr(f"dynaprop:{part}_source", source)


# --------------------------------------------------------------------------- measuring


class _Counts:
    """Nonzeros and elements of watched values (by id) and of fused-attention internals."""

    def __init__(self) -> None:
        self.counts: dict[int, list[int]] = {}
        self.internal: dict[tuple[int, str], list[int]] = {}

    def add(self, key: int, array: np.ndarray) -> None:
        entry = self.counts.setdefault(key, [0, 0])
        entry[0] += int(np.count_nonzero(array))
        entry[1] += int(array.size)

    def add_internal(self, op: Op, part: str, array: np.ndarray) -> None:
        entry = self.internal.setdefault((id(op), part), [0, 0])
        entry[0] += int(np.count_nonzero(array))
        entry[1] += int(array.size)

    def density(self, value: Value) -> float:
        nonzeros, elements = self.counts.get(id(value), (0, 0))
        return nonzeros / elements if elements else 1.0

    def attention(self, op: Op, part: str) -> float:
        nonzeros, elements = self.internal.get((id(op), part), (0, 0))
        return nonzeros / elements if elements else 1.0


def _load_calibration(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: np.asarray(data[name]) for name in data.files}
    except FileNotFoundError:
        raise UserError(f"dynaprop: calibration file {path}: no such file") from None
    except (ValueError, OSError) as err:
        raise UserError(f"dynaprop: calibration file {path}: not an .npz of arrays "
                        f"({err})") from None


def _samples(func: Function, arrays: Mapping[str, np.ndarray],
             path: Path) -> list[dict[str, np.ndarray]]:
    """Split the calibration arrays into inputs of ``func``: each array has the argument's
    shape (one sample) or one more leading axis (several)."""
    count: int | None = None
    stacked: dict[str, bool] = {}
    for arg in func.args:
        if arg.name not in arrays:
            what = "the loss's reference (labels or target)" if arg is func.args[-1] and \
                func.name in TRAINING_FUNCTIONS else "an input"
            raise UserError(
                f"dynaprop: calibration file {path} has no array {arg.name!r}, {what} of "
                f"@{func.name} of shape {list(arg.type.shape)}; it has "
                f"{', '.join(sorted(arrays)) or 'none'}")
        shape = tuple(arrays[arg.name].shape)
        if shape == arg.type.shape:
            stacked[arg.name], n = False, 1
        elif shape[1:] == arg.type.shape:
            stacked[arg.name], n = True, shape[0]
        else:
            raise UserError(f"dynaprop: calibration array {arg.name!r} in {path} has shape "
                            f"{list(shape)}; @{func.name} takes {list(arg.type.shape)} (or "
                            f"[N, {', '.join(map(str, arg.type.shape))}] for N samples)")
        if stacked[arg.name]:
            if count is not None and count != n:
                raise UserError(f"dynaprop: calibration arrays in {path} hold different numbers "
                                f"of samples ({count} and {n} for {arg.name!r})")
            count = n
    total = count or 1
    return [{arg.name: arrays[arg.name][i] if stacked[arg.name] else arrays[arg.name]
             for arg in func.args} for i in range(total)]


def _measure(module: Module, path: Path, pruned: list[_Pruned],
             followers: Mapping[int, list[Value]], attention_ops: list[tuple[str, Op]]) -> _Counts:
    """Run every function with prune ops on the calibration inputs; count nonzeros."""
    arrays = _load_calibration(path)
    counts = _Counts()
    functions = sorted({p.function for p in pruned} | {f for f, _ in attention_ops},
                       key=lambda f: list(module.functions).index(f))
    for fname in functions:
        func = module.functions[fname]
        watched = {id(v) for p in pruned if p.function == fname
                   for v in [p.op.results[0], *followers[id(p.op)]]}
        attention = [op for f, op in attention_ops if f == fname]
        observer = _Observer(counts, watched, attention)
        interpreter = Interpreter(module, observer=observer)
        for inputs in _samples(func, arrays, path):
            observer.begin(func, inputs)
            try:
                interpreter.run(fname, inputs)
            except UserError as err:
                raise UserError(f"dynaprop: calibration run of @{fname} on {path} failed: "
                                f"{err}") from None
    return counts


class _Observer:
    """The interpreter's observer: counts watched results, and recomputes the pruned scores
    and probabilities inside fused attention ops from their operands."""

    def __init__(self, counts: _Counts, watched: set[int], attention: list[Op]) -> None:
        self.counts = counts
        self.watched = watched
        self.attention = {id(op): op for op in attention}
        self.needed = {id(v) for op in attention for v in op.operands}
        self.saved: dict[int, np.ndarray] = {}

    def begin(self, func: Function, inputs: Mapping[str, np.ndarray]) -> None:
        self.saved = {id(a): np.asarray(inputs[a.name]) for a in func.args if id(a) in self.needed}

    def __call__(self, op: Op, results: list[np.ndarray]) -> None:
        for value, array in zip(op.results, results):
            if id(value) in self.watched:
                self.counts.add(id(value), array)
            if id(value) in self.needed:
                self.saved[id(value)] = array
        if id(op) in self.attention:
            self._attention_internals(op)

    def _attention_internals(self, op: Op) -> None:
        q, kt = (self.saved[id(v)] for v in op.operands[:2])
        dtype = q.dtype
        scores = np.matmul(q, kt).astype(dtype, copy=False)
        scale = op.attr("scale")
        if scale != 1.0:
            scores = (scores * np.asarray(scale, dtype)).astype(dtype, copy=False)
        if len(op.operands) > 3:
            scores = (scores + self.saved[id(op.operands[3])]).astype(dtype, copy=False)
        tau = float(op.attr("tau"))
        scores = prune(scores, tau)
        self.counts.add_internal(op, "scores", scores)
        self.counts.add_internal(op, "probs", prune(softmax(scores, -1), tau))


# --------------------------------------------------------------------------- records for reports


@dataclass(frozen=True)
class PruneRecord:
    """One pruned value of a module, for reports: where, what, τ and density."""

    function: str
    point: str
    role: str            # activation, gradient, weight_gradient; scores/probs of a fused attention
    tau: float
    density: float | None
    source: str | None
    elements: int
    fused: bool = False  # inside a fused nn.attention (an attribute, not an op)


def prune_records(module: Module) -> list[PruneRecord]:
    """Every prune op of every function (and every fused attention's internal points), in
    schedule order."""
    records: list[PruneRecord] = []
    for fname, func in module.functions.items():
        for op in func:
            if op.name == "nn.prune":
                t: TensorType = op.results[0].type
                enc = t.encoding
                records.append(PruneRecord(
                    fname, op.attr("point"), op.attr("role"),
                    float(op.attributes["tau"]), enc.density if enc else None,
                    enc.source if enc else None, t.numel))
            elif op.name == "nn.attention" and "dynaprop:scores_point" in op.attributes:
                q, kt = op.operands[0].type, op.operands[1].type
                batch = np.broadcast_shapes(q.shape[:-2], kt.shape[:-2])
                elements = math.prod(batch) * q.shape[-2] * kt.shape[-1]
                for part in ("scores", "probs"):
                    density = op.attr(f"dynaprop:{part}_density")
                    records.append(PruneRecord(fname, op.attr(f"dynaprop:{part}_point", ""),
                                               "activation", float(op.attr("tau")),
                                               None if density is None else float(density),
                                               op.attr(f"dynaprop:{part}_source"), elements, True))
    return records
