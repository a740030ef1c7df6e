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


def _design(cycles: float, dynamic: float, leakage: float, area: float) -> Outcome:
    return Outcome("ok", {"accuracy": None, "latency_cycles": cycles, "latency_ms": cycles / 7e5,
                          "dynamic_energy_nj": dynamic, "leakage_energy_nj": leakage,
                          "energy_nj": dynamic + leakage, "area_mm2": area})


# BERT-Base-like designs of one space: small and slow .. large and fast.
_ROUND = [_design(2.0e7, 3.0e7, 2.0e6, 40.0), _design(6.0e6, 2.6e7, 4.0e6, 160.0),
          _design(1.5e6, 2.4e7, 9.0e6, 900.0), _design(3.0e6, 2.9e7, 3.0e6, 300.0)]


def test_range_scale_discriminates_where_the_papers_does_not() -> None:
    paper = [WeightedObjective().score(o) for o in _ROUND]
    assert max(paper) - min(paper) < 0.01                    # the issue: 0.49994-0.49997
    ranged = WeightedObjective(scale="range")
    assert not ranged.calibrated and ranged.calibrate(_ROUND) and ranged.calibrated
    scores = [ranged.score(o) for o in _ROUND]
    assert max(scores) - min(scores) > 0.09               # 1000x the paper scale's spread
    assert all(-1e-9 <= s <= 0.5 + 1e-9 for s in scores)    # 4 cost terms, weights sum 0.5
    terms = ranged.terms(_ROUND[2].metrics)                  # fastest: latency term is full
    assert terms["latency"] == pytest.approx(0.1) and terms["area"] == pytest.approx(0.0)
    assert "log-range(latency_cycles; 1.5e+06..2e+07)" in ranged.describe()
    assert ranged.to_json()["scale"] == "range" and "scale" not in WeightedObjective().to_json()


def test_best_of_a_weighted_score_is_on_the_front_of_its_metrics() -> None:
    from tools.codesign.plots import front_rows

    ranged = WeightedObjective(scale="range")
    ranged.calibrate(_ROUND)
    rows = [dict(o.metrics, key=str(i), status="ok") for i, o in enumerate(_ROUND)]
    best = max(range(len(_ROUND)), key=lambda i: ranged.score(_ROUND[i]))
    front = front_rows(rows, "latency_ms", "energy_nj", ranged.front_metrics())
    assert str(best) in {r["key"] for r in front}
    assert set(ranged.front_metrics()) == {"latency_cycles", "dynamic_energy_nj",
                                           "leakage_energy_nj", "area_mm2", "accuracy"}


def test_default_sweep_best_is_on_the_drawn_front(tmp_path) -> None:
    from tools.codesign.evaluation import SyntheticEvaluator
    from tools.codesign.plots import front_rows
    from tools.codesign.spaces import HardwareSpace, JointSpace, ModelSpace
    from tools.codesign.store import ResultsStore
    from tools.codesign.sweep import run_sweep

    space = JointSpace(ModelSpace.single("bert-tiny"), HardwareSpace("transcode-space"))
    result = run_sweep(space, SyntheticEvaluator(), "random", db=tmp_path / "s.sqlite",
                       budget=24, executor="inline")
    assert result.objective.scale == "range" and result.objective.ranges
    scores = sorted({t.score for t in result.trials if math.isfinite(t.score)})
    assert scores[-1] - scores[0] > 0.05
    with ResultsStore(tmp_path / "s.sqlite", readonly=True) as store:
        rows = [r for r in store.rows() if r["status"] == "ok"]
    front = front_rows(rows, "latency_ms", "energy_nj", result.objective.front_metrics())
    assert result.best.key in {r["key"] for r in front}
