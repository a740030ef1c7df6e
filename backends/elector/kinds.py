"""Hardware module kinds, each defined once (as an op definition is for ops).

A :class:`ModuleKind` says everything the backend needs to know about one kind
of on-chip module:

* ``name`` -- the technology table's module kind and the report's energy class
  (``mac_lane``, ``softmax``, ...);
* ``label`` -- how tables name it (``"softmax modules"``);
* ``block``/``fields`` -- the DSL block and keys it is configured by (a new
  kind may bring its own block; see :func:`register_module_kind`);
* ``technology_parameters`` and :meth:`ModuleKind.parameters` -- which
  parameters the technology table is looked up by, and their values in a design;
* :meth:`ModuleKind.per_pe` -- the instance count (copies per PE; 0 when the
  design has none, e.g. sparsity units switched off);
* ``unit`` and :meth:`ModuleKind.busy` -- the busy rule: busy cycles of the
  kind from the busy unit-cycles a simulator measured per unit class
  (:data:`backends.elector.schedule.UNITS`); see :func:`busy_cycles`;
* ``constraints`` -- the names of the mapping constraints (in
  ``backends.elector.mapping``'s one constraint table) that bound it.

Area (:func:`backends.elector.area.area_breakdown`), the module inventory the
energy model multiplies (:func:`module_instances`), the technology's required
kinds and their lookup parameters, and the busy rule both simulators use
(:func:`busy_cycles`) all read this registry.  ``docs/adding-a-module-kind.md``
walks through adding one (a vector unit for GELU).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backends.elector.design import Accelerator
    from backends.elector.technology import ModuleCosts

__all__ = [
    "BusyInputs",
    "ModuleInstance",
    "ModuleKind",
    "busy_cycles",
    "module_instances",
    "module_kind",
    "module_kinds",
    "register_module_kind",
    "unit_module_kinds",
    "unregister_module_kind",
]


@dataclass(frozen=True)
class BusyInputs:
    """What a busy rule reads: busy unit-cycles per unit class, the cycles
    main memory was transferring, and the PE's make-up."""

    unit_busy: Mapping[str, float]
    main_memory_cycles: float
    lanes_per_pe: int
    softmax_per_pe: float

    def unit(self, name: str) -> float:
        return float(self.unit_busy.get(name, 0.0))


def _no_parameters(accelerator: Accelerator) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class ModuleKind:
    """One hardware module kind (see the module docstring)."""

    name: str
    label: str
    unit: str
    per_pe_rule: Callable[[Accelerator, bool], int]
    busy_rule: Callable[[BusyInputs], float]
    technology_parameters: tuple[str, ...] = ()
    parameter_rule: Callable[[Accelerator], dict[str, Any]] = _no_parameters
    block: str = "pe_array"
    fields: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    description: str = ""
    #: DSL keys of a block this kind adds (``{key: FieldSpec}``); empty for
    #: kinds configured by the built-in blocks.
    dsl_fields: Mapping[str, Any] = field(default_factory=dict)
    builtin: bool = False
    #: Other unit classes whose work also keeps it busy (the post-sparsity
    #: unit sits in the MAC lane's pipeline: busy with the lanes, too).
    also_busy_with: tuple[str, ...] = ()

    def per_pe(self, accelerator: Accelerator, training: bool = False) -> int:
        """Copies in each PE (0: the design has none)."""
        return int(self.per_pe_rule(accelerator, training))

    def parameters(self, accelerator: Accelerator) -> dict[str, Any]:
        """The technology lookup parameters of this kind in ``accelerator``."""
        return self.parameter_rule(accelerator)

    def busy(self, inputs: BusyInputs) -> float:
        """Busy cycles (summed over every copy) for a run's activity."""
        return float(self.busy_rule(inputs))

    def costs(self, accelerator: Accelerator) -> ModuleCosts:
        """Area and power of one copy, from the design's technology, at its clock."""
        technology = accelerator.technology
        return technology.module(self.name, **self.parameters(accelerator)).at_clock(
            accelerator.clock_hz)


# --------------------------------------------------------------------------- built-in kinds


def _lanes(accelerator: Accelerator, training: bool) -> int:
    return accelerator.pe_array.lanes


def _lanes_busy(inputs: BusyInputs) -> float:
    return inputs.unit("mac")


_BUILTIN: tuple[ModuleKind, ...] = (
    ModuleKind(
        "mac_lane", "MAC lanes", "mac", _lanes, _lanes_busy,
        technology_parameters=("macs_per_lane", "nonlinearity"),
        parameter_rule=lambda a: {"macs_per_lane": a.pe_array.macs_per_lane,
                                  "nonlinearity": a.pe_array.nonlinearity},
        fields=("lanes", "macs_per_lane", "nonlinearity"),
        constraints=("tile-row-fits-lane",),
        description="a MAC lane: macs_per_lane multipliers and the non-linearity",
        builtin=True),
    ModuleKind(
        "pre_sparsity", "pre-sparsity units", "mac",
        lambda a, t: a.pe_array.lanes if a.sparsity.pre else 0, _lanes_busy,
        block="sparsity", fields=("pre",),
        description="prunes and compresses a lane's inputs; busy with its lane",
        builtin=True),
    ModuleKind(
        "post_sparsity", "post-sparsity units", "sparsity",
        lambda a, t: a.pe_array.lanes if a.sparsity.post else 0,
        lambda i: i.unit("mac") + i.unit("sparsity"),
        block="sparsity", fields=("post",),
        description="prunes a lane's outputs; busy with its lane and for prune ops",
        builtin=True, also_busy_with=("mac",)),
    ModuleKind(
        "fifo", "lane FIFOs", "mac", _lanes, _lanes_busy,
        technology_parameters=("depth",),
        parameter_rule=lambda a: {"depth": a.pe_array.fifo_depth},
        fields=("fifo_depth",), constraints=("tile-row-fits-lane",),
        description="a lane's input FIFO; busy with its lane",
        builtin=True),
    ModuleKind(
        "stochastic_rounding", "stochastic-rounding units", "mac",
        lambda a, t: a.pe_array.lanes if (t or a.sparsity.stochastic_rounding) else 0,
        _lanes_busy, block="sparsity", fields=("stochastic_rounding",),
        description="a lane's stochastic rounding (training); busy with its lane",
        builtin=True),
    ModuleKind(
        "softmax", "softmax modules", "softmax",
        lambda a, t: a.softmax.per_pe, lambda i: i.unit("softmax"),
        technology_parameters=("tile",), parameter_rule=lambda a: {"tile": a.softmax.tile},
        block="softmax", fields=("per_pe", "tile"),
        constraints=("tile-fits-module", "activation-staging-fits"),
        description="softmax over tiles of `tile` elements", builtin=True),
    ModuleKind(
        "layer_norm", "layer-norm modules", "layernorm",
        lambda a, t: 1, lambda i: i.unit("layernorm"),
        technology_parameters=("tile",), parameter_rule=lambda a: {"tile": a.layer_norm.tile},
        block="layer_norm", fields=("tile",),
        constraints=("tile-fits-module", "activation-staging-fits"),
        description="the PE's layer-norm module", builtin=True),
    ModuleKind(
        "dataflow", "dataflow modules", "",
        lambda a, t: 1,
        # Busy while any module of its PE is: lane-cycles / lanes per PE +
        # softmax module-cycles / modules per PE + layer-norm module-cycles.
        lambda i: (i.unit("mac") / i.lanes_per_pe + i.unit("softmax") / i.softmax_per_pe
                   + i.unit("layernorm")),
        block="", description="the PE's dataflow control; busy while any module of the PE is",
        builtin=True),
    ModuleKind(
        "dma", "DMA engines", "dma",
        lambda a, t: 1, lambda i: i.unit("dma") + i.main_memory_cycles,
        block="", description="the PE's DMA engine; busy for data ops and main-memory transfers",
        builtin=True),
)

_REGISTRY: dict[str, ModuleKind] = {kind.name: kind for kind in _BUILTIN}

#: Technology lookup parameters of the built-in kinds (what every technology
#: file must characterise; read by backends.elector.technology).
BUILTIN_PARAMETERS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {kind.name: kind.technology_parameters for kind in _BUILTIN})


def module_kinds() -> tuple[ModuleKind, ...]:
    """Every registered kind, built-in ones first, in inventory order."""
    return tuple(_REGISTRY.values())


def module_kind(name: str) -> ModuleKind:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown module kind {name!r}; registered: "
                       + ", ".join(_REGISTRY)) from None


def register_module_kind(kind: ModuleKind) -> ModuleKind:
    """Add a kind (its DSL block, if it brings one, becomes an optional block
    of every design).  Returns the kind, so a module can do
    ``VECTOR = register_module_kind(ModuleKind(...))``."""
    if kind.name in _REGISTRY:
        if _REGISTRY[kind.name] == kind:
            return kind
        raise ValueError(f"module kind {kind.name!r} is already registered")
    if kind.dsl_fields:
        from backends.elector.hwdsl import register_block

        register_block(kind.block, f"the {kind.label} of each PE", kind.dsl_fields)
    _REGISTRY[kind.name] = kind
    _clear_caches()
    return kind


def unregister_module_kind(name: str) -> None:
    """Remove a kind added by :func:`register_module_kind` (tests)."""
    kind = _REGISTRY.get(name)
    if kind is None or kind.builtin:
        raise ValueError(f"{name!r} is not a registered extension kind")
    del _REGISTRY[name]
    if kind.dsl_fields:
        from backends.elector.hwdsl import unregister_block

        unregister_block(kind.block)
    _clear_caches()


# --------------------------------------------------------------------------- derived


@dataclass(frozen=True)
class ModuleInstance:
    """``count`` copies (``per_pe`` in each PE) of one module kind, with the
    costs of one copy at the design's clock."""

    kind: str
    per_pe: int
    count: int
    costs: ModuleCosts

    @property
    def label(self) -> str:
        parameters = dict(self.costs.parameters)
        if self.kind == "mac_lane":
            return (f"MAC lanes ({parameters['macs_per_lane']} MACs, "
                    f"{parameters['nonlinearity']})")
        text = ", ".join(f"{name} {value}" for name, value in self.costs.parameters)
        base = _REGISTRY[self.kind].label if self.kind in _REGISTRY else self.kind
        return f"{base} ({text})" if text else base

    @property
    def area_um2(self) -> float:
        return self.count * self.costs.area_um2

    @property
    def dynamic_mw(self) -> float:
        """Dynamic power with every copy busy."""
        return self.count * self.costs.dynamic_mw

    @property
    def leakage_mw(self) -> float:
        return self.count * self.costs.leakage_mw


@functools.lru_cache(maxsize=512)
def module_instances(accelerator: Accelerator, training: bool = False
                     ) -> tuple[ModuleInstance, ...]:
    """Every on-chip compute module of the design, one entry per kind present
    (cached per design: simulators ask for it several times per run)."""
    pes = accelerator.pe_array.pes
    out = []
    for kind in _REGISTRY.values():
        per_pe = kind.per_pe(accelerator, training)
        if per_pe > 0:
            out.append(ModuleInstance(kind.name, per_pe, per_pe * pes, kind.costs(accelerator)))
    return tuple(out)


def busy_cycles(unit_busy: Mapping[str, float], main_memory_cycles: float, *,
                lanes_per_pe: int, softmax_per_pe: float) -> dict[str, float]:
    """THE busy rule: busy cycles of every registered kind (summed over its
    copies) from busy unit-cycles per unit class and main-memory transfer
    cycles.  Kinds a design lacks get a figure too; callers price only the
    kinds in :func:`module_instances`."""
    inputs = BusyInputs(unit_busy, main_memory_cycles, lanes_per_pe, softmax_per_pe)
    return {kind.name: kind.busy(inputs) for kind in _REGISTRY.values()}


def unit_module_kinds() -> dict[str, tuple[str, ...]]:
    """``{unit class: kinds busy while an op works on it}`` (the kinds whose
    ``unit`` or ``also_busy_with`` names it; the dataflow module, busy with
    any unit of its PE, has no unit of its own)."""
    out: dict[str, list[str]] = {}
    for kind in _REGISTRY.values():
        for unit in (kind.unit, *kind.also_busy_with):
            if unit:
                out.setdefault(unit, []).append(kind.name)
    return {unit: tuple(names) for unit, names in out.items()}


def _clear_caches() -> None:
    module_instances.cache_clear()
    from backends.elector import hierarchy

    hierarchy.storage_levels.cache_clear()
