"""A design followed by stray text: the error names the place and what may follow."""

from __future__ import annotations

import pytest


def test_stray_closing_brace_after_the_design_is_a_clear_error() -> None:
    from backends.elector import parse_design
    from backends.elector.design_library import LIBRARY_DIR
    from transcode_ir.errors import UserError

    text = (LIBRARY_DIR / "tiny-test.hwdsl").read_text() + "}\n"
    with pytest.raises(UserError) as err:
        parse_design(text, "extra.hwdsl")
    assert "expected the end of the file" in str(err.value)
    assert f"extra.hwdsl:{len(text.splitlines())}:1" in str(err.value)
