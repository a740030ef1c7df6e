"""Threshold calibration: τ_I from a target activation sparsity (torch).

DynaTran/DynaProp has no closed form from a sparsity to a threshold; the
original sweeps τ.  Here τ comes from the measured distribution of ``|x|``:
the fraction of elements a threshold prunes is ``P(|x| ≤ τ)``, so the τ for a
target sparsity ``s`` is the ``s``-quantile of ``|x|``.

* **global** target (one number): one τ for every point, the ``s``-quantile of
  ``|x|`` pooled over all points, each element weighing the same, so that the
  element-weighted sparsity of all points together (what
  :attr:`DynaPropStatistics.activation_sparsity` reports) meets the target;
* **per point** target (a mapping path → sparsity): one τ per named point, the
  quantile of that point's own ``|x|``; other points keep τ = 0.

Pruning a point changes what the points after it see (pruned Q and K change
the scores), so calibration iterates: measure with the current thresholds
active, take quantiles of each point's *unpruned* input to its own pruning,
repeat (``rounds``, 3 by default; the first round measures the unpruned
model).  The distribution is estimated from a fixed-seed random sample of
``samples_per_tensor`` elements of each tensor, weighted by the tensor's size.

A target is not always reachable: a point whose exact zeros already exceed the
target (attention probabilities of padded keys are exactly 0) gets τ = 0 and
more sparsity than asked; a ``scores`` point holds ``score − 10⁴`` at padded
keys, and no τ may reach those without undoing the attention mask, so τ never
exceeds ``max_tau`` (1000 by default) and such a target is missed from below.
:class:`Calibration` reports the achieved sparsity beside the target, on the
calibration batches and on held-out batches.

Padding matters for ``scores`` and ``probs``: their padded-key share follows
the batch's padding, so calibrate and measure on batches padded the same way
(fixed-length batches give stable figures; per-batch trimming does not).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from frontends.dynaprop.runtime import DynaProp, check_threshold
from frontends.dynaprop.statistics import Density, combine
from transcode_ir.errors import UserError

__all__ = [
    "Calibration",
    "SparsityReport",
    "calibrate_thresholds",
    "default_run",
    "measure_sparsity",
    "weighted_quantile",
]

#: ``run(model, batch)`` evaluates the model on one calibration batch.
RunFunction = Callable[[nn.Module, Any], Any]


def default_run(model: nn.Module, batch: Any) -> Any:
    """``model(**batch)`` for a mapping, ``model(*batch)`` for a tuple/list, else ``model(batch)``."""
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


@dataclass(frozen=True)
class SparsityReport:
    """Forward sparsity measured on some batches: per point and all points together."""

    points: Mapping[str, Density]
    batches: int

    @property
    def overall(self) -> Density:
        return combine(self.points.values())

    @property
    def sparsity(self) -> float:
        return self.overall.sparsity


@dataclass(frozen=True)
class Calibration:
    """Thresholds found for a target sparsity, and the sparsity they achieve.

    ``tau_i`` is a float for a global target and a mapping path → τ for
    per-point targets (pass it to :class:`DynaProp` as it is).
    """

    target: float | Mapping[str, float]
    tau_i: float | Mapping[str, float]
    calibration: SparsityReport
    held_out: SparsityReport | None
    rounds: int
    history: Sequence[float | Mapping[str, float]] = field(default_factory=tuple)

    @property
    def is_global(self) -> bool:
        return not isinstance(self.target, Mapping)

    def achieved(self, held_out: bool = True) -> float | dict[str, float]:
        """Achieved sparsity (global number, or per named point) on held-out or calibration data."""
        report = self.held_out if held_out and self.held_out is not None else self.calibration
        if isinstance(self.target, Mapping):
            return {path: report.points[path].sparsity for path in self.target}
        return report.sparsity

    def rows(self) -> list[tuple[str, float, float, float, float | None]]:
        """``(point, target, tau, achieved on calibration, achieved held out)`` rows."""
        rows: list[tuple[str, float, float, float, float | None]] = []
        if isinstance(self.target, Mapping):
            assert isinstance(self.tau_i, Mapping)
            for path, target in self.target.items():
                held = self.held_out.points[path].sparsity if self.held_out else None
                rows.append(
                    (path, target, self.tau_i[path],
                     self.calibration.points[path].sparsity, held)
                )
        else:
            assert not isinstance(self.tau_i, Mapping)
            held = self.held_out.sparsity if self.held_out else None
            rows.append(("(all points)", self.target, self.tau_i, self.calibration.sparsity, held))
        return rows

    def format_table(self) -> str:
        from transcode_ir.tables import format_table

        return format_table(("point", "target", "tau", "calib", "held-out"), [
            (path, f"{target:.4f}", f"{tau:.4e}", f"{calibration:.4f}",
             f"{held:.4f}" if held is not None else "-")
            for path, target, tau, calibration, held in self.rows()])


def weighted_quantile(values: torch.Tensor, weights: torch.Tensor, q: float) -> float:
    """Smallest ``v`` among ``values`` with weighted fraction ``P(X ≤ v) ≥ q``; 0 for ``q == 0``."""
    if q <= 0.0 or values.numel() == 0:
        return 0.0
    order = torch.argsort(values)
    sorted_values = values[order].to(torch.float64)
    cumulative = torch.cumsum(weights[order].to(torch.float64), 0)
    cumulative = cumulative / cumulative[-1]
    index = int(torch.searchsorted(cumulative, torch.tensor([q], dtype=torch.float64)).item())
    index = min(index, sorted_values.numel() - 1)
    return float(sorted_values[index].item())


class _Sampler:
    """Observer keeping a fixed-seed sample of ``|x|`` of each forward tensor, with weights."""

    def __init__(self, samples_per_tensor: int, seed: int) -> None:
        self.samples_per_tensor = samples_per_tensor
        self.generator = torch.Generator().manual_seed(seed)
        self.values: dict[str, list[torch.Tensor]] = {}
        self.weights: dict[str, list[torch.Tensor]] = {}

    def __call__(self, path: str, direction: str, tensor: torch.Tensor) -> None:
        if direction != "forward":
            return
        flat = tensor.reshape(-1)
        if flat.numel() == 0:
            return
        if flat.numel() <= self.samples_per_tensor:
            sample = flat.abs().float().cpu()
        else:
            index = torch.randint(
                flat.numel(), (self.samples_per_tensor,), generator=self.generator
            ).to(flat.device)
            sample = flat[index].abs().float().cpu()
        weight = torch.full((sample.numel(),), flat.numel() / sample.numel(), dtype=torch.float64)
        self.values.setdefault(path, []).append(sample)
        self.weights.setdefault(path, []).append(weight)

    def pooled(self, paths: Iterable[str]) -> tuple[torch.Tensor, torch.Tensor]:
        values = [v for path in paths for v in self.values.get(path, [])]
        weights = [w for path in paths for w in self.weights.get(path, [])]
        if not values:
            return torch.zeros(0), torch.zeros(0, dtype=torch.float64)
        return torch.cat(values), torch.cat(weights)


def _check_target(value: object, label: str) -> float:
    number = check_threshold(value, label)
    if number > 1.0:
        raise UserError(f"{label}: a sparsity is a fraction in [0, 1], got {value!r}")
    return number


def _run_batches(
    model: nn.Module, batches: Sequence[Any], run: RunFunction
) -> None:
    with torch.no_grad():
        for batch in batches:
            run(model, batch)


def measure_sparsity(
    model: nn.Module,
    batches: Sequence[Any],
    tau_i: float | Mapping[str, float],
    *,
    run: RunFunction = default_run,
    points: Iterable[str] | None = None,
) -> SparsityReport:
    """Forward sparsity at every prune point with ``tau_i`` active, over ``batches`` (no grad)."""
    batches = list(batches)
    with DynaProp(model, tau_i, 0.0, points=points, prune_weight_gradients=False) as runtime:
        _run_batches(model, batches, run)
        statistics = runtime.statistics()
    densities = {
        path: point.forward if point.forward is not None else Density(0, 0)
        for path, point in statistics.points.items()
    }
    return SparsityReport(densities, len(batches))


def calibrate_thresholds(
    model: nn.Module,
    batches: Sequence[Any],
    target: float | Mapping[str, float],
    *,
    held_out: Sequence[Any] | None = None,
    run: RunFunction = default_run,
    points: Iterable[str] | None = None,
    rounds: int = 3,
    samples_per_tensor: int = 8192,
    seed: int = 0,
    max_tau: float = 1000.0,
) -> Calibration:
    """τ_I for a ``target`` sparsity (global number or mapping path → sparsity).

    ``batches`` are the calibration inputs (``run(model, batch)`` evaluates one;
    the model is run under ``torch.no_grad`` in whatever train/eval mode it is
    in); ``held_out`` batches, when given, measure the achieved sparsity on
    data the thresholds were not fitted to.  No τ exceeds ``max_tau``.
    """
    batches = list(batches)
    if not batches:
        raise UserError("calibration needs at least one batch")
    max_tau = check_threshold(max_tau, "max_tau")
    if not isinstance(rounds, int) or rounds < 1:
        raise UserError(f"rounds: expected an integer >= 1, got {rounds!r}")
    point_list = None if points is None else list(points)
    probe = DynaProp(model, points=point_list, prune_weight_gradients=False, count=False)
    try:
        if not probe.points:        # structural points are found on the first forward call
            _run_batches(model, batches[:1], run)
        all_paths = [info.path for info in probe.points]
    finally:
        probe.remove()
    if isinstance(target, Mapping):
        unknown = sorted(set(target) - set(all_paths))
        if unknown:
            raise UserError(
                f"target sparsity names unknown prune point(s) {', '.join(map(repr, unknown))}"
            )
        targets = {path: _check_target(value, f"target[{path}]") for path, value in target.items()}
        tau: float | dict[str, float] = {path: 0.0 for path in targets}
    else:
        global_target = _check_target(target, "target sparsity")
        tau = 0.0
    history: list[float | Mapping[str, float]] = []
    for round_index in range(rounds):
        sampler = _Sampler(samples_per_tensor, seed + round_index)
        with DynaProp(
            model, tau, 0.0, points=point_list, prune_weight_gradients=False, count=False,
            observer=sampler,
        ):
            _run_batches(model, batches, run)
        if isinstance(target, Mapping):
            tau = {
                path: min(weighted_quantile(*sampler.pooled([path]), targets[path]), max_tau)
                for path in targets
            }
        else:
            tau = min(weighted_quantile(*sampler.pooled(all_paths), global_target), max_tau)
        history.append(tau)
    calibration_report = measure_sparsity(model, batches, tau, run=run, points=point_list)
    held_out_report = (
        measure_sparsity(model, list(held_out), tau, run=run, points=point_list)
        if held_out is not None
        else None
    )
    return Calibration(
        target=dict(targets) if isinstance(target, Mapping) else global_target,
        tau_i=tau,
        calibration=calibration_report,
        held_out=held_out_report,
        rounds=rounds,
        history=tuple(history),
    )
