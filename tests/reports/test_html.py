"""HTML reports in a real headless browser (issue 14 item 1).

One Chromium launch (the Debian package, driven by Playwright; no browser
download) opens the compile report and a sweep page: no console errors, no
request leaves the file (works offline), the timeline draws one bar per op
of the JSON report, the roofline places every op with MACs, the per-op
table has every op and sorts, the pipeline is the exact one; on the sweep
page every evaluated point is drawn, clicking a front point opens its design
record and clicking the best point opens its full report.

In CI (``CI`` set) a missing browser fails the test; elsewhere it is skipped
with the reason.  ``.ci/run`` installs Chromium when it is missing.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("TCC_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

# One xdist worker builds the shared fixtures (compiles, sweep database) once.
pytestmark = pytest.mark.xdist_group("reports")


@pytest.fixture(scope="module")
def browser():
    missing = None
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            missing = "the playwright package is not installed (pip install -e '.[test]')"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run in CI: {missing}")
        pytest.skip(missing)
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


class Page:
    """A page that records console errors, page errors and requests."""

    def __init__(self, browser, path: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text)
                     if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.as_uri())
        self.page.wait_for_function("window.Plotly !== undefined && "
                                    "document.querySelectorAll('.js-plotly-plot').length > 0")

    def count(self, selector: str) -> int:
        return self.page.evaluate(f"document.querySelectorAll({json.dumps(selector)}).length")


def test_compile_report_in_a_browser(browser, compiled, tmp_path) -> None:
    report = json.loads(compiled["json"].read_text())
    ops = report["ops"]
    page = Page(browser, compiled["html"])
    p = page.page
    assert page.errors == []
    assert page.requests == [compiled["html"].as_uri()]         # self-contained, offline
    assert page.count("#timeline g.trace.bars g.point") == len(ops)
    drawn = p.evaluate("document.getElementById('timeline').data"
                       ".reduce((n, t) => n + t.y.length, 0)")
    assert drawn == len(ops)
    mac_ops = sum(1 for op in ops if op["macs"] and op["cycles"] > 0)
    assert page.count("#roofline g.trace.scatter g.points path.point") == mac_ops
    assert page.count("#op-table tbody tr") == len(ops)
    assert p.inner_text("#pipeline") == report["pipeline"]
    for chart in ("energy", "area", "bounds", "utilisation"):
        assert page.count(f"#{chart} .main-svg") >= 1, chart
    # Sorting: the cycles heading, twice (ascending, then descending).
    column = 7
    p.click(f"#op-table thead th:nth-child({column + 1})")
    cells = p.eval_on_selector_all(f"#op-table tbody td:nth-child({column + 1})",
                                   "cs => cs.map(c => parseFloat(c.dataset.v))")
    assert cells == sorted(op["cycles"] for op in ops)
    p.click(f"#op-table thead th:nth-child({column + 1})")
    cells = p.eval_on_selector_all(f"#op-table tbody td:nth-child({column + 1})",
                                   "cs => cs.map(c => parseFloat(c.dataset.v))")
    assert cells == sorted((op["cycles"] for op in ops), reverse=True)
    p.screenshot(path=str(tmp_path / "report.png"))
    assert page.errors == []


def test_sweep_page_in_a_browser(browser, sweep_db, reports, tmp_path) -> None:
    from backends.elector.html_report import write_sweep_html
    from tools.codesign.objectives import pareto_front
    from tools.codesign.store import ResultsStore

    with ResultsStore(sweep_db) as store:
        rows = store.rows()
    ok = [r for r in rows if r["status"] == "ok"]
    front = pareto_front(ok, lambda r: (r["latency_ms"], r["energy_nj"]), ("min", "min"))
    best = max(ok, key=lambda r: r["accuracy"] or 0)     # any point can carry a full report
    paths = write_sweep_html(sweep_db, tmp_path / "sweep.html", best_key=best["key"],
                             best_report=reports["event"])
    assert [p.name for p in paths] == ["sweep.html", "sweep-best.html"]
    page = Page(browser, paths[0])
    p = page.page
    assert page.errors == [] and page.requests == [paths[0].as_uri()]
    drawn = p.evaluate("document.getElementById('pareto').data.slice(0, 2)"
                       ".reduce((n, t) => n + t.x.length, 0)")
    assert drawn == len(ok)
    labels = p.evaluate("document.getElementById('pareto').data[1].text")
    assert sorted(labels) == sorted(r["hardware"] for r in front)
    # A real click on a front point (not the best one) opens its design record.
    target = next(r for r in front if r["key"] != best["key"])
    index = p.evaluate("document.getElementById('pareto').data[1].customdata"
                       f".findIndex(c => c[0] === {json.dumps(target['key'])})")
    box = p.locator("#pareto g.trace.scatter").nth(1).locator("path.point").nth(index)
    box.scroll_into_view_if_needed()
    area = box.bounding_box()
    p.mouse.move(area["x"] + area["width"] / 2, area["y"] + area["height"] / 2)
    p.mouse.click(area["x"] + area["width"] / 2, area["y"] + area["height"] / 2)
    card = p.locator(f"#d-{target['key']}")
    card.wait_for(state="visible", timeout=5000)
    assert target["hardware"] in card.inner_text()
    assert "accelerator" in card.locator("pre").inner_text()     # the design's DSL text
    # The best point opens its full report, which loads cleanly too.
    p.evaluate(f"tccOpen({json.dumps(best['key'])})")
    p.wait_for_url("**/sweep-best.html")
    p.wait_for_function("document.querySelectorAll('#timeline g.point').length > 0")
    assert page.count("#timeline g.trace.bars g.point") == len(reports["event"].result.ops)
    assert page.errors == []
