"""A schedule is a tuple of pass objects: exact thresholds, typed tiles, one evaluate path."""

from __future__ import annotations

from pathlib import Path

from tools.codesign.evaluation import CostEvaluator, evaluate_safely
from tools.codesign.spaces import (
    HardwareSpace,
    JointPoint,
    JointSpace,
    ModelSpace,
    Schedule,
    ScheduleSpace,
)


def test_an_exact_tau_reaches_the_dynaprop_pass(small_space_file: Path, model_cache_dir: Path,
                                                tmp_path: Path) -> None:
    """tau_i = 1.2345678e-4 written with 6 digits (0.000123457) differs from the
    profile's by 1.8e-6 relative, more than the pass's own 1e-6 check allows:
    the schedule must carry the float itself to the pass."""
    from tests.dynaprop_ir.test_pass_bert import write_profile

    tau = 1.2345678e-4
    profile = write_profile(tmp_path / "profile.json", 0.5, tau_i=tau)
    space = JointSpace(ModelSpace.single("bert-tiny"), HardwareSpace(str(small_space_file)),
                       ScheduleSpace(tau_i=(0.0, tau)))
    point = JointPoint(space.model.fixed, 63, Schedule(tau_i=tau))
    evaluator = CostEvaluator(cache_dir=model_cache_dir, seq=32, densities=f"profile:{profile}")
    assert f"tau-i={tau!r}" in evaluator.pipeline(point)
    outcome = evaluate_safely(evaluator, space, point)
    assert outcome.status == "ok", outcome.reason
    assert f"tau-i={tau!r}" in outcome.details["pipeline"]


def test_a_schedule_is_typed_and_its_passes_are_objects() -> None:
    import pytest

    from transcode_ir.errors import UserError
    from transcode_ir.passes import parse_pipeline

    schedule = Schedule("1X16x16", "kjib", 1.2345678e-4)
    assert schedule.tile == (1, 16, 16) and schedule.tile_text == "1x16x16"
    assert Schedule.from_json(schedule.to_json()) == schedule == Schedule((1, 16, 16), "kjib",
                                                                          1.2345678e-4)
    assert schedule.forced_tile((4, 32, 32)) == (1, 16, 16)
    (dynaprop,) = schedule.passes(density=0.5)
    assert dynaprop.tau_i == 1.2345678e-4 and dynaprop.density == 0.5
    assert str(dynaprop) == "dynaprop{tau-i=0.00012345678,tau-t=0.0,density=0.5}"
    assert parse_pipeline(str(dynaprop)) == (dynaprop,)          # the text is only its print
    assert Schedule().passes() == ()
    with pytest.raises(UserError, match="expected auto, design or BxXxY"):
        Schedule("1x0x16")


def test_the_report_pipeline_replays_a_fixed_tile(small_space_file: Path,
                                                  model_cache_dir: Path) -> None:
    """The best pair's report names the schedule's tile pass, so its pipeline
    line re-runs the same forced schedule."""
    from tools.codesign.report import final_report

    space = JointSpace(ModelSpace.single("bert-tiny"), HardwareSpace(str(small_space_file)),
                       ScheduleSpace(tiles=("1x16x16",), orders=("kjib",)))
    point = JointPoint(space.model.fixed, 63, Schedule("1x16x16", "kjib"))
    evaluator = CostEvaluator(cache_dir=model_cache_dir, seq=32)
    report = final_report(space, evaluator, point, "analytical")
    assert ",tile{order=kjib},elector-map{hw=" in report.report.pipeline
    assert Schedule("1x16x16").tile_pass((1, 16, 16)) is None          # order auto: no pass
    assert str(Schedule("design", "bkij").tile_pass((4, 32, 32))) == "tile{b=4,x=32,y=32,order=bkij}"
    search = evaluate_safely(evaluator, space, point)
    assert search.metrics["latency_cycles"] == report.metrics["latency_cycles"]
