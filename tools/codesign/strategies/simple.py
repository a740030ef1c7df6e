"""Random search and regularised evolution.

``random``: points drawn decision by decision, uniformly.  When the whole
space is small enough to list (at most ``enumerate_limit`` points) it is
shuffled once and walked without replacement, so a budget of ``space.size``
evaluates every point exactly once (an exhaustive sweep).

``evolution``: regularised (aging) evolution, Real et al., AAAI 2019.  A
population of the ``population`` most recent points; each child is a
mutation (one or two decisions redrawn) of the best of ``sample`` members
drawn at random, or with probability ``crossover`` a decision-wise mix of two
such winners; the oldest member leaves when a child arrives.  Until the
population is full, proposals are random.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from tools.codesign.strategies.base import Observation, Strategy

__all__ = ["EvolutionStrategy", "RandomStrategy"]


class RandomStrategy(Strategy):
    """Uniform random search (see the module docstring)."""

    name = "random"

    def __init__(self, space: Any, objective: Any, seed: int = 0,
                 enumerate_limit: int = 20_000) -> None:
        super().__init__(space, objective, seed)
        self.enumerate_limit = enumerate_limit
        self._order: list[Any] | None = None
        self._next = 0
        if space.size <= enumerate_limit:
            self._order = list(space.enumerate(enumerate_limit))
            self.rng.shuffle(self._order)

    def options(self) -> dict[str, Any]:
        return {"enumerate_limit": self.enumerate_limit}

    def ask(self, count: int) -> list[Any]:
        out = []
        for _ in range(count):
            if self._order is not None and self._next < len(self._order):
                point = self._order[self._next]
                self._next += 1
                self.pending.add(point)
            else:
                point = self.fresh(lambda: self.space.sample(self.rng))
            out.append(point)
        return out


class EvolutionStrategy(Strategy):
    """Regularised evolution (see the module docstring)."""

    name = "evolution"

    def __init__(self, space: Any, objective: Any, seed: int = 0, population: int = 32,
                 sample: int = 8, crossover: float = 0.1) -> None:
        super().__init__(space, objective, seed)
        self.population_size = population
        self.sample_size = sample
        self.crossover_rate = crossover
        self.population: deque[Observation] = deque()

    def options(self) -> dict[str, Any]:
        return {"population": self.population_size, "sample": self.sample_size,
                "crossover": self.crossover_rate}

    def _observe(self, observation: Observation) -> None:
        self.population.append(observation)
        if len(self.population) > self.population_size:
            self.population.popleft()

    def _winner(self) -> Observation:
        members = list(self.population)
        contenders = self.rng.sample(members, min(self.sample_size, len(members)))
        return max(contenders, key=lambda o: o.score)

    def _child(self) -> Any:
        if len(self.population) < self.population_size:
            return self.space.sample(self.rng)
        parent = self._winner()
        if self.rng.random() < self.crossover_rate:
            other = self._winner()
            child = self.space.crossover(parent.point, other.point, self.rng)
            if child == parent.point:
                child = self.space.mutate(child, self.rng)
            return child
        return self.space.mutate(parent.point, self.rng, count=1 + (self.rng.random() < 0.25))

    def ask(self, count: int) -> list[Any]:
        return [self.fresh(self._child) for _ in range(count)]
