"""Fixtures of the event-simulator tests: zoo models exported, imported, lowered
and mapped once per session.

The zoo exports and their lowering come from the ``tcc compile`` tests'
``zoo`` fixture (:class:`tests.elector_compile.conftest.ZooCache` over the
run's shared exports, so each torch export runs once per run); this file adds a cache of mapped functions keyed by
(model, design, batch, seq, training) and the size each design is exercised
at.

``TCC_ZOO_FULL=1`` also runs the slow cases (BERT-Medium and BERT-Base
training steps on the 4-lane ``tiny-test`` design, whose tiny tiles give
millions of tile-products).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tests.elector_compile.conftest import (
    LIBRARY_DESIGNS,
    ZOO_MODELS,
    ZooCache,
    design,  # noqa: F401  (the same session fixtures)
    zoo,  # noqa: F401
)

__all__ = ["FULL", "LIBRARY_DESIGNS", "ZOO_MODELS", "case_size", "slow_case"]

FULL = os.environ.get("TCC_ZOO_FULL") == "1"

#: Sizes (batch, sequence) the zoo is simulated at: the ``tcc compile`` tests'
#: sizes, and the smallest for the 4-lane tiny-test design.
_SIZES = {"bert-small": (2, 16), "bert-medium": (2, 16), "bert-base": (2, 16)}


def case_size(model: str, design: str) -> tuple[int, int]:
    if design == "tiny-test":
        return (1, 8)
    return _SIZES.get(model, (2, 32))


def slow_case(model: str, design: str, train: bool) -> bool:
    """Cases left to ``TCC_ZOO_FULL=1`` (each takes tens of seconds)."""
    return design == "tiny-test" and train and model in ("bert-medium", "bert-base")


class MappedCache:
    """Mapped functions of zoo models on library designs, made once."""

    def __init__(self, zoo: ZooCache, design: Callable) -> None:
        self.zoo = zoo
        self.design = design
        self._mapped: dict[tuple, object] = {}

    def get(self, model: str, design: str, train: bool = False,
            size: tuple[int, int] | None = None):  # -> (MappedFunction, Accelerator)
        batch, seq = size or case_size(model, design)
        key = (model, design, batch, seq, train)
        if key not in self._mapped:
            from backends.elector.mapping import map_function
            from backends.elector.tiling import schedule_function

            static = self.zoo.static(model, batch, seq, train)
            accelerator = self.design(design)
            mappings, plan = map_function(static, accelerator)
            self._mapped[key] = (schedule_function(static, accelerator, mappings, plan=plan),
                                 accelerator)
        return self._mapped[key]


@pytest.fixture(scope="session")
def mapped_zoo(zoo: ZooCache, design: Callable) -> MappedCache:
    return MappedCache(zoo, design)
