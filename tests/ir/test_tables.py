"""The one table helper (transcode_ir.tables) and the listings built on it."""

from __future__ import annotations

import json

from transcode_ir.tables import format_table


def test_format_table_aligns_rules_and_totals() -> None:
    text = format_table(("item", "n"), [("a", 1), ("bbbb", "22")], total=("total", 23))
    assert text.splitlines() == ["item    n", "-----  --", "a       1", "bbbb   22",
                                 "-----  --", "total  23"]
    assert format_table(None, [("x", "y")], align="ll", indent="  ") == "  x  y"
    assert format_table(("a", "b"), [], rule=False) == "a  b"


def test_area_and_report_share_the_helper() -> None:
    # the copy between report.py and area.py is gone: both call format_table
    import inspect

    from backends.elector import area, report

    assert "format_table" in inspect.getsource(report._table)
    assert "format_table" in inspect.getsource(area.AreaBreakdown.format_table)
    assert ".ljust(" not in inspect.getsource(area) and ".ljust(" not in inspect.getsource(report)


def test_hw_list_json_parses(capsys) -> None:
    from tools.cli import main

    assert main(["hw", "list", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert {"acceltran-edge", "transcode-space"} <= {e["name"] for e in entries}
    assert {e["kind"] for e in entries} == {"design", "space"}
