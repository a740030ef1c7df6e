"""Objectives: the weighted score with its normalisers, constraints, Pareto fronts."""

from __future__ import annotations

import math

import pytest

from tools.codesign.evaluation import Outcome
from tools.codesign.objectives import (
    Constraints,
    ParetoObjective,
    WeightedObjective,
    dominates,
    pareto_front,
)
from transcode_ir.errors import UserError

METRICS = {"accuracy": 0.8, "latency_cycles": 4e8, "latency_ms": 571.4,
           "dynamic_energy_nj": 9e9, "leakage_energy_nj": 2e9, "energy_nj": 1.1e10,
           "area_mm2": 256.0}


def test_weighted_score_is_the_papers_plus_area() -> None:
    score = WeightedObjective().score(Outcome("ok", dict(METRICS)))
    expected = 0.5 * 0.8 + 0.1 * 0.9 + 0.2 * 0.9 + 0.1 * 0.9 + 0.1 * (1 - 256 / 2.56e4)
    assert score == pytest.approx(expected, rel=1e-12)


def test_without_accuracy_the_term_is_left_out() -> None:
    metrics = dict(METRICS, accuracy=None)
    terms = WeightedObjective().terms(metrics)
    assert "accuracy" not in terms and len(terms) == 4


def test_failures_and_constraints_score_worst() -> None:
    objective = WeightedObjective(constraints=Constraints(max_area_mm2=100.0))
    assert objective.score(Outcome.failed("no mapping")) == -math.inf
    assert objective.score(Outcome("ok", dict(METRICS))) == -math.inf
    assert "area 256 mm2 > limit 100 mm2" in objective.infeasibility(Outcome("ok", dict(METRICS)))
    limited = WeightedObjective(constraints=Constraints(max_latency_ms=1000.0))
    assert math.isfinite(limited.score(Outcome("ok", dict(METRICS))))
    with pytest.raises(UserError):
        WeightedObjective(weights={"speed": 1.0})


def test_pareto_front() -> None:
    rows = [(1, 5), (2, 3), (3, 4), (4, 1), (5, 5)]
    front = pareto_front(rows, lambda r: r, ("min", "min"))
    assert sorted(front) == [(1, 5), (2, 3), (4, 1)]
    assert dominates((1, 0.9), (2, 0.8), ("min", "max"))
    objective = ParetoObjective(("latency_ms", "accuracy"))
    assert objective.directions == ("min", "max")
    assert objective.values(Outcome("ok", dict(METRICS))) == (571.4, 0.8)
    assert objective.values(Outcome.failed("x")) == (math.inf, -math.inf)
