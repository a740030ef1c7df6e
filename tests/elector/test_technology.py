"""Technology tables: the shipped 14 nm data, lookups, user files, validation."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from backends.elector import (
    Technology,
    TechnologyError,
    list_technologies,
    load_design,
    load_technology,
    resolve_design,
    technology_from_data,
)
from backends.elector.technology import BUILTIN_TECHNOLOGY_DIR, REQUIRED_MODULE_KINDS

# --------------------------------------------------------------------------- 14 nm data
from transcode_ir.errors import ParseError, UserError

BUILTIN_JSON = json.loads((BUILTIN_TECHNOLOGY_DIR / "14nm.json").read_text())

# (kind, parameters, area um2, dynamic mW, leakage mW) from the reference's table.
REFERENCE_MODULES = [
    ("mac_lane", {"macs_per_lane": 1, "nonlinearity": "relu"}, 597.96, 0.2756, 0.02237),
    ("mac_lane", {"macs_per_lane": 1, "nonlinearity": "gelu"}, 1209.96, 0.6706, 0.04191),
    ("mac_lane", {"macs_per_lane": 16, "nonlinearity": "relu"}, 8819.48, 4.8926, 0.3003),
    ("mac_lane", {"macs_per_lane": 16, "nonlinearity": "gelu"}, 9418.67, 5.1955, 0.3190),
    ("softmax", {"tile": 8}, 22008.1, 9.1386, 0.6825),
    ("softmax", {"tile": 16}, 87573.3, 34.634, 2.6696),
    ("softmax", {"tile": 32}, 348466.9, 131.26, 10.442),
    ("layer_norm", {"tile": 8}, 20631.0, 12.665, 0.6595),
    ("layer_norm", {"tile": 16}, 81104.1, 43.838, 2.5753),
    ("layer_norm", {"tile": 32}, 318834.6, 151.48, 10.036),
    ("dataflow", {}, 75946.98, 11.371, 2.7312),
    ("dma", {}, 144.64, 0.0335, 0.0064),
    ("fifo", {"depth": 32}, 484.38, 0.0564, 0.0141),
    ("pre_sparsity", {}, 6216.9, 0.2853, 0.1507),
    ("post_sparsity", {}, 1181.2, 0.2614, 0.0324),
    ("stochastic_rounding", {}, 79.04, 0.02166, 0.00401),
]
REFERENCE_MEMORIES = {
    ("rram", "16-2-2"): 17.32, ("rram", "8-2-4"): 32.66, ("rram", "4-2-8"): 69.33,
    ("rram", "2-2-16"): 149.06, ("rram", "32-2-1"): 8.63, ("rram", "1-2-32"): 340.97,
    ("dram", "16-2-2"): 69.01, ("dram", "8-2-4"): 200.28, ("dram", "32-2-1"): 13.44,
    ("dram", "16-4-1"): 38.29, ("hbm", "32-1-4"): 26.56,
}


@pytest.fixture(scope="module")
def tech() -> Technology:
    return load_technology("14nm")


@pytest.mark.parametrize("kind, parameters, area, dynamic, leakage", REFERENCE_MODULES)
def test_every_reference_module_figure_is_in_the_table(tech, kind, parameters, area, dynamic,
                                                       leakage) -> None:
    costs = tech.module(kind, **parameters)
    assert (costs.area_um2, costs.dynamic_mw, costs.leakage_mw) == (area, dynamic, leakage)
    assert costs.clock_hz == 700e6 and not costs.inferred
    assert "docs/sources.md" in costs.source


def test_buffers_and_main_memory_match_the_reference(tech) -> None:
    weight = tech.buffer("weight", 8)
    assert weight.area_um2 == pytest.approx(8 * 294100.83)
    assert weight.leakage_mw == pytest.approx(8 * 210.40)
    assert weight.energy_per_access_nj == pytest.approx(0.08566 * math.sqrt(8))
    assert weight.bandwidth_bytes_per_s == 370e9 and weight.access_bytes == 64
    assert tech.buffer_energy_per_access_nj("activation", 4) == pytest.approx(0.07928 * 2)
    assert tech.buffer("mask", 1).area_um2 == 302565.0
    assert tech.buffer("mask", 1).leakage_mw == 238.20
    assert tech.megabyte_bytes == 2**20
    for (memory_type, config), energy in REFERENCE_MEMORIES.items():
        costs = tech.main_memory(memory_type, config)
        assert costs.energy_per_access_nj == energy
        assert costs.bandwidth_bytes_per_s == (25.6e9 if memory_type == "dram" else 256e9)
        assert costs.area_um2 is None and costs.leakage_mw is None
        assert "not characterised" in costs.note
    assert sum(len(tech.main_memory_configs(t)) for t in tech.main_memory_types()) == 11
    assert tech.reference_clock_hz == 700e6 and tech.data_widths_bits == (20,)


def test_every_entry_names_its_source_and_inferences_are_marked() -> None:
    assert set(REQUIRED_MODULE_KINDS) == set(BUILTIN_JSON["modules"])
    for kind, table in BUILTIN_JSON["modules"].items():
        assert "source" in table, kind
    assert BUILTIN_JSON["modules"]["mac_lane"]["interpolation"]["inference"] is True
    assert BUILTIN_JSON["power_scaling"]["inference"] is True
    assert "Inference" in BUILTIN_JSON["buffers"]["megabyte_note"]
    for kind in ("weight", "activation", "mask"):
        assert "source" in BUILTIN_JSON["buffers"]["kinds"][kind]
    assert "source" in BUILTIN_JSON["main_memory"]
    assert "source" in BUILTIN_JSON["reference_clock"]


def test_mac_lane_interpolation_is_linear_and_marked(tech) -> None:
    low = tech.module("mac_lane", macs_per_lane=1, nonlinearity="gelu")
    high = tech.module("mac_lane", macs_per_lane=16, nonlinearity="gelu")
    middle = tech.module("mac_lane", macs_per_lane=4, nonlinearity="gelu")
    assert middle.area_um2 == pytest.approx(low.area_um2 + (high.area_um2 - low.area_um2) * 3 / 15)
    assert middle.dynamic_mw == pytest.approx(
        low.dynamic_mw + (high.dynamic_mw - low.dynamic_mw) * 3 / 15)
    assert middle.inferred and "interpolated" in middle.note
    with pytest.raises(TechnologyError, match="1 to 16"):
        tech.module("mac_lane", macs_per_lane=32, nonlinearity="gelu")
    with pytest.raises(TechnologyError, match="accepted: tile: 8, 16, 32"):
        tech.module("softmax", tile=12)
    with pytest.raises(TechnologyError, match="looked up by tile"):
        tech.module("softmax")
    with pytest.raises(TechnologyError, match="no module kind"):
        tech.module("systolic_array")


def test_design_level_cost_api() -> None:
    edge = resolve_design("acceltran-edge")
    assert edge.technology.module("softmax", tile=16).dynamic_mw == 34.634
    assert edge.module_costs("softmax").dynamic_mw == 34.634
    assert edge.module_costs("mac_lane").area_um2 == 9418.67
    assert edge.buffer_costs("weight").energy_per_access_nj == pytest.approx(0.08566 * math.sqrt(8))
    memory = edge.main_memory_costs()
    assert memory.bandwidth_bytes_per_s == 25.6e9 and memory.energy_per_access_nj == 13.44
    assert edge.clock_hz == 700e6 and edge.peak_macs_per_cycle == 64 * 16 * 16
    assert edge.peak_macs_per_s == pytest.approx(64 * 16 * 16 * 700e6)


def test_builtin_list_and_equality(tech) -> None:
    assert "14nm" in list_technologies()
    assert load_technology("14nm") is tech  # cached
    assert technology_from_data(BUILTIN_JSON) == tech  # same name and content
    assert hash(technology_from_data(BUILTIN_JSON)) == hash(tech)
    other = copy.deepcopy(BUILTIN_JSON)
    other["modules"]["dma"]["points"][0]["area_um2"] = 1.0
    assert technology_from_data(other) != tech


def test_unknown_technology_lists_the_builtins(tmp_path) -> None:
    with pytest.raises(TechnologyError, match=r"not a built-in technology \(built-in: 14nm\)"):
        load_technology("3nm")
    with pytest.raises(TechnologyError, match="no file"):
        load_technology("missing.json", relative_to=tmp_path)


# --------------------------------------------------------------------------- user files

DESIGN_WITH_USER_TECH = """\
accelerator "user-tech" {
  technology = "tech/mytech.json"
  clock = 700 MHz
  pe_array { pes = 4  lanes = 2  macs_per_lane = 16 }
  softmax { per_pe = 2  tile = 64 }
  layer_norm { tile = 16 }
  activation_buffer { size = 64 KiB }
  weight_buffer { size = 128 KiB }
  mask_buffer { size = 16 KiB }
  main_memory { type = dram  config = 64-1-1 }
}
"""


def _user_technology(tmp_path: Path) -> Path:
    folder = tmp_path / "tech"
    folder.mkdir()
    path = folder / "mytech.json"
    path.write_text(json.dumps({
        "extends": "14nm",
        "name": "14nm-plus",
        "modules": {"softmax": {"points": [
            {"tile": 16, "area_um2": 87573.3, "dynamic_mw": 34.634, "leakage_mw": 2.6696},
            {"tile": 64, "area_um2": 1.4e6, "dynamic_mw": 500.0, "leakage_mw": 40.0,
             "source": "my own synthesis run, 2026 (example)"},
        ]}},
        "main_memory": {"types": {"dram": {"configs": {
            "64-1-1": {"energy_per_access_nj": 11.0, "source": "vendor datasheet (example)"},
        }}}},
    }))
    return path


def test_user_technology_file_resolved_beside_the_design(tmp_path) -> None:
    _user_technology(tmp_path)
    design_path = tmp_path / "design.hwdsl"
    design_path.write_text(DESIGN_WITH_USER_TECH)
    design = load_design(design_path)
    assert design.technology.name == "14nm-plus" and not design.technology.builtin
    assert design.module_costs("softmax").area_um2 == 1.4e6
    assert design.module_costs("softmax").source == "my own synthesis run, 2026 (example)"
    assert design.main_memory_costs().energy_per_access_nj == 11.0
    # inherited from 14nm
    assert design.module_costs("dataflow").area_um2 == 75946.98
    assert design.technology.main_memory_configs("dram")[-1] == "64-1-1"
    # the printed form names the file by absolute path, so it parses back anywhere
    from backends.elector import format_design, parse_design

    printed = format_design(design)
    assert str((tmp_path / "tech" / "mytech.json").resolve()) in printed
    assert parse_design(printed) == design


def test_design_error_when_user_technology_is_missing(tmp_path) -> None:
    design_path = tmp_path / "design.hwdsl"
    design_path.write_text(DESIGN_WITH_USER_TECH)
    with pytest.raises(ParseError) as caught:
        load_design(design_path)
    error = caught.value
    assert (error.location.line, error.location.column) == (2, 16)
    assert "technology 'tech/mytech.json' not found" in str(error)
    assert "relative paths are resolved against the design file's folder" in str(error)


def _broken(tmp_path: Path, mutate) -> Path:
    data = copy.deepcopy(BUILTIN_JSON)
    mutate(data)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("mutate, key, fragment", [
    (lambda d: d["modules"]["softmax"]["points"][1].pop("area_um2"),
     "modules.softmax.points[1].area_um2", "missing"),
    (lambda d: d["modules"]["softmax"]["points"][1].update(area_um2="big"),
     "modules.softmax.points[1].area_um2", "must be a non-negative number, got 'big'"),
    (lambda d: d["modules"]["softmax"]["points"][1].update(tile=8),
     "modules.softmax.points[1]", "duplicate point: tile=8"),
    (lambda d: d["modules"].pop("dma"), "modules.dma", "missing"),
    (lambda d: d["modules"]["dma"].pop("source"), "modules.dma.points[0].source", "source"),
    (lambda d: d["modules"]["fifo"].update(parameters=["size"]), "modules.fifo.points[0].size",
     "missing"),
    (lambda d: d["buffers"]["kinds"]["weight"].update(area_um2_per_mb=-1),
     "buffers.kinds.weight.area_um2_per_mb", "non-negative"),
    (lambda d: d["buffers"]["kinds"]["weight"]["energy_per_access_nj"].update(formula="c*s"),
     "buffers.kinds.weight.energy_per_access_nj.formula", "unsupported formula"),
    (lambda d: d["main_memory"]["types"]["dram"]["configs"].update({"32x2": {}}),
     "main_memory.types.dram.configs.32x2", "banks-ranks-channels"),
    (lambda d: d["main_memory"]["types"]["hbm"].update(bandwidth_bytes_per_s=0),
     "main_memory.types.hbm.bandwidth_bytes_per_s", "positive"),
    (lambda d: d.update(reference_clokc={}), "reference_clokc", "unknown key"),
    (lambda d: d["modules"]["softmax"]["points"][0].update(area=1),
     "modules.softmax.points[0].area", "unknown key"),
    (lambda d: d["reference_clock"].update(clock_hz=True), "reference_clock.clock_hz",
     "positive number"),
    (lambda d: d["data_width"].update(bits=[]), "data_width.bits", "non-empty list"),
])
def test_malformed_technology_names_the_key(tmp_path, mutate, key, fragment) -> None:
    path = _broken(tmp_path, mutate)
    with pytest.raises(TechnologyError) as caught:
        load_technology(path)
    message = str(caught.value)
    assert f"{path.resolve()}: {key}:" in message, message
    assert fragment in message, message


def test_malformed_json_has_line_and_column(tmp_path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "name": "x",\n  "modules": {,}\n}\n')
    with pytest.raises(ParseError) as caught:
        load_technology(path)
    assert (caught.value.location.line, caught.value.location.column) == (3, 15)
    assert "malformed JSON" in str(caught.value)


def test_extends_cycle_and_non_object(tmp_path) -> None:
    (tmp_path / "a.json").write_text('{"extends": "b.json"}')
    (tmp_path / "b.json").write_text('{"extends": "a.json"}')
    with pytest.raises(TechnologyError, match="cycle"):
        load_technology(tmp_path / "a.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="top level must be an object"):
        load_technology(tmp_path / "list.json")
