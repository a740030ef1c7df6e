"""The three co-design spaces -- model, hardware, schedule -- and their product.

A point of the joint space is a :class:`JointPoint`: a model description (the
zoo's canonical FlexiBERT text form, ``l12:h768:sdp*12:ff3072``), a hardware
point (an index into a :class:`~backends.elector.space.DesignSpace`) and a
:class:`Schedule` (tiles, loop order, DynaProp thresholds).  It prints as a
readable description (:meth:`JointSpace.describe`), serialises to canonical
JSON (:meth:`JointSpace.encode`) and decodes back to an equal point
(:meth:`JointSpace.decode`).

Points are built *define-by-run*, MetaSchedule style: a space's
:meth:`build` asks a *chooser* for one decision at a time (``chooser(name,
options) -> option``).  The decisions of a point (``{"hw.pe_array.pes":
"256", "model.l0.hidden": 128, ...}``) are what a search records, mutates and
replays:

* random sampling is a chooser that draws uniformly;
* a mutation replays a point's decisions except one, which is redrawn
  (decisions that only exist in the new point are drawn fresh);
* optuna's samplers are choosers too (``trial.suggest_categorical``).

So every proposal of every strategy comes out of :meth:`build` and is valid
by construction; :meth:`JointSpace.validate` checks a point from elsewhere
(a database, a file, a snapped vector).

For gradient search (BOSHCODE's GOBI) each space also has a fixed-length
continuous encoding in [0, 1] (:meth:`to_vector`) and a snapping map back to
the nearest valid point (:meth:`from_vector`); ``from_vector(to_vector(p))
== p`` for every valid ``p``.

Model space
===========
FlexiBERT 2.0 as in docs/sources.md ("Model design space"), validated with the
zoo's own checker (:meth:`frontends.zoo.EncoderConfig.check_design_space`):
layers, per-layer hidden size, heads (dividing the hidden size), a head type
per head (mixable; heads are permutation-symmetric, so a layer is a
*multiset* of head types), feed-forward stacks and per-stack widths.  A
:class:`ModelSpace` may restrict any of these choice sets (a small space for
measured accuracy), tie all layers together (``homogeneous``: BERT-like) or
hold a single fixed model.

Hardware space
==============
Any ``.hwdsl`` design space (or a single design: a one-point space), through
:class:`~backends.elector.space.DesignSpace`.

Schedule space
==============
``tile``: ``auto`` (the ELECTOR mapper chooses tiles *and* loop order per
op), ``design`` (every matrix product uses the hardware point's mapping tile)
or a fixed ``BxXxY``; ``order``: ``auto`` (best of the 24 loop orders per op
for the chosen tile) or a fixed permutation of ``bijk`` (only with a tile
that is not ``auto``); ``tau_i`` / ``tau_t``: DynaProp thresholds.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

import numpy as np

from transcode_ir.errors import UserError

__all__ = [
    "LOOP_ORDERS",
    "Chooser",
    "HardwareSpace",
    "JointPoint",
    "JointSpace",
    "ModelSpace",
    "RandomChooser",
    "RecordingChooser",
    "ReplayChooser",
    "Schedule",
    "ScheduleSpace",
    "enumerate_builds",
]

LOOP_ORDERS: tuple[str, ...] = tuple("".join(p) for p in itertools.permutations("bijk"))


# --------------------------------------------------------------------------- choosers


class Chooser(Protocol):
    """Makes one decision: returns one element of ``options``."""

    def __call__(self, name: str, options: Sequence[Any]) -> Any: ...


class RandomChooser:
    """Uniform draws from a seeded :class:`random.Random`."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def __call__(self, name: str, options: Sequence[Any]) -> Any:
        return options[self.rng.randrange(len(options))] if len(options) > 1 else options[0]


class ReplayChooser:
    """Replays recorded decisions; a decision that is missing, no longer
    allowed, or named in ``redraw`` goes to ``fallback`` (which, for a
    redrawn one, is asked until it returns a different value when it can)."""

    def __init__(self, decisions: Mapping[str, Any], fallback: Chooser,
                 redraw: frozenset[str] = frozenset()) -> None:
        self.decisions = decisions
        self.fallback = fallback
        self.redraw = redraw

    def __call__(self, name: str, options: Sequence[Any]) -> Any:
        old = self.decisions.get(name, _MISSING)
        if name in self.redraw and len(options) > 1:
            others = [o for o in options if o != old]
            return self.fallback(name, others)
        if old is not _MISSING and old in options:
            return old
        return self.fallback(name, options)


class RecordingChooser:
    """Wraps a chooser and records every decision (name -> value)."""

    def __init__(self, inner: Chooser) -> None:
        self.inner = inner
        self.decisions: dict[str, Any] = {}
        self.options: dict[str, tuple[Any, ...]] = {}

    def __call__(self, name: str, options: Sequence[Any]) -> Any:
        value = self.inner(name, options)
        self.decisions[name] = value
        self.options[name] = tuple(options)
        return value


_MISSING = object()


def enumerate_builds(build: Callable[[Chooser], Any], limit: int = 1_000_000) -> Iterator[Any]:
    """Every value ``build`` can produce, by depth-first enumeration of its
    decision tree (define-by-run).  Raises :class:`UserError` past ``limit``
    builds."""
    stack: list[list[int]] = [[]]
    count = 0
    while stack:
        prefix = stack.pop()
        arities: list[int] = []

        def chooser(name: str, options: Sequence[Any], prefix: list[int] = prefix,
                    arities: list[int] = arities) -> Any:
            depth = len(arities)
            arities.append(len(options))
            return options[prefix[depth] if depth < len(prefix) else 0]

        value = build(chooser)
        count += 1
        if count > limit:
            raise UserError(f"the space has more than {limit} points; too many to enumerate")
        yield value
        # Children: positions after the prefix that were taken at 0 may branch.
        for depth in range(len(arities) - 1, len(prefix) - 1, -1):
            for choice in range(arities[depth] - 1, 0, -1):
                stack.append([*prefix, *([0] * (depth - len(prefix))), choice])


# --------------------------------------------------------------------------- axes


@dataclass(frozen=True)
class _Axis:
    """One categorical decision with a feature vector per option (continuous
    encoding); snapping picks the option whose features are nearest."""

    name: str
    options: tuple[Any, ...]
    features: np.ndarray        # (len(options), width)

    @property
    def width(self) -> int:
        return int(self.features.shape[1])

    def encode(self, value: Any) -> np.ndarray:
        return self.features[self.options.index(value)]

    def snap(self, vector: np.ndarray, allowed: Sequence[Any] | None = None) -> Any:
        candidates = range(len(self.options)) if allowed is None else [
            self.options.index(a) for a in allowed]
        best = min(candidates, key=lambda i: (float(np.sum((self.features[i] - vector) ** 2)), i))
        return self.options[best]


def _ordinal(name: str, options: Sequence[Any]) -> _Axis:
    """Ordered options: one feature, the rank scaled to [0, 1] (no feature
    when there is one option)."""
    n = len(options)
    if n == 1:
        return _Axis(name, tuple(options), np.zeros((1, 0)))
    ranks = np.arange(n, dtype=float)[:, None] / (n - 1)
    return _Axis(name, tuple(options), ranks)


def _one_hot(name: str, options: Sequence[Any]) -> _Axis:
    n = len(options)
    if n == 1:
        return _Axis(name, tuple(options), np.zeros((1, 0)))
    return _Axis(name, tuple(options), np.eye(n))


# --------------------------------------------------------------------------- model space


def _flexibert_space() -> dict[str, tuple[int, ...]]:
    from frontends.zoo.description import DESIGN_SPACE

    return dict(DESIGN_SPACE)


def _head_types() -> tuple[str, ...]:
    from frontends.zoo.description import HEAD_TYPES

    return HEAD_TYPES


@dataclass(frozen=True)
class ModelSpace:
    """FlexiBERT 2.0 models, possibly restricted (see the module docstring).

    Every choice set must be a subset of the FlexiBERT 2.0 space.  ``fixed``
    holds one model (a zoo name or description): the one-sided hardware search.
    ``vocab_size`` is the embedding vocabulary the models are built with
    (None: the zoo's 30522; a task's vocabulary for measured accuracy).
    """

    layers: tuple[int, ...] = (2, 4, 6, 8, 10, 12)
    hidden: tuple[int, ...] = (128, 256, 512, 768)
    heads: tuple[int, ...] = (2, 4, 8, 12)
    head_types: tuple[str, ...] = ("sdp", "wma", "dft", "dct", "conv5", "conv9", "conv13")
    ff_stacks: tuple[int, ...] = (1, 2, 3)
    ff_widths: tuple[int, ...] = (256, 512, 1024, 2048, 3072, 4096)
    homogeneous: bool = False
    fixed: str | None = None
    name: str = "flexibert2"

    def __post_init__(self) -> None:
        full = _flexibert_space()
        for label, key in (("layers", "layers"), ("hidden", "hidden"), ("heads", "heads"),
                           ("ff_stacks", "ff_stacks"), ("ff_widths", "ff_width")):
            values = tuple(sorted(set(getattr(self, label))))
            if not values:
                raise UserError(f"model space {self.name!r}: {label} needs at least one value")
            outside = [v for v in values if v not in full[key]]
            if outside:
                raise UserError(f"model space {self.name!r}: {label} {outside} outside the "
                                f"FlexiBERT 2.0 space ({', '.join(map(str, full[key]))})")
            object.__setattr__(self, label, values)
        known = _head_types()
        types = tuple(t for t in known if t in set(self.head_types))
        unknown = sorted(set(self.head_types) - set(known))
        if unknown or not types:
            raise UserError(f"model space {self.name!r}: head types {unknown or '(none)'}; "
                            f"accepted: {', '.join(known)}")
        object.__setattr__(self, "head_types", types)
        if not any(h % n == 0 for h in self.hidden for n in self.heads):
            raise UserError(f"model space {self.name!r}: no head count divides any hidden size")
        if self.fixed is not None:
            from frontends.zoo import format_description, resolve_config

            config = resolve_config(self.fixed)
            object.__setattr__(self, "fixed", format_description(config))

    # -- construction helpers --------------------------------------------

    @classmethod
    def single(cls, model: str) -> ModelSpace:
        """The one-point space of a zoo name or description (hardware-only search)."""
        from frontends.zoo import resolve_config

        config = resolve_config(model)
        return cls(fixed=model, name=config.name or "fixed")

    @classmethod
    def named(cls, name: str) -> ModelSpace:
        """``flexibert2`` (the full space), ``flexibert2-small`` (hidden <= 256,
        2-4 layers, narrow feed-forward: cheap to train) or ``bert-like``
        (homogeneous layers)."""
        key = name.strip().lower()
        if key in ("flexibert2", "flexibert", "full"):
            return cls()
        if key in ("flexibert2-small", "small"):
            return cls(layers=(2, 4), hidden=(128, 256), heads=(2, 4),
                       ff_stacks=(1, 2), ff_widths=(256, 512, 1024), name="flexibert2-small")
        if key in ("bert-like", "homogeneous"):
            return cls(homogeneous=True, head_types=("sdp",), ff_stacks=(1,), name="bert-like")
        raise UserError(f"unknown model space {name!r}; accepted: flexibert2, flexibert2-small, "
                        "bert-like, or a JSON object of choice sets")

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> ModelSpace:
        allowed = {"layers", "hidden", "heads", "head_types", "ff_stacks", "ff_widths",
                   "homogeneous", "fixed", "name"}
        unknown = set(document) - allowed
        if unknown:
            raise UserError(f"model space: unknown field(s) {', '.join(sorted(unknown))}; "
                            f"accepted: {', '.join(sorted(allowed))}")
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in document.items()}
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        if self.fixed is not None:
            return {"fixed": self.fixed, "name": self.name}
        return {"name": self.name, "layers": list(self.layers), "hidden": list(self.hidden),
                "heads": list(self.heads), "head_types": list(self.head_types),
                "ff_stacks": list(self.ff_stacks), "ff_widths": list(self.ff_widths),
                "homogeneous": self.homogeneous}

    # -- size ---------------------------------------------------------------

    def _layer_count(self) -> int:
        t = len(self.head_types)
        per_layer = 0
        for h in self.hidden:
            for n in self.heads:
                if h % n == 0:
                    per_layer += math.comb(n + t - 1, t - 1)
        ff = sum(len(self.ff_widths) ** s for s in self.ff_stacks)
        return per_layer * ff

    @property
    def size(self) -> int:
        """Number of distinct models (heads counted as multisets of types)."""
        if self.fixed is not None:
            return 1
        per_layer = self._layer_count()
        if self.homogeneous:
            return per_layer * len(self.layers)
        return sum(per_layer ** n for n in self.layers)

    # -- points ---------------------------------------------------------------

    def _heads_for(self, hidden: int) -> tuple[int, ...]:
        return tuple(n for n in self.heads if hidden % n == 0)

    def build(self, choose: Chooser) -> str:
        """A model description from a sequence of decisions."""
        if self.fixed is not None:
            return self.fixed
        from frontends.zoo.description import LayerSpec, format_description

        count = choose("model.layers", self.layers)
        slots = 1 if self.homogeneous else count
        layers = []
        for i in range(slots):
            hidden = choose(f"model.l{i}.hidden", self.hidden)
            heads = choose(f"model.l{i}.heads@h{hidden}", self._heads_for(hidden))
            types = [choose(f"model.l{i}.head{j}", self.head_types) for j in range(heads)]
            stacks = choose(f"model.l{i}.ff_stacks", self.ff_stacks)
            widths = [choose(f"model.l{i}.ff{k}", self.ff_widths) for k in range(stacks)]
            layers.append(LayerSpec(hidden, tuple(types), tuple(widths)))
        if self.homogeneous:
            layers = layers * count
        return format_description(layers)

    def decisions_of(self, description: str) -> dict[str, Any]:
        """The decisions :meth:`build` takes to produce ``description``."""
        if self.fixed is not None:
            return {}
        config = self.config(description)
        out: dict[str, Any] = {"model.layers": config.num_layers}
        slots = config.layers[:1] if self.homogeneous else config.layers
        for i, layer in enumerate(slots):
            out[f"model.l{i}.hidden"] = layer.hidden
            out[f"model.l{i}.heads@h{layer.hidden}"] = layer.num_heads
            for j, head in enumerate(layer.heads):
                out[f"model.l{i}.head{j}"] = head
            out[f"model.l{i}.ff_stacks"] = len(layer.ff)
            for k, width in enumerate(layer.ff):
                out[f"model.l{i}.ff{k}"] = width
        return out

    @staticmethod
    @lru_cache(maxsize=4096)
    def config(description: str) -> Any:
        """The :class:`~frontends.zoo.EncoderConfig` of a description (cached)."""
        from frontends.zoo import resolve_config

        return resolve_config(description)

    def validate(self, description: str) -> None:
        """Raise :class:`UserError` when ``description`` is not a point of this space."""
        from frontends.zoo import format_description

        config = self.config(description)
        canonical = format_description(config)
        if self.fixed is not None:
            if canonical != self.fixed:
                raise UserError(f"model {description!r} is not the fixed model {self.fixed!r}")
            return
        config.check_design_space()
        if canonical != description:
            raise UserError(f"model {description!r} is not in canonical form ({canonical!r})")
        where = f"model space {self.name!r}"
        if config.num_layers not in self.layers:
            raise UserError(f"{where}: {config.num_layers} layers not in {self.layers}")
        if self.homogeneous and len(set(config.layers)) > 1:
            raise UserError(f"{where}: layers must all be equal (homogeneous space)")
        for index, layer in enumerate(config.layers):
            checks = (("hidden", layer.hidden, self.hidden),
                      ("heads", layer.num_heads, self.heads),
                      ("ff stacks", len(layer.ff), self.ff_stacks))
            for label, value, allowed in checks:
                if value not in allowed:
                    raise UserError(f"{where}: layer {index}: {label} {value} not in {allowed}")
            for head in layer.heads:
                if head not in self.head_types:
                    raise UserError(f"{where}: layer {index}: head type {head!r} not in "
                                    f"{self.head_types}")
            for width in layer.ff:
                if width not in self.ff_widths:
                    raise UserError(f"{where}: layer {index}: ff width {width} not in "
                                    f"{self.ff_widths}")

    # -- continuous encoding ----------------------------------------------------

    @property
    def _max_slots(self) -> int:
        return 1 if self.homogeneous else max(self.layers)

    @property
    def _slot_width(self) -> int:
        return (1 + _ordinal("", self.hidden).width + _ordinal("", self.heads).width
                + (len(self.head_types) if len(self.head_types) > 1 else 0)
                + _ordinal("", self.ff_stacks).width
                + max(self.ff_stacks) * _ordinal("", self.ff_widths).width)

    @property
    def width(self) -> int:
        if self.fixed is not None:
            return 0
        return _ordinal("", self.layers).width + self._max_slots * self._slot_width

    def to_vector(self, description: str) -> np.ndarray:
        if self.fixed is not None:
            return np.zeros(0)
        config = self.config(description)
        parts = [_ordinal("layers", self.layers).encode(config.num_layers)]
        slots = config.layers[:1] if self.homogeneous else config.layers
        hidden, heads = _ordinal("", self.hidden), _ordinal("", self.heads)
        stacks, widths = _ordinal("", self.ff_stacks), _ordinal("", self.ff_widths)
        for slot in range(self._max_slots):
            if slot >= len(slots):
                parts.append(np.zeros(self._slot_width))
                continue
            layer = slots[slot]
            parts.append(np.ones(1))
            parts.append(hidden.encode(layer.hidden))
            parts.append(heads.encode(layer.num_heads))
            if len(self.head_types) > 1:
                counts = Counter(layer.heads)
                parts.append(np.array([counts[t] / layer.num_heads for t in self.head_types]))
            parts.append(stacks.encode(len(layer.ff)))
            for k in range(max(self.ff_stacks)):
                parts.append(widths.encode(layer.ff[k]) if k < len(layer.ff)
                             else np.zeros(widths.width))
        return np.concatenate(parts) if parts else np.zeros(0)

    def from_vector(self, vector: np.ndarray) -> str:
        """The nearest valid model (snapping each field; head-type fractions
        are rounded to counts by largest remainder)."""
        if self.fixed is not None:
            return self.fixed
        from frontends.zoo.description import LayerSpec, format_description

        vector = np.asarray(vector, dtype=float)
        layers_axis = _ordinal("layers", self.layers)
        position = layers_axis.width
        count = layers_axis.snap(vector[:position])
        hidden, heads = _ordinal("", self.hidden), _ordinal("", self.heads)
        stacks, widths = _ordinal("", self.ff_stacks), _ordinal("", self.ff_widths)
        slots = 1 if self.homogeneous else count
        layers = []
        for slot in range(slots):
            chunk = vector[position + slot * self._slot_width:
                           position + (slot + 1) * self._slot_width]
            at = 1
            h = hidden.snap(chunk[at:at + hidden.width])
            at += hidden.width
            n = heads.snap(chunk[at:at + heads.width], self._heads_for(h))
            at += heads.width
            if len(self.head_types) > 1:
                fractions = np.clip(chunk[at:at + len(self.head_types)], 0.0, None)
                at += len(self.head_types)
                types = _largest_remainder(fractions, n, self.head_types)
            else:
                types = [self.head_types[0]] * n
            s = stacks.snap(chunk[at:at + stacks.width])
            at += stacks.width
            ff = []
            for k in range(s):
                ff.append(widths.snap(chunk[at + k * widths.width: at + (k + 1) * widths.width]))
            layers.append(LayerSpec(h, tuple(types), tuple(ff)))
        if self.homogeneous:
            layers = layers * count
        return format_description(layers)


def _largest_remainder(fractions: np.ndarray, total: int, labels: Sequence[str]) -> list[str]:
    """``total`` items split by ``fractions`` (largest-remainder rounding;
    all-zero fractions give everything to the first label)."""
    if fractions.sum() <= 0:
        return [labels[0]] * total
    shares = fractions / fractions.sum() * total
    counts = np.floor(shares).astype(int)
    remainder = shares - counts
    for index in sorted(range(len(labels)), key=lambda i: (-remainder[i], i))[
            : total - int(counts.sum())]:
        counts[index] += 1
    return [label for label, c in zip(labels, counts) for _ in range(int(c))]


# --------------------------------------------------------------------------- hardware space


class HardwareSpace:
    """A hardware design space (a ``.hwdsl`` space, a library space, or one
    design as a one-point space) seen as decisions: one per parameter, the
    option being the DSL label (``"256"``, ``"4 MiB"``, ``"{type=rram ...}"``).

    Points are indices of the underlying :class:`DesignSpace`.  Pickles as
    the space's DSL text, so worker processes re-parse it once.
    """

    def __init__(self, space: Any) -> None:
        from backends.elector import DesignSpace, resolve_space

        if isinstance(space, DesignSpace):
            self.space = space
        else:
            self.space = resolve_space(str(space))
        self._axes = tuple(self._axis(p) for p in self.space.parameters)
        self._accelerators: dict[int, Any] = {}
        self._canonical: dict[int, str] = {}

    @staticmethod
    def _axis(parameter: Any) -> _Axis:
        name = f"hw.{parameter.name}"
        values = parameter.values
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            order = sorted(range(len(values)), key=lambda i: values[i])
            n = len(values)
            features = np.zeros((n, 1 if n > 1 else 0))
            if n > 1:
                for rank, i in enumerate(order):
                    features[i, 0] = rank / (n - 1)
            return _Axis(name, parameter.labels, features)
        return _one_hot(name, parameter.labels)

    def __getstate__(self) -> dict[str, Any]:
        return {"text": self.space._text, "filename": self.space.filename}

    def __setstate__(self, state: dict[str, Any]) -> None:
        from backends.elector import parse_space

        self.__init__(parse_space(state["text"], state["filename"]))  # type: ignore[misc]

    @property
    def name(self) -> str:
        return self.space.name

    @property
    def size(self) -> int:
        return self.space.size

    @property
    def parameters(self) -> tuple[Any, ...]:
        return self.space.parameters

    def build(self, choose: Chooser) -> int:
        choices = []
        for axis in self._axes:
            label = choose(axis.name, axis.options)
            choices.append(axis.options.index(label))
        return self.space.encode(choices)

    def decisions_of(self, index: int) -> dict[str, Any]:
        return {axis.name: axis.options[c] for axis, c in zip(self._axes, self.space.decode(index))}

    def validate(self, index: Any) -> None:
        if isinstance(index, bool) or not isinstance(index, int):
            raise UserError(f"a hardware point is an integer index, got {index!r}")
        self.space.decode(index)        # range check with a readable error

    def accelerator(self, index: int) -> Any:
        """The :class:`~backends.elector.Accelerator` at ``index`` (cached)."""
        acc = self._accelerators.get(index)
        if acc is None:
            if len(self._accelerators) > 4096:
                self._accelerators.clear()
            acc = self.space.point(index)
            self._accelerators[index] = acc
        return acc

    def canonical(self, index: int) -> str:
        """The design's normalised DSL text with its name blanked: what
        identifies the hardware in a result key, whatever space it came from."""
        text = self._canonical.get(index)
        if text is None:
            from dataclasses import replace

            from backends.elector import format_design

            acc = self.accelerator(index)
            text = format_design(replace(acc, name="point", description=""))
            if len(self._canonical) > 65536:
                self._canonical.clear()
            self._canonical[index] = text
        return text

    def describe(self, index: int) -> str:
        labels = self.space.describe(index)
        inner = ", ".join(f"{k}={v}" for k, v in labels.items())
        return f"{self.space.name}#{index}" + (f" ({inner})" if inner else "")

    @property
    def width(self) -> int:
        return sum(axis.width for axis in self._axes)

    def to_vector(self, index: int) -> np.ndarray:
        choices = self.space.decode(index)
        parts = [axis.features[c] for axis, c in zip(self._axes, choices)]
        return np.concatenate(parts) if parts else np.zeros(0)

    def from_vector(self, vector: np.ndarray) -> int:
        position, choices = 0, []
        for axis in self._axes:
            label = axis.snap(np.asarray(vector[position:position + axis.width]))
            choices.append(axis.options.index(label))
            position += axis.width
        return self.space.encode(choices)


# --------------------------------------------------------------------------- schedule space


TileShape3 = tuple[int, int, int]


@dataclass(frozen=True)
class Schedule:
    """Schedule decisions of one point (see the module docstring), typed.

    ``tile``: ``"auto"``, ``"design"`` or ``(b, x, y)`` (the text ``"1x16x16"``
    is accepted and parsed once, here); ``order``: ``"auto"`` or a permutation
    of ``bijk``; ``tau_i``/``tau_t``: the DynaProp thresholds, kept as the
    exact floats they were given as.  :meth:`passes` are the pass objects the
    schedule adds to the model's pipeline (their printed form is only that:
    printed); :meth:`forced_tile` is what it asks of the mapper.
    """

    tile: str | TileShape3 = "auto"
    order: str = "auto"
    tau_i: float = 0.0
    tau_t: float = 0.0

    def __post_init__(self) -> None:
        tile = self.tile
        if isinstance(tile, str):
            tile = tile.strip().lower()
            if tile not in ("auto", "design"):
                tile = _parse_tile(tile)
        else:
            tile = tuple(int(v) for v in tile)
            if len(tile) != 3 or min(tile) < 1:
                raise UserError(f"tile {self.tile!r}: expected auto, design or three sizes >= 1")
        object.__setattr__(self, "tile", tile)
        object.__setattr__(self, "tau_i", float(self.tau_i))
        object.__setattr__(self, "tau_t", float(self.tau_t))

    @property
    def tile_text(self) -> str:
        """``auto``, ``design`` or ``BxXxY`` (the form spaces and JSON use)."""
        return self.tile if isinstance(self.tile, str) else "x".join(map(str, self.tile))

    @property
    def prunes(self) -> bool:
        return self.tau_i > 0 or self.tau_t > 0

    def to_json(self) -> dict[str, Any]:
        return {"tile": self.tile_text, "order": self.order, "tau_i": self.tau_i,
                "tau_t": self.tau_t}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Schedule:
        return cls(str(document.get("tile", "auto")), str(document.get("order", "auto")),
                   float(document.get("tau_i", 0.0)), float(document.get("tau_t", 0.0)))

    def describe(self) -> str:
        return (f"tile {self.tile_text}, order {self.order}, tau_i {_exact(self.tau_i)}, "
                f"tau_t {_exact(self.tau_t)}")

    def forced_tile(self, design_tile: Sequence[int]) -> TileShape3 | None:
        """``(b, x, y)`` every matrix product is mapped with, or None for ``auto``."""
        if self.tile == "auto":
            return None
        if self.tile == "design":
            return (int(design_tile[0]), int(design_tile[1]), int(design_tile[2]))
        return self.tile  # type: ignore[return-value]

    def tile_pass(self, design_tile: Sequence[int]) -> Any:
        """The ``tile`` pass that writes this schedule's tiles into the IR
        (``tile{b=..,x=..,y=..,order=..}``: clamped to each product as the
        mapper clamps them), or None when the tile or the loop order is
        ``auto`` (the mapper chooses per op)."""
        tile = self.forced_tile(design_tile)
        if tile is None or self.order == "auto":
            return None
        from passes.tile import TilePass

        return TilePass(b=tile[0], x=tile[1], y=tile[2], order=self.order)

    def passes(self, **density: Any) -> tuple[Any, ...]:
        """The passes this schedule adds after the model's pipeline: a
        ``dynaprop`` pass with the exact thresholds when it prunes (``density``:
        its density source, ``profile=FILE`` or ``density=D``), else none."""
        if not self.prunes:
            return ()
        from passes.dynaprop import DynaPropPass

        return (DynaPropPass(tau_i=self.tau_i, tau_t=self.tau_t, **density),)


def _exact(value: float) -> str:
    """A float as the shortest text that reads back to it (``0`` for zero)."""
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _parse_tile(text: str) -> TileShape3:
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise UserError(f"tile {text!r}: expected auto, design or BxXxY such as 1x16x16")
    return int(parts[0]), int(parts[1]), int(parts[2])


def _order_features(order: str) -> np.ndarray:
    if order == "auto":
        return np.array([0.5, 0.5, 0.5, 0.5, 1.0])
    return np.array([order.index(d) / 3.0 for d in "bijk"] + [0.0])


@dataclass(frozen=True)
class ScheduleSpace:
    """Choice sets of the schedule (see the module docstring)."""

    tiles: tuple[str, ...] = ("auto",)
    orders: tuple[str, ...] = ("auto",)
    tau_i: tuple[float, ...] = (0.0,)
    tau_t: tuple[float, ...] = (0.0,)

    def __post_init__(self) -> None:
        tiles = tuple(dict.fromkeys(
            t if t in ("auto", "design") else "x".join(map(str, _parse_tile(t)))
            for t in (str(t).strip().lower() for t in self.tiles)))
        orders = tuple(dict.fromkeys(str(o).lower() for o in self.orders))
        for order in orders:
            if order != "auto" and order not in LOOP_ORDERS:
                raise UserError(f"loop order {order!r}: expected auto or a permutation of bijk")
        if not tiles or not orders:
            raise UserError("schedule space: tiles and orders need at least one value")
        if tiles == ("auto",) and orders != ("auto",):
            raise UserError("schedule space: a fixed loop order needs a tile that is not auto "
                            "(with tile auto the mapper chooses the order per op)")
        for label in ("tau_i", "tau_t"):
            values = tuple(sorted({float(v) for v in getattr(self, label)}))
            if not values or any(v < 0 or not math.isfinite(v) for v in values):
                raise UserError(f"schedule space: {label} needs finite values >= 0")
            object.__setattr__(self, label, values)
        object.__setattr__(self, "tiles", tiles)
        object.__setattr__(self, "orders", orders)

    def to_json(self) -> dict[str, Any]:
        return {"tiles": list(self.tiles), "orders": list(self.orders),
                "tau_i": list(self.tau_i), "tau_t": list(self.tau_t)}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> ScheduleSpace:
        return cls(tuple(document.get("tiles", ("auto",))),
                   tuple(document.get("orders", ("auto",))),
                   tuple(document.get("tau_i", (0.0,))), tuple(document.get("tau_t", (0.0,))))

    @property
    def size(self) -> int:
        fixed = sum(1 for t in self.tiles if t != "auto")
        orders = len(self.orders)
        tiles = (1 if "auto" in self.tiles else 0) + fixed * orders
        return tiles * len(self.tau_i) * len(self.tau_t)

    def build(self, choose: Chooser) -> Schedule:
        tile = choose("sched.tile", self.tiles)
        order = "auto" if tile == "auto" else choose("sched.order", self.orders)
        tau_i = choose("sched.tau_i", self.tau_i)
        tau_t = choose("sched.tau_t", self.tau_t)
        return Schedule(tile, order, float(tau_i), float(tau_t))

    def decisions_of(self, schedule: Schedule) -> dict[str, Any]:
        out: dict[str, Any] = {"sched.tile": schedule.tile_text}
        if schedule.tile != "auto":
            out["sched.order"] = schedule.order
        out["sched.tau_i"] = schedule.tau_i
        out["sched.tau_t"] = schedule.tau_t
        return out

    def validate(self, schedule: Schedule) -> None:
        if schedule.tile_text not in self.tiles:
            raise UserError(f"schedule tile {schedule.tile_text!r} not in {self.tiles}")
        if schedule.tile == "auto" and schedule.order != "auto":
            raise UserError("schedule: with tile auto the loop order must be auto")
        if schedule.tile != "auto" and schedule.order not in self.orders:
            raise UserError(f"schedule order {schedule.order!r} not in {self.orders}")
        if schedule.tau_i not in self.tau_i:
            raise UserError(f"schedule tau_i {schedule.tau_i} not in {self.tau_i}")
        if schedule.tau_t not in self.tau_t:
            raise UserError(f"schedule tau_t {schedule.tau_t} not in {self.tau_t}")

    # -- continuous encoding ------------------------------------------------

    def _axes(self) -> tuple[_Axis, _Axis, _Axis, _Axis]:
        tiles = _one_hot("sched.tile", self.tiles)
        options = tuple(dict.fromkeys(self.orders + ("auto",)))
        features = (np.stack([_order_features(o) for o in options]) if len(options) > 1
                    else np.zeros((1, 0)))
        orders = _Axis("sched.order", options, features)
        return (tiles, orders, _ordinal("sched.tau_i", self.tau_i),
                _ordinal("sched.tau_t", self.tau_t))

    @property
    def width(self) -> int:
        return sum(axis.width for axis in self._axes())

    def to_vector(self, schedule: Schedule) -> np.ndarray:
        tiles, orders, tau_i, tau_t = self._axes()
        order = schedule.order if schedule.tile != "auto" else "auto"
        return np.concatenate([tiles.encode(schedule.tile_text), orders.encode(order),
                               tau_i.encode(schedule.tau_i), tau_t.encode(schedule.tau_t)])

    def from_vector(self, vector: np.ndarray) -> Schedule:
        tiles, orders, tau_i, tau_t = self._axes()
        at = 0
        tile = tiles.snap(vector[at:at + tiles.width])
        at += tiles.width
        if tile == "auto":
            order = "auto"
        else:
            order = orders.snap(vector[at:at + orders.width], self.orders)
        at += orders.width
        ti = tau_i.snap(vector[at:at + tau_i.width])
        at += tau_i.width
        tt = tau_t.snap(vector[at:at + tau_t.width])
        return Schedule(tile, order, float(ti), float(tt))


# --------------------------------------------------------------------------- joint space


@dataclass(frozen=True)
class JointPoint:
    """One (model, hardware, schedule) point.  ``decisions`` (not part of
    equality) are the decisions that built it, when a strategy built it."""

    model: str
    hardware: int
    schedule: Schedule = Schedule()
    decisions: Mapping[str, Any] | None = field(default=None, compare=False, hash=False,
                                                repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "hardware": self.hardware,
                "schedule": self.schedule.to_json()}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> JointPoint:
        return cls(str(document["model"]), int(document["hardware"]),
                   Schedule.from_json(document.get("schedule", {})))


class JointSpace:
    """The product of a :class:`ModelSpace`, a :class:`HardwareSpace` and a
    :class:`ScheduleSpace` (see the module docstring)."""

    def __init__(self, model: ModelSpace, hardware: HardwareSpace | Any,
                 schedule: ScheduleSpace | None = None) -> None:
        self.model = model
        self.hardware = hardware if isinstance(hardware, HardwareSpace) else HardwareSpace(hardware)
        self.schedule = schedule or ScheduleSpace()

    # -- identity -------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model.to_json(),
                "hardware": {"name": self.hardware.name,
                             "sha256": hashlib.sha256(self.hardware.space._text.encode())
                             .hexdigest()[:16]},
                "schedule": self.schedule.to_json()}

    @property
    def size(self) -> int:
        return self.model.size * self.hardware.size * self.schedule.size

    @property
    def mode(self) -> str:
        """``hardware`` (fixed model), ``model`` (fixed hardware), ``joint``."""
        if self.model.fixed is not None:
            return "hardware"
        if self.hardware.size == 1:
            return "model"
        return "joint"

    # -- building points ----------------------------------------------------------

    def build(self, choose: Chooser) -> JointPoint:
        recorder = RecordingChooser(choose)
        model = self.model.build(recorder)
        hardware = self.hardware.build(recorder)
        schedule = self.schedule.build(recorder)
        return JointPoint(model, hardware, schedule, decisions=dict(recorder.decisions))

    def sample(self, rng: random.Random) -> JointPoint:
        """A point drawn decision by decision, uniformly."""
        return self.build(RandomChooser(rng))

    def decisions_of(self, point: JointPoint) -> dict[str, Any]:
        if point.decisions is not None:
            return dict(point.decisions)
        out = self.model.decisions_of(point.model)
        out.update(self.hardware.decisions_of(point.hardware))
        out.update(self.schedule.decisions_of(point.schedule))
        return out

    def options_of(self, point: JointPoint) -> dict[str, tuple[Any, ...]]:
        """The options of every decision that built ``point``."""
        recorder = RecordingChooser(ReplayChooser(self.decisions_of(point),
                                                  RandomChooser(random.Random(0))))
        self.build(recorder)
        return recorder.options

    def mutate(self, point: JointPoint, rng: random.Random, count: int = 1) -> JointPoint:
        """``point`` with ``count`` of its decisions (that have an alternative)
        redrawn; decisions that only the new point has are drawn uniformly."""
        decisions = self.decisions_of(point)
        options = self.options_of(point)
        mutable = sorted(name for name, opts in options.items() if len(opts) > 1)
        if not mutable:
            return point
        chosen = frozenset(rng.sample(mutable, min(count, len(mutable))))
        return self.build(ReplayChooser(decisions, RandomChooser(rng), chosen))

    def crossover(self, first: JointPoint, second: JointPoint, rng: random.Random) -> JointPoint:
        """A child taking each decision from either parent with equal odds."""
        a, b = self.decisions_of(first), self.decisions_of(second)
        mixed = {name: (a if rng.random() < 0.5 else b).get(name, a.get(name, b.get(name)))
                 for name in sorted(set(a) | set(b))}
        mixed = {k: v for k, v in mixed.items() if v is not None}
        return self.build(ReplayChooser(mixed, RandomChooser(rng)))

    def enumerate(self, limit: int = 200_000) -> Iterator[JointPoint]:
        """Every point (for small spaces), each once."""
        if self.size > limit:
            raise UserError(f"the joint space has {self.size} points; more than {limit} to "
                            "enumerate")
        seen: set[JointPoint] = set()
        for point in enumerate_builds(self.build, limit * 16):
            if point not in seen:
                seen.add(point)
                yield point

    # -- checking ---------------------------------------------------------------

    def validate(self, point: JointPoint) -> None:
        """Raise :class:`UserError` naming what puts ``point`` outside the space."""
        self.model.validate(point.model)
        self.hardware.validate(point.hardware)
        self.schedule.validate(point.schedule)

    def is_valid(self, point: JointPoint) -> bool:
        try:
            self.validate(point)
        except UserError:
            return False
        return True

    # -- text forms ----------------------------------------------------------------

    def describe(self, point: JointPoint) -> str:
        """``model <desc> | hardware <space>#<i> (<labels>) | schedule <...>``."""
        return (f"model {point.model} | hardware {self.hardware.describe(point.hardware)} | "
                f"schedule {point.schedule.describe()}")

    def encode(self, point: JointPoint) -> str:
        """Canonical JSON of a point (replays exactly with :meth:`decode`)."""
        return json.dumps(point.to_json(), sort_keys=True, separators=(",", ":"))

    def decode(self, text: str | Mapping[str, Any]) -> JointPoint:
        """The point of :meth:`encode`'s text (checked against the space)."""
        document = json.loads(text) if isinstance(text, str) else text
        try:
            point = JointPoint.from_json(document)
        except (KeyError, TypeError, ValueError) as err:
            raise UserError(f"not a joint point: {text!r} ({err})") from None
        self.validate(point)
        return point

    def identity(self, point: JointPoint) -> dict[str, Any]:
        """What identifies a point in a result key: the model description, the
        design's normalised text and the schedule."""
        return {"model": point.model, "hardware": self.hardware.canonical(point.hardware),
                "schedule": point.schedule.to_json()}

    # -- continuous encoding ------------------------------------------------------------

    def vector_slices(self) -> dict[str, slice]:
        a = self.model.width
        b = a + self.hardware.width
        c = b + self.schedule.width
        return {"model": slice(0, a), "hardware": slice(a, b), "schedule": slice(b, c)}

    @property
    def width(self) -> int:
        return self.model.width + self.hardware.width + self.schedule.width

    def to_vector(self, point: JointPoint) -> np.ndarray:
        return np.concatenate([self.model.to_vector(point.model),
                               self.hardware.to_vector(point.hardware),
                               self.schedule.to_vector(point.schedule)]).astype(float)

    def from_vector(self, vector: np.ndarray) -> JointPoint:
        """Snap a continuous vector to the nearest valid point."""
        s = self.vector_slices()
        vector = np.asarray(vector, dtype=float)
        point = JointPoint(self.model.from_vector(vector[s["model"]]),
                           self.hardware.from_vector(vector[s["hardware"]]),
                           self.schedule.from_vector(vector[s["schedule"]]))
        return point
