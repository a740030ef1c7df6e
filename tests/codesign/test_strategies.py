"""Every strategy proposes only valid points, and the same seed gives the same sequence."""

from __future__ import annotations

import pytest

from tools.codesign.evaluation import SyntheticEvaluator, evaluate_safely
from tools.codesign.objectives import ParetoObjective, WeightedObjective
from tools.codesign.strategies import STRATEGIES, make_strategy

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
