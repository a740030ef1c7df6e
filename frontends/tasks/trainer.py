"""A small seeded trainer for zoo classifiers on an offline task, optionally under DynaProp.

:func:`train_classifier` builds ``build_classifier(model, num_classes, seed,
vocab_size=task vocabulary)``, trains it with AdamW (linear warm-up, then
linear decay to zero, gradient clipping) on the task's training split, and
evaluates accuracy on the validation and test splits.  With ``tau_i`` /
``tau_t`` set, a :class:`frontends.dynaprop.DynaProp` runtime prunes during
training (τ_I forward, τ_T on activation and weight gradients) and during
evaluation (τ_I), and the result carries the measured sparsities.

Determinism: the model weights are a function of ``seed`` (the zoo), the batch
order is drawn from ``numpy.random.default_rng(seed)``, dropout from
``torch.manual_seed(seed)``, and torch runs ``threads`` intra-op threads (1 by
default: BERT-Tiny gains little from more on a small CPU, a shared machine
loses a lot, and a fixed count keeps float reductions, hence results,
reproducible).  The same arguments give the same numbers.

Batches are trimmed to their longest real sequence (padding columns beyond it
are dropped), which changes no result (padded positions are masked) and makes
short ListOps expressions cheap.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from frontends.dynaprop.statistics import DynaPropStatistics
from frontends.tasks.listops import ListOpsData, ListOpsSplit
from transcode_ir.errors import UserError

__all__ = [
    "TrainConfig",
    "TrainResult",
    "batches_of",
    "build_for_task",
    "evaluate",
    "fit",
    "majority_baseline",
    "train_classifier",
    "train_classifier_model",
]

#: ``on_step(step, loss)`` is called after every optimizer step.
StepCallback = Callable[[int, float], None]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (the defaults are the short budget: minutes on 2 cores)."""

    steps: int = 300
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    max_grad_norm: float | None = 1.0
    eval_batch_size: int = 128
    eval_limit: int | None = None
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_batch_size", "threads"):
            value = getattr(self, name)
            minimum = 0 if name == "steps" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise UserError(f"{name}: expected an integer >= {minimum}, got {value!r}")
        if not self.learning_rate > 0:
            raise UserError(f"learning_rate: expected a number > 0, got {self.learning_rate!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise UserError(f"warmup_fraction: expected [0, 1), got {self.warmup_fraction!r}")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise UserError(f"eval_limit: expected an integer >= 1, got {self.eval_limit!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """What a training run measured (accuracies are fractions in [0, 1])."""

    model: str
    config: TrainConfig
    tau_i: float
    tau_t: float
    steps: int
    final_loss: float
    losses: list[float]
    validation_accuracy: float
    test_accuracy: float
    majority_accuracy: float
    seconds: float
    training_statistics: DynaPropStatistics | None = None
    evaluation_statistics: DynaPropStatistics | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def batches_of(
    split: ListOpsSplit, batch_size: int, order: np.ndarray | None = None, *, trim: bool = True
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(input_ids, attention_mask, labels)`` batches in ``order`` (default: split order).

    With ``trim`` (the default) each batch is cut to its longest real row;
    without, every batch keeps the split's full ``max_length`` (a fixed
    sequence length, as a compiled model sees it).
    """
    indices = np.arange(len(split)) if order is None else order
    for start in range(0, len(indices), batch_size):
        rows = indices[start : start + batch_size]
        mask = split.attention_mask[rows]
        length = max(int(mask.sum(axis=1).max()), 1) if trim else mask.shape[1]
        yield (
            torch.from_numpy(np.ascontiguousarray(split.input_ids[rows, :length])),
            torch.from_numpy(np.ascontiguousarray(mask[:, :length])),
            torch.from_numpy(split.labels[rows]),
        )


def _training_batches(
    split: ListOpsSplit, batch_size: int, steps: int, rng: np.random.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``steps`` batches from reshuffled passes over the split (the last short batch dropped)."""
    if len(split) < batch_size:
        raise UserError(
            f"the training split has {len(split)} examples, fewer than one batch of {batch_size}"
        )
    produced = 0
    while True:
        order = rng.permutation(len(split))
        usable = len(order) - len(order) % batch_size
        for batch in batches_of(split, batch_size, order[:usable]):
            if produced == steps:
                return
            produced += 1
            yield batch


def evaluate(
    model: nn.Module, split: ListOpsSplit, batch_size: int = 128, limit: int | None = None
) -> float:
    """Accuracy of ``model`` (eval mode, no grad) on ``split`` (its first ``limit`` rows)."""
    count = len(split) if limit is None else min(limit, len(split))
    if count == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for input_ids, attention_mask, labels in batches_of(
            split, batch_size, np.arange(count)
        ):
            logits = model(input_ids, attention_mask)
            correct += int((logits.argmax(dim=-1) == labels).sum().item())
    model.train(was_training)
    return correct / count


def _schedule(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then linear decay to 0."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    remaining = max(total - warmup, 1)
    return max(0.0, (total - step) / remaining)


def fit(
    model: nn.Module,
    data: ListOpsData,
    config: TrainConfig,
    on_step: StepCallback | None = None,
) -> list[float]:
    """Train ``model`` in place for ``config.steps`` steps; returns the loss of every step.

    Seeds torch (dropout) and the batch order from ``config.seed`` and sets
    ``config.threads``.  Any DynaProp runtime attached to ``model`` prunes.
    """
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    warmup = int(config.steps * config.warmup_fraction)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _schedule(step, config.steps, warmup)
    )
    losses: list[float] = []
    if config.steps == 0:
        return losses
    for step, (input_ids, attention_mask, labels) in enumerate(
        _training_batches(data.train, config.batch_size, config.steps, rng)
    ):
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(input_ids, attention_mask), labels)
        loss.backward()
        if config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        value = float(loss.item())
        losses.append(value)
        if on_step is not None:
            on_step(step, value)
    return losses


def build_for_task(model_name: str, data: ListOpsData, seed: int) -> nn.Module:
    """``build_classifier`` with the task's classes and vocabulary (eval mode)."""
    from frontends.zoo import build_classifier

    return build_classifier(model_name, data.num_classes, seed=seed, vocab_size=data.vocab_size)


def train_classifier_model(
    model_name: str,
    data: ListOpsData,
    config: TrainConfig = TrainConfig(),
    *,
    tau_i: float | Mapping[str, float] = 0.0,
    tau_t: float | Mapping[str, float] = 0.0,
    on_step: StepCallback | None = None,
) -> nn.Module:
    """Build and train (with DynaProp while training when a τ is nonzero); returns the model."""
    torch.set_num_threads(config.threads)
    model = build_for_task(model_name, data, config.seed)
    if config.steps == 0:
        return model
    if _nonzero(tau_i) or _nonzero(tau_t):
        from frontends.dynaprop.runtime import DynaProp

        with DynaProp(model, tau_i, tau_t, count=False):
            fit(model, data, config, on_step)
    else:
        fit(model, data, config, on_step)
    return model


def train_classifier(
    model_name: str,
    data: ListOpsData,
    config: TrainConfig = TrainConfig(),
    *,
    tau_i: float | Mapping[str, float] = 0.0,
    tau_t: float | Mapping[str, float] = 0.0,
    dynaprop: bool | None = None,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """Train ``model_name`` (zoo name or description) on ``data``, then evaluate it.

    A DynaProp runtime is attached when ``dynaprop`` is true, or by default
    whenever a τ is nonzero; with every τ = 0 it only counts (the trained
    model is then the same as without it).
    """
    torch.set_num_threads(config.threads)
    started = time.perf_counter()
    model = build_for_task(model_name, data, config.seed)
    use_dynaprop = dynaprop if dynaprop is not None else _nonzero(tau_i) or _nonzero(tau_t)
    runtime = None
    if use_dynaprop:
        from frontends.dynaprop.runtime import DynaProp

        runtime = DynaProp(model, tau_i, tau_t)
    try:
        losses = fit(model, data, config, on_step)
        training_statistics = runtime.statistics() if runtime is not None else None
        if runtime is not None:
            runtime.reset()
        validation = evaluate(model, data.validation, config.eval_batch_size, config.eval_limit)
        test = evaluate(model, data.test, config.eval_batch_size, config.eval_limit)
        evaluation_statistics = runtime.statistics() if runtime is not None else None
    finally:
        if runtime is not None:
            runtime.remove()
    tail = losses[-max(1, min(20, len(losses))):] if losses else [float("nan")]
    return TrainResult(
        model=model_name,
        config=config,
        tau_i=_scalar(tau_i),
        tau_t=_scalar(tau_t),
        steps=len(losses),
        final_loss=float(np.mean(tail)),
        losses=losses,
        validation_accuracy=validation,
        test_accuracy=test,
        majority_accuracy=majority_baseline(data),
        seconds=time.perf_counter() - started,
        training_statistics=training_statistics,
        evaluation_statistics=evaluation_statistics,
    )


def majority_baseline(data: ListOpsData) -> float:
    """Test accuracy of always predicting the most frequent training label (chance level)."""
    if not len(data.test) or not len(data.train):
        return float("nan")
    majority = int(np.argmax(data.train.label_counts()))
    return float(np.mean(data.test.labels == majority))


def _nonzero(tau: float | Mapping[str, float]) -> bool:
    if isinstance(tau, Mapping):
        return any(value != 0 for value in tau.values())
    return tau != 0


def _scalar(tau: float | Mapping[str, float]) -> float:
    """A per-point mapping is summarised as NaN in the scalar fields (see the statistics)."""
    if isinstance(tau, Mapping):
        return math.nan
    return float(tau)
