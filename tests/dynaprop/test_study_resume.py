"""`dynaprop study` keeps finished settings (a checkpoint written as each one
finishes) and, run again, trains only the settings still missing."""

from __future__ import annotations

import types

import pytest

import frontends.dynaprop.study as study
import frontends.tasks


def _fake_training(calls: list, interrupt_at: int | None):
    def train(model, data, config, *, tau_i, tau_t, dynaprop, on_step=None):
        calls.append((tau_i, tau_t))
        if interrupt_at is not None and len(calls) == interrupt_at:
            raise KeyboardInterrupt
        stats = types.SimpleNamespace(activation_sparsity=tau_i, gradient_sparsity=tau_t,
                                      weight_gradient_sparsity=0.5)
        return types.SimpleNamespace(tau_i=tau_i, tau_t=tau_t, validation_accuracy=0.3,
                                     test_accuracy=0.25 + tau_i, training_statistics=stats,
                                     evaluation_statistics=stats, final_loss=1.0, seconds=0.1)
    return train


def test_interrupted_study_resumes(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(frontends.tasks, "load_task", lambda *a, **k: None)
    monkeypatch.setattr(study, "majority_baseline", lambda data: 0.1)
    checkpoint = tmp_path / "out" / "study.settings.jsonl"
    grid = ([0.0, 0.01], [0.0, 1e-4, 1e-3])
    calls: list = []
    monkeypatch.setattr(study, "train_classifier", _fake_training(calls, interrupt_at=4))
    with pytest.raises(KeyboardInterrupt):
        study.run_study("bert-tiny", *grid, checkpoint=checkpoint)
    assert len(checkpoint.read_text().splitlines()) == 3            # three settings kept

    calls.clear()
    monkeypatch.setattr(study, "train_classifier", _fake_training(calls, interrupt_at=None))
    result = study.run_study("bert-tiny", *grid, checkpoint=checkpoint)
    assert calls == [(0.01, 0.0), (0.01, 1e-4), (0.01, 1e-3)]      # only the missing ones
    assert [(r.tau_i, r.tau_t) for r in result.rows] == [(a, b) for a in grid[0]
                                                          for b in grid[1]]
    assert result.rows[0].test_accuracy == 0.25                      # reused row intact

    calls.clear()                                                    # other training settings:
    from frontends.tasks.trainer import TrainConfig  # nothing reused
    study.run_study("bert-tiny", *grid, checkpoint=checkpoint,
                    train_config=TrainConfig(steps=7))
    assert len(calls) == 6
