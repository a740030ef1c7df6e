"""The strategy interface: ask for points, tell their outcomes.

A strategy is seeded and deterministic: the same seed and the same sequence
of ``tell`` calls give the same proposals, which is what lets a killed sweep
replay its strategy from the stored results and continue where it stopped.
Every proposal comes from :meth:`JointSpace.build` (sampling, mutation,
crossover, optuna's samplers, snapping of a continuous vector), so it is a
valid point of the space.

Scores are the objective's scalar (maximised; a failed or constraint-breaking
point scores ``-inf``).  Strategies that need a finite number for a bad point
(surrogates, TPE) use :meth:`Strategy.penalty`: a little below the worst
feasible score seen so far.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Observation", "Strategy"]


class Observation:
    """A told point: its outcome and score."""

    __slots__ = ("outcome", "point", "score")

    def __init__(self, point: Any, outcome: Any, score: float) -> None:
        self.point = point
        self.outcome = outcome
        self.score = score


class Strategy:
    """Base class of search strategies (ask/tell; see the module docstring)."""

    name = "base"

    def __init__(self, space: Any, objective: Any, seed: int = 0) -> None:
        self.space = space
        self.objective = objective
        self.seed = seed
        self.rng = random.Random(seed)
        self.history: list[Observation] = []
        self.seen: set[Any] = set()
        self.pending: set[Any] = set()
        self.best: Observation | None = None

    # -- interface ------------------------------------------------------------

    def ask(self, count: int) -> list[Any]:
        """``count`` points to evaluate next (valid; fresh when possible)."""
        raise NotImplementedError

    def tell(self, points: Sequence[Any], outcomes: Sequence[Any]) -> None:
        """The outcomes of points, in the order they were asked."""
        for point, outcome in zip(points, outcomes):
            score = self.objective.score(outcome)
            observation = Observation(point, outcome, score)
            self.history.append(observation)
            self.seen.add(point)
            self.pending.discard(point)
            if self.best is None or score > self.best.score:
                self.best = observation
            self._observe(observation)

    def _observe(self, observation: Observation) -> None:
        """Hook for subclasses (called once per told point, in order)."""

    def options(self) -> dict[str, Any]:
        """The strategy's settings (recorded with the sweep)."""
        return {}

    # -- helpers ----------------------------------------------------------------

    @property
    def converged(self) -> bool:
        """True when the strategy would stop by itself (e.g. BOSHCODE's patience)."""
        return False

    @property
    def exhausted_space(self) -> bool:
        return len(self.seen) >= self.space.size

    def fresh(self, make: Callable[[], Any], attempts: int = 64) -> Any:
        """A point from ``make`` not seen or pending, if one turns up within
        ``attempts`` tries (else the last one made: a store hit, cheap)."""
        point = make()
        for _ in range(attempts - 1):
            if point not in self.seen and point not in self.pending:
                break
            point = make()
        self.pending.add(point)
        return point

    def penalty(self) -> float:
        """A finite stand-in score for failed points: below the worst feasible."""
        finite = [o.score for o in self.history if math.isfinite(o.score)]
        if not finite:
            return 0.0
        low, high = min(finite), max(finite)
        return low - 0.1 * max(high - low, 1e-3)

    def finite_score(self, observation: Observation) -> float:
        return observation.score if math.isfinite(observation.score) else self.penalty()
