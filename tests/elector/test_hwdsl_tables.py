"""The shipped LALR tables (backends/elector/hwdsl_tables.json) are those of
the grammar, and the parser uses them without importing Lark.

After editing hwdsl.lark, regenerate the file:
``python -c 'from backends.elector.hwdsl import write_tables; write_tables()'``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from backends.elector.design_library import LIBRARY_DIR
from backends.elector.hwdsl import (
    _GRAMMAR_FILE,
    TABLES_FILE,
    _grammar_digest,
    _Tables,
    build_table_data,
)

REPO = Path(__file__).resolve().parents[2]


def test_shipped_tables_are_for_this_grammar() -> None:
    """Lark numbers LALR states differently from run to run, so the file is
    tied to the grammar by its digest; what it parses is checked below and by
    test_hwdsl_properties.py (the fast parser against Lark's own, on the
    library and on mutations)."""
    shipped = json.loads(TABLES_FILE.read_text(encoding="utf-8"))
    assert shipped["grammar_sha256"] == _grammar_digest(_GRAMMAR_FILE.read_text(encoding="utf-8")), (
        "hwdsl_tables.json is stale: regenerate it (see this file's docstring)")


def test_file_tables_parse_the_library_as_tables_built_with_lark() -> None:
    shipped, built = _Tables(), _Tables(build_table_data())
    assert len(shipped.actions) == len(built.actions)
    for path in sorted(LIBRARY_DIR.glob("*.hwdsl")):
        text = path.read_text(encoding="utf-8")
        assert shipped.parse(text) == built.parse(text), path.name


def test_reading_a_library_design_does_not_import_lark() -> None:
    code = ("import sys; from backends.elector import resolve_design; "
            "resolve_design('acceltran-edge'); print('lark' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert out.stdout.strip() == "False"
