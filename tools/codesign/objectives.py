"""Objectives: the paper's weighted score with hard constraints, or a Pareto front.

Metrics of an evaluated point (all per inference batch of the design, or per
training step when the evaluator costs ``train_step``):

=====================  ==========================================  =========
metric                 meaning                                      better
=====================  ==========================================  =========
``accuracy``           task accuracy in [0, 1] (None: not asked)    higher
``latency_cycles``     clock cycles end to end                      lower
``latency_ms``         milliseconds end to end                      lower
``dynamic_energy_nj``  dynamic energy, nJ                           lower
``leakage_energy_nj``  leakage energy over the run, nJ              lower
``energy_nj``          dynamic + leakage                            lower
``area_mm2``           accelerator area (main memory not included)  lower
=====================  ==========================================  =========

Weighted score (maximised), after BOSHCODE (docs/sources.md,
"Co-design method")::

    score = 0.5 * accuracy
          + 0.1 * (1 - cycles / 4e9)
          + 0.2 * (1 - dynamic energy / 9e10 nJ)
          + 0.1 * (1 - leakage energy / 2e10 nJ)
          + 0.1 * (1 - area / 2.56e4 mm^2)

The first four normalisers are the paper's.  The area term had a weight of 0.1
in the paper but no normaliser (it was unused); ours is **2.56e4 mm^2, the
largest design of the TransCODE hardware space** (1024 PEs x 128 lanes x 16
MACs with 64 softmax per PE and the largest buffers, about 25,600 mm^2), so
the area term spans [0, 1) over that space like the others.  A term may go
negative for a metric beyond its normaliser; nothing clips it.  When no
accuracy source is configured the accuracy term is left out (it is a constant
for a fixed model, so the ranking of designs does not change).

Range scale (``scale="range"``, what ``tcc sweep`` and ``tcc codesign`` use
by default).  With the paper's normalisers every term of a real space sits
within a hair of its maximum -- BERT-Base designs score 0.49994-0.49997 -- so
the score barely discriminates and its ranking is the area's.  The range
scale normalises each cost term by the space's own spread instead, measured
on the sweep's first round of proposals that has a feasible point (seeded, so
a resumed or repeated sweep measures the same ranges)::

    term = weight * (log hi - log value) / (log hi - log lo)

where ``lo`` and ``hi`` are the smallest and largest value of the metric in
that round (a single value ``v`` gives ``lo = v/2``, ``hi = 2v``).  A term is
1 at the round's best value, 0 at its worst, and keeps going beyond them
(nothing clips it).  Logarithms, because latencies, energies and areas of a
space span decades.  The ranges are reported with the result
(:meth:`WeightedObjective.describe`); scores of two sweeps are comparable only
when their ranges are the same.

Either way the score is strictly decreasing in every weighted cost metric, so
the best point is always on the Pareto front of the metrics the score weighs
(:meth:`WeightedObjective.front_metrics`), which is the front the plots draw
for a weighted objective.

A failed evaluation (infeasible mapping, crash) and a point that breaks a hard
constraint (``area <= A mm^2``, ``latency <= L ms``) score worst
(``-inf``); the reason is kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from transcode_ir.errors import UserError

__all__ = [
    "DEFAULT_NORMALISERS",
    "DEFAULT_WEIGHTS",
    "METRICS",
    "METRIC_DIRECTIONS",
    "Constraints",
    "Objective",
    "ParetoObjective",
    "WeightedObjective",
    "dominates",
    "pareto_front",
]

WORST = -math.inf

#: Metric names and whether larger is better.
METRIC_DIRECTIONS: Mapping[str, str] = {
    "accuracy": "max",
    "latency_cycles": "min",
    "latency_ms": "min",
    "dynamic_energy_nj": "min",
    "leakage_energy_nj": "min",
    "energy_nj": "min",
    "area_mm2": "min",
}
METRICS: tuple[str, ...] = tuple(METRIC_DIRECTIONS)

#: The paper's weights, plus area.
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "accuracy": 0.5, "latency": 0.1, "dynamic_energy": 0.2, "leakage_energy": 0.1, "area": 0.1,
}
#: Normalisers: cycles, nJ, nJ (the paper's) and mm^2 (ours, see module docstring).
DEFAULT_NORMALISERS: Mapping[str, float] = {
    "latency": 4e9, "dynamic_energy": 9e10, "leakage_energy": 2e10, "area": 2.56e4,
}
_TERM_METRIC = {"latency": "latency_cycles", "dynamic_energy": "dynamic_energy_nj",
                "leakage_energy": "leakage_energy_nj", "area": "area_mm2"}


@dataclass(frozen=True)
class Constraints:
    """Hard limits; a point beyond one scores worst."""

    max_area_mm2: float | None = None
    max_latency_ms: float | None = None

    def violation(self, metrics: Mapping[str, Any]) -> str | None:
        """Why ``metrics`` break a limit, or None."""
        area = metrics.get("area_mm2")
        if self.max_area_mm2 is not None and area is not None and area > self.max_area_mm2:
            return f"area {area:.4g} mm2 > limit {self.max_area_mm2:g} mm2"
        latency = metrics.get("latency_ms")
        if (self.max_latency_ms is not None and latency is not None
                and latency > self.max_latency_ms):
            return f"latency {latency:.4g} ms > limit {self.max_latency_ms:g} ms"
        return None

    def to_json(self) -> dict[str, Any]:
        return {"max_area_mm2": self.max_area_mm2, "max_latency_ms": self.max_latency_ms}


class Objective:
    """What a search maximises.  ``score`` is the scalar every strategy can
    use; ``values`` the vector a multi-objective strategy uses."""

    constraints: Constraints

    def score(self, outcome: Any) -> float:
        raise NotImplementedError

    def values(self, outcome: Any) -> tuple[float, ...]:
        return (self.score(outcome),)

    @property
    def directions(self) -> tuple[str, ...]:
        return ("max",)

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    #: False until a range-scaled objective has measured its ranges.
    calibrated = True

    def calibrate(self, outcomes: Iterable[Any]) -> bool:
        """Measure what the score needs from a round of outcomes (range scale)."""
        return False

    def front_metrics(self) -> tuple[str, ...]:
        """The metrics on whose Pareto front the best point lies."""
        return ()

    def infeasibility(self, outcome: Any) -> str | None:
        """Why ``outcome`` scores worst (failed, or a constraint), or None."""
        if outcome.status != "ok":
            return outcome.reason or "failed"
        return self.constraints.violation(outcome.metrics)


@dataclass(frozen=True)
class WeightedObjective(Objective):
    """The weighted score of the module docstring (maximised)."""

    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    normalisers: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_NORMALISERS))
    constraints: Constraints = Constraints()
    #: "fixed" (the normalisers above) or "range" (the space's own spread,
    #: measured on the first round with a feasible point; see the module docstring).
    scale: str = "fixed"
    #: Range scale: ``{term: (lo, hi)}`` once calibrated (not part of the identity).
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.scale not in ("fixed", "range"):
            raise UserError(f"objective scale {self.scale!r}: expected fixed or range")
        unknown = set(self.weights) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise UserError(f"objective weights: unknown term(s) {', '.join(sorted(unknown))}; "
                            f"accepted: {', '.join(DEFAULT_WEIGHTS)}")
        for term, value in self.normalisers.items():
            if term not in DEFAULT_NORMALISERS or not value > 0:
                raise UserError(f"objective normaliser {term}={value!r}: expected a positive "
                                f"number for one of {', '.join(DEFAULT_NORMALISERS)}")

    def terms(self, metrics: Mapping[str, Any]) -> dict[str, float]:
        """Each weighted term of the score (accuracy left out when None)."""
        out: dict[str, float] = {}
        accuracy = metrics.get("accuracy")
        if accuracy is not None and not (isinstance(accuracy, float) and math.isnan(accuracy)):
            out["accuracy"] = self.weights.get("accuracy", 0.0) * float(accuracy)
        for term, metric in _TERM_METRIC.items():
            weight = self.weights.get(term, 0.0)
            if weight:
                value = float(metrics[metric])
                if self.scale == "range":
                    low, high = self.ranges.get(term, (value / 2, value * 2))
                    if value <= 0 or low <= 0:
                        out[term] = weight if value <= low else 0.0
                    else:
                        out[term] = weight * (math.log(high) - math.log(value)) / (
                            math.log(high) - math.log(low))
                else:
                    out[term] = weight * (1.0 - value / self.normalisers[term])
        return out

    @property
    def calibrated(self) -> bool:
        return self.scale == "fixed" or bool(self.ranges)

    def calibrate(self, outcomes: Iterable[Any]) -> bool:
        """Range scale: take each cost term's range from the feasible
        ``outcomes`` (a round of proposals), once; True when it did."""
        if self.calibrated:
            return False
        feasible = [o.metrics for o in outcomes if self.infeasibility(o) is None]
        if not feasible:
            return False
        for term, metric in _TERM_METRIC.items():
            values = [float(m[metric]) for m in feasible
                      if m.get(metric) is not None and float(m[metric]) > 0]
            if not values:
                continue
            low, high = min(values), max(values)
            if high <= low * (1 + 1e-12):
                low, high = low / 2, high * 2
            self.ranges[term] = (low, high)
        return bool(self.ranges)

    def front_metrics(self) -> tuple[str, ...]:
        """The metrics the score weighs (positive weights): its best point is
        non-dominated over these."""
        names = [_TERM_METRIC[t] for t in _TERM_METRIC if self.weights.get(t, 0.0) > 0]
        if self.weights.get("accuracy", 0.0) > 0:
            names.append("accuracy")
        return tuple(names)

    def score(self, outcome: Any) -> float:
        if self.infeasibility(outcome) is not None:
            return WORST
        return sum(self.terms(outcome.metrics).values())

    def describe(self) -> str:
        parts = []
        for term, weight in self.weights.items():
            if term == "accuracy":
                parts.append(f"{weight:g}*accuracy")
            elif self.scale == "range":
                low, high = self.ranges.get(term, (math.nan, math.nan))
                parts.append(f"{weight:g}*log-range({_TERM_METRIC[term]}; {low:.4g}..{high:.4g})")
            else:
                parts.append(f"{weight:g}*(1 - {_TERM_METRIC[term]}/{self.normalisers[term]:g})")
        limits = [f"{k}={v:g}" for k, v in self.constraints.to_json().items() if v is not None]
        return "maximise " + " + ".join(parts) + (f"; subject to {', '.join(limits)}"
                                                  if limits else "")

    def to_json(self) -> dict[str, Any]:
        document = {"kind": "weighted", "weights": dict(self.weights),
                    "normalisers": dict(self.normalisers),
                    "constraints": self.constraints.to_json()}
        if self.scale != "fixed":                 # the identity of fixed-scale sweeps is unchanged
            document["scale"] = self.scale
        return document


@dataclass(frozen=True)
class ParetoObjective(Objective):
    """A Pareto front over ``metrics`` (each with its natural direction).

    ``values`` is the metric vector (what NSGA-II optimises); ``score`` -- the
    guide for single-objective strategies -- is ``guide``'s weighted score
    (the paper's by default)."""

    metrics: tuple[str, ...] = ("latency_ms", "energy_nj")
    constraints: Constraints = Constraints()
    guide: WeightedObjective = field(default_factory=WeightedObjective)

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in METRIC_DIRECTIONS]
        if unknown or len(self.metrics) < 2:
            raise UserError(f"Pareto metrics {list(self.metrics)}: need two or more of "
                            f"{', '.join(METRICS)}")
        object.__setattr__(self, "metrics", tuple(self.metrics))

    @property
    def directions(self) -> tuple[str, ...]:
        return tuple(METRIC_DIRECTIONS[m] for m in self.metrics)

    def score(self, outcome: Any) -> float:
        if self.infeasibility(outcome) is not None:
            return WORST
        return sum(self.guide.terms(outcome.metrics).values())

    @property
    def calibrated(self) -> bool:
        return self.guide.calibrated

    def calibrate(self, outcomes: Iterable[Any]) -> bool:
        return self.guide.calibrate(outcomes)

    def front_metrics(self) -> tuple[str, ...]:
        return self.metrics

    def values(self, outcome: Any) -> tuple[float, ...]:
        if self.infeasibility(outcome) is not None:
            return tuple(-math.inf if d == "max" else math.inf for d in self.directions)
        return tuple(float(outcome.metrics[m]) if outcome.metrics.get(m) is not None
                     else math.nan for m in self.metrics)

    def describe(self) -> str:
        return ("Pareto front of " + ", ".join(f"{m} ({d})" for m, d in
                                               zip(self.metrics, self.directions)))

    def to_json(self) -> dict[str, Any]:
        return {"kind": "pareto", "metrics": list(self.metrics),
                "constraints": self.constraints.to_json(), "guide": self.guide.to_json()}


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """True when ``a`` is no worse than ``b`` everywhere and better somewhere."""
    better = False
    for x, y, d in zip(a, b, directions):
        if d == "max":
            x, y = -x, -y
        if x > y:
            return False
        if x < y:
            better = True
    return better


def pareto_front(items: Iterable[Any], values: Any, directions: Sequence[str]) -> list[Any]:
    """The non-dominated items (``values(item)`` gives each item's vector;
    NaN or infinite vectors are left out)."""
    pool = [(item, tuple(values(item))) for item in items]
    pool = [(item, v) for item, v in pool if all(math.isfinite(x) for x in v)]
    front = []
    for item, v in pool:
        if not any(dominates(w, v, directions) for _, w in pool if w != v):
            front.append(item)
    return front
