"""The worked example of docs/adding-a-module-kind.md works as written.

Registers the GELU vector unit (docs/examples/vector-unit/vector_unit.py),
reads the example design, and checks by hand: 2 PEs x 2 units = 4 units of
9,587.04 um2 (the example technology's figure) in the area; leakage
4 x 0.2992 mW over the run; the busy rule reads the ``vector`` unit class;
the block prints back; an uncharacterised width is an error at its line.
The kind is unregistered afterwards, so other tests see the stock DSL.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from backends.elector import format_design, parse_design
from backends.elector.area import area_breakdown
from backends.elector.hwdsl import BLOCK_SCHEMAS, load_design
from backends.elector.kinds import busy_cycles, module_kinds, unregister_module_kind
from transcode_ir.errors import UserError

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "vector-unit"


@pytest.fixture()
def vector_unit():
    namespace = runpy.run_path(str(EXAMPLE / "vector_unit.py"))
    try:
        yield namespace["VECTOR_UNIT"]
    finally:
        unregister_module_kind("vector_unit")
    assert "vector_unit" not in BLOCK_SCHEMAS
    assert "vector_unit" not in [kind.name for kind in module_kinds()]


def test_vector_unit_example(vector_unit) -> None:
    design = load_design(EXAMPLE / "tiny-vector.hwdsl")
    assert design.block_settings("vector_unit") == {"per_pe": 2, "width": 16}
    area = area_breakdown(design)
    assert area.by_kind()["vector_unit"] == pytest.approx(4 * 9587.04)
    assert area.total_mm2 == pytest.approx(area_breakdown(
        parse_design((EXAMPLE / "tiny-vector.hwdsl").read_text().replace(
            "  vector_unit { per_pe = 2  width = 16 }\n", ""),
            str(EXAMPLE / "none.hwdsl"))).total_mm2 + 4 * 9587.04e-6)
    text = format_design(design)
    assert "vector_unit {\n    per_pe = 2\n    width = 16\n  }" in text
    assert parse_design(text, str(EXAMPLE / "printed.hwdsl")) == design

    busy = busy_cycles({"vector": 300.0, "mac": 10.0}, 0.0, lanes_per_pe=2, softmax_per_pe=1)
    assert busy["vector_unit"] == 300.0

    from backends.elector.compile_pipeline import CompileOptions, compile_module
    from tests.elector.test_kinds_target import _matmul_module

    outcome = compile_module(_matmul_module(32, 64, 32),
                             CompileOptions(hw=str(EXAMPLE / "tiny-vector.hwdsl")))
    row = next(r for r in outcome.result.energy.rows if r.energy_class == "vector_unit")
    seconds = outcome.result.cycles / design.clock_hz
    assert row.leakage_nj == pytest.approx(4 * 0.2992e-3 * seconds * 1e9)   # mW -> nJ
    assert row.dynamic_nj == 0.0        # no op is routed to the vector unit yet (see the doc)


def test_vector_unit_errors_name_the_line(vector_unit) -> None:
    text = (EXAMPLE / "tiny-vector.hwdsl").read_text()
    line = next(n for n, row in enumerate(text.splitlines(), 1) if row.startswith("  vector_unit"))
    with pytest.raises(UserError) as err:
        parse_design(text.replace("width = 16", "width = 15"), str(EXAMPLE / "bad.hwdsl"))
    assert f"bad.hwdsl:{line}:3:" in str(err.value) and "accepted: width: 16" in str(err.value)
    with pytest.raises(UserError) as err:
        parse_design(text.replace('"vector-unit-14nm.json"', '"14nm"'), str(EXAMPLE / "bad.hwdsl"))
    assert "does not characterise module kind 'vector_unit'" in str(err.value)


def test_without_the_plugin_the_block_is_unknown() -> None:
    text = (EXAMPLE / "tiny-vector.hwdsl").read_text()
    with pytest.raises(UserError) as err:
        parse_design(text, str(EXAMPLE / "tiny-vector.hwdsl"))
    assert "vector_unit" in str(err.value)
