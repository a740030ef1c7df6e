"""A design resolved once: the :class:`Target` passes and simulators receive.

A :class:`Target` bundles what every stage asks of a design -- the
:class:`~backends.elector.design.Accelerator`, its technology, its storage
levels (:mod:`backends.elector.hierarchy`), its module instances
(:mod:`backends.elector.kinds`) and the constants the cost formulas use --
built from a library name, a ``.hwdsl`` path or an accelerator, once.

``tcc compile`` builds one target and runs the pass pipeline inside a
:func:`compile_context`; the ``elector-map`` pass takes its design from the
context (:func:`target_for`) instead of parsing the design again, and leaves
what it computed (the static view of each function, the mappings and the
residency plan) in the context, so the compiler simulates that mapping
instead of building the static view and searching a second time::

    target = build_target("acceltran-edge")
    with compile_context(target) as context:
        PassManager("default,elector-map{hw=acceltran-edge}").run(module)
    record = context.mapping_of(module.function("forward"), target)

Outside a context (``tcc opt -p '...,elector-map{hw=...}'``) the pass resolves
its design itself, as before.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.elector.design import Accelerator
from backends.elector.technology import Technology

__all__ = [
    "CompileContext",
    "MappingRecord",
    "Target",
    "build_target",
    "compile_context",
    "current_context",
    "target_for",
]


@dataclass(frozen=True, eq=False)
class Target:
    """One design, resolved: the accelerator and what is derived from it.

    ``reference`` is how the user named the design (a library name, a path,
    or the accelerator's name when built from one).  Derived views are
    computed on first use and kept.
    """

    accelerator: Accelerator
    reference: str

    @property
    def name(self) -> str:
        return self.accelerator.name

    @property
    def technology(self) -> Technology:
        return self.accelerator.technology

    @property
    def clock_hz(self) -> float:
        return self.accelerator.clock_hz

    @functools.cached_property
    def levels(self) -> tuple:
        """The storage levels (:func:`backends.elector.hierarchy.storage_levels`)."""
        from backends.elector.hierarchy import storage_levels

        return storage_levels(self.accelerator)

    def modules(self, training: bool = False) -> tuple:
        """The module instances of every kind present
        (:func:`backends.elector.kinds.module_instances`)."""
        from backends.elector.kinds import module_instances

        return module_instances(self.accelerator, training)

    def consts(self, training: bool = False) -> Any:
        """The cost formulas' constants (:func:`backends.elector.tiling.hardware_consts`)."""
        from backends.elector.tiling import hardware_consts

        return hardware_consts(self.accelerator, training)

    @functools.cached_property
    def design_hash(self) -> str:
        from backends.elector.tiling import design_hash

        return design_hash(self.accelerator)

    def names(self, hw: str | Path) -> bool:
        """Whether ``hw`` (as a pass option or ``--hw`` gives it) names this target."""
        text = str(hw)
        return text in (self.reference, self.accelerator.name)


def build_target(design: str | Path | Accelerator, reference: str | None = None) -> Target:
    """The target of a library name, a ``.hwdsl`` path or an accelerator
    (the design is parsed here, once)."""
    if isinstance(design, Accelerator):
        return Target(design, reference if reference is not None else design.name)
    from backends.elector.design_library import resolve_design

    return Target(resolve_design(design), reference if reference is not None else str(design))


@dataclass(frozen=True)
class MappingRecord:
    """What ``elector-map`` computed for one function: the function object it
    mapped, the static view, one mapping per op and the residency plan."""

    function: Any
    accelerator: Accelerator
    objective: str
    static: Any
    mappings: tuple
    plan: Any


@dataclass
class CompileContext:
    """The target of one compilation and what passes left for the compiler."""

    target: Target
    records: dict[str, MappingRecord] = field(default_factory=dict)

    def record(self, name: str, record: MappingRecord) -> None:
        self.records[name] = record

    def mapping_of(self, function: Any, accelerator: Accelerator | None = None
                   ) -> MappingRecord | None:
        """The record of ``function`` (the same object the pass mapped, for
        the same design), or ``None``."""
        for record in self.records.values():
            if record.function is function and (
                    accelerator is None or record.accelerator == accelerator):
                return record
        return None


_CURRENT: contextvars.ContextVar[CompileContext | None] = contextvars.ContextVar(
    "elector_compile_context", default=None)


@contextlib.contextmanager
def compile_context(target: Target) -> Iterator[CompileContext]:
    """Make ``target`` the design passes use while the block runs."""
    context = CompileContext(target)
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)


def current_context() -> CompileContext | None:
    return _CURRENT.get()


def target_for(hw: str | Path) -> Target:
    """The context's target when ``hw`` names it; otherwise ``hw`` resolved
    now (library name or ``.hwdsl`` path)."""
    context = _CURRENT.get()
    if context is not None and context.target.names(hw):
        return context.target
    return build_target(hw)
