"""The seeded trainer: same arguments, same numbers; DynaProp at τ = 0 changes nothing."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from frontends.tasks import ListOpsConfig, TrainConfig, generate_listops, train_classifier
from transcode_ir.errors import UserError

DATA = generate_listops(ListOpsConfig(train_size=64, validation_size=16, test_size=16,
                                      max_length=32, seed=2))
CONFIG = TrainConfig(steps=4, batch_size=16, seed=3)


def test_training_is_deterministic_and_tau_zero_is_transparent() -> None:
    first = train_classifier("bert-tiny", DATA, CONFIG)
    second = train_classifier("bert-tiny", DATA, CONFIG)
    counted = train_classifier("bert-tiny", DATA, CONFIG, dynaprop=True)
    assert first.losses == second.losses and len(first.losses) == 4
    assert first.losses == counted.losses  # τ = 0: bookkeeping only
    assert (first.validation_accuracy, first.test_accuracy) == (
        counted.validation_accuracy, counted.test_accuracy)
    assert first.training_statistics is None and counted.training_statistics is not None
    assert counted.evaluation_statistics.backward.elements == 0  # evaluation is forward only
    pruned = train_classifier("bert-tiny", DATA, CONFIG, tau_i=0.05, tau_t=1e-3)
    assert pruned.losses != first.losses
    assert pruned.training_statistics.activation_sparsity > 0.2


def test_train_config_errors() -> None:
    with pytest.raises(UserError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(UserError, match="fewer than one batch"):
        train_classifier("bert-tiny", DATA, TrainConfig(steps=1, batch_size=128))


def test_study_rows_do_not_depend_on_jobs() -> None:
    from dataclasses import asdict

    from frontends.dynaprop import run_study

    task = ListOpsConfig(train_size=32, validation_size=8, test_size=8, max_length=24, seed=4)
    config = TrainConfig(steps=2, batch_size=16, seed=5)
    serial = run_study("bert-tiny", [0.0, 0.05], [1e-3], task_config=task, train_config=config)
    pooled = run_study("bert-tiny", [0.0, 0.05], [1e-3], task_config=task, train_config=config,
                       jobs=2)

    def without_time(row: object) -> dict[str, float]:
        values = asdict(row)  # type: ignore[call-overload]
        values.pop("seconds")
        return values

    assert [without_time(r) for r in pooled.rows] == [without_time(r) for r in serial.rows]
    assert [(r.tau_i, r.tau_t) for r in pooled.rows] == [(0.0, 1e-3), (0.05, 1e-3)]
