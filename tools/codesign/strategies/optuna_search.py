"""optuna as the external baseline: TPE (single objective) and NSGA-II.

optuna's ask-and-tell interface drives the space's define-by-run builder:
each decision is a ``trial.suggest_categorical(name, options)``, so optuna
sees the same decisions (with conditional ones, e.g. per-layer choices that
exist only for deep models) as the other strategies, and every point it
proposes is valid.

* ``tpe``: :class:`optuna.samplers.TPESampler` (seeded, multivariate, group),
  maximising the objective's scalar score; a failed or constraint-breaking
  point is told the strategy's :meth:`~Strategy.penalty` (below the worst
  feasible score) -- "scores worst", as the paper has it, in a form TPE can
  learn from.
* ``nsga2``: :class:`optuna.samplers.NSGAIISampler` (seeded) on the
  objective's vector (every metric of a Pareto objective, or the scalar
  score); a failed point is told as a failed trial, which NSGA-II drops.

Points asked in one batch are asked before any is told, so the batch size is
part of what makes a run reproducible (the sweep fixes it).
"""

from __future__ import annotations

import math
from typing import Any

from tools.codesign.strategies.base import Observation, Strategy

__all__ = ["OptunaStrategy"]


class OptunaStrategy(Strategy):
    """TPE or NSGA-II through optuna's ask/tell (see the module docstring)."""

    def __init__(self, space: Any, objective: Any, seed: int = 0, sampler: str = "tpe",
                 startup: int = 20, population: int = 32) -> None:
        super().__init__(space, objective, seed)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.sampler_name = sampler
        self.startup = startup
        self.population_size = population
        if sampler == "tpe":
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                made = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup,
                                                  multivariate=True, group=True,
                                                  constant_liar=True)
            directions = ["maximize"]
        elif sampler == "nsga2":
            made = optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
            directions = ["maximize" if d == "max" else "minimize"
                          for d in objective.directions]
        else:
            raise ValueError(f"unknown optuna sampler {sampler!r}")
        self.name = sampler
        self.directions = directions
        self.study = optuna.create_study(directions=directions, sampler=made)
        self._trials: dict[int, Any] = {}
        self._queue: list[tuple[Any, Any]] = []

    def options(self) -> dict[str, Any]:
        return {"sampler": self.sampler_name, "startup": self.startup,
                "population": self.population_size}

    def ask(self, count: int) -> list[Any]:
        out = []
        for _ in range(count):
            trial = self.study.ask()
            point = self.space.build(
                lambda name, options, trial=trial: trial.suggest_categorical(name, list(options)))
            self._queue.append((point, trial))
            self.pending.add(point)
            out.append(point)
        return out

    def _observe(self, observation: Observation) -> None:
        import optuna

        for index, (point, trial) in enumerate(self._queue):  # noqa: B007 (trial: after the loop)
            if point == observation.point:
                del self._queue[index]
                break
        else:
            return
        if self.sampler_name == "tpe":
            self.study.tell(trial, self.finite_score(observation))
            return
        values = self.objective.values(observation.outcome)
        if len(self.directions) == 1:
            values = (observation.score,)
        if not all(math.isfinite(v) for v in values):
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, list(values))
