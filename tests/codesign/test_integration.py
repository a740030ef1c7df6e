"""The real cost path: bert-tiny on a 64-point space with the analytical simulator."""

from __future__ import annotations

import math

import pytest

from tools.codesign.evaluation import CostEvaluator, evaluate_safely
from tools.codesign.objectives import WeightedObjective
from tools.codesign.spaces import (
    HardwareSpace,
    JointPoint,
    JointSpace,
    ModelSpace,
    Schedule,
    ScheduleSpace,
)
from tools.codesign.sweep import run_sweep


@pytest.fixture(scope="module")
def small(small_space_file, model_cache_dir):
    space = JointSpace(ModelSpace.single("bert-tiny"), HardwareSpace(str(small_space_file)))
    return space, CostEvaluator(cache_dir=model_cache_dir, seq=32)


def test_exhausted_small_space_finds_the_brute_force_optimum(small, tmp_path) -> None:
    space, evaluator = small
    objective = WeightedObjective()
    outcomes = {space.encode(p): evaluate_safely(evaluator, space, p) for p in space.enumerate()}
    brute = {k: objective.score(o) for k, o in outcomes.items()}
    assert len(brute) == 64
    assert any(math.isinf(s) for s in brute.values())            # some designs do not fit
    # the default objective (range scale, calibrated on the first round) too
    default = run_sweep(space, evaluator, "random", db=tmp_path / "all.sqlite",
                        budget=space.size, seed=2, executor="inline")
    ranged = {k: default.objective.score(o) for k, o in outcomes.items()}
    assert default.best.score == max(ranged.values())
    assert ranged[space.encode(default.best.point)] == max(ranged.values())
    result = run_sweep(space, evaluator, "random", db=tmp_path / "all.sqlite",
                       budget=space.size, seed=2, executor="inline", objective=objective)
    assert len({t.key for t in result.trials}) == 64
    assert result.best.score == max(brute.values())
    assert brute[space.encode(result.best.point)] == max(brute.values())
    failed = [t for t in result.trials if t.outcome.status == "failed"]
    assert failed and all("cannot be mapped" in t.outcome.reason for t in failed)
    assert result.stopped in ("budget", "exhausted")


def test_each_model_is_prepared_once_per_batch(small) -> None:
    space, evaluator = small
    points = list(space.enumerate())[:12]
    # The model's export is in the cache folder (made here when no other test made it
    # first, e.g. when this test runs alone): a fresh evaluator must not export again.
    evaluate_safely(evaluator, space, points[0])
    fresh = CostEvaluator(cache_dir=evaluator.models.directory, seq=32)
    for point in points:
        outcome = evaluate_safely(fresh, space, point)
        assert outcome.simulator == "analytical" and outcome.accuracy_source == "none"
    stats = fresh.models.stats
    assert stats["exported"] == 0 and stats["built"] + stats["disk"] == 1
    assert stats["memory"] == 11


def test_fixed_schedules_and_infeasible_reasons(small) -> None:
    space, evaluator = small
    roomy = next(p for p in space.enumerate()
                 if space.hardware.describe(p.hardware).count("4 MiB") == 1)
    auto = evaluate_safely(evaluator, space, roomy)
    fixed = evaluate_safely(evaluator, space, JointPoint(roomy.model, roomy.hardware,
                                                         Schedule("design", "kjib")))
    best_order = evaluate_safely(evaluator, space, JointPoint(roomy.model, roomy.hardware,
                                                              Schedule("1x16x16", "auto")))
    assert auto.status == fixed.status == best_order.status == "ok"
    assert best_order.metrics["latency_cycles"] <= fixed.metrics["latency_cycles"] * 1.0001
    huge_tile = evaluate_safely(evaluator, space, JointPoint(roomy.model, 0,
                                                             Schedule("4x128x128", "bijk")))
    assert huge_tile.status == "failed" and "does not fit" in huge_tile.reason


def test_final_report_names_its_simulator(small) -> None:
    from tools.codesign.report import compare, final_report

    space, evaluator = small
    point = next(p for p in space.enumerate()
                 if evaluate_safely(evaluator, space, p).status == "ok")
    report = final_report(space, evaluator, point, simulator="analytical")
    assert report.simulator == "analytical"
    assert ("event-driven simulator is not available" in report.text
            or "analytical simulator (as asked)" in report.text)
    assert "tcc compile: " in report.text and report.metrics["latency_ms"] > 0
    ratios = compare(report.metrics, {**report.metrics, "latency_ms": 2 * report.metrics[
        "latency_ms"]})
    assert ratios["latency_ratio"] == pytest.approx(2.0)


def test_joint_space_with_thresholds_needs_a_density_source(small_space_file,
                                                            model_cache_dir) -> None:
    space = JointSpace(ModelSpace.single("bert-tiny"), HardwareSpace(str(small_space_file)),
                       ScheduleSpace(tau_i=(0.0, 0.02)))
    point = JointPoint(space.model.fixed, 63, Schedule(tau_i=0.02))
    missing = evaluate_safely(CostEvaluator(cache_dir=model_cache_dir, seq=32), space, point)
    assert missing.status == "failed" and "needs measured densities" in missing.reason
    assumed = CostEvaluator(cache_dir=model_cache_dir, seq=32, densities="assumed:0.5")
    assert "dynaprop{tau-i=0.02" in assumed.pipeline(point)
    pruned = evaluate_safely(assumed, space, point)
    dense = evaluate_safely(assumed, space, JointPoint(space.model.fixed, 63))
    assert pruned.status == dense.status == "ok", pruned.reason
    assert pruned.metrics["dynamic_energy_nj"] < dense.metrics["dynamic_energy_nj"]
