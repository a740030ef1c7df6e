"""The --html/--trace flags outside the browser: sweep export, bad paths."""

from __future__ import annotations

import json

import pytest

from tools.cli import main
from tools.codesign.store import ResultsStore

# One xdist worker builds the shared fixtures (compiles, sweep database) once.
pytestmark = pytest.mark.xdist_group("reports")


def test_sweep_export_html_names_every_design(sweep_db, tmp_path, capsys) -> None:
    page = tmp_path / "out" / "sweep.html"
    assert main(["sweep", "export", str(sweep_db), "--html", str(page)]) == 0
    text = page.read_text()
    with ResultsStore(sweep_db, readonly=True) as store:
        rows = [r for r in store.rows() if r["status"] == "ok"]
    for row in rows:
        assert f'id="d-{row["key"]}"' in text and row["hardware"] in text
    assert "<script src=" not in text and '<link rel="stylesheet"' not in text  # inlined


def test_unwritable_outputs_are_one_paragraph_errors(compiled, tmp_path, capsys) -> None:
    from backends.elector.trace import write_trace
    from transcode_ir.errors import UserError

    report = json.loads(compiled["json"].read_text())
    try:
        write_trace(report, tmp_path)              # a folder, not a file
    except UserError as err:
        assert "--trace" in str(err) and str(tmp_path) in str(err)
    else:
        raise AssertionError("writing a trace onto a folder did not fail")
    code = main(["sweep", "export", str(tmp_path / "missing.sqlite"), "--html",
                 str(tmp_path / "x.html")])
    assert code != 0 and not (tmp_path / "x.html").exists()
