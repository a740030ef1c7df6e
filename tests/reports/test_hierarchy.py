"""The report's memory-hierarchy data (JSON ``hierarchy``) and its picture
in the HTML report, checked in headless Chromium.

Two runs: BERT-Tiny on acceltran-edge (the shared ``compiled`` fixture: the
event simulator's JSON and HTML of one ``tcc compile``) and BERT-Tiny on
tiny-test with a 4 KiB per-PE weight buffer added (one more ``tcc compile``,
analytical, written once for this module).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from tests.reports.test_html import browser  # noqa: F401 - the browser fixture

pytestmark = pytest.mark.xdist_group("reports")

PE_BLOCK = "  pe_buffer { size = 4 KiB  holds = [weight] }\n\n"


@pytest.fixture(scope="module")
def pe_compiled(bert_tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """tiny-test plus a per-PE weight buffer: the design file, JSON and HTML."""
    from backends.elector import LIBRARY_DIR
    from tools.cli import main

    folder = tmp_path_factory.mktemp("pe_hierarchy")
    text = (Path(LIBRARY_DIR) / "tiny-test.hwdsl").read_text()
    text = text.replace('accelerator "tiny-test"', 'accelerator "tiny-pe"')
    text = text.replace("  main_memory {", PE_BLOCK + "  main_memory {")
    paths = {"hw": folder / "tiny-pe.hwdsl", "json": folder / "report.json",
             "html": folder / "report.html"}
    paths["hw"].write_text(text)
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert main(["compile", str(bert_tiny_onnx), "--hw", str(paths["hw"]), "--batch", "2",
                     "--seq", "32", "--json", str(paths["json"]), "--html",
                     str(paths["html"])]) == 0
    paths["text"] = text.getvalue()
    return paths


def _runs(compiled: dict, pe_compiled: dict) -> list[tuple[str, dict, dict]]:
    return [("acceltran-edge", compiled, json.loads(compiled["json"].read_text())),
            (str(pe_compiled["hw"]), pe_compiled, json.loads(pe_compiled["json"].read_text()))]


def test_hierarchy_json_matches_the_design_and_the_run(compiled, pe_compiled) -> None:
    from backends.elector.design_library import resolve_design
    from backends.elector.hierarchy import storage_levels

    for hw, _paths, data in _runs(compiled, pe_compiled):
        accelerator = resolve_design(hw)
        h = data["hierarchy"]
        levels = storage_levels(accelerator)
        assert [row["name"] for row in h["levels"]] == [lv.name for lv in levels]
        for row, lv in zip(h["levels"], levels):
            assert (row["capacity_bytes"], row["banks"], row["instances"]) == \
                (lv.capacity_bytes, lv.banks, lv.instances)
            assert row["total_bytes_per_cycle"] == pytest.approx(lv.total_bytes_per_cycle)
            assert row["bandwidth_bytes_per_s"] == pytest.approx(
                lv.total_bytes_per_cycle * accelerator.clock_hz)
            if lv.name == "lane_fifo":       # no per-level byte count for the FIFOs
                assert row["read_bytes"] is None
                assert row["busy_fraction"] == data["utilisation"]["fifo"]
            else:
                assert (row["read_bytes"], row["written_bytes"]) == \
                    (data["bytes"][lv.name]["read"], data["bytes"][lv.name]["written"])
                assert row["busy_fraction"] == data["utilisation"][lv.name]
            bound = [op for op in data["ops"] if op["bounding_level"] == lv.name]
            assert row["bound_ops"] == len(bound)
            assert row["bound_cycles"] == pytest.approx(sum(op["cycles"] for op in bound))
        # Every op's cycles are attributed to exactly one level or to compute.
        total = sum(op["cycles"] for op in data["ops"])
        assert h["op_cycles"] == pytest.approx(total) and h["unattributed_cycles"] == 0
        assert sum(row["bound_cycles"] for row in h["levels"]) + h["compute"]["bound_cycles"] \
            == pytest.approx(total)
        assert h["compute"]["bound_ops"] == sum(1 for op in data["ops"]
                                                 if op["bounding_level"] == "compute")
        # Main-memory bytes split by operand class add up to the level's bytes.
        split = h["main_memory_bytes_by_operand"]
        for rw in ("read", "written"):
            assert sum(part[rw] for part in split.values()) == \
                pytest.approx(data["bytes"]["main_memory"][rw])
        rows = [*h["levels"], h["compute"]]
        top = max(rows, key=lambda row: row["bound_cycles"])
        assert h["bounding"] == top["name"]
        assert h["caption"].startswith(f"{top['label']} bounds {top['bound_fraction']:.0%} "
                                       "of the op cycles")
    edge, pe = (data["hierarchy"] for _, _, data in _runs(compiled, pe_compiled))
    # acceltran-edge (25.6 GB/s of DRAM for 1,024 lanes) at batch 2: inference
    # reads each weight from main memory once, and that bounds the run.
    assert edge["bounding"] == "main_memory"
    assert edge["weight_loads"] == pytest.approx(1.0)
    assert "weight reads" in edge["caption"]
    assert edge["caption"].endswith("each weight is loaded once per inference")
    # tiny-test has 16 MACs: compute bounds it; the PE buffer is its own level.
    assert pe["bounding"] == "compute"
    assert pe["caption"].startswith("compute bounds")
    row = next(r for r in pe["levels"] if r["name"] == "pe_buffer")
    assert (row["instances"], row["capacity_bytes"], row["operands"]) == (2, 4096, ["weight"])
    assert row["read_bytes"] > 0
    # The text report says the same in its header.
    lines = pe_compiled["text"].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("hierarchy  "))
    block = [lines[first]] + [line for line in lines[first + 1:first + 3]
                              if line.startswith(" " * 11)]
    assert " ".join(" ".join(block).split()) == " ".join(("hierarchy " + pe["caption"]).split())


def test_hierarchy_picture_in_a_browser(browser, compiled, pe_compiled, tmp_path) -> None:  # noqa: F811
    from PIL import Image

    from backends.elector.mapping import format_bytes

    for hw, paths, data in _runs(compiled, pe_compiled):
        h = data["hierarchy"]
        # The picture is static SVG: it must show with scripts off (which also
        # keeps this test fast: plotly.js is not run).
        context = browser.new_context(java_script_enabled=False,
                                      viewport={"width": 1400, "height": 900})
        p = context.new_page()
        requests: list[str] = []
        p.on("request", lambda r: requests.append(r.url))
        p.goto(paths["html"].as_uri())
        assert requests == [paths["html"].as_uri()], hw
        assert p.locator("#hierarchy-svg").count() == 1
        assert p.inner_text("#hierarchy-caption") == h["caption"]
        boxes = p.eval_on_selector_all(
            "#hierarchy-svg g.level",
            "gs => gs.map(g => ({level: g.dataset.level, text: g.textContent,"
            " capacity: g.dataset.capacity, banks: g.dataset.banks,"
            " instances: g.dataset.instances, read: g.dataset.read,"
            " busy: g.querySelector('g.bar.busy').dataset.fraction,"
            " busyWidth: g.querySelector('g.bar.busy rect.fill').getAttribute('width'),"
            " bound: g.querySelector('g.bar.bound').dataset.fraction}))")
        assert [b["level"] for b in boxes] == [row["name"] for row in h["levels"]]
        for box, row in zip(boxes, h["levels"]):
            assert box["text"].startswith(row["label"])
            assert box["capacity"] == repr(row["capacity_bytes"])
            assert (int(box["banks"]), int(box["instances"])) == (row["banks"], row["instances"])
            assert box["read"] == repr(row["read_bytes"])
            assert float(box["busy"]) == row["busy_fraction"]
            assert float(box["bound"]) == row["bound_fraction"]
            assert float(box["busyWidth"]) == pytest.approx(130 * row["busy_fraction"], abs=0.01)
            banks = f"{row['banks']:,} bank{'s' if row['banks'] != 1 else ''} × "
            assert banks in box["text"]
            assert f"{row['bank_bytes_per_cycle']:,.1f} B/cycle" in box["text"]
            if row["capacity_bytes"] is not None:
                assert format_bytes(row["capacity_bytes"]) in box["text"]
            if row["read_bytes"] is not None:
                assert f"read {format_bytes(row['read_bytes'])}" in box["text"]
            assert f"{row['busy_fraction']:.1%}" in box["text"]
            assert f"{row['bound_fraction']:.1%} ({row['bound_ops']:,} op" in box["text"]
        # One highlighted box: the level (or compute) that bounds the most cycles.
        tops = p.eval_on_selector_all("#hierarchy-svg .top", "gs => gs.map(g => g.dataset.level)")
        assert tops == [h["bounding"]]
        # Line widths proportional to the bytes they stand for.
        edges = p.eval_on_selector_all(
            "#hierarchy-svg g.edge", "gs => gs.map(g => [parseFloat(g.dataset.bytes),"
            " parseFloat(g.querySelector('line').getAttribute('stroke-width'))])")
        most = max(moved for moved, _ in edges)
        assert most > 0
        for moved, width in edges:
            assert width == pytest.approx(max(1.0, 18 * moved / most), abs=0.01)
        shot = tmp_path / "hierarchy.png"
        p.locator("#hierarchy").screenshot(path=str(shot))
        image = Image.open(shot).convert("RGB")
        assert image.height > 400
        colours = image.getcolors(maxcolors=1 << 20)
        assert len(colours) > 50                          # not blank
        red = sum(n for n, (r, g, b) in colours if r > 190 and g < 70 and b < 70)
        assert red > 100                                  # the highlight and the bound bars
        context.close()


def test_a_report_without_levels_has_no_picture(compiled) -> None:
    from backends.elector.html_report import render_report

    data = json.loads(compiled["json"].read_text())
    assert "hierarchy-svg" in render_report(data)
    data["hierarchy"] = None
    assert "hierarchy-svg" not in render_report(data)
