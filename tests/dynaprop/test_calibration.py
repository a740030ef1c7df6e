"""Threshold calibration: a target sparsity is met within 2 percentage points on held-out batches."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from frontends.dynaprop import calibrate_thresholds, measure_sparsity
from frontends.dynaprop.calibration import weighted_quantile
from frontends.tasks import ListOpsConfig, generate_listops
from frontends.tasks.trainer import batches_of
from frontends.zoo import build_classifier
from transcode_ir.errors import UserError

torch.set_num_threads(1)
TOLERANCE = 0.02  # 2 percentage points


@pytest.fixture(scope="module")
def setup():  # type: ignore[no-untyped-def]
    data = generate_listops(ListOpsConfig(train_size=128, validation_size=128, test_size=0, seed=3))
    model = build_classifier("bert-tiny", 10, seed=0, vocab_size=data.vocab_size)
    # Fixed-length batches (64 tokens, as a compiled model sees them): with per-batch
    # trimming the share of padded keys in `scores` swings with each batch's longest
    # row, and masked scores (-1e4) are never pruned.
    calibration = [b[:2] for b in batches_of(data.train, 32, trim=False)]
    held_out = [b[:2] for b in batches_of(data.validation, 32, trim=False)]
    return model, calibration, held_out


@pytest.mark.parametrize("target", [0.25, 0.6])
def test_global_target_within_two_points_on_held_out(setup, target: float) -> None:
    model, calibration, held_out = setup
    result = calibrate_thresholds(model, calibration, target, held_out=held_out)
    assert isinstance(result.tau_i, float) and result.tau_i > 0
    assert abs(result.achieved(held_out=False) - target) <= TOLERANCE
    assert abs(result.achieved(held_out=True) - target) <= TOLERANCE
    # the report is what a fresh measurement gives
    again = measure_sparsity(model, held_out, result.tau_i)
    assert again.sparsity == result.held_out.sparsity
    assert "(all points)" in result.format_table()


def test_per_point_targets_within_two_points_on_held_out(setup) -> None:
    model, calibration, held_out = setup
    targets = {
        "layer.0.query": 0.5,
        "layer.0.scores": 0.15,  # 3/4 are padded keys
        "layer.1.intermediate": 0.7,
        "layer.1.context": 0.4,
        "layer.1.output": 0.2,
    }
    result = calibrate_thresholds(model, calibration, targets, held_out=held_out)
    achieved = result.achieved(held_out=True)
    assert isinstance(result.tau_i, dict) and set(result.tau_i) == set(targets)
    for path, target in targets.items():
        assert abs(achieved[path] - target) <= TOLERANCE, (path, achieved[path], target)
    # points not named keep τ = 0: only their exact zeros
    untouched = result.held_out.points["layer.0.key"]
    assert untouched.sparsity < 0.01


def test_unreachable_targets_are_reported_not_hidden(setup) -> None:
    model, calibration, held_out = setup
    probs = "layer.0.probs"  # padded keys are exactly 0
    scores = "layer.0.scores"  # padded keys hold score - 1e4
    result = calibrate_thresholds(model, calibration, {probs: 0.05, scores: 0.9},
                                  held_out=held_out)
    assert result.tau_i[probs] == 0.0
    assert result.achieved(held_out=True)[probs] > 0.05 + TOLERANCE
    assert result.tau_i[scores] == 1000.0  # capped: the attention mask survives
    assert result.achieved(held_out=True)[scores] < 0.9 - TOLERANCE


def test_weighted_quantile() -> None:
    values = torch.tensor([3.0, 1.0, 2.0, 4.0])
    weights = torch.tensor([1.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    assert weighted_quantile(values, weights, 0.5) == 2.0
    assert weighted_quantile(values, weights, 0.51) == 3.0
    assert weighted_quantile(values, weights, 0.0) == 0.0
    assert weighted_quantile(values, torch.tensor([1, 1, 1, 97.0], dtype=torch.float64), 0.5) == 4.0
    rng = np.random.default_rng(0)
    sample = torch.from_numpy(rng.random(10_000))
    q = weighted_quantile(sample, torch.ones(10_000, dtype=torch.float64), 0.3)
    assert abs(float((sample <= q).double().mean()) - 0.3) < 1e-3


def test_calibration_errors(setup) -> None:
    model, calibration, _ = setup
    with pytest.raises(UserError, match="fraction in \\[0, 1\\]"):
        calibrate_thresholds(model, calibration, 1.5)
    with pytest.raises(UserError, match="unknown prune point"):
        calibrate_thresholds(model, calibration, {"encoder.nope": 0.5})
    with pytest.raises(UserError, match="at least one batch"):
        calibrate_thresholds(model, [], 0.5)
