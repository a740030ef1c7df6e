"""The optional per-PE buffer (issue 12, item 1): DSL block, storage level,
area and leakage, errors, printing and interop."""

from __future__ import annotations

import dataclasses
import math

import pytest

from backends.elector import (
    area_breakdown,
    format_design,
    list_library,
    parse_design,
    resolve_design,
)
from backends.elector.design import PEBuffer
from backends.elector.hierarchy import level, storage_levels
from transcode_ir.errors import ParseError

DESIGNS = [entry.name for entry in list_library() if entry.kind == "design"]


def _with_block(block: str, name: str = "tiny-pebuf") -> str:
    text = format_design(resolve_design("tiny-test")).replace('"tiny-test"', f'"{name}"', 1)
    return text.replace("  main_memory {", f"  {block}\n\n  main_memory {{", 1)


@pytest.fixture(scope="module")
def tiny_pebuf():
    return parse_design(_with_block("pe_buffer { size = 4 KiB  holds = [weight] }"), "t.hwdsl")


@pytest.mark.parametrize("name", DESIGNS)
def test_library_designs_have_no_pe_buffer_and_print_as_before(name: str) -> None:
    design = resolve_design(name)
    assert design.pe_buffer is None
    text = format_design(design)
    assert "pe_buffer" not in text
    assert [lv.name for lv in storage_levels(design)][-2:] == ["mask_buffer", "lane_fifo"]
    assert parse_design(text, "x.hwdsl") == design


def test_pe_buffer_parses_prints_and_reparses(tiny_pebuf) -> None:
    assert tiny_pebuf.pe_buffer == PEBuffer(4096, ("weight",))
    text = format_design(tiny_pebuf)
    assert "  pe_buffer {\n    size = 4 KiB\n    holds = [weight]\n" in text
    assert parse_design(text, "again.hwdsl") == tiny_pebuf
    both = parse_design(_with_block("pe_buffer { size = 8 KiB  holds = [weight, activation, ]  "
                                    "banks = 2  bank_bandwidth = 100 GB/s  multicast = off }"))
    # operands are kept in the model's order, whatever the file's
    assert both.pe_buffer.holds == ("activation", "weight")
    assert parse_design(format_design(both)) == both
    assert parse_design(_with_block("pe_buffer { size = 8 KiB  holds = mask }")).pe_buffer.holds \
        == ("mask",)


def test_pe_buffer_is_a_per_pe_storage_level(tiny_pebuf) -> None:
    names = [lv.name for lv in storage_levels(tiny_pebuf)]
    assert names[-2:] == ["pe_buffer", "lane_fifo"]
    lv = level(tiny_pebuf, "pe_buffer")
    tech = tiny_pebuf.technology
    assert (lv.sharing, lv.instances, lv.capacity_bytes, lv.operands) == \
        ("pe", tiny_pebuf.pe_array.pes, 4096, frozenset({"weight"}))
    assert lv.banks == math.ceil(4096 / tech.buffer_bank_bytes)
    assert lv.bank_bytes_per_cycle == tech.buffer_bandwidth_bytes_per_s / tiny_pebuf.clock_hz
    # energy per access from the weight table at the PE buffer's own size
    coefficient = tech.data["buffers"]["kinds"]["weight"]["energy_per_access_nj"]["coefficient_nj"]
    per_access = coefficient * math.sqrt(4096 / tech.megabyte_bytes)
    assert lv.read_nj_per_byte * lv.access_bytes == pytest.approx(per_access)
    assert "pe_buffer_note" in lv.source
    # several operands: the largest figure of each held table
    both = dataclasses.replace(tiny_pebuf, pe_buffer=PEBuffer(4096, ("activation", "weight")))
    costs = both.pe_buffer_costs()
    size_mb = 4096 / tech.megabyte_bytes
    assert costs.area_um2 == max(tech.buffer(k, size_mb).area_um2 for k in ("activation", "weight"))
    assert costs.energy_per_access_nj == max(tech.buffer(k, size_mb).energy_per_access_nj
                                             for k in ("activation", "weight"))


def test_pe_buffer_adds_area_and_leakage(tiny_pebuf) -> None:
    from backends.elector.costing import energy_breakdown

    plain = resolve_design("tiny-test")
    tech = plain.technology
    table = tech.data["buffers"]["kinds"]["weight"]
    size_mb = 4096 / tech.megabyte_bytes
    pes = plain.pe_array.pes
    added = area_breakdown(tiny_pebuf).total_um2 - area_breakdown(plain).total_um2
    assert added == pytest.approx(pes * size_mb * table["area_um2_per_mb"])
    assert area_breakdown(tiny_pebuf).by_kind()["pe_buffer"] == pytest.approx(added)
    cycles = 7000.0
    rows = {row.energy_class: row for row in
            energy_breakdown(tiny_pebuf, {}, {"pe_buffer": (640.0, 0.0)}, cycles, False).rows}
    seconds = cycles / plain.clock_hz
    assert rows["pe_buffer"].leakage_nj == pytest.approx(
        pes * size_mb * table["leakage_mw_per_mb"] * 1e-3 * seconds * 1e9)
    per_access = table["energy_per_access_nj"]["coefficient_nj"] * math.sqrt(size_mb)
    assert rows["pe_buffer"].dynamic_nj == pytest.approx(10 * per_access)   # 640 B = 10 blocks
    assert "pe_buffer" not in {row.energy_class for row in
                               energy_breakdown(plain, {}, {}, cycles, False).rows}


@pytest.mark.parametrize("block, message, at", [
    ("pe_buffer { size = 4 KiB  holds = [wieght] }", "unknown operand 'wieght' (did you mean "
     "'weight'?); accepted: activation, weight, mask", "wieght"),
    ("pe_buffer { size = 4 KiB  holds = [weight, weight] }", "'weight' is listed twice",
     "weight]"),
    ("pe_buffer { size = 0 KiB  holds = [weight] }", "pe_buffer.size must be positive", "0 KiB"),
    ("pe_buffer { size = 32 bytes  holds = [weight] }", "less than one 64-byte block", "32"),
    ("pe_buffer { size = 4 KiB }", "missing required key 'holds' in pe_buffer", "pe_buffer"),
    ("pe_buffer { size = 4 KiB  holds = 3 }", "pe_buffer.holds takes a list of operand classes",
     "3 }"),
    ("pe_buffer { size = 4 KiB  holds = [weight]  banks = 65 }", "accepted: 1 to 64", "65"),
    ("pe_buffer { size = 4 KiB  holds = [weight]  block = 32 bytes }",
     "32 bytes is not characterised", "32 bytes"),
    ("pe_buffer { size = 4 KiB  holds = [weight]  shared = pe }",
     "unknown key 'shared' in pe_buffer", "shared"),
])
def test_bad_pe_buffer_is_one_located_paragraph(block: str, message: str, at: str) -> None:
    text = _with_block(block)
    line = text.split("\n").index(f"  {block}") + 1
    column = 2 + block.index(at) + 1
    with pytest.raises(ParseError) as caught:
        parse_design(text, "bad.hwdsl")
    rendered = str(caught.value)
    assert message in rendered
    assert f"bad.hwdsl:{line}:{column}:" in rendered
    assert "Traceback" not in rendered


def test_hw_show_prints_the_pe_buffer(tmp_path, capsys) -> None:
    from tools.cli import main

    path = tmp_path / "pe.hwdsl"
    path.write_text(_with_block("pe_buffer { size = 4 KiB  holds = [weight] }"))
    assert main(["hw", "show", str(path)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("pe_buffer "))
    assert " pe " in row and "weight" in row and " 2 " in row
    assert "per-PE buffer (4 KiB, weight)" in out
    assert "per-PE buffer pricing:" in out and "port assumption:" in out


@pytest.mark.parametrize("fmt", ("zigzag", "timeloop"))
def test_pe_buffer_round_trips_and_is_read_from_the_tool_keys(fmt: str, tiny_pebuf) -> None:
    from backends.elector.interop import export_design, import_design
    from backends.elector.interop.common import BLOCK_BEGIN

    edge = dataclasses.replace(resolve_design("acceltran-edge"),
                               pe_buffer=PEBuffer(65536, ("activation", "weight"), banks=2,
                                                  multicast=False))
    for design in (tiny_pebuf, edge):
        text = export_design(design, fmt)
        result = import_design(text, f"pe.{fmt}.yaml")
        assert result.notes == () and result.accelerator == design
        assert area_breakdown(result.accelerator).total_mm2 == area_breakdown(design).total_mm2
        foreign = import_design(text[:text.index(BLOCK_BEGIN)], "foreign.yaml").accelerator
        assert foreign.pe_buffer is not None
        assert foreign.pe_buffer.holds == design.pe_buffer.holds
        # sizes travel in the tool's units (Timeloop: whole rows of words), within a row
        assert abs(foreign.pe_buffer.size_bytes - design.pe_buffer.size_bytes) < 64
        original, read = level(design, "pe_buffer"), level(foreign, "pe_buffer")
        assert read.bytes_per_cycle == pytest.approx(original.bytes_per_cycle, rel=1e-3)
    assert ("served_dimensions: [D2, D3]" if fmt == "zigzag"
            else "name: pe_buffer") in export_design(edge, fmt)


def test_pe_buffer_in_a_design_space() -> None:
    from backends.elector import parse_space

    text = _with_block("pe_buffer { size in {4 KiB, 8 KiB}  holds in {[weight], "
                       "[weight, activation]} }", name="s").replace("accelerator", "design_space", 1)
    space = parse_space(text, "s.hwdsl")
    assert space.size == 4
    sizes = {(p.pe_buffer.size_bytes, p.pe_buffer.holds) for p in map(space.point, range(4))}
    assert sizes == {(4096, ("weight",)), (8192, ("weight",)), (4096, ("activation", "weight")),
                     (8192, ("activation", "weight"))}


def test_lists_parse_as_lark_does() -> None:
    from backends.elector.hwdsl import lark_reference_parse, parse_syntax

    text = _with_block("pe_buffer { size = 4 KiB  holds = [ weight ,\n activation, ] }")
    fast, reference = parse_syntax(text), lark_reference_parse(text)
    assert fast == reference
    (value,) = [e.value for block in fast.entries if block.key == "pe_buffer"
                for e in block.entries if e.key == "holds"]
    assert value.kind == "list" and [item[0] for item in value.items] == ["weight", "activation"]
    assert value.items[1][1] == value.items[0][1] + 1       # each word keeps its own line
