"""The hardware model of the ELECTOR backend: an :class:`Accelerator` and its parts.

Everything here is a frozen, hashable dataclass that checks its own fields in
``__post_init__`` (types, positivity, finiteness).  Whether a value is one the
technology tables characterise (a softmax tile of 12, an unknown memory
configuration) is checked separately by :func:`validate_design`, because it
depends on the technology the design names.

Units are fixed and spelled in field names: ``clock_hz``, ``size_bytes``,
``bandwidth_bytes_per_s``, ``energy_per_access_nj``.  A problem with one field
raises :class:`DesignFieldError`, which names the field by its DSL path
(``pe_array.pes``); the DSL parser turns that path back into ``file:line:col``.

The vocabulary follows AccelTran / ELECTOR (PEs, MAC lanes, softmax and
layer-norm modules, sparsity units) and Timeloop / ZigZag storage levels
(buffers with size, block size and bandwidth; a main memory).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from transcode_ir.errors import UserError

if TYPE_CHECKING:
    from backends.elector.technology import (
        BufferCosts,
        MainMemoryCosts,
        ModuleCosts,
        Technology,
    )

__all__ = [
    "BUFFER_KINDS",
    "Accelerator",
    "Buffer",
    "DesignFieldError",
    "LayerNormUnit",
    "MainMemory",
    "MappingDefaults",
    "OPERAND_CLASSES",
    "PEArray",
    "PEBuffer",
    "POWER_GATING_MODES",
    "SoftmaxUnits",
    "SparsityUnits",
    "validate_design",
]

#: The three on-chip buffers, in the order the DSL prints them.
BUFFER_KINDS: tuple[str, ...] = ("activation", "weight", "mask")

#: The operand classes a storage level can hold.  ``activation`` covers
#: inputs, outputs and activation gradients; ``weight`` parameters, their
#: gradients and optimizer state; ``mask`` the sparsity masks of compressed
#: tensors.  (The global buffers hold one each; a per-PE buffer any.)
OPERAND_CLASSES: tuple[str, ...] = ("activation", "weight", "mask")

#: Values of the design option ``power_gating``: ``none`` (nothing is gated)
#: or ``idle`` (a module is gated while it has no work).
POWER_GATING_MODES: tuple[str, ...] = ("none", "idle")


class DesignFieldError(UserError):
    """One field of a hardware design is wrong.

    ``path`` is the field's place in the DSL, e.g. ``("pe_array", "pes")``;
    ``bare_message`` says what is wrong and what would be accepted.
    """

    def __init__(self, path: tuple[str, ...], message: str) -> None:
        self.path = path
        self.bare_message = message
        super().__init__(f"{'.'.join(path)}: {message}" if path else message)


# --------------------------------------------------------------------------- checks


def _check_count(path: tuple[str, ...], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DesignFieldError(path, f"must be a whole number, got {value!r}")
    if value <= 0:
        raise DesignFieldError(path, f"must be positive, got {value}")


def _check_positive_real(path: tuple[str, ...], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DesignFieldError(path, f"must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise DesignFieldError(path, f"must be positive and finite, got {value}")


def _check_banks(block: str, size_bytes: int, block_bytes: int, banks: int | None,
                 bank_bandwidth: float | None) -> None:
    """A buffer's ``banks`` (each at least one block) and ``bank_bandwidth``."""
    if banks is not None:
        _check_count((block, "banks"), banks)
        if banks > size_bytes // block_bytes:
            raise DesignFieldError((block, "banks"),
                                   f"{banks} banks of a {size_bytes}-byte buffer leave less than "
                                   f"one {block_bytes}-byte block per bank; accepted: 1 to "
                                   f"{size_bytes // block_bytes}")
    if bank_bandwidth is not None:
        _check_positive_real((block, "bank_bandwidth"), bank_bandwidth)


def _check_word(path: tuple[str, ...], value: object) -> None:
    if not isinstance(value, str) or not value.isidentifier():
        raise DesignFieldError(path, f"must be a word (letters, digits, _), got {value!r}")


def _check_flag(path: tuple[str, ...], value: object) -> None:
    if not isinstance(value, bool):
        raise DesignFieldError(path, f"must be on or off (True or False), got {value!r}")


def _check_text(path: tuple[str, ...], value: object) -> None:
    if not isinstance(value, str):
        raise DesignFieldError(path, f"must be text, got {value!r}")
    if "\n" in value or "\r" in value:
        raise DesignFieldError(path, "must be a single line of text")


# --------------------------------------------------------------------------- parts


@dataclass(frozen=True)
class PEArray:
    """The processing elements: ``pes`` PEs, each with ``lanes`` MAC lanes of
    ``macs_per_lane`` multipliers, a ``fifo_depth``-deep FIFO per lane and the
    given non-linearity (``gelu`` or ``relu``) in each lane."""

    pes: int
    lanes: int
    macs_per_lane: int
    nonlinearity: str = "gelu"
    fifo_depth: int = 32

    def __post_init__(self) -> None:
        for name in ("pes", "lanes", "macs_per_lane", "fifo_depth"):
            _check_count(("pe_array", name), getattr(self, name))
        _check_word(("pe_array", "nonlinearity"), self.nonlinearity)

    @property
    def lanes_total(self) -> int:
        """MAC lanes in the whole array."""
        return self.pes * self.lanes

    @property
    def peak_macs_per_cycle(self) -> int:
        """Multiply-accumulates the whole array can do in one cycle."""
        return self.pes * self.lanes * self.macs_per_lane


@dataclass(frozen=True)
class SoftmaxUnits:
    """``per_pe`` softmax modules in each PE, each working on tiles of ``tile``."""

    per_pe: int
    tile: int

    def __post_init__(self) -> None:
        _check_count(("softmax", "per_pe"), self.per_pe)
        _check_count(("softmax", "tile"), self.tile)


@dataclass(frozen=True)
class LayerNormUnit:
    """The one layer-norm module of each PE, working on tiles of ``tile``."""

    tile: int

    def __post_init__(self) -> None:
        _check_count(("layer_norm", "tile"), self.tile)


@dataclass(frozen=True)
class SparsityUnits:
    """Which sparsity hardware each MAC lane has.

    ``pre``: the pre-sparsity unit (prunes and compresses inputs, DynaTran);
    ``post``: the post-sparsity unit (prunes outputs); ``stochastic_rounding``:
    the stochastic-rounding unit needed for training.
    """

    pre: bool = True
    post: bool = True
    stochastic_rounding: bool = False

    def __post_init__(self) -> None:
        for name in ("pre", "post", "stochastic_rounding"):
            _check_flag(("sparsity", name), getattr(self, name))


@dataclass(frozen=True)
class Buffer:
    """An on-chip buffer (a storage level): activations, weights or masks.

    ``bandwidth_bytes_per_s`` is ``None`` when the technology's figure applies.
    Sizes in MB use the technology's megabyte (2**20 bytes for the shipped
    14 nm table); see :attr:`size_mb`.
    """

    kind: str
    size_bytes: int
    block_bytes: int = 64
    bandwidth_bytes_per_s: float | None = None
    #: Banks (independent ports); ``None``: the technology's banking rule
    #: (:func:`backends.elector.hierarchy.default_banks`).
    banks: int | None = None
    #: Bandwidth of one bank's port; ``None``: the technology's port figure
    #: (or ``bandwidth / banks`` when the old whole-buffer ``bandwidth`` is given).
    bank_bandwidth_bytes_per_s: float | None = None
    #: Whether one read can be multicast to every PE and lane that needs it.
    multicast: bool = True

    def __post_init__(self) -> None:
        if self.kind not in BUFFER_KINDS:
            raise DesignFieldError((f"{self.kind}_buffer",),
                                   f"unknown buffer kind {self.kind!r}; accepted: "
                                   + ", ".join(BUFFER_KINDS))
        block = self.block_name
        _check_count((block, "size"), self.size_bytes)
        _check_count((block, "block"), self.block_bytes)
        if self.bandwidth_bytes_per_s is not None:
            _check_positive_real((block, "bandwidth"), self.bandwidth_bytes_per_s)
        _check_banks(block, self.size_bytes, self.block_bytes, self.banks,
                     self.bank_bandwidth_bytes_per_s)
        if self.bank_bandwidth_bytes_per_s is not None and self.bandwidth_bytes_per_s is not None:
            raise DesignFieldError((block, "bank_bandwidth"),
                                   "give either bandwidth (the whole buffer) or "
                                   "bank_bandwidth (one bank's port), not both")
        _check_flag((block, "multicast"), self.multicast)

    @property
    def block_name(self) -> str:
        """The DSL block this buffer is written in, e.g. ``weight_buffer``."""
        return f"{self.kind}_buffer"

    @property
    def size_mb(self) -> float:
        """Size in binary megabytes (2**20 bytes), the unit of the shipped 14 nm
        tables (costs use the technology's own ``megabyte_bytes``)."""
        return self.size_bytes / 2**20

    @property
    def blocks(self) -> int:
        """Whole blocks the buffer holds."""
        return self.size_bytes // self.block_bytes


@dataclass(frozen=True)
class PEBuffer:
    """An optional buffer inside every PE (a storage level shared by the PE's
    lanes), holding the operand classes ``holds`` (in
    :data:`OPERAND_CLASSES` order).  One instance per PE; ``size_bytes``,
    ``banks`` and the port are one instance's.  ``banks`` and
    ``bank_bandwidth_bytes_per_s`` are ``None`` when the technology's banking
    rule and port apply, as for the global buffers."""

    size_bytes: int
    holds: tuple[str, ...]
    block_bytes: int = 64
    banks: int | None = None
    bank_bandwidth_bytes_per_s: float | None = None
    #: Whether one read can feed every lane of the PE that needs the same tile.
    multicast: bool = True

    def __post_init__(self) -> None:
        block = "pe_buffer"
        _check_count((block, "size"), self.size_bytes)
        _check_count((block, "block"), self.block_bytes)
        if not isinstance(self.holds, tuple) or not self.holds:
            raise DesignFieldError((block, "holds"),
                                   f"must list at least one operand class, got {self.holds!r}; "
                                   f"accepted: {', '.join(OPERAND_CLASSES)}")
        unknown = [operand for operand in self.holds if operand not in OPERAND_CLASSES]
        if unknown:
            raise DesignFieldError((block, "holds"),
                                   f"unknown operand {unknown[0]!r}; accepted: "
                                   + ", ".join(OPERAND_CLASSES))
        if len(set(self.holds)) != len(self.holds):
            raise DesignFieldError((block, "holds"), f"lists an operand twice: {self.holds!r}")
        if self.block_bytes > self.size_bytes:
            raise DesignFieldError((block, "size"),
                                   f"{self.size_bytes} bytes is less than one "
                                   f"{self.block_bytes}-byte block; accepted: at least "
                                   f"{self.block_bytes} bytes")
        _check_banks(block, self.size_bytes, self.block_bytes, self.banks,
                     self.bank_bandwidth_bytes_per_s)
        _check_flag((block, "multicast"), self.multicast)

    @property
    def block_name(self) -> str:
        return "pe_buffer"

    def holds_operand(self, operand: str) -> bool:
        return operand in self.holds


@dataclass(frozen=True)
class MainMemory:
    """Off-chip main memory of a type (``dram``, ``rram``, ``hbm``) in a
    banks-ranks-channels configuration.

    ``bandwidth_bytes_per_s`` and ``energy_per_access_nj`` are ``None`` when
    the technology's figures for this type and configuration apply.
    """

    type: str
    banks: int
    ranks: int
    channels: int
    bandwidth_bytes_per_s: float | None = None
    energy_per_access_nj: float | None = None

    def __post_init__(self) -> None:
        _check_word(("main_memory", "type"), self.type)
        for name in ("banks", "ranks", "channels"):
            _check_count(("main_memory", "config"), getattr(self, name))
        if self.bandwidth_bytes_per_s is not None:
            _check_positive_real(("main_memory", "bandwidth"), self.bandwidth_bytes_per_s)
        if self.energy_per_access_nj is not None:
            _check_positive_real(("main_memory", "energy_per_access"),
                                 self.energy_per_access_nj)

    @property
    def config(self) -> str:
        """The configuration as written: ``banks-ranks-channels``, e.g. ``32-2-1``."""
        return f"{self.banks}-{self.ranks}-{self.channels}"

    @property
    def label(self) -> str:
        """E.g. ``dram 32-2-1``."""
        return f"{self.type} {self.config}"


@dataclass(frozen=True)
class MappingDefaults:
    """Default schedule hints: the matmul tile (b, x, y) and the batch size.

    The mapping pass may choose other tiles per op; these are its defaults and
    the tiles a design space varies.
    """

    tile_b: int = 1
    tile_x: int = 16
    tile_y: int = 16
    batch: int = 1

    def __post_init__(self) -> None:
        for name in ("tile_b", "tile_x", "tile_y"):
            _check_count(("mapping", "tiles"), getattr(self, name))
        _check_count(("mapping", "batch"), self.batch)

    @property
    def tiles(self) -> tuple[int, int, int]:
        """``(tile_b, tile_x, tile_y)``."""
        return (self.tile_b, self.tile_x, self.tile_y)


def _default_technology() -> Technology:
    from backends.elector.technology import load_technology

    return load_technology("14nm")


@dataclass(frozen=True)
class Accelerator:
    """A concrete accelerator: modules, buffers, main memory, clock, technology.

    Build one from the DSL (:func:`backends.elector.parse_design`) or directly
    in Python; either way call :func:`validate_design` (the DSL loaders do) to
    check it against its technology's tables.
    """

    name: str
    clock_hz: float
    pe_array: PEArray
    softmax: SoftmaxUnits
    activation_buffer: Buffer
    weight_buffer: Buffer
    mask_buffer: Buffer
    main_memory: MainMemory
    layer_norm: LayerNormUnit = LayerNormUnit(tile=16)
    sparsity: SparsityUnits = SparsityUnits()
    mapping: MappingDefaults = MappingDefaults()
    data_width_bits: int = 20
    description: str = ""
    technology: Technology = field(default_factory=_default_technology)
    #: ``none``: every module leaks for the whole run; ``idle``: idle modules
    #: are power-gated (the event simulator and reports apply it).
    power_gating: str = "none"
    #: Settings of blocks added by registered module kinds
    #: (:func:`backends.elector.kinds.register_module_kind`), as
    #: ``((block, ((key, value), ...)), ...)`` sorted by block; see
    #: :meth:`block_settings`.
    extensions: tuple[tuple[str, tuple[tuple[str, object], ...]], ...] = ()
    #: The optional buffer in every PE (``None``: the design has none).
    pe_buffer: PEBuffer | None = None

    def __post_init__(self) -> None:
        _check_text(("name",), self.name)
        if self.power_gating not in POWER_GATING_MODES:
            raise DesignFieldError(("power_gating",),
                                   f"unknown mode {self.power_gating!r}; accepted: "
                                   + ", ".join(POWER_GATING_MODES))
        _check_text(("description",), self.description)
        _check_positive_real(("clock",), self.clock_hz)
        _check_count(("data_width",), self.data_width_bits)
        for kind in BUFFER_KINDS:
            buffer = getattr(self, f"{kind}_buffer")
            if not isinstance(buffer, Buffer) or buffer.kind != kind:
                raise DesignFieldError((f"{kind}_buffer",),
                                       f"must be a Buffer of kind {kind!r}, got {buffer!r}")
        if self.pe_buffer is not None and not isinstance(self.pe_buffer, PEBuffer):
            raise DesignFieldError(("pe_buffer",), f"must be a PEBuffer or None, got "
                                   f"{self.pe_buffer!r}")

    # -- derived figures ---------------------------------------------------

    @property
    def cycle_time_s(self) -> float:
        """Seconds per clock cycle."""
        return 1.0 / self.clock_hz

    @property
    def peak_macs_per_cycle(self) -> int:
        """``pes * lanes * macs_per_lane``."""
        return self.pe_array.peak_macs_per_cycle

    @property
    def peak_macs_per_s(self) -> float:
        """Peak multiply-accumulates per second at this clock."""
        return self.peak_macs_per_cycle * self.clock_hz

    @property
    def buffers(self) -> tuple[Buffer, Buffer, Buffer]:
        """Activation, weight and mask buffers, in that order."""
        return (self.activation_buffer, self.weight_buffer, self.mask_buffer)

    def buffer(self, kind: str) -> Buffer:
        """The buffer of ``kind`` (``activation``, ``weight`` or ``mask``)."""
        if kind not in BUFFER_KINDS:
            raise UserError(f"unknown buffer kind {kind!r}; accepted: {', '.join(BUFFER_KINDS)}")
        return getattr(self, f"{kind}_buffer")

    # -- costs from the technology, for this design's parameters and clock --

    def module_parameters(self, kind: str) -> dict[str, object]:
        """The technology parameters of module ``kind`` in this design (the
        kind's rule in :mod:`backends.elector.kinds`)."""
        from backends.elector.kinds import module_kind

        return module_kind(kind).parameters(self)

    def block_settings(self, block: str) -> dict[str, object]:
        """The settings of a block that a registered module kind added to the
        DSL (``{key: value}``; empty when the design does not use the block)."""
        for name, values in self.extensions:
            if name == block:
                return dict(values)
        return {}

    def module_costs(self, kind: str) -> ModuleCosts:
        """Area and power of one module of ``kind`` as this design builds it,
        with dynamic power scaled to this design's clock.

        ``kind`` is a technology module kind: ``mac_lane``, ``pre_sparsity``,
        ``post_sparsity``, ``fifo``, ``stochastic_rounding``, ``softmax``,
        ``layer_norm``, ``dataflow``, ``dma``.
        """
        costs = self.technology.module(kind, **self.module_parameters(kind))
        return costs.at_clock(self.clock_hz)

    def buffer_costs(self, kind: str) -> BufferCosts:
        """Area, leakage and energy per access of one buffer (the technology's
        table for its size).

        ``bandwidth_bytes_per_s`` here is the technology's one-port figure
        (or the file's whole-buffer ``bandwidth``), *not* the banked buffer's
        bandwidth: the cost model reads
        ``backends.elector.hierarchy.level(self, "<kind>_buffer").bytes_per_cycle``
        (banks x port)."""
        buffer = self.buffer(kind)
        costs = self.technology.buffer(kind, buffer.size_bytes / self.technology.megabyte_bytes)
        if buffer.bandwidth_bytes_per_s is not None:
            costs = costs.with_bandwidth(buffer.bandwidth_bytes_per_s)
        return costs

    def pe_buffer_costs(self) -> BufferCosts | None:
        """Area, leakage and energy per access of ONE PE's buffer (the
        technology's per-PE rule, :meth:`Technology.pe_buffer`, for its size
        and the operands it holds); ``None`` when the design has no PE buffer."""
        pe_buffer = self.pe_buffer
        if pe_buffer is None:
            return None
        return self.technology.pe_buffer(pe_buffer.holds,
                                         pe_buffer.size_bytes / self.technology.megabyte_bytes)

    def main_memory_costs(self) -> MainMemoryCosts:
        """Bandwidth and energy per access of the main memory, with this
        design's overrides applied.  Area and leakage are ``None``: the
        source does not characterise them."""
        memory = self.main_memory
        costs = self.technology.main_memory(memory.type, memory.config)
        return costs.with_overrides(memory.bandwidth_bytes_per_s, memory.energy_per_access_nj)


# --------------------------------------------------------------------------- validation


def validate_design(accelerator: Accelerator) -> Accelerator:
    """Check ``accelerator`` against what its technology characterises.

    Raises :class:`DesignFieldError` naming the field (e.g. ``softmax.tile``),
    the value, the technology and the accepted values.  Returns the design
    unchanged, so calls chain.
    """
    technology = accelerator.technology
    tech = f"technology {technology.name!r}"

    widths = technology.data_widths_bits
    if accelerator.data_width_bits not in widths:
        raise DesignFieldError(("data_width",),
                               f"{accelerator.data_width_bits} bits is not characterised by "
                               f"{tech}; "
                               f"accepted: {_join(f'{w} bits' for w in widths)}")

    pe_array = accelerator.pe_array
    nonlinearities = technology.parameter_values("mac_lane", "nonlinearity")
    if pe_array.nonlinearity not in nonlinearities:
        raise DesignFieldError(("pe_array", "nonlinearity"),
                               f"{pe_array.nonlinearity!r} is not characterised by {tech}; "
                               f"accepted: {_join(nonlinearities)}")
    low, high = technology.parameter_range("mac_lane", "macs_per_lane")
    if not low <= pe_array.macs_per_lane <= high:
        raise DesignFieldError(("pe_array", "macs_per_lane"),
                               f"{pe_array.macs_per_lane} is outside what {tech} characterises: "
                               f"{technology.describe_parameter('mac_lane', 'macs_per_lane')}")
    _check_listed(("pe_array", "fifo_depth"), pe_array.fifo_depth,
                  technology.parameter_values("fifo", "depth"), tech)
    _check_listed(("softmax", "tile"), accelerator.softmax.tile,
                  technology.parameter_values("softmax", "tile"), tech)
    _check_listed(("layer_norm", "tile"), accelerator.layer_norm.tile,
                  technology.parameter_values("layer_norm", "tile"), tech)

    for buffer in accelerator.buffers:
        _check_listed((buffer.block_name, "block"), buffer.block_bytes,
                      technology.buffer_block_sizes, tech, unit=" bytes")

    if accelerator.pe_buffer is not None:
        _check_listed(("pe_buffer", "block"), accelerator.pe_buffer.block_bytes,
                      technology.buffer_block_sizes, tech, unit=" bytes")

    _check_registered_kinds(accelerator, tech)

    memory = accelerator.main_memory
    types = technology.main_memory_types()
    if memory.type not in types:
        raise DesignFieldError(("main_memory", "type"),
                               f"{memory.type!r} is not characterised by {tech}; "
                               f"accepted: {_join(types)}")
    configs = technology.main_memory_configs(memory.type)
    if memory.config not in configs:
        raise DesignFieldError(("main_memory", "config"),
                               f"{memory.type} {memory.config} is not characterised by {tech}; "
                               f"accepted {memory.type} configurations (banks-ranks-channels): "
                               f"{_join(configs)}")
    return accelerator


def _check_registered_kinds(accelerator: Accelerator, tech: str) -> None:
    """Kinds added by :func:`backends.elector.kinds.register_module_kind`
    that the design uses must be characterised by its technology."""
    from backends.elector.kinds import module_kinds
    from backends.elector.technology import TechnologyError

    technology = accelerator.technology
    for kind in module_kinds():
        if kind.builtin or kind.per_pe(accelerator) <= 0:
            continue
        if kind.name not in technology.module_kinds():
            raise DesignFieldError((kind.block,),
                                   f"{tech} does not characterise module kind {kind.name!r}; "
                                   "use a technology file that does (e.g. one that extends "
                                   "14nm with a modules." + kind.name + " table)")
        try:
            technology.module(kind.name, **kind.parameters(accelerator))
        except TechnologyError as err:
            raise DesignFieldError((kind.block,), str(err)) from None


def _check_listed(path: tuple[str, ...], value: int, accepted: tuple, tech: str,
                  unit: str = "") -> None:
    if value not in accepted:
        raise DesignFieldError(path, f"{value}{unit} is not characterised by {tech}; "
                                     f"accepted: {_join(f'{v}{unit}' for v in accepted)}")


def _join(items) -> str:
    return ", ".join(str(item) for item in items)
