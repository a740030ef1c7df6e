"""Every strategy proposes only valid points, and the same seed gives the same sequence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from tools.codesign.evaluation import SyntheticEvaluator, evaluate_safely
from tools.codesign.objectives import ParetoObjective, WeightedObjective
from tools.codesign.strategies import STRATEGIES, StrategyOptions, make_strategy
from transcode_ir.passes import option

FAST_BOSHCODE = {"initial": 8, "epochs": 25, "warm_epochs": 10, "pool": 32, "gobi_starts": 4,
                 "gobi_steps": 5, "mc_samples": 4}


def _run(space, name: str, seed: int, rounds: int, batch: int = 4) -> list[str]:
    options = FAST_BOSHCODE if name == "boshcode" else {}
    objective = ParetoObjective(("latency_ms", "energy_nj")) if name == "nsga2" \
        else WeightedObjective()
    strategy = make_strategy(name, space, objective, seed, **options)
    evaluator = SyntheticEvaluator(seed=2)
    proposals = []
    for _ in range(rounds):
        points = strategy.ask(batch)
        for point in points:
            space.validate(point)
        strategy.tell(points, [evaluate_safely(evaluator, space, p) for p in points])
        proposals.extend(space.encode(p) for p in points)
    return proposals


@pytest.mark.parametrize("name", STRATEGIES)
def test_valid_and_deterministic(joint_space, name: str) -> None:
    rounds = 4 if name == "boshcode" else 6
    first = _run(joint_space, name, seed=7, rounds=rounds)
    assert first == _run(joint_space, name, seed=7, rounds=rounds)
    assert first != _run(joint_space, name, seed=8, rounds=rounds)


def test_hardware_only_space_keeps_the_model_fixed() -> None:
    from tools.codesign.spaces import HardwareSpace, JointSpace, ModelSpace

    space = JointSpace(ModelSpace.single("bert-base"), HardwareSpace("transcode-space"))
    assert space.mode == "hardware"
    proposals = _run(space, "evolution", seed=1, rounds=5)
    assert all('"model":"l12:h768:sdp*12:ff3072"' in p for p in proposals)


# --------------------------------------------------------------------------- the registry


def test_every_strategy_prints_and_parses_back() -> None:
    """Each registered strategy's text form round-trips, at its defaults and
    with every option changed (exact floats)."""
    import dataclasses

    from tools.codesign.strategies import parse_strategy, registered_strategies

    for name, cls in registered_strategies().items():
        default = cls()
        assert str(default) == name and parse_strategy(name) == default
        changed = {}
        for f in dataclasses.fields(cls):
            value = getattr(default, f.name)
            changed[f.name] = (0.123456789 if isinstance(value, float)
                               else 3 if f.name != "population" else 5)
        spec = dataclasses.replace(default, **changed)
        assert parse_strategy(str(spec)) == spec, str(spec)
        assert spec.changed() == changed


def test_strategy_options_reach_the_strategy_and_bad_ones_are_named(joint_space) -> None:
    from transcode_ir.errors import UserError

    strategy = make_strategy("evolution{population=4,crossover=0.25}", joint_space,
                             WeightedObjective(), 0, sample=2)
    assert (strategy.population_size, strategy.sample_size, strategy.crossover_rate) == (4, 2,
                                                                                         0.25)
    cases = (("boshcode{init=8}",
              "strategy 'boshcode' has no option 'init'; accepted: initial (an integer)"),
             ("boshcode{patience=soon}",
              "bad value 'soon' for option 'patience'; accepted: an integer, or none"),
             ("evolution{crossover=2}", "crossover is a probability"),
             ("annealing",
              "unknown strategy 'annealing'; accepted: random, evolution, boshcode, tpe, nsga2"))
    for text, message in cases:
        with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
            make_strategy(text, joint_space, WeightedObjective())


def test_command_line_and_python_api_make_the_same_sweep(tmp_path, capsys) -> None:
    """``--strategy 'evolution{population=4}'`` is the sweep the Python API
    makes with the same options (same recorded configuration: it resumes);
    the old ``--patience`` spelling still works, with a deprecation warning."""
    from tools.cli import main
    from tools.codesign.evaluation import SyntheticEvaluator
    from tools.codesign.spaces import HardwareSpace, JointSpace, ModelSpace, ScheduleSpace
    from tools.codesign.strategies import EvolutionOptions
    from tools.codesign.sweep import SweepConfig, run_sweep

    db = tmp_path / "s.sqlite"
    base = ["sweep", "transcode-space", "--synthetic", "--db", str(db), "--budget", "8",
            "--executor", "inline", "--quiet", "--no-report"]
    assert main([*base, "--strategy", "evolution{population=4}"]) == 0
    assert "8 trials (8 evaluated now" in capsys.readouterr().out
    space = JointSpace(ModelSpace.single("bert-base"), HardwareSpace("transcode-space"),
                       ScheduleSpace())
    again = run_sweep(space, SyntheticEvaluator(),
                      SweepConfig(db=db, budget=8, strategy=EvolutionOptions(population=4),
                                  executor="inline"))
    assert (again.evaluated, again.reused, again.name) == (0, 8, again.name)
    assert again.name.startswith("evolution-seed0-")
    assert main([*base, "--objective", "latency"]) != 0        # one meaning: the search's goal
    assert "what the mapper minimises per op is --mapper-objective latency" in \
        capsys.readouterr().err
    assert main([*base, "--strategy", "tpe", "--patience", "3"]) != 0
    assert "--patience applies to --strategy boshcode" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:              # like --help: no other option needed
        main(["sweep", "--list-strategies"])
    assert done.value.code == 0
    listing = capsys.readouterr().out
    assert "boshcode: BOSHCODE-style" in listing and "    patience  (an integer, or none" in listing


@dataclass(frozen=True)
class FirstOptions(StrategyOptions):
    """Random search seeded by an option (a user's strategy, for the test below)."""

    name: ClassVar[str] = "test-first"
    keep: int = option(4, "added to the seed")

    def build(self, space, objective, seed=0):  # noqa: ANN001, ANN201
        from tools.codesign.strategies.simple import RandomStrategy

        return RandomStrategy(space, objective, seed + self.keep)


def test_a_users_strategy_registers_like_a_pass(joint_space, tmp_path) -> None:
    """A strategy defined outside the package: options class + build(), registered
    once, then reachable by its text form from run_sweep like a built-in."""
    from tools.codesign import strategies
    from tools.codesign.sweep import SweepConfig, run_sweep

    strategies.register_strategy(FirstOptions)
    try:
        with pytest.raises(ValueError, match="registered twice"):
            strategies.register_strategy(dataclass(frozen=True)(
                type("Other", (FirstOptions,), {"__module__": __name__})))
        result = run_sweep(joint_space, SyntheticEvaluator(),
                           SweepConfig(db=tmp_path / "u.sqlite", budget=4,
                                       strategy="test-first{keep=2}", executor="inline"))
        assert result.strategy == "test-first" and len(result.trials) == 4
        assert result.name.startswith("test-first-seed0-")
    finally:
        strategies._STRATEGIES.pop("test-first", None)
