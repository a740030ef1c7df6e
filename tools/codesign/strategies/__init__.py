"""Search strategies behind one ask/tell interface (:class:`Strategy`).

=============  ==========================================================
name           what it is
=============  ==========================================================
``random``     uniform random (exhaustive, without replacement, on small spaces)
``evolution``  regularised (aging) evolution
``boshcode``   BOSHCODE-style neural surrogate + GOBI (imports torch)
``tpe``        optuna's TPE sampler (external baseline)
``nsga2``      optuna's NSGA-II (multi-objective; external baseline)
=============  ==========================================================

:func:`make_strategy` builds one by name.
"""

from __future__ import annotations

from typing import Any

from tools.codesign.strategies.base import Observation, Strategy

__all__ = ["STRATEGIES", "Observation", "Strategy", "make_strategy"]

STRATEGIES: tuple[str, ...] = ("random", "evolution", "boshcode", "tpe", "nsga2")


def make_strategy(name: str, space: Any, objective: Any, seed: int = 0,
                  **options: Any) -> Strategy:
    """The strategy called ``name`` (one of :data:`STRATEGIES`)."""
    from transcode_ir.errors import UserError

    key = name.strip().lower()
    if key == "random":
        from tools.codesign.strategies.simple import RandomStrategy

        return RandomStrategy(space, objective, seed, **options)
    if key == "evolution":
        from tools.codesign.strategies.simple import EvolutionStrategy

        return EvolutionStrategy(space, objective, seed, **options)
    if key == "boshcode":
        from tools.codesign.strategies.boshcode import BoshcodeStrategy

        return BoshcodeStrategy(space, objective, seed, **options)
    if key in ("tpe", "nsga2"):
        from tools.codesign.strategies.optuna_search import OptunaStrategy

        return OptunaStrategy(space, objective, seed, sampler=key, **options)
    raise UserError(f"unknown strategy {name!r}; accepted: {', '.join(STRATEGIES)}")
