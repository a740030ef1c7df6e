"""Technology tables: what each hardware module costs, as data.

A technology is a JSON file (``backends/elector/technologies/14nm.json`` ships
with the package) giving, with its source beside every entry:

- per module kind (``mac_lane``, ``softmax``, ...): area, dynamic power at the
  reference clock and leakage power at characterised parameter points
  (``tile = 8, 16, 32``), optionally with a stated interpolation rule;
- buffers: area and leakage per MB, energy per block access as
  ``coefficient * sqrt(size in MB)``, block size and bandwidth;
- main memory by type and banks-ranks-channels configuration: bandwidth and
  energy per access; area and leakage as ``null`` where not characterised.

:func:`load_technology` finds a built-in technology by name or reads a user's
file (which may ``"extends": "14nm"`` and override parts), validates it and
returns a :class:`Technology`.  A malformed file raises
:class:`TechnologyError` naming the key (``modules.softmax.points[1].area_um2``).

Costs come back as small frozen records (:class:`ModuleCosts`,
:class:`BufferCosts`, :class:`MainMemoryCosts`) that the area model and the
simulators read.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from backends.elector.kinds import BUILTIN_PARAMETERS
from transcode_ir.errors import ParseError, SourceLocation, UserError

__all__ = [
    "BUILTIN_TECHNOLOGY_DIR",
    "BufferCosts",
    "MainMemoryCosts",
    "ModuleCosts",
    "REQUIRED_MODULE_KINDS",
    "Technology",
    "TechnologyError",
    "list_technologies",
    "load_technology",
    "technology_from_data",
]

#: Where the built-in technology files live.
BUILTIN_TECHNOLOGY_DIR = Path(__file__).with_name("technologies")

#: Module kinds every technology must characterise (the AccelTran PE) and
#: the parameters each is looked up by: the built-in kinds of the module-kind
#: registry (backends/elector/kinds.py), where each kind is defined once.
REQUIRED_MODULE_KINDS: tuple[str, ...] = tuple(BUILTIN_PARAMETERS)
MODULE_PARAMETERS: Mapping[str, tuple[str, ...]] = BUILTIN_PARAMETERS

_BUFFER_KINDS = ("activation", "weight", "mask")

_TOP_LEVEL_KEYS = ("format", "name", "description", "units", "note", "reference_clock",
                   "data_width", "power_scaling", "modules", "buffers", "main_memory")


class TechnologyError(UserError):
    """A technology file that is malformed, missing, or asked for something it
    does not characterise."""


class TechnologyJSONError(ParseError, TechnologyError):
    """A technology file that is not JSON: its ``file:line:col``, never its
    content (the file may be anything the user named)."""


# --------------------------------------------------------------------------- cost records


@dataclass(frozen=True)
class ModuleCosts:
    """Area and power of one instance of a module.

    ``dynamic_mw`` is the power while busy at ``clock_hz``; ``leakage_mw`` is
    drawn whenever powered.  ``inferred`` is true when the figures are not
    published numbers (interpolated parameters, dynamic power scaled to
    another clock); ``note`` says how.
    """

    kind: str
    parameters: tuple[tuple[str, Any], ...]
    area_um2: float
    dynamic_mw: float
    leakage_mw: float
    clock_hz: float
    source: str
    inferred: bool = False
    note: str = ""

    @property
    def area_mm2(self) -> float:
        return self.area_um2 * 1e-6

    @property
    def dynamic_energy_per_cycle_pj(self) -> float:
        """Dynamic energy of one busy cycle, in picojoules."""
        return self.dynamic_mw * 1e9 / self.clock_hz

    @property
    def leakage_energy_per_cycle_pj(self) -> float:
        """Leakage energy over one cycle at ``clock_hz``, in picojoules."""
        return self.leakage_mw * 1e9 / self.clock_hz

    def at_clock(self, clock_hz: float) -> ModuleCosts:
        """These costs at another clock: dynamic power scaled linearly
        (same energy per cycle), leakage unchanged.  Marked as inferred when
        the clock differs (the tables are characterised at one clock)."""
        if clock_hz == self.clock_hz:
            return self
        scaled = replace(self, dynamic_mw=self.dynamic_mw * clock_hz / self.clock_hz,
                         clock_hz=clock_hz, inferred=True)
        note = (f"dynamic power scaled linearly from {self.clock_hz / 1e6:g} MHz to "
                f"{clock_hz / 1e6:g} MHz (inference)")
        return replace(scaled, note=f"{self.note}; {note}" if self.note else note)


@dataclass(frozen=True)
class BufferCosts:
    """Costs of one on-chip buffer of ``size_mb`` megabytes (the technology's MB)."""

    kind: str
    size_mb: float
    area_um2: float
    leakage_mw: float
    energy_per_access_nj: float
    access_bytes: int
    bandwidth_bytes_per_s: float
    source: str

    @property
    def area_mm2(self) -> float:
        return self.area_um2 * 1e-6

    @property
    def energy_per_byte_nj(self) -> float:
        return self.energy_per_access_nj / self.access_bytes

    def with_bandwidth(self, bandwidth_bytes_per_s: float) -> BufferCosts:
        return replace(self, bandwidth_bytes_per_s=bandwidth_bytes_per_s)


@dataclass(frozen=True)
class MainMemoryCosts:
    """Costs of the main memory.  ``area_um2`` and ``leakage_mw`` are ``None``
    when the technology does not characterise them (the shipped one does not);
    ``note`` says so.  ``overridden`` names the figures the design replaced."""

    type: str
    config: str
    bandwidth_bytes_per_s: float
    energy_per_access_nj: float
    access_bytes: int
    area_um2: float | None
    leakage_mw: float | None
    note: str
    source: str
    overridden: tuple[str, ...] = ()

    @property
    def energy_per_byte_nj(self) -> float:
        return self.energy_per_access_nj / self.access_bytes

    def with_overrides(self, bandwidth_bytes_per_s: float | None,
                       energy_per_access_nj: float | None) -> MainMemoryCosts:
        costs, overridden = self, list(self.overridden)
        if bandwidth_bytes_per_s is not None:
            costs = replace(costs, bandwidth_bytes_per_s=bandwidth_bytes_per_s)
            overridden.append("bandwidth")
        if energy_per_access_nj is not None:
            costs = replace(costs, energy_per_access_nj=energy_per_access_nj)
            overridden.append("energy_per_access")
        return replace(costs, overridden=tuple(overridden))


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class _Point:
    values: tuple[Any, ...]
    area_um2: float
    dynamic_mw: float
    leakage_mw: float
    source: str


@dataclass(frozen=True)
class _ModuleTable:
    kind: str
    description: str
    parameters: tuple[str, ...]
    points: tuple[_Point, ...]
    interpolated: str | None
    interpolation_note: str


@dataclass(frozen=True)
class _BufferTable:
    area_um2_per_mb: float
    leakage_mw_per_mb: float
    energy_coefficient_nj: float
    source: str


@dataclass(frozen=True)
class _MemoryType:
    description: str
    bandwidth_bytes_per_s: float
    area_um2: float | None
    leakage_mw: float | None
    note: str
    configs: Mapping[str, float]
    source: str


class Technology:
    """A loaded, validated technology table.

    Immutable; equal (and hashing equal) when name and content are equal, so
    designs that name the same table by different paths compare equal.
    """

    def __init__(self, data: Mapping[str, Any], origin: str, path: Path | None,
                 builtin: bool) -> None:
        checker = _Checker(origin)
        checker.expect_mapping(data, "", _TOP_LEVEL_KEYS)
        self.path = path
        self.builtin = builtin
        self.name: str = checker.text(data, "name")
        self.description: str = checker.text(data, "description", default="")
        clock = checker.mapping(data, "reference_clock", known=("clock_hz", "source", "note"))
        self.reference_clock_hz: float = checker.positive(clock, "clock_hz", "reference_clock")
        self.reference_clock_source: str = checker.text(clock, "source", "reference_clock")
        width = checker.mapping(data, "data_width", known=("bits", "source", "note"))
        bits = checker.sequence(width, "bits", "data_width")
        self.data_widths_bits: tuple[int, ...] = tuple(
            checker.whole(bits, index, "data_width.bits") for index in range(len(bits)))
        scaling = checker.expect_mapping(data.get("power_scaling", {}), "power_scaling",
                                         known=("dynamic", "leakage", "inference", "note"))
        self.power_scaling_note: str = checker.text(scaling, "note", "power_scaling", default="")

        modules = checker.mapping(data, "modules")
        self._modules: dict[str, _ModuleTable] = {}
        for kind, table in modules.items():
            self._modules[kind] = checker.module_table(kind, table)
        for kind in REQUIRED_MODULE_KINDS:
            if kind not in self._modules:
                raise checker.error(f"modules.{kind}", "missing: every technology must "
                                    "characterise " + ", ".join(REQUIRED_MODULE_KINDS))
            expected = MODULE_PARAMETERS[kind]
            if self._modules[kind].parameters != expected:
                raise checker.error(f"modules.{kind}.parameters",
                                    f"must be {list(expected)}, got "
                                    f"{list(self._modules[kind].parameters)}")

        buffers = checker.mapping(data, "buffers", known=(
            "block_bytes", "bandwidth_bytes_per_s", "megabyte_bytes", "megabyte_note",
            "bank_bytes", "banking_note", "port_rule", "pe_buffer_note", "source", "note",
            "kinds"))
        blocks = checker.sequence(buffers, "block_bytes", "buffers")
        self.buffer_block_sizes: tuple[int, ...] = tuple(
            checker.whole(blocks, index, "buffers.block_bytes") for index in range(len(blocks)))
        self.buffer_bandwidth_bytes_per_s: float = checker.positive(
            buffers, "bandwidth_bytes_per_s", "buffers")
        self.megabyte_bytes: int = checker.whole(buffers, "megabyte_bytes", "buffers")
        self.megabyte_note: str = checker.text(buffers, "megabyte_note", "buffers", default="")
        # The banking rule (backends/elector/hierarchy.py): banks of at most
        # ``buffer_bank_bytes`` each, one ``buffer_bandwidth_bytes_per_s`` port
        # per bank.  A technology without ``bank_bytes`` builds every buffer as
        # one bank (the single-port model).
        self.buffer_bank_bytes: int | None = (
            checker.whole(buffers, "bank_bytes", "buffers") if "bank_bytes" in buffers
            else None)
        self.banking_note: str = checker.text(buffers, "banking_note", "buffers", default=(
            "no bank size in this technology: every buffer is one bank with one "
            f"{self.buffer_bandwidth_bytes_per_s / 1e9:g} GB/s port"))
        # How a bank's port relates to its size: the one accepted rule is a
        # constant port (``bandwidth_bytes_per_s``) for every bank up to
        # ``bank_bytes`` (see :meth:`bank_port_bytes_per_s`).
        port_rule = (checker.mapping(buffers, "port_rule", "buffers",
                                     known=("formula", "note", "source"))
                     if "port_rule" in buffers else {})
        formula = (checker.text(port_rule, "formula", "buffers.port_rule")
                   if port_rule else "constant up to bank_bytes")
        if formula != "constant up to bank_bytes":
            raise checker.error("buffers.port_rule.formula",
                                f"unsupported rule {formula!r}; accepted: "
                                "'constant up to bank_bytes'")
        self.port_rule_note: str = (
            checker.text(port_rule, "note", "buffers.port_rule", default="") if port_rule
            else "") or ("every bank has one port of "
                         f"{self.buffer_bandwidth_bytes_per_s / 1e9:g} GB/s whatever its size")
        self.pe_buffer_note: str = checker.text(buffers, "pe_buffer_note", "buffers", default=(
            "per-PE buffers are priced with the global-buffer table of the operand class "
            "they hold, at their own size (several classes: the largest figure of each)"))
        buffer_source = checker.text(buffers, "source", "buffers", default="")
        kinds = checker.mapping(buffers, "kinds", "buffers")
        self._buffers: dict[str, _BufferTable] = {}
        for kind in _BUFFER_KINDS:
            where = f"buffers.kinds.{kind}"
            entry = checker.mapping(kinds, kind, "buffers.kinds", known=(
                "area_um2_per_mb", "leakage_mw_per_mb", "energy_per_access_nj", "source", "note"))
            energy = checker.mapping(entry, "energy_per_access_nj", where,
                                     known=("formula", "coefficient_nj", "note"))
            formula = checker.text(energy, "formula", f"{where}.energy_per_access_nj")
            if formula.replace(" ", "") != "coefficient_nj*sqrt(size_mb)":
                raise checker.error(f"{where}.energy_per_access_nj.formula",
                                    f"unsupported formula {formula!r}; accepted: "
                                    "'coefficient_nj * sqrt(size_mb)'")
            self._buffers[kind] = _BufferTable(
                area_um2_per_mb=checker.non_negative(entry, "area_um2_per_mb", where),
                leakage_mw_per_mb=checker.non_negative(entry, "leakage_mw_per_mb", where),
                energy_coefficient_nj=checker.non_negative(
                    energy, "coefficient_nj", f"{where}.energy_per_access_nj"),
                source=checker.source(entry, where, buffer_source),
            )

        memory = checker.mapping(data, "main_memory",
                                 known=("access_bytes", "source", "note", "types"))
        self.main_memory_access_bytes: int = checker.whole(memory, "access_bytes", "main_memory")
        memory_source = checker.text(memory, "source", "main_memory", default="")
        self._memories: dict[str, _MemoryType] = {}
        for type_name, entry in checker.mapping(memory, "types", "main_memory").items():
            where = f"main_memory.types.{type_name}"
            if not isinstance(type_name, str) or not type_name.isidentifier():
                raise checker.error(where, "memory type names must be words (letters, digits, _)")
            entry = checker.expect_mapping(entry, where, known=(
                "description", "bandwidth_bytes_per_s", "area_um2", "leakage_mw", "note",
                "configs", "source"))
            configs: dict[str, float] = {}
            for config, config_entry in checker.mapping(entry, "configs", where).items():
                config_where = f"{where}.configs.{config}"
                parts = config.split("-")
                if len(parts) != 3 or not all(part.isdigit() and int(part) > 0 for part in parts):
                    raise checker.error(config_where, "configuration names must be "
                                        "banks-ranks-channels, e.g. 32-2-1")
                config_entry = checker.expect_mapping(
                    config_entry, config_where, known=("energy_per_access_nj", "source", "note"))
                configs[config] = checker.positive(config_entry, "energy_per_access_nj",
                                                   config_where)
            if not configs:
                raise checker.error(f"{where}.configs", "must list at least one configuration")
            self._memories[type_name] = _MemoryType(
                description=checker.text(entry, "description", where, default=""),
                bandwidth_bytes_per_s=checker.positive(entry, "bandwidth_bytes_per_s", where),
                area_um2=checker.optional_non_negative(entry, "area_um2", where),
                leakage_mw=checker.optional_non_negative(entry, "leakage_mw", where),
                note=checker.text(entry, "note", where, default=""),
                configs=MappingProxyType(configs),
                source=checker.source(entry, where, memory_source),
            )
        if not self._memories:
            raise checker.error("main_memory.types", "must list at least one memory type")

        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        self.digest: str = hashlib.sha256(canonical.encode()).hexdigest()
        self._data = data
        self._memo: dict[tuple, ModuleCosts] = {}

    # -- identity ----------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Technology):
            return NotImplemented
        return self.name == other.name and self.digest == other.digest

    def __hash__(self) -> int:
        return hash((self.name, self.digest))

    def __repr__(self) -> str:
        where = "built-in" if self.builtin else str(self.path)
        return f"Technology({self.name!r}, {where})"

    @property
    def reference(self) -> str:
        """How a design names this technology: the built-in name, or the file path."""
        return self.name if self.builtin or self.path is None else str(self.path)

    @property
    def data(self) -> Mapping[str, Any]:
        """The merged JSON data (read-only by convention), for reports."""
        return self._data

    # -- modules -----------------------------------------------------------

    def module_kinds(self) -> tuple[str, ...]:
        return tuple(self._modules)

    def _table(self, kind: str) -> _ModuleTable:
        try:
            return self._modules[kind]
        except KeyError:
            raise TechnologyError(f"technology {self.name!r} has no module kind {kind!r}; "
                                  f"it has: {', '.join(self._modules)}") from None

    def module_description(self, kind: str) -> str:
        return self._table(kind).description

    def parameter_values(self, kind: str, parameter: str) -> tuple[Any, ...]:
        """The characterised values of one parameter of a module kind, sorted."""
        table = self._table(kind)
        if parameter not in table.parameters:
            raise TechnologyError(f"module {kind!r} has no parameter {parameter!r}; "
                                  f"it has: {', '.join(table.parameters) or 'none'}")
        index = table.parameters.index(parameter)
        return tuple(sorted({point.values[index] for point in table.points}, key=_sort_key))

    def parameter_range(self, kind: str, parameter: str) -> tuple[Any, Any]:
        """Smallest and largest characterised value of a parameter."""
        values = self.parameter_values(kind, parameter)
        return values[0], values[-1]

    def is_interpolated(self, kind: str, parameter: str) -> bool:
        return self._table(kind).interpolated == parameter

    def describe_parameter(self, kind: str, parameter: str) -> str:
        """What values of a parameter this technology accepts, in words."""
        values = self.parameter_values(kind, parameter)
        listed = ", ".join(str(value) for value in values)
        if self.is_interpolated(kind, parameter):
            return (f"{values[0]} to {values[-1]} (characterised at {listed}; "
                    f"values between are interpolated linearly, an inference)")
        return listed

    def module(self, kind: str, **parameters: Any) -> ModuleCosts:
        """Costs of one module of ``kind`` at the reference clock.

        ``parameters`` are the kind's lookup parameters, e.g.
        ``module("softmax", tile=16)`` or
        ``module("mac_lane", macs_per_lane=16, nonlinearity="gelu")``.
        Use :meth:`ModuleCosts.at_clock` for another clock.
        """
        memo_key = (kind, tuple(sorted(parameters.items(), key=lambda item: item[0])))
        try:
            return self._memo[memo_key]
        except (KeyError, TypeError):  # TypeError: an unhashable parameter value
            pass
        costs = self._lookup(kind, parameters)
        try:
            self._memo[memo_key] = costs
        except TypeError:
            pass
        return costs

    def _lookup(self, kind: str, parameters: dict[str, Any]) -> ModuleCosts:
        table = self._table(kind)
        if set(parameters) != set(table.parameters):
            raise TechnologyError(f"module {kind!r} is looked up by "
                                  f"{', '.join(table.parameters) or 'no parameters'}; "
                                  f"got {', '.join(parameters) or 'none'}")
        wanted = tuple(parameters[name] for name in table.parameters)
        named = tuple(zip(table.parameters, wanted))
        for point in table.points:
            if point.values == wanted:
                return ModuleCosts(kind, named, point.area_um2, point.dynamic_mw,
                                   point.leakage_mw, self.reference_clock_hz, point.source)
        if table.interpolated is not None:
            costs = self._interpolate(table, wanted, named)
            if costs is not None:
                return costs
        accepted = "; ".join(f"{name}: {self.describe_parameter(kind, name)}"
                             for name in table.parameters)
        raise TechnologyError(f"technology {self.name!r} does not characterise {kind} with "
                              + ", ".join(f"{name}={value!r}" for name, value in named)
                              + f"; accepted: {accepted}")

    def _interpolate(self, table: _ModuleTable, wanted: tuple, named: tuple
                     ) -> ModuleCosts | None:
        index = table.parameters.index(table.interpolated)
        target = wanted[index]
        if isinstance(target, bool) or not isinstance(target, (int, float)):
            return None
        others = wanted[:index] + wanted[index + 1:]
        line = sorted((point for point in table.points
                       if point.values[:index] + point.values[index + 1:] == others),
                      key=lambda point: point.values[index])
        for low, high in zip(line, line[1:]):
            low_value, high_value = low.values[index], high.values[index]
            if low_value < target < high_value:
                weight = (target - low_value) / (high_value - low_value)

                def mix(a: float, b: float) -> float:
                    return a + (b - a) * weight

                return ModuleCosts(
                    table.kind, named, mix(low.area_um2, high.area_um2),
                    mix(low.dynamic_mw, high.dynamic_mw), mix(low.leakage_mw, high.leakage_mw),
                    self.reference_clock_hz, low.source, inferred=True,
                    note=(f"{table.interpolated}={target} interpolated linearly between "
                          f"{low_value} and {high_value} (inference)"),
                )
        return None

    # -- buffers -----------------------------------------------------------

    def buffer_kinds(self) -> tuple[str, ...]:
        return tuple(self._buffers)

    def buffer(self, kind: str, size_mb: float) -> BufferCosts:
        """Costs of a ``kind`` buffer of ``size_mb`` megabytes (``megabyte_bytes`` each)."""
        try:
            table = self._buffers[kind]
        except KeyError:
            raise TechnologyError(f"unknown buffer kind {kind!r}; accepted: "
                                  + ", ".join(self._buffers)) from None
        if not size_mb > 0:
            raise TechnologyError(f"buffer size must be positive, got {size_mb} MB")
        return BufferCosts(
            kind=kind, size_mb=size_mb,
            area_um2=table.area_um2_per_mb * size_mb,
            leakage_mw=table.leakage_mw_per_mb * size_mb,
            energy_per_access_nj=table.energy_coefficient_nj * math.sqrt(size_mb),
            access_bytes=self.buffer_block_sizes[0],
            bandwidth_bytes_per_s=self.buffer_bandwidth_bytes_per_s,
            source=table.source,
        )

    def bank_port_bytes_per_s(self, bank_bytes: float) -> float:
        """The port of one bank of ``bank_bytes`` bytes: the technology's
        ``buffers.port_rule`` (``constant up to bank_bytes``: the same
        ``bandwidth_bytes_per_s`` for every bank size; :attr:`port_rule_note`
        says why and what it rests on)."""
        if not bank_bytes > 0:
            raise TechnologyError(f"bank size must be positive, got {bank_bytes} bytes")
        return self.buffer_bandwidth_bytes_per_s

    def pe_buffer(self, holds: tuple[str, ...], size_mb: float) -> BufferCosts:
        """Costs of ONE per-PE buffer of ``size_mb`` MB holding the operand
        classes ``holds``: each figure (area and leakage per MB, energy
        coefficient) is the largest of the held classes' global-buffer tables,
        at the PE buffer's own size (:attr:`pe_buffer_note`, an inference)."""
        if not holds:
            raise TechnologyError("a per-PE buffer must hold at least one operand class")
        costs = [self.buffer(kind, size_mb) for kind in holds]
        sources = "; ".join(dict.fromkeys(cost.source for cost in costs))
        return BufferCosts(
            kind="pe", size_mb=size_mb,
            area_um2=max(cost.area_um2 for cost in costs),
            leakage_mw=max(cost.leakage_mw for cost in costs),
            energy_per_access_nj=max(cost.energy_per_access_nj for cost in costs),
            access_bytes=self.buffer_block_sizes[0],
            bandwidth_bytes_per_s=self.buffer_bandwidth_bytes_per_s,
            source=f"global-buffer table of {'+'.join(holds)} at the PE buffer's size "
                   f"(an inference, buffers.pe_buffer_note); {sources}")

    def buffer_energy_per_access_nj(self, kind: str, size_mb: float) -> float:
        """Energy of one block access to a ``kind`` buffer of ``size_mb`` MB."""
        return self.buffer(kind, size_mb).energy_per_access_nj

    # -- main memory -------------------------------------------------------

    def main_memory_types(self) -> tuple[str, ...]:
        return tuple(self._memories)

    def main_memory_configs(self, memory_type: str) -> tuple[str, ...]:
        return tuple(self._memory_type(memory_type).configs)

    def main_memory_description(self, memory_type: str) -> str:
        return self._memory_type(memory_type).description

    def _memory_type(self, memory_type: str) -> _MemoryType:
        try:
            return self._memories[memory_type]
        except KeyError:
            raise TechnologyError(f"technology {self.name!r} has no main memory type "
                                  f"{memory_type!r}; accepted: {', '.join(self._memories)}"
                                  ) from None

    def main_memory(self, memory_type: str, config: str) -> MainMemoryCosts:
        """Bandwidth and energy per access of ``memory_type`` in ``config``
        (``banks-ranks-channels``, e.g. ``"32-2-1"``)."""
        entry = self._memory_type(memory_type)
        if config not in entry.configs:
            raise TechnologyError(f"technology {self.name!r} has no {memory_type} configuration "
                                  f"{config!r}; accepted: {', '.join(entry.configs)}")
        return MainMemoryCosts(
            type=memory_type, config=config,
            bandwidth_bytes_per_s=entry.bandwidth_bytes_per_s,
            energy_per_access_nj=entry.configs[config],
            access_bytes=self.main_memory_access_bytes,
            area_um2=entry.area_um2, leakage_mw=entry.leakage_mw,
            note=entry.note, source=entry.source,
        )


def _sort_key(value: Any) -> tuple:
    return (isinstance(value, str), value)


# --------------------------------------------------------------------------- validation


class _Checker:
    """Reads the JSON of a technology file, naming the key of any problem."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def error(self, key: str, message: str) -> TechnologyError:
        return TechnologyError(f"technology file {self.origin}: {key}: {message}")

    @staticmethod
    def _where(parent: str, key: Any) -> str:
        if isinstance(key, int):
            return f"{parent}[{key}]"
        return f"{parent}.{key}" if parent else str(key)

    def _get(self, container: Any, key: Any, parent: str, default: Any = ...) -> Any:
        if isinstance(key, int):
            return container[key]
        if key not in container:
            if default is not ...:
                return default
            raise self.error(self._where(parent, key), "missing")
        return container[key]

    def expect_mapping(self, value: Any, where: str,
                       known: tuple[str, ...] | None = None) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.error(where, f"must be an object {{...}}, got {_kind(value)}")
        if known is not None:
            unknown = sorted(key for key in value if key not in known)
            if unknown:
                raise self.error(self._where(where, unknown[0]),
                                 f"unknown key; accepted: {', '.join(known)}")
        return value

    def mapping(self, container: Any, key: Any, parent: str = "",
                known: tuple[str, ...] | None = None) -> Mapping[str, Any]:
        return self.expect_mapping(self._get(container, key, parent), self._where(parent, key),
                                   known)

    def sequence(self, container: Any, key: Any, parent: str = "") -> list:
        value = self._get(container, key, parent)
        if not isinstance(value, list) or not value:
            raise self.error(self._where(parent, key),
                             f"must be a non-empty list, got {_kind(value)}")
        return value

    def text(self, container: Any, key: Any, parent: str = "", default: Any = ...) -> str:
        value = self._get(container, key, parent, default)
        if not isinstance(value, str):
            raise self.error(self._where(parent, key), f"must be a string, got {_kind(value)}")
        return value

    def _number(self, container: Any, key: Any, parent: str, low: float, strict: bool) -> float:
        value = self._get(container, key, parent)
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and math.isfinite(value) and (value > low if strict else value >= low))
        if not ok:
            word = "positive" if strict else "non-negative"
            raise self.error(self._where(parent, key),
                             f"must be a {word} number, got {_kind(value)}")
        return float(value)

    def positive(self, container: Any, key: Any, parent: str = "") -> float:
        return self._number(container, key, parent, 0.0, strict=True)

    def non_negative(self, container: Any, key: Any, parent: str = "") -> float:
        return self._number(container, key, parent, 0.0, strict=False)

    def optional_non_negative(self, container: Any, key: Any, parent: str = "") -> float | None:
        if self._get(container, key, parent, None) is None:
            return None
        return self.non_negative(container, key, parent)

    def whole(self, container: Any, key: Any, parent: str = "") -> int:
        value = self._get(container, key, parent)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.error(self._where(parent, key),
                             f"must be a positive whole number, got {_kind(value)}")
        return value

    def source(self, entry: Mapping[str, Any], where: str, inherited: str) -> str:
        source = self.text(entry, "source", where, default=inherited)
        if not source.strip():
            raise self.error(f"{where}.source", "missing: every figure needs its source "
                             "named beside it (or in the enclosing section)")
        return source

    def module_table(self, kind: Any, table: Any) -> _ModuleTable:
        where = f"modules.{kind}"
        if not isinstance(kind, str) or not kind.isidentifier():
            raise self.error(where, "module kinds must be words (letters, digits, _)")
        table = self.expect_mapping(table, where, known=(
            "description", "parameters", "source", "note", "points", "interpolation"))
        names = self._get(table, "parameters", where)
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise self.error(f"{where}.parameters", f"must be a list of names, got {_kind(names)}")
        module_source = self.text(table, "source", where, default="")
        raw_points = self.sequence(table, "points", where)
        points: list[_Point] = []
        seen: set[tuple] = set()
        for index, raw in enumerate(raw_points):
            point_where = f"{where}.points[{index}]"
            raw = self.expect_mapping(raw, point_where)
            values = []
            for name in names:
                value = self._get(raw, name, point_where)
                if isinstance(value, bool) or not isinstance(value, (int, str)):
                    raise self.error(f"{point_where}.{name}",
                                     f"must be a whole number or a word, got {_kind(value)}")
                values.append(value)
            if tuple(values) in seen:
                raise self.error(point_where, "duplicate point: "
                                 + ", ".join(f"{n}={v!r}" for n, v in zip(names, values)))
            seen.add(tuple(values))
            known = set(names) | {"area_um2", "dynamic_mw", "leakage_mw", "source", "note"}
            unknown = sorted(set(raw) - known)
            if unknown:
                raise self.error(f"{point_where}.{unknown[0]}",
                                 f"unknown key; accepted: {', '.join(sorted(known))}")
            points.append(_Point(
                values=tuple(values),
                area_um2=self.non_negative(raw, "area_um2", point_where),
                dynamic_mw=self.non_negative(raw, "dynamic_mw", point_where),
                leakage_mw=self.non_negative(raw, "leakage_mw", point_where),
                source=self.source(raw, point_where, module_source),
            ))
        interpolated, note = None, ""
        if "interpolation" in table:
            rule = self.mapping(table, "interpolation", where,
                                known=("parameter", "method", "inference", "note"))
            rule_where = f"{where}.interpolation"
            interpolated = self.text(rule, "parameter", rule_where)
            if interpolated not in names:
                raise self.error(f"{rule_where}.parameter",
                                 f"{interpolated!r} is not one of the parameters {names}")
            if self.text(rule, "method", rule_where) != "linear":
                raise self.error(f"{rule_where}.method", "only 'linear' is supported")
            position = names.index(interpolated)
            if not all(isinstance(point.values[position], int) for point in points):
                raise self.error(f"{rule_where}.parameter",
                                 f"{interpolated!r} must have whole-number values to interpolate")
            note = self.text(rule, "note", rule_where, default="")
        return _ModuleTable(kind, self.text(table, "description", where, default=""),
                            tuple(names), tuple(points), interpolated, note)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    return repr(value)


# --------------------------------------------------------------------------- loading

_CACHE: dict[tuple[str, int, int], Technology] = {}


def list_technologies() -> list[str]:
    """Names of the built-in technologies."""
    return sorted(path.stem for path in BUILTIN_TECHNOLOGY_DIR.glob("*.json"))


@functools.lru_cache(maxsize=None)
def _builtin_path(name: str) -> Path | None:
    path = BUILTIN_TECHNOLOGY_DIR / f"{name}.json"
    return path if name and path.is_file() else None


def _resolve(name_or_path: str | Path, relative_to: Path | None) -> tuple[Path, bool]:
    text = str(name_or_path)
    looks_like_path = isinstance(name_or_path, Path) or "/" in text or "\\" in text \
        or text.endswith(".json")
    builtin = None if looks_like_path else _builtin_path(text)
    if builtin is not None:
        return builtin, True
    if not text.lower().endswith(".json"):
        # Only library names and .json files are ever opened: a value naming
        # some other file (a typo, or /etc/passwd) is not read, let alone
        # quoted in an error.
        raise TechnologyError(
            f"technology {text!r} not found: it is not a built-in technology (built-in: "
            f"{', '.join(list_technologies())}) nor a path ending in .json; give a "
            "built-in name or a transcode-technology/1 JSON file")
    path = Path(text).expanduser()
    if not path.is_absolute() and relative_to is not None:
        path = relative_to / path
    if not path.is_file():
        raise TechnologyError(
            f"technology {text!r} not found: it is not a built-in technology "
            f"(built-in: {', '.join(list_technologies())}) and there is no file {path}"
            + (" (relative paths are resolved against the design file's folder)"
               if relative_to is not None else ""))
    return path.resolve(), False


#: Technology tables are a few kilobytes; a bigger file is not one.
MAX_TECHNOLOGY_BYTES = 16 * 2**20


def _read_json(path: Path) -> dict[str, Any]:
    expected = "expected a transcode-technology/1 JSON object"
    try:
        size = path.stat().st_size
        if size > MAX_TECHNOLOGY_BYTES:
            raise TechnologyError(f"technology file {path} is {size:,} bytes, more than the "
                                  f"{MAX_TECHNOLOGY_BYTES // 2**20} MiB a technology table "
                                  f"may have; {expected}")
        raw = path.read_bytes()
    except OSError as err:
        raise TechnologyError(f"cannot read technology file {path}: "
                              f"{err.strerror or type(err).__name__}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TechnologyError(f"technology file {path} is not UTF-8 text (byte {err.start} "
                              f"cannot be decoded); {expected}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        # Position only: the content of a file that is not JSON is not quoted.
        raise TechnologyJSONError(f"malformed JSON in technology file: {err.msg}; {expected}",
                                  SourceLocation(str(path), err.lineno, err.colno)) from None
    except RecursionError:
        raise TechnologyError(f"technology file {path}: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise TechnologyError(f"technology file {path}: the top level must be an object {{...}}")
    return data


def _merge(base: Any, override: Any) -> Any:
    """Deep-merge JSON objects; anything else in ``override`` replaces ``base``."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    return override


def _load_data(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    data = _read_json(path)
    if data.get("format", "transcode-technology/1") != "transcode-technology/1":
        raise TechnologyError(f"technology file {path}: format: unsupported "
                              f"{data.get('format')!r}; accepted: 'transcode-technology/1'")
    base_name = data.pop("extends", None)
    if base_name is None:
        return data
    if not isinstance(base_name, str):
        raise TechnologyError(f"technology file {path}: extends: must be a technology name "
                              f"or path, got {_kind(base_name)}")
    base_path, _ = _resolve(base_name, path.parent)
    if base_path in chain or len(chain) > 16:
        raise TechnologyError(f"technology file {path}: extends: cycle through "
                              + " -> ".join(str(p) for p in chain + (base_path,)))
    return _merge(_load_data(base_path, chain + (base_path,)), data)


def load_technology(name_or_path: str | Path = "14nm",
                    relative_to: str | Path | None = None) -> Technology:
    """Load a technology by built-in name (``"14nm"``) or JSON file path.

    Relative paths resolve against ``relative_to`` (a design file's folder)
    or the working directory.  A user file may say ``"extends": "14nm"`` and
    give only what it changes (objects merge key by key; lists and numbers
    replace).  Loaded technologies are cached by path and modification time.
    """
    base = Path(relative_to) if relative_to is not None else None
    path, builtin = _resolve(name_or_path, base)
    if builtin:  # shipped files do not change while the program runs
        key = (str(path), 0, 0)
    else:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    data = _load_data(path, (path,))
    technology = Technology(data, str(path), path, builtin)
    _CACHE[key] = technology
    return technology


def technology_from_data(data: Mapping[str, Any], origin: str = "<data>") -> Technology:
    """Build a technology from already-parsed JSON data (tests, generated tables)."""
    return Technology(json.loads(json.dumps(data)), origin, None, builtin=False)
