"""ZigZag hardware descriptions (accelerator YAML) to and from ``.hwdsl``.

Target: ZigZag 3.8.5 (github.com/KULeuven-MICAS/zigzag, commit 3d12a96 of
2026-01-15), the schema of ``zigzag/parser/accelerator_validator.py``: a
``name``, ``memories`` (lowest level first; each with ``size`` in bits,
``r_cost``/``w_cost`` in pJ per access of ``bandwidth_min`` bits, ``area``,
``latency``, ``operands`` among I1/I2/O, ``ports`` with bandwidths in bits per
cycle and allocations, ``served_dimensions``) and an ``operational_array``
(``dimensions``, ``sizes``, ``unit_energy`` in pJ, ``unit_area``).
ZigZag has no clock: bandwidths per cycle are at the design's clock.

Export (:func:`export_zigzag`): the PE array is a 3-D operational array
D1 x D2 x D3 = PEs x lanes x MACs per lane; each level of
:func:`backends.elector.hierarchy.storage_levels` is a memory, innermost
first: the lane FIFO (I1 and I2, serving D3), the weight buffer (I2) and the
activation buffer (I1 and O), both serving the whole array, the optional
per-PE buffer (the operands it holds, serving D2 and D3: one copy per PE) and
the main memory (all three).  A memory's bandwidth is its level's banks x port (ZigZag
has no banks); its r_cost is the level's energy per byte x ``bandwidth_min``.
The mask buffer has no ZigZag operand; it, multicast, power gating and the
compute modules ZigZag does not model travel in the embedded ``.hwdsl``
comment block (:mod:`.common`).

Import (:func:`import_zigzag`): see :func:`read_native` for the subset read.
"""

from __future__ import annotations

from typing import Any

from backends.elector.design import Accelerator
from backends.elector.hierarchy import storage_levels
from backends.elector.interop.common import (
    ImportResult,
    Native,
    Reader,
    YamlMap,
    embed_design,
    import_native,
    split_array,
    tool_operands,
    where,
)

__all__ = ["ZIGZAG_VERSION", "export_zigzag", "import_zigzag", "looks_like_zigzag"]

#: The ZigZag release whose accelerator schema this module writes and reads.
ZIGZAG_VERSION = "3.8.5"

_ACCEPTED = (f"accepted: a ZigZag {ZIGZAG_VERSION} accelerator YAML (name, memories with size, "
             "r_cost, w_cost, area, latency, operands, ports, served_dimensions, and a "
             "non-IMC operational_array with dimensions and sizes); see docs/interop.md")
_OPERANDS = ("I1", "I2", "O")
_MAIN_MEMORY_BITS = 2**43  # ZigZag requires a size; main-memory capacity is not modelled
#: How a level is shared -> the array dimensions one instance serves.
_SERVED = {"chip": ["D1", "D2", "D3"], "pe": ["D2", "D3"], "lane": ["D3"]}


def looks_like_zigzag(tree: Any) -> bool:
    """Whether a parsed YAML file has ZigZag's top-level keys."""
    return isinstance(tree, dict) and "memories" in tree and "operational_array" in tree


# --------------------------------------------------------------------------- export


def _float(value: float) -> str:
    """A float ZigZag's validator (Cerberus ``float``) and PyYAML read as a float."""
    text = repr(float(value))
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def _per_cycle_bits(bytes_per_s: float, clock_hz: float) -> int:
    return max(1, round(bytes_per_s / clock_hz * 8))


def _memory(name: str, comment: str, size_bits: int, access_bits: int, energy_pj: float,
            area_mm2: float, operands: list[str], bandwidth_bits: int, served: list[str],
            shared_port: bool = False, mem_type: str = "sram") -> list[str]:
    """One ``memories`` entry; ``energy_pj`` is per access of ``access_bits``."""
    minimum = min(access_bits, bandwidth_bits)
    cost = energy_pj * minimum / access_bits
    reads = [f"{op}, tl" for op in operands] + (["O, th"] if "O" in operands else [])
    writes = [f"{op}, fh" for op in operands] + (["O, fl"] if "O" in operands else [])
    lines = [f"  {name}:  # {comment}",
             f"    size: {size_bits}",
             f"    r_cost: {_float(cost)}",
             f"    w_cost: {_float(cost)}",
             f"    area: {_float(area_mm2)}",
             "    latency: 1",
             f"    mem_type: {mem_type}",
             f"    operands: [{', '.join(operands)}]",
             "    ports:"]
    ports = [("rw_port_1", "read_write", reads + writes)] if shared_port else \
        [("r_port_1", "read", reads), ("w_port_1", "write", writes)]
    for port, kind, allocation in ports:
        lines += [f"      - name: {port}",
                  f"        type: {kind}",
                  f"        bandwidth_min: {minimum}",
                  f"        bandwidth_max: {bandwidth_bits}",
                  "        allocation:"]
        lines += [f"          - {entry}" for entry in allocation]
    lines.append(f"    served_dimensions: [{', '.join(served)}]")
    return lines


def export_zigzag(accelerator: Accelerator) -> str:
    """``accelerator`` as a ZigZag accelerator YAML (see the module docstring)."""
    a = accelerator
    clock = a.clock_hz
    pe = a.pe_array
    lane = a.module_costs("mac_lane")
    fifo = a.module_costs("fifo")
    lines = [
        (f"# ZigZag {ZIGZAG_VERSION} accelerator written by `tcc hw export --format zigzag` from "
        f"TransCODE design {a.name!r}."),
        (f"# Units: size in bits, bandwidth in bits per cycle at {clock / 1e6:g} MHz, r_cost/w_cost "
        "in pJ per access of bandwidth_min bits, area in mm2."),
        ("# D1 x D2 x D3 = PEs x MAC lanes per PE x MACs per lane.  Softmax, layer-norm and "
        "sparsity units,"),
        ("# the mask buffer and the mapping defaults are not ZigZag concepts: they travel in the "
        "comment block below."),
        "",
        f"name: {_name(a.name)}",
        "",
        "memories:",
    ]
    for level in reversed(storage_levels(a)):
        operands = [name for name, held in
                    zip(_OPERANDS, tool_operands(level.operands, level.sharing)) if held]
        if not operands:  # the mask buffer: DynaProp masks are no ZigZag operand
            lines += [f"  # {level.name} ({level.capacity_bytes:,} bytes) is in the comment "
                      "block below: ZigZag has no operand for sparsity masks", ""]
            continue
        if level.name == "main_memory":
            access = a.main_memory_costs().access_bytes
            size, area, mem_type = _MAIN_MEMORY_BITS, 0.0, "dram"
            comment = (f"{a.main_memory.label}; capacity and area are not modelled "
                       "(placeholders)")
        elif level.name == "pe_buffer":   # one per PE: serves D2 x D3 (its PE's lanes)
            access = a.pe_buffer.block_bytes
            size, area, mem_type = level.capacity_bytes * 8, a.pe_buffer_costs().area_mm2, "sram"
            comment = (f"{level.capacity_bytes:,} bytes in each of the {pe.pes:,} PEs "
                       f"(holds {'+'.join(a.pe_buffer.holds)})")
        elif level.name == "lane_fifo":
            access = level.bank_bytes_per_cycle
            size, area, mem_type = level.capacity_bytes * 8, fifo.area_mm2, "sram"
            comment = (f"{pe.fifo_depth}-deep FIFO of each MAC lane, rows of "
                       f"{pe.macs_per_lane} words")
        else:
            kind = level.name.removesuffix("_buffer")
            access = a.buffer(kind).block_bytes
            size, area, mem_type = level.capacity_bytes * 8, a.buffer_costs(kind).area_mm2, "sram"
            comment = f"{level.capacity_bytes:,} bytes"
        comment += (f", {level.banks} bank{'s' if level.banks > 1 else ''} of "
                    f"{level.bank_bytes_per_cycle * clock / 1e9:g} GB/s")
        lines += _memory(level.name, comment, size, round(access * 8),
                         level.read_nj_per_byte * access * 1000, area, operands,
                         max(1, round(level.bytes_per_cycle * 8)), _SERVED[level.sharing],
                         shared_port=level.name == "main_memory", mem_type=mem_type)
        lines.append("")
    lines += [
        "operational_array:",
        (f"  unit_energy: {_float(lane.dynamic_energy_per_cycle_pj / pe.macs_per_lane)}"
        "  # pJ per MAC: the MAC lane's dynamic energy per cycle / MACs per lane"),
        f"  unit_area: {_float(lane.area_mm2 / pe.macs_per_lane)}  # mm2 per MAC",
        "  dimensions: [D1, D2, D3]",
        f"  sizes: [{pe.pes}, {pe.lanes}, {pe.macs_per_lane}]",
        "",
        embed_design(a).rstrip("\n"),
    ]
    return "\n".join(lines) + "\n"


def _name(name: str) -> str:
    """A YAML-safe plain scalar for the design name."""
    import json

    plain = name.replace("-", "_").replace(".", "_")
    return name if name.replace("-", "").replace("_", "").isalnum() and plain.isidentifier() \
        else json.dumps(name)


# --------------------------------------------------------------------------- import


def import_zigzag(text: str, filename: str, tree: Any = None) -> ImportResult:
    """A ZigZag accelerator YAML as a TransCODE design, with notes."""
    return import_native(text, filename, "ZigZag", read_native, export_zigzag, tree)


def read_native(tree: Any, filename: str, base: Accelerator) -> Native:
    """The ``.hwdsl`` settings ZigZag's own keys give (module docstring):

    - ``operational_array.sizes``: PEs, lanes, MACs per lane
      (:func:`~.common.split_array`); ``unit_energy``/``unit_area`` are
      dropped (the technology's MAC lane applies); IMC arrays are refused.
    - the top memory (the last one holding every operand): main memory
      bandwidth (largest read port, bits per cycle at the design's clock) and
      energy per 64-byte access (``r_cost`` scaled from ``bandwidth_min`` bits);
    - memories serving the whole array: the weight buffer (holds I2 only) and
      the activation buffer (I1 and/or O); the highest such memory per role
      wins; one memory holding I2 with I1 or O is split in two halves (size
      and bandwidth);
      size and read bandwidth are read, ``r_cost``/``w_cost``/``area`` dropped
      (the technology's figures by size apply);
    - a memory holding I1 and I2 that serves only the last dimension is the
      lane FIFO (its depth in words); the first memory with one copy per PE
      (the sizes of the dimensions it does not serve multiply to the PE
      count) of at least one block is the per-PE buffer (size,
      operands held: I2 weight, I1/O activation; read bandwidth over the
      banking rule's banks); other per-PE or per-MAC memories are dropped.
    """
    read = Reader(filename, _ACCEPTED)
    native = Native()
    if not isinstance(tree, YamlMap):
        raise _top_error(filename, tree)
    if "name" in tree:
        native.set(("name",), read.text(tree, "name"), where(filename, tree, "name"))
    clock = base.clock_hz
    width = base.data_width_bits

    array = read.mapping(tree, "operational_array")
    if array.get("is_imc"):
        read.fail(array, "is_imc", "in-memory-computing arrays are not represented by the "
                  "TransCODE model (a digital PE array of MAC lanes)")
    dims = read.words(array, "dimensions")
    sizes_list = read.sequence(array, "sizes")
    sizes = [read.item_number(sizes_list, index) for index in range(len(sizes_list))]
    if len(dims) != len(sizes):
        read.fail(array, "sizes", f"has {len(sizes)} entries for {len(dims)} dimensions")
    _low, high = base.technology.parameter_range("mac_lane", "macs_per_lane")
    pes, lanes, macs = split_array(sizes, int(high))
    place = where(filename, array, "sizes")
    native.set(("pe_array", "pes"), pes, place)
    native.set(("pe_array", "lanes"), lanes, place)
    native.set(("pe_array", "macs_per_lane"), macs, place)
    if "unit_energy" in array or "unit_area" in array:
        native.drop(f"{where(filename, array, None)}: unit_energy {array.get('unit_energy')} pJ "
                    f"and unit_area {array.get('unit_area')} dropped: a MAC costs what the "
                    "technology's MAC lane of the imported size gives")

    memories = read.mapping(tree, "memories")
    if not memories:
        read.fail(memories, None, "has no memories")
    levels = []
    for name, memory in memories.items():
        if not isinstance(memory, YamlMap):
            read.fail(memories, name, f"must be a mapping, got {memory!r}")
        operands = read.words(memory, "operands")
        for index, operand in enumerate(operands):
            if operand not in _OPERANDS:
                read.fail(memory["operands"], index, f"unknown operand {operand!r}; accepted: "
                          + ", ".join(_OPERANDS))
        served = read.words(memory, "served_dimensions")
        for index, dim in enumerate(served):
            if dim not in dims:
                read.fail(memory["served_dimensions"], index,
                          f"{dim!r} is not a dimension of the operational array "
                          f"({', '.join(dims)})")
        size = read.number(memory, "size", whole=True)
        ports = read.sequence(memory, "ports")
        read_bits, access_bits = 0, None
        for index, port in enumerate(ports):
            if not isinstance(port, YamlMap):
                read.fail(ports, index, "must be a mapping with name, type, bandwidth_min, "
                          "bandwidth_max and allocation")
            kind = read.text(port, "type")
            if kind not in ("read", "write", "read_write"):
                read.fail(port, "type", f"unknown port type {kind!r}; accepted: read, write, "
                          "read_write")
            minimum = read.number(port, "bandwidth_min", whole=True)
            maximum = read.number(port, "bandwidth_max", whole=True)
            if minimum > maximum:
                read.fail(port, "bandwidth_min", f"{minimum} is above bandwidth_max {maximum}")
            if kind != "write" and maximum > read_bits:
                read_bits, access_bits = maximum, minimum
        levels.append((name, memory, set(operands), set(served), size, read_bits, access_bits))

    used = set().union(*(level[2] for level in levels))
    tops = [level for level in levels if level[2] >= used]
    if not tops:
        read.fail(memories, None, "no memory holds every operand (" + ", ".join(sorted(used))
                  + "); the top one is read as the main memory")
    top = tops[-1]
    name, memory, _, _, _, read_bits, access_bits = top
    place = where(filename, memories, name)
    if read_bits:
        native.set(("main_memory", "bandwidth"), read_bits * clock / 8, place)
    cost = read.number(memory, "r_cost", required=False, positive=False)
    if cost is not None and access_bits:
        native.set(("main_memory", "energy_per_access"),
                   cost * (base.main_memory_costs().access_bytes * 8) / access_bits / 1000,
                   where(filename, memory, "r_cost"))
    native.drop(f"{place}: size and area of the top memory {name!r} dropped: main-memory "
                "capacity and area are not modelled")

    all_dims = set(dims)
    roles: dict[str, tuple] = {}
    pe_buffer_read = False
    for level in levels:
        if level is top:
            continue
        name, memory, operands, served, size, read_bits, _ = level
        place = where(filename, memories, name)
        if served >= all_dims:
            if "I2" in operands and operands & {"I1", "O"}:
                roles["weight"] = roles["activation"] = level
            elif "I2" in operands:
                roles["weight"] = level
            else:
                roles["activation"] = level
            continue
        row = width * macs   # the lane FIFO's row: one word per multiplier
        if {"I1", "I2"} <= operands and served == {dims[-1]} and size % row == 0:
            native.set(("pe_array", "fifo_depth"), size // row, place)
            continue
        copies = 1
        for dim, count in zip(dims, sizes):
            if dim not in served:
                copies *= count
        block = base.technology.buffer_block_sizes[0]
        if copies == pes > 1 and not pe_buffer_read:   # one copy per PE: the per-PE buffer
            if size // 8 >= block:
                pe_buffer_read = True
                _read_pe_buffer(native, place, operands, size, read_bits, clock)
                continue
            native.drop(f"{place}: memory {name!r} ({size:,} bits, one per PE) dropped: a "
                        f"per-PE buffer holds at least one {block}-byte block")
            continue
        native.drop(f"{place}: memory {name!r} ({size:,} bits for {', '.join(sorted(operands))}"
                    f", {copies:,} copies) dropped: besides the lane FIFO the model has one per-PE "
                    "buffer (the first memory with one copy per PE)")
    for kind in ("weight", "activation"):
        if kind not in roles:
            native.drop(f"{where(filename, memories, None)}: no memory serving the whole array "
                        f"holds {'I2' if kind == 'weight' else 'I1 or O'}; the {kind} buffer's "
                        "size comes from the embedded design or the defaults")
            continue
        name, memory, operands, served, size, read_bits, _ = roles[kind]
        place = where(filename, memories, name)
        shared = roles.get("weight") is roles.get("activation")
        size_bytes = size // 8 // (2 if shared else 1)
        native.set((f"{kind}_buffer", "size"), size_bytes, place)
        if read_bits:   # a shared memory's port is split with its capacity
            native.set((f"{kind}_buffer", "bandwidth"),
                       read_bits * clock / 8 / (2 if shared else 1), place)
        native.drop(f"{place}: r_cost/w_cost/area of {name!r} dropped: the {kind} buffer costs "
                    "what the technology's tables give for its size" if not shared else
                    f"{place}: {name!r} holds weights and activations: split into a weight and "
                    "an activation buffer of half its size each; its r_cost/w_cost/area dropped")
    for kind, level in roles.items():
        for other in levels:
            if other is not level and other is not top and other[3] >= all_dims \
                    and _role(other[2]) == kind and levels.index(other) < levels.index(level):
                native.drop(f"{where(filename, memories, other[0])}: {other[0]!r} dropped: a "
                            f"higher memory ({level[0]!r}) is the {kind} buffer; the model has "
                            "one global buffer per role")
    return native


def _read_pe_buffer(native: Native, place: str, operands: set[str], size_bits: int,
                    read_bits: int, clock: float) -> None:
    """A memory with one copy per PE as the design's ``pe_buffer``."""
    from backends.elector.design import OPERAND_CLASSES
    from backends.elector.hierarchy import default_banks
    from backends.elector.technology import load_technology

    held = {"weight"} if "I2" in operands else set()
    if operands & {"I1", "O"}:
        held.add("activation")
    size_bytes = size_bits // 8
    native.set(("pe_buffer", "size"), size_bytes, place)
    native.set(("pe_buffer", "holds"), tuple(op for op in OPERAND_CLASSES if op in held), place)
    if read_bits:   # ZigZag has no banks: the port is the bandwidth over the rule's banks
        banks = default_banks(size_bytes, load_technology("14nm"))
        native.set(("pe_buffer", "bank_bandwidth"), read_bits * clock / 8 / banks, place)


def _role(operands: set[str]) -> str:
    return "weight" if operands == {"I2"} else "activation"


def _top_error(filename: str, tree: Any) -> Exception:
    from backends.elector.interop.common import InteropError

    return InteropError(f"{filename}: the top level must be a mapping, got "
                        f"{type(tree).__name__}; {_ACCEPTED}")
