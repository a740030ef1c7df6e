"""``tcc hw export/import``: every library design through ZigZag and Timeloop
and back (same design, same area, same analytical costs), edits in the
tool's own keys, foreign files without the embedded design, and errors."""

from __future__ import annotations

import re

import pytest

from backends.elector import area_breakdown, format_design, list_library, resolve_design
from backends.elector.interop import export_design, import_design
from backends.elector.interop.common import BLOCK_BEGIN, InteropError
from tools.cli import main
from transcode_ir import Builder, Function, Module, TensorType

DESIGNS = [entry.name for entry in list_library() if entry.kind == "design"]
FORMATS = ("zigzag", "timeloop")


def _strip_block(text: str) -> str:
    """A foreign file: the exported text without the embedded design."""
    return text[:text.index(BLOCK_BEGIN)]


@pytest.fixture(scope="module")
def static():
    """One small function with a matrix product, a softmax and a layer-norm:
    work for the MAC lanes, the softmax and layer-norm modules and every
    storage level (built once; mapping is per design)."""
    from backends.elector.tiling import StaticFunction

    module = Module("interop")
    func = module.add_function(Function("forward", [TensorType((2, 32, 64)),
                                                    TensorType((2, 64, 32)),
                                                    TensorType((32,))], ["a", "b", "g"]))
    builder = Builder(func)
    product = builder.op("tensor.matmul", func.args[0], func.args[1], loc="scores")
    probabilities = builder.op("nn.softmax", product, axis=-1, loc="probs")
    normalised = builder.op("nn.layer_norm", probabilities, func.args[2], loc="norm")
    func.set_outputs([normalised], ["out"])
    return StaticFunction(module, "forward")


def _costs(static, design):
    from backends.elector.compile_pipeline import evaluate
    from backends.elector.mapping import clear_caches

    clear_caches()
    result = evaluate(static, design)
    return result.cycles, result.energy, dict(result.area_um2), dict(result.bytes_by_level)


@pytest.mark.parametrize("name", DESIGNS)
def test_library_round_trip_same_design_area_and_costs(name: str, static) -> None:
    original = resolve_design(name)
    expected = _costs(static, original)
    for fmt in FORMATS:
        text = export_design(original, fmt)
        result = import_design(text, f"{name}.{fmt}.yaml")
        back = result.accelerator
        assert result.embedded and result.notes == (), (fmt, result.notes)
        assert format_design(back) == format_design(original), fmt
        assert area_breakdown(back).total_mm2 == area_breakdown(original).total_mm2
        assert _costs(static, back) == expected, fmt


def test_published_areas_survive_both_formats() -> None:
    # docs/sources.md, "Area": 54.06 and 1,829.7 mm2
    for name, area in (("acceltran-edge", 54.06), ("acceltran-server", 1829.7)):
        for fmt in FORMATS:
            back = import_design(export_design(resolve_design(name), fmt), "x.yaml").accelerator
            assert area_breakdown(back).total_mm2 == pytest.approx(area, rel=1e-3)


def test_zigzag_export_has_the_tools_keys() -> None:
    import yaml

    edge = resolve_design("acceltran-edge")
    data = yaml.safe_load(export_design(edge, "zigzag"))
    assert list(data) == ["name", "memories", "operational_array"]
    assert data["operational_array"]["sizes"] == [64, 16, 16]
    assert list(data["memories"]) == ["lane_fifo", "weight_buffer", "activation_buffer",
                                      "main_memory"]
    weights = data["memories"]["weight_buffer"]
    assert weights["size"] == 8 * 2**20 * 8 and weights["operands"] == ["I2"]
    # 8 MiB = 8 banks (hierarchy's 1 MiB banking rule) of one 370 GB/s port each:
    # 8 x 370e9 / 700e6 bytes = 4228.57 bytes = 33,828.6 -> 33,829 bits per cycle
    assert weights["ports"][0]["bandwidth_max"] == 33829
    # the lane FIFO: 32 rows of 16 words of 20 bits, one row (320 bits) per cycle, per lane
    fifo = data["memories"]["lane_fifo"]
    assert fifo["size"] == 32 * 16 * 20 and fifo["ports"][0]["bandwidth_max"] == 320
    assert fifo["served_dimensions"] == ["D3"] and fifo["operands"] == ["I1", "I2"]
    # DRAM 32-2-1: 13.44 nJ per 64-byte access; 25.6 GB/s = 292.6 -> 293 bits per cycle,
    # below 512, so bandwidth_min is 293 bits and r_cost that share of 13,440 pJ
    dram = data["memories"]["main_memory"]
    assert dram["ports"][0]["bandwidth_max"] == 293
    assert dram["r_cost"] == pytest.approx(13440 * 293 / 512)
    for memory in data["memories"].values():
        assert isinstance(memory["r_cost"], float) and isinstance(memory["area"], float)


def test_timeloop_export_has_the_tools_keys() -> None:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, tag, node: loader.construct_mapping(node)
                                 if isinstance(node, yaml.MappingNode) else None)
    edge = resolve_design("acceltran-edge")
    data = yaml.load(export_design(edge, "timeloop"), Loader=Loader)
    assert data["architecture"]["version"] == 0.4
    nodes = data["architecture"]["nodes"]
    assert [n.get("name") for n in nodes] == ["acceltran-edge", "main_memory", None, "PE",
                                              "lane", "lane_fifo", "mac"]
    assert nodes[3]["spatial"] == {"meshX": 64} and nodes[4]["spatial"] == {"meshY": 16}
    activation = nodes[2]["nodes"][0]["attributes"]
    # 4 MiB in rows of 500 bits (25 words of 20 bits): ceil(33,554,432 / 500) rows
    assert activation["width"] % activation["datawidth"] == 0
    assert activation["depth"] == -(-4 * 2**20 * 8 // 500)
    # 4 MiB = 4 banks of 370 GB/s: 4 x 370e9 / 700e6 * 8 / 20 bits = 845.7 words per cycle
    assert activation["n_banks"] == 4
    assert activation["read_bandwidth"] == pytest.approx(4 * 370e9 / 700e6 * 8 / 20)


@pytest.mark.parametrize("fmt", FORMATS)
def test_edited_native_value_wins_and_is_named(fmt: str) -> None:
    text = export_design(resolve_design("acceltran-edge"), fmt)
    if fmt == "zigzag":
        edited = text.replace("sizes: [64, 16, 16]", "sizes: [128, 16, 16]")
    else:
        edited = text.replace("spatial: {meshX: 64}", "spatial: {meshX: 128}")
    assert edited != text
    result = import_design(edited, "edited.yaml")
    assert result.accelerator.pe_array.pes == 128
    (note,) = result.notes
    assert re.match(r"edited\.yaml:\d+:\d+: ", note) and "pe_array.pes = 128" in note
    assert result.accelerator.softmax == resolve_design("acceltran-edge").softmax


@pytest.mark.parametrize("fmt", FORMATS)
def test_foreign_file_states_what_it_assumed(fmt: str) -> None:
    server = resolve_design("acceltran-server")
    result = import_design(_strip_block(export_design(server, fmt)), "foreign.yaml")
    design, notes = result.accelerator, "\n".join(result.notes)
    assert not result.embedded
    # what the tool's keys say comes back
    assert design.pe_array.peak_macs_per_cycle == server.pe_array.peak_macs_per_cycle
    assert design.weight_buffer.size_bytes // 1024 == server.weight_buffer.size_bytes // 1024
    # what they cannot say is assumed, and said: the softmax units; in ZigZag (no
    # operand for masks) the mask buffer too, while Timeloop keeps it as a storage level
    assert "softmax.per_pe = 4" in notes
    if fmt == "zigzag":
        assert "assumed: mask_buffer.size" in notes
        assert design.mask_buffer.size_bytes == design.activation_buffer.size_bytes // 4
    else:
        assert "mask_buffer.size" not in notes
        assert design.mask_buffer.size_bytes // 1024 == server.mask_buffer.size_bytes // 1024
    assert design.softmax.per_pe == 4  # acceltran-edge's, not the server's 32


def test_zigzag_foreign_memories_dropped_and_named(tmp_path) -> None:
    # A small ZigZag accelerator in the shape of the tool's own examples: per-MAC
    # register files, one shared global SRAM, DRAM on top.
    text = """\
name: small_gemm
memories:
  reg_W:
    size: 8
    r_cost: 0.01
    w_cost: 0.01
    area: 0.0
    latency: 1
    operands: [I2]
    ports:
      - {name: r_port_1, type: read, bandwidth_min: 8, bandwidth_max: 8, allocation: [I2, tl]}
      - {name: w_port_1, type: write, bandwidth_min: 8, bandwidth_max: 8, allocation: [I2, fh]}
    served_dimensions: []
  sram:
    size: 2097152
    r_cost: 20.0
    w_cost: 25.0
    area: 0.0
    latency: 1
    operands: [I1, I2, O]
    ports:
      - {name: rw_port_1, type: read_write, bandwidth_min: 64, bandwidth_max: 512,
         allocation: [I1, tl, I2, tl, O, tl, O, th, I1, fh, I2, fh, O, fh, O, fl]}
    served_dimensions: [D1, D2]
  dram:
    size: 10000000000
    r_cost: 700.0
    w_cost: 750.0
    area: 0.0
    latency: 1
    operands: [I1, I2, O]
    ports:
      - {name: rw_port_1, type: read_write, bandwidth_min: 64, bandwidth_max: 64,
         allocation: [I1, tl, I2, tl, O, tl, O, th, I1, fh, I2, fh, O, fh, O, fl]}
    served_dimensions: [D1, D2]
operational_array:
  unit_energy: 0.04
  unit_area: 1.0
  dimensions: [D1, D2]
  sizes: [8, 16]
"""
    result = import_design(text, "small.yaml")
    design, notes = result.accelerator, "\n".join(result.notes)
    assert (design.pe_array.pes, design.pe_array.lanes, design.pe_array.macs_per_lane) == \
        (8, 16, 1)
    # one shared 256 KiB SRAM -> two buffers of 128 KiB
    assert design.weight_buffer.size_bytes == design.activation_buffer.size_bytes == 131072
    # 512 bits per cycle at 700 MHz = 44.8 GB/s, half to each buffer; DRAM 64 bits per
    # cycle = 5.6 GB/s and 700 pJ per 64-bit access = 5.6 nJ per 64-byte access
    assert design.weight_buffer.bandwidth_bytes_per_s == pytest.approx(22.4e9)
    assert design.main_memory.bandwidth_bytes_per_s == pytest.approx(5.6e9)
    assert design.main_memory.energy_per_access_nj == pytest.approx(5.6)
    assert "small.yaml:3:3: memories.reg_W: memory 'reg_W'" in notes
    assert "split into a weight and an activation buffer" in notes
    assert "unit_energy 0.04 pJ" in notes


def test_timeloop_foreign_file_read_as_stated() -> None:
    # The shape of timeloop-accelergy-exercises' simple_weight_stationary: a shared
    # global buffer of 16384 rows x 64 bits in 32 banks, a 16 x 16 PE mesh, a
    # per-PE scratchpad and a MAC.
    text = """\
architecture:
  version: 0.4
  nodes:
  - !Container
    name: system
  - !Component
    name: DRAM
    class: DRAM
    attributes: {type: "LPDDR4", width: 64, datawidth: 16, read_bandwidth: 4}
  - !Container
    name: simple_ws
    attributes: {technology: "45nm", global_cycle_seconds: 1e-9}
  - !Component
    name: shared_glb
    class: smartbuffer_SRAM
    attributes: {depth: 16384, width: 64, n_banks: 32, datawidth: 16, read_bandwidth: 16}
  - !Container
    name: PE
    spatial: {meshX: 16, meshY: 16}
  - !Component
    name: pe_spad
    class: smartbuffer_SRAM
    attributes: {depth: 192, width: 16, datawidth: 16}
    constraints:
      dataspace: {bypass: [Inputs, Outputs], keep: [Weights]}
  - !Component
    name: mac
    class: intmac
    attributes: {multiplier_width: 8, adder_width: 16}
"""
    result = import_design(text, "ws.yaml")
    design, notes = result.accelerator, "\n".join(result.notes)
    assert (design.pe_array.pes, design.pe_array.lanes, design.pe_array.macs_per_lane) == \
        (16, 16, 1)
    # 16384 x 64 bits = 128 KiB, split in halves; 32 banks -> 16 each
    assert design.weight_buffer.size_bytes == design.activation_buffer.size_bytes == 65536
    assert design.weight_buffer.banks == design.activation_buffer.banks == 16
    # the clock of the container simple_ws (1 ns: 1 GHz) applies to every bandwidth, also
    # the DRAM's written above it: 4 words of 16 bits per cycle = 8 GB/s; the global
    # buffer 16 words = 32 GB/s, half of it to each of the two buffers
    assert design.clock_hz == pytest.approx(1e9)
    assert design.main_memory.bandwidth_bytes_per_s == pytest.approx(8e9)
    assert design.weight_buffer.bandwidth_bytes_per_s == pytest.approx(16e9)
    assert "ws.yaml:20:5: architecture.nodes[5]: storage 'pe_spad'" in notes
    assert "split into a weight and an activation buffer" in notes
    assert "technology '45nm' dropped" in notes and "clock =" not in notes


@pytest.mark.parametrize("text, expected", [
    ("name: x\nmemories: {}\nmemories: {}\noperational_array: {}\n",
     r"bad\.yaml:3:1: memories: the key 'memories' is given twice .*first at line 2"),
    ("architecture: [\n", r"bad\.yaml:2:1: not valid YAML"),
    ("architecture:\n  version: 0.3\n  subtree: []\n",
     r"bad\.yaml:3:3: architecture\.subtree: the v0\.3 form"),
    ("architecture:\n  version: 0.5\n  nodes: []\n",
     (r"bad\.yaml:2:3: architecture\.version: version 0\.5 is not supported; accepted: a "
     r"Timeloop/Accelergy v0\.4")),
    (("name: x\nmemories: {}\noperational_array:\n  is_imc: true\n  dimensions: [D1]\n"
     "  sizes: [4]\n"), r"bad\.yaml:4:3: operational_array\.is_imc: in-memory-computing"),
    (("name: x\nmemories:\n  m: {size: 8, operands: [X], served_dimensions: [], ports: []}\n"
     "operational_array: {dimensions: [D1], sizes: [4]}\n"),
     r"bad\.yaml:3:27: memories\.m\.operands\[0\]: unknown operand 'X'; accepted: I1, I2, O"),
    ("hello: 1\n", r"bad\.yaml: neither a ZigZag accelerator .* found: hello"),
    ("{{include_text('defines.yaml')}}\narchitecture: {}\n",
     r"bad\.yaml:1:1: the file uses Jinja templating .* render it first"),
])
def test_damaged_files_are_one_located_paragraph(text: str, expected: str) -> None:
    with pytest.raises(InteropError, match=expected) as caught:
        import_design(text, "bad.yaml")
    assert "\n" not in str(caught.value)


def test_value_that_makes_an_invalid_design_is_located() -> None:
    # 4 bits of weight buffer is 0 whole bytes: the design check names the memory
    text = export_design(resolve_design("tiny-test"), "zigzag")
    text = text.replace("    size: 131072", "    size: 4")
    line = text[:text.index("  weight_buffer:")].count("\n") + 1
    with pytest.raises(InteropError, match=rf"x\.yaml:{line}:3: memories\.weight_buffer: the "
                       r"value read from here gives an invalid design: weight_buffer\.size must "
                       r"be positive, got 0 bytes"):
        import_design(text, "x.yaml")


def test_damaged_embedded_block_is_located_in_the_file() -> None:
    text = export_design(resolve_design("tiny-test"), "zigzag")
    text = text.replace("#     pes = 2", "#     pes = zero")
    line = text[:text.index("pes = zero")].count("\n") + 1
    with pytest.raises(InteropError, match=rf"x\.yaml:{line}:\d+: embedded hwdsl block: "):
        import_design(text, "x.yaml")


def test_cli_export_import_and_errors(tmp_path, capsys) -> None:
    exported = tmp_path / "edge.yaml"
    hwdsl = tmp_path / "edge.hwdsl"
    assert main(["hw", "export", "acceltran-edge", "--format", "timeloop",
                 "-o", str(exported)]) == 0
    assert main(["hw", "import", str(exported), "-o", str(hwdsl)]) == 0
    err = capsys.readouterr().err
    assert "from the embedded TransCODE design" in err and "54.06 mm2" in err
    assert hwdsl.read_text() == format_design(resolve_design("acceltran-edge"))

    foreign = tmp_path / "foreign.yaml"
    foreign.write_text(_strip_block(exported.read_text()))
    assert main(["hw", "import", str(foreign)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith('accelerator "acceltran-edge" {')
    assert "note: assumed" in captured.err

    broken = tmp_path / "broken.yaml"
    broken.write_text("architecture:\n  version: 0.4\n  nodes: 7\n")
    assert main(["hw", "import", str(broken)]) != 0
    err = capsys.readouterr().err
    assert err.startswith(f"error: {broken}:3:3: architecture.nodes: must be a list")
    assert "Traceback" not in err


HIERARCHY = """\
accelerator "banked" {
  clock = 800 MHz
  power_gating = idle
  pe_array { pes = 8  lanes = 4  macs_per_lane = 16  nonlinearity = relu  fifo_depth = 32 }
  softmax { per_pe = 2  tile = 8 }
  activation_buffer { size = 2 MiB  banks = 8  bank_bandwidth = 100 GB/s }
  weight_buffer { size = 3 MiB  multicast = off }
  mask_buffer { size = 512 KiB  bandwidth = 50 GB/s }
  main_memory { type = hbm  config = 32-1-4  energy_per_access = 20 nJ }
}
"""


def test_storage_options_round_trip_both_formats(static) -> None:
    from backends.elector import parse_design

    original = parse_design(HIERARCHY, "banked.hwdsl")
    expected = _costs(static, original)
    for fmt in FORMATS:
        result = import_design(export_design(original, fmt), f"banked.{fmt}.yaml")
        assert result.notes == () and result.accelerator == original, fmt
        assert _costs(static, result.accelerator) == expected, fmt


def test_timeloop_banks_and_multicast_are_read_from_the_tool_keys() -> None:
    from backends.elector import parse_design
    from backends.elector.hierarchy import level

    text = export_design(parse_design(HIERARCHY, "banked.hwdsl"), "timeloop")
    # the weight buffer is written with n_banks 3 (banking rule: 3 MiB / 1 MiB) and,
    # multicast being off, Timeloop's spatial no_reuse on what it keeps
    assert "spatial: {no_reuse: [Weights]}" in text
    edited = text.replace("n_banks: 3", "n_banks: 6", 1)
    result = import_design(edited, "edited.yaml")
    weights = level(result.accelerator, "weight_buffer")
    assert weights.banks == 6 and "weight_buffer.banks = 6" in result.notes[0]
    foreign = import_design(_strip_block(text), "foreign.yaml").accelerator
    assert foreign.weight_buffer.multicast is False
    assert foreign.activation_buffer.multicast is True
    # 8 banks x 100 GB/s written as one whole-buffer read_bandwidth, read back as 800 GB/s
    activation = level(foreign, "activation_buffer")
    assert activation.banks == 8
    assert activation.bandwidth_bytes_per_s(foreign.clock_hz) == pytest.approx(800e9)


def test_design_space_points_round_trip() -> None:
    # Points spread over transcode-space (1 or 16 MACs per lane, every memory type,
    # buffer sizes from 1 to 128 MB): the design comes back equal through both formats.
    from backends.elector import resolve_space

    space = resolve_space("transcode-space")
    step = space.size // 23
    for index in range(0, space.size, step):
        point = space.point(index)
        for fmt in FORMATS:
            result = import_design(export_design(point, fmt), "point.yaml")
            assert result.accelerator == point and result.notes == (), (index, fmt)
