"""The storage hierarchy of a design, in Timeloop/Accelergy and ZigZag terms.

:func:`storage_levels` turns an :class:`~backends.elector.design.Accelerator`
into its storage levels, outermost first::

    main_memory                      (off chip, shared by the chip)
    activation_buffer, weight_buffer, mask_buffer   (on chip, shared by the chip)
    pe_buffer                        (optional: one per PE, shared by its lanes)
    lane_fifo                        (one per MAC lane)

Each :class:`StorageLevel` has a capacity, a number of banks, the bytes one
bank's port moves per cycle, the operands it holds, how it is shared
(``chip``, ``pe`` or ``lane``), how many instances exist, the energy per byte
read and written, and whether a read can be multicast to every PE or lane that
needs the same tile.  Bandwidth grows with the banks: a big buffer is not one
port.

The banking rule (:func:`default_banks`) comes from the technology table
(``buffers.bank_bytes`` and ``buffers.banking_note`` in
``technologies/14nm.json``): banks of at most ``bank_bytes`` each, every bank
with one port of the technology's per-buffer bandwidth (AccelTran's 370 GB/s,
read as one bank's port, as ``docs/sources.md``,
"Buffers", explains).  The 1 MiB bank is an assumption of this project, stated
there and printed by ``tcc hw show``.  A design may give ``banks`` and
``bank_bandwidth`` per buffer instead (see ``docs/hardware-dsl.md``).

Nothing here changes area: buffer area and leakage are per MB whatever the
banking, and energy per access is the source's whole-buffer figure.

The optional per-PE buffer (``pe_buffer { size = 64 KiB  holds = [weight] }``
in the DSL) is a level with ``sharing = "pe"`` and one instance per PE; its
banks and port follow the same rules per instance, and its energy per access
is the technology's per-PE rule (:meth:`Technology.pe_buffer`: the held
class's global-buffer table at the PE buffer's size, an inference).
"""

from __future__ import annotations

import functools
import math
import textwrap
from dataclasses import dataclass

from backends.elector.design import OPERAND_CLASSES, Accelerator, Buffer, PEBuffer
from backends.elector.technology import Technology

__all__ = [
    "OPERANDS",
    "SHARING",
    "StorageLevel",
    "banking_rule",
    "default_banks",
    "format_hierarchy",
    "level",
    "storage_levels",
]

#: How a level is shared: one for the chip, one per PE, one per MAC lane.
SHARING: tuple[str, ...] = ("chip", "pe", "lane")

#: The operand classes a level can hold (defined once, in the design model):
#: ``activation`` covers inputs, outputs and activation gradients; ``weight``
#: parameters, their gradients and optimizer state; ``mask`` the sparsity
#: masks of compressed tensors.
OPERANDS: tuple[str, ...] = OPERAND_CLASSES


@dataclass(frozen=True)
class StorageLevel:
    """One storage level (all ``instances`` copies of it).

    ``capacity_bytes`` is one instance's capacity (``None`` for main memory,
    whose capacity the model does not bound); ``banks`` and
    ``bank_bytes_per_cycle`` describe one instance's ports.
    ``read_nj_per_byte``/``write_nj_per_byte``: energy per byte moved.
    ``source`` says where the bank count and port width came from.
    """

    name: str
    capacity_bytes: int | None
    banks: int
    bank_bytes_per_cycle: float
    operands: frozenset[str]
    sharing: str
    instances: int
    read_nj_per_byte: float
    write_nj_per_byte: float
    multicast: bool
    source: str = ""
    #: Bytes of one access (a buffer's block, main memory's 64-byte access,
    #: one FIFO row): energy per access = ``read_nj_per_byte * access_bytes``.
    access_bytes: float = 64.0

    def __post_init__(self) -> None:
        if self.sharing not in SHARING:
            raise ValueError(f"sharing must be one of {', '.join(SHARING)}, got {self.sharing!r}")
        unknown = set(self.operands) - set(OPERANDS)
        if unknown:
            raise ValueError(f"unknown operands {sorted(unknown)}; accepted: {', '.join(OPERANDS)}")
        if self.banks < 1 or self.instances < 1 or not self.bank_bytes_per_cycle > 0:
            raise ValueError(f"level {self.name}: banks, instances and port width must be positive")

    @property
    def bytes_per_cycle(self) -> float:
        """What one instance moves per cycle: ``banks * bank_bytes_per_cycle``."""
        return self.banks * self.bank_bytes_per_cycle

    @property
    def total_bytes_per_cycle(self) -> float:
        """All instances together (a lane-level FIFO summed over every lane)."""
        return self.instances * self.bytes_per_cycle

    def bandwidth_bytes_per_s(self, clock_hz: float) -> float:
        """One instance's bandwidth at ``clock_hz``."""
        return self.bytes_per_cycle * clock_hz

    def holds(self, operand: str) -> bool:
        return operand in self.operands


def default_banks(size_bytes: int, technology: Technology) -> int:
    """The banking rule: ``ceil(size / bank_bytes)``, at least 1.

    A technology without ``bank_bytes`` builds every buffer as one bank.
    """
    bank = technology.buffer_bank_bytes
    if bank is None:
        return 1
    return max(1, math.ceil(size_bytes / bank))


def banking_rule(technology: Technology) -> str:
    """One paragraph: the rule and its source, as ``tcc hw show`` prints it."""
    return technology.banking_note


def _buffer_level(accelerator: Accelerator, buffer: Buffer) -> StorageLevel:
    technology, clock = accelerator.technology, accelerator.clock_hz
    costs = technology.buffer(buffer.kind, buffer.size_bytes / technology.megabyte_bytes)
    if buffer.banks is not None:
        banks, bank_source = buffer.banks, "banks given in the design"
    else:
        banks = default_banks(buffer.size_bytes, technology)
        bank_source = "banks by the technology's banking rule"
    if buffer.bank_bandwidth_bytes_per_s is not None:
        port, port_source = buffer.bank_bandwidth_bytes_per_s, "port given in the design"
    elif buffer.bandwidth_bytes_per_s is not None:
        port = buffer.bandwidth_bytes_per_s / banks
        port_source = "port = the design's whole-buffer bandwidth / banks"
    else:
        port = technology.bank_port_bytes_per_s(buffer.size_bytes / banks)
        port_source = "port from the technology table (one per bank)"
    energy = costs.energy_per_byte_nj
    return StorageLevel(
        name=buffer.block_name, capacity_bytes=buffer.size_bytes, banks=banks,
        bank_bytes_per_cycle=port / clock, operands=frozenset({buffer.kind}),
        sharing="chip", instances=1, read_nj_per_byte=energy, write_nj_per_byte=energy,
        multicast=buffer.multicast, source=f"{bank_source}; {port_source}",
        access_bytes=float(buffer.block_bytes))


def _pe_buffer_level(accelerator: Accelerator, pe_buffer: PEBuffer) -> StorageLevel:
    """The buffer inside every PE: one instance per PE, shared by its lanes,
    holding the operands the design lists; banks and port per instance by the
    same rules as the global buffers; energy from the technology's per-PE rule."""
    technology, clock = accelerator.technology, accelerator.clock_hz
    costs = accelerator.pe_buffer_costs()
    if pe_buffer.banks is not None:
        banks, bank_source = pe_buffer.banks, "banks given in the design"
    else:
        banks = default_banks(pe_buffer.size_bytes, technology)
        bank_source = "banks by the technology's banking rule"
    if pe_buffer.bank_bandwidth_bytes_per_s is not None:
        port, port_source = pe_buffer.bank_bandwidth_bytes_per_s, "port given in the design"
    else:
        port = technology.bank_port_bytes_per_s(pe_buffer.size_bytes / banks)
        port_source = "port from the technology table (one per bank, buffers.port_rule)"
    energy = costs.energy_per_byte_nj
    return StorageLevel(
        name="pe_buffer", capacity_bytes=pe_buffer.size_bytes, banks=banks,
        bank_bytes_per_cycle=port / clock, operands=frozenset(pe_buffer.holds),
        sharing="pe", instances=accelerator.pe_array.pes, read_nj_per_byte=energy,
        write_nj_per_byte=energy, multicast=pe_buffer.multicast,
        source=f"{bank_source}; {port_source}; energy: {costs.source}",
        access_bytes=float(pe_buffer.block_bytes))


def _main_memory_level(accelerator: Accelerator) -> StorageLevel:
    memory = accelerator.main_memory_costs()
    energy = memory.energy_per_byte_nj
    return StorageLevel(
        name="main_memory", capacity_bytes=None, banks=1,
        bank_bytes_per_cycle=memory.bandwidth_bytes_per_s / accelerator.clock_hz,
        operands=frozenset(OPERANDS), sharing="chip", instances=1,
        read_nj_per_byte=energy, write_nj_per_byte=energy, multicast=False,
        source=("one interface of the memory's bandwidth "
                + ("(given in the design)" if "bandwidth" in memory.overridden
                   else "(technology table)")),
        access_bytes=float(memory.access_bytes))


def _lane_fifo_level(accelerator: Accelerator) -> StorageLevel:
    """The input FIFO of each MAC lane: ``fifo_depth`` rows of
    ``macs_per_lane`` elements; its port delivers one row (one element per
    multiplier) per cycle.  Energy per byte is the FIFO's dynamic energy per
    busy cycle over the bytes of that row (the technology characterises the
    FIFO as a module, not per access)."""
    pe = accelerator.pe_array
    element = accelerator.data_width_bits / 8
    row = pe.macs_per_lane * element
    fifo = accelerator.module_costs("fifo")
    energy = fifo.dynamic_energy_per_cycle_pj * 1e-3 / row
    return StorageLevel(
        name="lane_fifo", capacity_bytes=math.floor(pe.fifo_depth * row), banks=1,
        bank_bytes_per_cycle=row, operands=frozenset({"activation", "weight"}),
        sharing="lane", instances=pe.pes * pe.lanes, read_nj_per_byte=energy,
        write_nj_per_byte=energy, multicast=False,
        source="one row of macs_per_lane elements per cycle; energy from the FIFO module",
        access_bytes=row)


@functools.lru_cache(maxsize=256)
def storage_levels(accelerator: Accelerator) -> tuple[StorageLevel, ...]:
    """The design's storage levels, outermost (main memory) first, down to
    the lane FIFOs (with the per-PE buffer, when the design has one, just
    above them).  Cached per design (designs are frozen and hashable)."""
    pe_buffer = accelerator.pe_buffer
    return (_main_memory_level(accelerator),
            *(_buffer_level(accelerator, buffer) for buffer in accelerator.buffers),
            *(() if pe_buffer is None else (_pe_buffer_level(accelerator, pe_buffer),)),
            _lane_fifo_level(accelerator))


def level(accelerator: Accelerator, name: str) -> StorageLevel:
    """The level called ``name`` (``main_memory``, ``weight_buffer``, ...)."""
    for candidate in storage_levels(accelerator):
        if candidate.name == name:
            return candidate
    names = ", ".join(candidate.name for candidate in storage_levels(accelerator))
    raise KeyError(f"no storage level {name!r}; this design has: {names}")


#: What the cost model does with a per-PE buffer (printed by ``tcc hw show``).
PE_BUFFER_COST_MODEL = (
    "per-PE buffer in the cost model: it keeps the input tiles of the classes it holds for "
    "its PE's lanes across waves, so the global buffer sends each tile to the PE once; its "
    "port (PEs x banks x port) bounds the lanes' reads (docs/cost-model.md, 'Per-PE buffer')")


def _size(capacity: int | None) -> str:
    if capacity is None:
        return "unbounded"
    from backends.elector.hwdsl import format_quantity

    return format_quantity(capacity, "size")


def _pj(nanojoules: float) -> str:
    picojoules = nanojoules * 1e3
    return f"{picojoules:,.0f}" if picojoules >= 1000 else f"{picojoules:.4g}"


def format_hierarchy(accelerator: Accelerator) -> str:
    """The storage levels as a table (one instance per row, instances
    counted), followed by the banking rule and its source."""
    from transcode_ir.tables import format_table

    clock = accelerator.clock_hz
    header = ("level", "capacity", "instances", "banks", "B/cycle/bank", "B/cycle",
              "GB/s", "operands", "sharing", "multicast", "pJ/access (bytes)")
    rows = []
    for lv in storage_levels(accelerator):
        read, write = lv.read_nj_per_byte * lv.access_bytes, lv.write_nj_per_byte * lv.access_bytes
        energy = (_pj(read) if read == write else f"{_pj(read)}/{_pj(write)}")
        energy += f" ({lv.access_bytes:g})"
        rows.append((lv.name, _size(lv.capacity_bytes), f"{lv.instances:,}", f"{lv.banks:,}",
                     f"{lv.bank_bytes_per_cycle:,.1f}", f"{lv.bytes_per_cycle:,.1f}",
                     f"{lv.bandwidth_bytes_per_s(clock) / 1e9:,.1f}",
                     "+".join(op for op in OPERANDS if op in lv.operands), lv.sharing,
                     "yes" if lv.multicast else "no", energy))
    lines = [f"storage hierarchy of {accelerator.name!r} (outermost first; B/cycle and GB/s "
             "per instance, at the design's clock; energy per access of the given bytes, "
             "read/write when they differ)",
             format_table(header, rows, align="lrrrrrrlllr")]
    given = [lv.name for lv in storage_levels(accelerator) if "given in the design" in lv.source]
    lines.append(textwrap.fill("banking assumption: " + banking_rule(accelerator.technology),
                               width=100, subsequent_indent="  "))
    lines.append(textwrap.fill("port assumption: " + accelerator.technology.port_rule_note,
                               width=100, subsequent_indent="  "))
    if accelerator.pe_buffer is not None:
        lines.append(textwrap.fill("per-PE buffer pricing: "
                                   + accelerator.technology.pe_buffer_note,
                                   width=100, subsequent_indent="  "))
        lines.append(textwrap.fill(PE_BUFFER_COST_MODEL, width=100, subsequent_indent="  "))
    if given:
        lines.append("design overrides (banks or port given in the file): " + ", ".join(given))
    return "\n".join(lines)
