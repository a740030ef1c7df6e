"""Measure a density profile of a zoo classifier on task data (torch).

:func:`measure_profile` builds ``build_classifier(model, classes, seed)`` for
the task's vocabulary, optionally trains it for ``train_steps`` steps first
(same τ), optionally calibrates τ_I for a target sparsity, then measures
``batches`` batches with a :class:`DynaProp` runtime:

* ``mode="inference"``: forward only (eval mode, no grad), validation split;
* ``mode="training"``: forward, backward and an AdamW step per batch (train
  mode), training split; backward and weight-gradient counts are recorded.

Batches have the task's full ``max_length`` (no per-batch trimming): the
fixed sequence length a compiled model runs at, and stable shares of padded
keys in ``scores``/``probs``.

With ``target_sparsity`` the thresholds are calibrated on ``batches`` batches
of the training split and the profile is measured on validation batches (held
out); both achieved sparsities are recorded beside the target.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from frontends.dynaprop.calibration import calibrate_thresholds
from frontends.dynaprop.profile import build_profile
from frontends.dynaprop.runtime import DynaProp, find_prune_points
from frontends.tasks import load_task
from frontends.tasks.listops import ListOpsConfig
from frontends.tasks.trainer import TrainConfig, batches_of, train_classifier_model
from transcode_ir.errors import UserError

__all__ = ["CALIBRATION_TOLERANCE", "measure_profile"]

#: A per-point calibration farther than this from its target (held out) is listed.
CALIBRATION_TOLERANCE = 0.02


def _strip_prefix(path: str, model: torch.nn.Module) -> str:
    prefix = "bert." if hasattr(model, "bert") else ""
    return path[len(prefix):] if prefix and path.startswith(prefix) else path


def _batches(split: Any, batch_size: int, count: int, seed: int) -> list[tuple[torch.Tensor, ...]]:
    if len(split) < count * batch_size:
        raise UserError(
            f"the {split.name} split has {len(split)} examples; {count} batches of "
            f"{batch_size} need {count * batch_size} (lower --batches or --batch-size)"
        )
    order = np.random.default_rng(seed).permutation(len(split))[: count * batch_size]
    return list(batches_of(split, batch_size, order, trim=False))


def measure_profile(
    model: str,
    *,
    task: str = "listops",
    task_config: ListOpsConfig | None = None,
    seed: int = 0,
    mode: str = "inference",
    tau_i: float | Mapping[str, float] = 0.0,
    tau_t: float = 0.0,
    batches: int = 4,
    batch_size: int = 32,
    train_steps: int = 0,
    target_sparsity: float | None = None,
    per_point: bool = False,
    threads: int = 1,
    tool: str | None = None,
) -> dict[str, Any]:
    """A profile document (see :mod:`frontends.dynaprop.profile`) for ``model`` on ``task``."""
    from frontends.zoo import format_description, resolve_config

    if mode not in ("inference", "training"):
        raise UserError(f"mode: expected 'inference' or 'training', got {mode!r}")
    if not isinstance(batches, int) or batches < 1:
        raise UserError(f"batches: expected an integer >= 1, got {batches!r}")
    config = resolve_config(model)
    task_config = task_config if task_config is not None else ListOpsConfig()
    data = load_task(task, **task_config.to_json())
    train_config = TrainConfig(steps=train_steps, batch_size=batch_size, seed=seed,
                               threads=threads)
    torch.set_num_threads(threads)
    classifier = train_classifier_model(model, data, train_config, tau_i=tau_i, tau_t=tau_t)

    calibration_record = None
    if target_sparsity is not None:
        classifier.eval()
        calibration_batches = [b[:2] for b in _batches(data.train, batch_size, batches, seed + 1)]
        held_out = [b[:2] for b in _batches(data.validation, batch_size, batches, seed + 2)]
        if per_point:
            paths = [info.path for info in find_prune_points(classifier,
                                                             *calibration_batches[0])]
            target: float | dict[str, float] = {path: target_sparsity for path in paths}
        else:
            target = target_sparsity
        calibration = calibrate_thresholds(classifier, calibration_batches, target,
                                           held_out=held_out, seed=seed)
        tau_i = calibration.tau_i
        calibration_record = {
            "target_sparsity": target_sparsity,
            "per_point": per_point,
            "rounds": calibration.rounds,
            "calibration_split": "train",
            "calibration_batches": batches,
            "held_out_split": "validation",
            "achieved_calibration": calibration.calibration.sparsity,
            "achieved_held_out": calibration.held_out.sparsity if calibration.held_out else None,
        }
        if per_point:
            achieved = calibration.achieved(held_out=True)
            assert isinstance(achieved, dict)
            calibration_record["points_off_target"] = {
                _strip_prefix(path, classifier): value
                for path, value in achieved.items()
                if abs(value - target_sparsity) > CALIBRATION_TOLERANCE
            }

    split = data.validation if mode == "inference" else data.train
    measured = _batches(split, batch_size, batches, seed + 3)
    with DynaProp(classifier, tau_i, tau_t) as runtime:
        if mode == "inference":
            classifier.eval()
            with torch.no_grad():
                for input_ids, attention_mask, _ in measured:
                    classifier(input_ids, attention_mask)
        else:
            classifier.train()
            torch.manual_seed(seed)
            optimizer = torch.optim.AdamW(classifier.parameters(), lr=train_config.learning_rate,
                                          weight_decay=train_config.weight_decay)
            for input_ids, attention_mask, labels in measured:
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(classifier(input_ids, attention_mask), labels).backward()
                optimizer.step()
        statistics = runtime.statistics()
        prefix = runtime.encoder_prefix
    examples = sum(int(b[0].shape[0]) for b in measured)
    return build_profile(
        statistics,
        model=config.name or format_description(config),
        description=format_description(config),
        seed=seed,
        mode=mode,
        tau_i=tau_i,
        tau_t=tau_t,
        data={
            "task": task,
            "split": split.name,
            "batches": batches,
            "batch_size": batch_size,
            "sequence_length": task_config.max_length,
            "examples": examples,
            "train_steps_before": train_steps,
            "task_config": task_config.to_json(),
        },
        module_prefix=prefix,
        calibration=calibration_record,
        tool=tool,
    )
