"""Timeloop/Accelergy architecture descriptions (v0.4 YAML) to and from ``.hwdsl``.

Target: the v0.4 architecture format of Timeloop and Accelergy as the
timeloop-accelergy-exercises document it (github.com/Accelergy-Project/
timeloop-accelergy-exercises, ``workspace/cheatsheets/3_architecture.yaml``
at commit 2d55108, 2025-04-09) and Timeloop's buffer model reads it
(github.com/NVlabs/timeloop ``src/model/buffer.cpp`` at 4cf6d4c,
2025-03-31): ``architecture: {version: 0.4, nodes: [...]}`` with ``!Container``
(``spatial: {meshX, meshY}``), ``!Component`` (``class``, ``attributes``,
``constraints``) and ``!Parallel`` nodes, outermost first.  Storage attributes:
``depth`` (rows), ``width`` (bits per row, a multiple of ``datawidth``),
``datawidth`` (bits per word), ``n_banks``, ``read_bandwidth`` /
``write_bandwidth`` in words per cycle; the clock is ``global_cycle_seconds``.

Export (:func:`export_timeloop`), from
:func:`backends.elector.hierarchy.storage_levels`: a top container
(technology, clock, data width), the DRAM, a ``!Parallel`` of the three
buffers (activation keeps Inputs and Outputs, weight keeps Weights, mask
bypasses all three: masks are no Timeloop dataspace; ``n_banks`` = the
level's banks, ``read_bandwidth`` = banks x port; multicast off is
``spatial: {no_reuse: [...]}``), a PE container (``meshX`` = PEs), the optional per-PE buffer (a storage below the
PE fan-out: one per PE, keeping the dataspaces of the operands it holds), a lane
container (``meshY`` = lanes), the lane FIFO (keeps Inputs and Weights; rows
of MACs-per-lane words) and the MAC (``meshX`` = MACs per lane).  Rows are ``datawidth * floor(block bits /
datawidth)`` bits wide (Timeloop requires a whole number of words per row),
so ``depth`` is rounded up.  Energies and areas are Accelergy's to estimate;
ours, and the modules Timeloop does not model, travel in the embedded
``.hwdsl`` comment block (:mod:`.common`).
"""

from __future__ import annotations

import json
import math
from typing import Any

from backends.elector.design import Accelerator
from backends.elector.hierarchy import StorageLevel, storage_levels
from backends.elector.interop.common import (
    ImportResult,
    InteropError,
    Native,
    Reader,
    YamlList,
    YamlMap,
    embed_design,
    import_native,
    split_array,
    tool_operands,
    where,
)

__all__ = ["TIMELOOP_VERSION", "export_timeloop", "import_timeloop", "looks_like_timeloop"]

#: The architecture format version written and read.
TIMELOOP_VERSION = "0.4"

_ACCEPTED = (f"accepted: a Timeloop/Accelergy v{TIMELOOP_VERSION} architecture (architecture: "
             "{version: 0.4, nodes: [...]} with !Container, !Component, !Parallel nodes; "
             "storage attributes depth, width, datawidth, read_bandwidth; rendered, without "
             "Jinja); see docs/interop.md")
#: Our main-memory type -> a DRAM type Accelergy's DRAM table knows.
_DRAM_TYPES = {"dram": "LPDDR4", "hbm": "HBM2", "rram": "LPDDR4"}
_DATASPACES = {"inputs": "I", "weights": "W", "outputs": "O"}
_DATASPACE_NAMES = ("Inputs", "Weights", "Outputs")
_COMPUTE = ("mac", "compute", "multiplier", "adder", "alu")
_STORAGE = ("sram", "regfile", "storage", "buffer", "register", "reg", "cache", "fifo")


def looks_like_timeloop(tree: Any) -> bool:
    """Whether a parsed YAML file has Timeloop's top-level ``architecture``."""
    return isinstance(tree, dict) and "architecture" in tree


# --------------------------------------------------------------------------- export


def _row_bits(block_bytes: int, word_bits: int) -> int:
    return max(word_bits, block_bytes * 8 // word_bits * word_bits)


def _storage(name: str, comment: str, klass: str, depth: int, row: int, word: int,
             banks: int | None, bandwidth: str, keep: list[str], bypass: list[str],
             multicast: bool, indent: str) -> list[str]:
    lines = [f"{indent}- !Component  # {comment}",
             f"{indent}  name: {name}",
             f"{indent}  class: {klass}",
             f"{indent}  attributes:",
             f"{indent}    depth: {depth}",
             f"{indent}    width: {row}",
             f"{indent}    datawidth: {word}"]
    if banks is not None:
        lines.append(f"{indent}    n_banks: {banks}")
    lines += [f"{indent}    read_bandwidth: {bandwidth}",
              f"{indent}    write_bandwidth: {bandwidth}"]
    keep_text = f"keep: [{', '.join(keep)}], " if keep else ""
    # no multicast: Timeloop's spatial no_reuse (no multicast or reduction from this level)
    spatial = f", spatial: {{no_reuse: [{', '.join(keep)}]}}" if not multicast and keep else ""
    lines.append(f"{indent}  constraints: {{dataspace: {{{keep_text}"
                 f"bypass: [{', '.join(bypass)}]}}{spatial}}}")
    return lines


def export_timeloop(accelerator: Accelerator) -> str:
    """``accelerator`` as a Timeloop/Accelergy v0.4 architecture (module docstring)."""
    a = accelerator
    clock, word = a.clock_hz, a.data_width_bits
    pe = a.pe_array
    levels = {level.name: level for level in storage_levels(a)}
    memory = levels["main_memory"]
    memory_words = _words(memory.bytes_per_cycle, word)
    lines = [
        (f"# Timeloop/Accelergy v{TIMELOOP_VERSION} architecture written by `tcc hw export "
         f"--format timeloop` from TransCODE design {a.name!r}."),
        ("# Bandwidths in words per cycle; sizes: depth rows x width bits.  Dataspaces are "
         "Timeloop's Inputs, Weights, Outputs."),
        ("# Softmax, layer-norm and sparsity units, the mapping defaults and TransCODE's "
         "energies and areas travel in the comment block below."),
        "architecture:",
        f"  version: {TIMELOOP_VERSION}",
        "  nodes:",
        "  - !Container  # the accelerator",
        f"    name: {json.dumps(a.name)}",
        "    attributes:",
        f"      technology: {json.dumps(a.technology.reference)}",
        f"      global_cycle_seconds: {_yaml_float(1 / clock)}",
        f"      datawidth: {word}",
        f"  - !Component  # {a.main_memory.label}, "
        f"{memory.bandwidth_bytes_per_s(clock) / 1e9:g} GB/s",
        "    name: main_memory",
        "    class: DRAM",
        "    attributes:",
        f"      type: {_DRAM_TYPES.get(a.main_memory.type, 'LPDDR4')}",
        f"      width: {_row_bits(a.main_memory_costs().access_bytes, word)}",
        f"      datawidth: {word}",
        f"      read_bandwidth: {memory_words}",
        f"      write_bandwidth: {memory_words}",
        "  - !Parallel  # the on-chip buffers, side by side",
        "    nodes:",
    ]
    for buffer in a.buffers:
        level = levels[buffer.block_name]
        keep, bypass = _dataspaces(level)
        note = " (DynaProp masks: no Timeloop dataspace)" if buffer.kind == "mask" else ""
        row = _row_bits(buffer.block_bytes, word)
        lines += _storage(buffer.block_name,
                          f"{buffer.size_bytes:,} bytes, {level.banks} x "
                          f"{level.bank_bytes_per_cycle * clock / 1e9:g} GB/s{note}", "SRAM",
                          math.ceil(buffer.size_bytes * 8 / row), row, word, level.banks,
                          _words(level.bytes_per_cycle, word), keep, bypass,
                          level.multicast, "    ")
    fifo = levels["lane_fifo"]
    lines += [
        "  - !Container  # processing elements",
        "    name: PE",
        f"    spatial: {{meshX: {pe.pes}}}",
    ]
    if a.pe_buffer is not None:   # one per PE: storage below the PE fan-out
        level = levels["pe_buffer"]
        keep, bypass = _dataspaces(level)
        row = _row_bits(a.pe_buffer.block_bytes, word)
        note = "" if keep else " (masks only: no Timeloop dataspace)"
        lines += _storage("pe_buffer",
                          f"{level.capacity_bytes:,} bytes in each PE, {level.banks} x "
                          f"{level.bank_bytes_per_cycle * clock / 1e9:g} GB/s{note}", "SRAM",
                          math.ceil(level.capacity_bytes * 8 / row), row, word, level.banks,
                          _words(level.bytes_per_cycle, word), keep, bypass,
                          level.multicast, "  ")
    lines += [
        "  - !Container  # MAC lanes of a PE",
        "    name: lane",
        f"    spatial: {{meshY: {pe.lanes}}}",
    ]
    lines += _storage("lane_fifo", f"{pe.fifo_depth}-deep FIFO of each lane, one row per cycle",
                      "regfile", pe.fifo_depth, pe.macs_per_lane * word, word, None,
                      _words(fifo.bytes_per_cycle, word), *_dataspaces(fifo), True, "  ")
    lines += [
        f"  - !Component  # the multipliers of a lane ({pe.nonlinearity} lane)",
        "    name: mac",
        "    class: intmac",
        f"    spatial: {{meshX: {pe.macs_per_lane}}}",
        "    attributes:",
        f"      multiplier_width: {word}",
        f"      adder_width: {word}",
        "",
        embed_design(a).rstrip("\n"),
    ]
    return "\n".join(lines) + "\n"


def _dataspaces(level: StorageLevel) -> tuple[list[str], list[str]]:
    """(keep, bypass): Timeloop's dataspaces a level holds and those it passes."""
    held = tool_operands(level.operands, level.sharing)
    keep = [name for name, kept in zip(_DATASPACE_NAMES, held) if kept]
    return keep, [name for name in _DATASPACE_NAMES if name not in keep]


def _words(bytes_per_cycle: float, word_bits: int) -> str:
    return repr(bytes_per_cycle * 8 / word_bits)


def _yaml_float(value: float) -> str:
    text = repr(float(value))
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


# --------------------------------------------------------------------------- import


def import_timeloop(text: str, filename: str, tree: Any = None) -> ImportResult:
    """A Timeloop/Accelergy v0.4 architecture as a TransCODE design, with notes."""
    return import_native(text, filename, "Timeloop", read_native, export_timeloop, tree)


class _Walk:
    """State of one pass over the node tree, outermost first."""

    def __init__(self, read: Reader, base: Accelerator, native: Native) -> None:
        self.read = read
        self.base = base
        self.native = native
        self.factors: list[int] = []
        self.fanout = 1
        self.clock = base.clock_hz
        self.word = base.data_width_bits
        self.main_memory = False
        self.main_memory_bits: tuple[float, str] | None = None
        self.roles: dict[str, tuple[YamlMap, int, float | None, int | None, bool]] = {}
        self.compute: YamlMap | None = None
        self.lane_storage: list[tuple[YamlMap, str, set[str], int, Any]] = []
        #: id(node) -> (fan-out above it, bits, read bits/cycle, n_banks, multicast)
        self.inner_storage: dict[int, tuple[int, int, float | None, int | None, bool]] = {}


def read_native(tree: Any, filename: str, base: Accelerator) -> Native:
    """The ``.hwdsl`` settings Timeloop's own keys give:

    - attributes of the containers above the PE array (inner ones win) and
      ``variables``: ``global_cycle_seconds`` the clock (bandwidths per
      cycle are read at it), ``datawidth`` the data width when the
      technology has it, ``technology`` dropped when it is not ours;
    - the spatial factors (``meshX``, ``meshY``) from the outermost container
      to the compute component: PEs, lanes, MACs per lane
      (:func:`~.common.split_array`);
    - the first component whose class names DRAM: main-memory type (HBM* is
      ``hbm``, anything else ``dram``) and bandwidth (``read_bandwidth``);
    - storage above every spatial fanout: by the dataspaces it keeps, the
      weight buffer (Weights only), the activation buffer (Inputs and/or
      Outputs), the mask buffer (keeps none and is named ``*mask*``); one
      holding weights with inputs or outputs is split in halves; size from
      ``depth`` x ``width`` (or ``entries``, ``sizeKB``) and bandwidth from
      ``read_bandwidth`` (the whole buffer), ``n_banks`` the banks, and a
      ``spatial: {no_reuse: [...]}`` constraint turns multicast off;
    - the last storage above the compute that keeps Inputs and Weights inside
      the fanout: the lane FIFO (``depth``: its rows); the first other storage
      below a fan-out equal to the PE count that keeps a dataspace: the
      per-PE buffer (Weights: weight, Inputs/Outputs: activation; size,
      ``n_banks``, port = ``read_bandwidth`` / banks, multicast); other
      per-PE storage is dropped with a note.
    """
    read = Reader(filename, _ACCEPTED)
    native = Native()
    if not isinstance(tree, YamlMap):
        raise InteropError(f"{filename}: the top level must be a mapping, got "
                           f"{type(tree).__name__}; {_ACCEPTED}")
    architecture = read.mapping(tree, "architecture")
    if "subtree" in architecture:
        read.fail(architecture, "subtree", "the v0.3 form (subtree/local) is not read; convert "
                  "it to v0.4 nodes (timeloopfe does)")
    version = architecture.get("version")
    if str(version) != TIMELOOP_VERSION:
        read.fail(architecture, "version" if "version" in architecture else None,
                  f"version {version!r} is not supported")
    nodes = read.sequence(architecture, "nodes")
    walk = _Walk(read, base, native)
    variables = tree.get("variables")
    if isinstance(variables, YamlMap) and "global_cycle_seconds" in variables:
        seconds = read.number(variables, "global_cycle_seconds")
        walk.clock = 1 / seconds
        native.set(("clock",), walk.clock, where(filename, variables, "global_cycle_seconds"))
    _walk_nodes(walk, nodes, {}, top=True)
    if walk.compute is None:
        read.fail(nodes, None, "no compute component (class intmac, fpmac, mac, compute, ...) "
                  "ends the hierarchy")
    _low, high = base.technology.parameter_range("mac_lane", "macs_per_lane")
    pes, lanes, macs = split_array(walk.factors, int(high))
    place = where(filename, walk.compute, None)
    native.set(("pe_array", "pes"), pes, place)
    native.set(("pe_array", "lanes"), lanes, place)
    native.set(("pe_array", "macs_per_lane"), macs, place)
    if walk.lane_storage:
        node, name, keeps, words, depth = walk.lane_storage[-1]
        if {"I", "W"} <= keeps and isinstance(depth, int) and depth > 0:
            native.set(("pe_array", "fifo_depth"), depth, where(filename, node, "attributes"))
            walk.lane_storage.pop()
        base_block = base.technology.buffer_block_sizes[0]
        for node, name, keeps, words, _depth in list(walk.lane_storage):
            fanout, bits, bandwidth, banks, multicast = walk.inner_storage[id(node)]
            if fanout == pes > 1 and keeps and ("pe_buffer", "size") not in native.settings \
                    and bits // 8 >= base_block:
                _read_pe_buffer(native, where(filename, node, "attributes"), keeps, bits,
                                bandwidth, banks, multicast, walk.clock)
                continue
            native.drop(f"{where(filename, node, None)}: storage {name!r} ({words:,} words "
                        "inside the PE array) dropped: the model has one per-PE buffer (the first "
                        f"storage with one copy per PE, of at least {base_block} bytes) and the "
                        "lane FIFO")
    for kind in ("weight", "activation"):
        if kind not in walk.roles:
            native.drop(f"{where(filename, nodes, None)}: no storage above the PE array keeps "
                        f"{'Weights' if kind == 'weight' else 'Inputs or Outputs'}; the {kind} "
                        "buffer's size comes from the embedded design or the defaults")
    shared = walk.roles.get("weight") is not None and \
        walk.roles.get("weight") is walk.roles.get("activation")
    for kind, (node, bits, bandwidth, banks, multicast) in walk.roles.items():
        place = where(filename, node, "attributes")
        half = 2 if shared and kind != "mask" else 1
        native.set((f"{kind}_buffer", "size"), bits // 8 // half, place)
        if bandwidth is not None:   # bits per cycle, at the clock the whole file gives
            native.set((f"{kind}_buffer", "bandwidth"), bandwidth / 8 * walk.clock / half, place)
        if banks is not None:
            native.set((f"{kind}_buffer", "banks"), max(1, banks // half), place)
        native.set((f"{kind}_buffer", "multicast"), multicast, place)
    if walk.main_memory_bits is not None:
        bits, place = walk.main_memory_bits
        native.set(("main_memory", "bandwidth"), bits / 8 * walk.clock, place)
    if shared:
        native.drop(f"{where(filename, walk.roles['weight'][0], None)}: one storage keeps "
                    "weights and activations: split into a weight and an activation buffer of "
                    "half its size each")
    return native


def _read_pe_buffer(native: Native, place: str, keeps: set[str], bits: int,
                    bandwidth: float | None, banks: int | None, multicast: bool,
                    clock: float) -> None:
    """A storage with one copy per PE as the design's ``pe_buffer``: Weights
    is weight, Inputs/Outputs activation; size, banks, port (the read
    bandwidth over the banks) and multicast."""
    from backends.elector.design import OPERAND_CLASSES

    held = {"weight"} if "W" in keeps else set()
    if keeps & {"I", "O"}:
        held.add("activation")
    native.set(("pe_buffer", "size"), bits // 8, place)
    native.set(("pe_buffer", "holds"), tuple(op for op in OPERAND_CLASSES if op in held), place)
    if banks is not None:
        native.set(("pe_buffer", "banks"), banks, place)
    if bandwidth is not None:
        native.set(("pe_buffer", "bank_bandwidth"), bandwidth / 8 * clock / (banks or 1), place)
    native.set(("pe_buffer", "multicast"), multicast, place)


def _walk_nodes(walk: _Walk, nodes: YamlList, inherited: dict[str, Any], top: bool = False
                ) -> None:
    read = walk.read
    for index, node in enumerate(nodes):
        if not isinstance(node, YamlMap):
            if node == "" or node is None:   # `- !Nothing` with no mapping
                continue
            read.fail(nodes, index, f"must be a node (!Container, !Component, !Parallel), "
                      f"got {node!r}")
        tag = node.tag
        if tag in ("Parallel", "Hierarchical"):
            inner = read.sequence(node, "nodes")
            _walk_nodes(walk, inner, dict(inherited))
            continue
        if tag == "Nothing":
            continue
        attributes = read.mapping(node, "attributes", required=False) or YamlMap()
        merged = {**inherited, **attributes}
        name = read.text(node, "name", required=tag in ("Container", "Component"))
        for factor in _spatial(read, node):
            walk.factors.append(factor)
            walk.fanout *= factor
        if tag == "Container" or tag == "":
            if tag == "" and "class" in node:
                _component(walk, node, name, merged)
                continue
            if walk.fanout == 1 and attributes:   # containers above the PE array
                _top_attributes(walk, attributes)
            if top and index == 0 and "name" in node:
                walk.native.set(("name",), name, where(walk.read.filename, node, "name"))
            inherited.update(attributes)
            continue
        if tag != "Component":
            read.fail(nodes, index, f"unknown node tag !{tag}; accepted: !Container, "
                      "!Component, !Parallel, !Hierarchical, !Nothing")
        _component(walk, node, name, merged)


def _spatial(read: Reader, node: YamlMap) -> list[int]:
    spatial = read.mapping(node, "spatial", required=False)
    if spatial is None:
        return []
    unknown = [key for key in spatial if key not in ("meshX", "meshY")]
    if unknown:
        read.fail(spatial, unknown[0], "unknown spatial key; accepted: meshX, meshY")
    return [read.number(spatial, key, whole=True) for key in ("meshX", "meshY")
            if key in spatial]


def _top_attributes(walk: _Walk, attributes: YamlMap) -> None:
    read, native, filename = walk.read, walk.native, walk.read.filename
    if "global_cycle_seconds" in attributes:
        walk.clock = 1 / read.number(attributes, "global_cycle_seconds")
        native.set(("clock",), walk.clock, where(filename, attributes, "global_cycle_seconds"))
    if "datawidth" in attributes:
        walk.word = read.number(attributes, "datawidth", whole=True)
        widths = walk.base.technology.data_widths_bits
        if walk.word in widths:
            native.set(("data_width",), walk.word, where(filename, attributes, "datawidth"))
        else:
            native.drop(f"{where(filename, attributes, 'datawidth')}: datawidth {walk.word} bits "
                        f"dropped: technology {walk.base.technology.reference!r} characterises "
                        f"{', '.join(f'{w} bits' for w in widths)} (sizes are read in bits, so "
                        "buffer capacities are kept)")
    if "technology" in attributes:
        technology = read.text(attributes, "technology")
        if technology != walk.base.technology.reference:
            native.drop(f"{where(filename, attributes, 'technology')}: technology {technology!r} "
                        f"dropped: costs come from TransCODE's {walk.base.technology.reference!r}"
                        " tables")


def _component(walk: _Walk, node: YamlMap, name: str, attributes: dict[str, Any]) -> None:
    read, native, filename = walk.read, walk.native, walk.read.filename
    klass = " ".join(str(node.get(key, "")) for key in ("class", "subclass")).lower()
    if walk.compute is not None:
        read.fail(node, None, f"a component below the compute component "
                  f"{walk.compute.get('name')!r}; the compute is the leaf of the hierarchy")
    if "dram" in klass:
        if walk.main_memory:
            native.drop(f"{where(filename, node, None)}: second DRAM {name!r} dropped")
            return
        walk.main_memory = True
        memory_type = str(attributes.get("type", "")).lower()
        kind = "hbm" if "hbm" in memory_type else "dram"
        place = where(filename, node, "attributes")
        native.set(("main_memory", "type"), kind, place)
        configs = walk.base.technology.main_memory_configs(kind)
        config = walk.base.main_memory.config
        if walk.base.main_memory.type != kind or config not in configs:
            config = configs[0]
        native.set(("main_memory", "config"), tuple(int(p) for p in config.split("-")), place)
        bits = _bits_per_cycle(walk, node)
        if bits is not None:
            walk.main_memory_bits = (bits, place)
        return
    if any(word in klass for word in _COMPUTE) and not any(word in klass for word in _STORAGE):
        walk.compute = node
        return
    bits = _size_bits(walk, node, attributes)
    if bits is None:
        native.drop(f"{where(filename, node, None)}: component {name!r} (class {klass.strip()!r}"
                    ") dropped: neither storage with a size nor compute")
        return
    keeps = _keeps(walk, node)
    if walk.fanout > 1:
        word = int(attributes.get("datawidth", walk.word) or walk.word)
        holder = node.get("attributes")
        depth = holder.get("depth") if isinstance(holder, YamlMap) else None
        walk.lane_storage.append((node, name, keeps, bits // word, depth))
        banks = read.number(holder, "n_banks", required=False, whole=True) \
            if isinstance(holder, YamlMap) else None
        walk.inner_storage[id(node)] = (walk.fanout, bits, _bits_per_cycle(walk, node), banks,
                                        _multicast(walk, node))
        return
    if keeps == set():
        role = "mask" if "mask" in name.lower() else None
    elif keeps == {"W"}:
        role = "weight"
    elif "W" not in keeps:
        role = "activation"
    else:
        role = "shared"
    if role is None:
        native.drop(f"{where(filename, node, None)}: storage {name!r} keeps no dataspace and is "
                    "not a mask buffer: dropped")
        return
    holder = node.get("attributes")
    banks = read.number(holder, "n_banks", required=False, whole=True) \
        if isinstance(holder, YamlMap) else None
    entry = (node, bits, _bits_per_cycle(walk, node), banks, _multicast(walk, node))
    for kind in (("weight", "activation") if role == "shared" else (role,)):
        if kind in walk.roles:
            native.drop(f"{where(filename, node, None)}: storage {name!r} dropped: "
                        f"{walk.roles[kind][0].get('name')!r} above it is the {kind} buffer; "
                        "the model has one global buffer per role")
            continue
        walk.roles[kind] = entry


def _keeps(walk: _Walk, node: YamlMap) -> set[str]:
    """The dataspaces a storage keeps (I, W, O), from its dataspace constraints."""
    read = walk.read
    constraints = read.mapping(node, "constraints", required=False)
    dataspace = read.mapping(constraints, "dataspace", required=False) if constraints else None
    if dataspace is None:
        return {"I", "W", "O"}

    def names(key: str) -> set[str]:
        found = set()
        for index, word in enumerate(read.words(dataspace, key, required=False)):
            if word.lower() not in _DATASPACES:
                read.fail(dataspace[key], index, f"dataspace {word!r} is not one of Timeloop's "
                          "Inputs, Weights, Outputs (the names this import maps to buffers)")
            found.add(_DATASPACES[word.lower()])
        return found

    if "keep_only" in dataspace:
        return names("keep_only")
    keep = names("keep")
    bypass = names("bypass")
    return keep if "keep" in dataspace and not bypass else ({"I", "W", "O"} - bypass) | keep


def _multicast(walk: _Walk, node: YamlMap) -> bool:
    """False when the storage's spatial constraints forbid reuse (multicast)."""
    constraints = node.get("constraints")
    spatial = constraints.get("spatial") if isinstance(constraints, YamlMap) else None
    if not isinstance(spatial, YamlMap) or "no_reuse" not in spatial:
        return True
    return not walk.read.words(spatial, "no_reuse")


def _size_bits(walk: _Walk, node: YamlMap, attributes: dict[str, Any]) -> int | None:
    read = walk.read
    holder = node.get("attributes")
    if not isinstance(holder, YamlMap):
        return None
    word = read.number(holder, "datawidth", required=False, whole=True) or walk.word
    if "entries" in holder:
        return read.number(holder, "entries", whole=True) * word
    if "sizeKB" in holder:
        return int(read.number(holder, "sizeKB") * 1024 * 8)
    if "depth" in holder:
        depth = read.number(holder, "depth", whole=True)
        width = read.number(holder, "width", required=False, whole=True) or word
        if width % word:
            read.fail(holder, "width", f"{width} bits is not a whole number of {word}-bit words "
                      "(Timeloop requires it too)")
        return depth * width
    return None


def _bits_per_cycle(walk: _Walk, node: YamlMap) -> float | None:
    """``read_bandwidth`` (words per cycle) in bits per cycle, or None."""
    holder = node.get("attributes")
    if not isinstance(holder, YamlMap) or "read_bandwidth" not in holder:
        return None
    words = walk.read.number(holder, "read_bandwidth")
    word = walk.read.number(holder, "datawidth", required=False, whole=True) or walk.word
    return words * word
