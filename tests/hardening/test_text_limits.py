"""Limits of the ``.tir`` parser (issue 13): nesting and number sizes are
refused with ``file:line:col`` instead of a RecursionError or int()'s
4,300-digit ValueError; files that are not IR or not a hardware description
are not quoted in the error."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hardening.conftest import GEMM_TIR, assert_user_error, run_tcc
from transcode_ir.errors import ParseError
from transcode_ir.parser import MAX_NESTING, parse_module
from transcode_ir.printer import print_module

GEMM = GEMM_TIR.read_text()
PERM = "{perm = [1, 0]}"


def _with_attribute(value: str) -> str:
    return GEMM.replace(PERM, "{perm = [1, 0], x = " + value + "}")


def _error(text: str) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse_module(text, "m.tir")
    return caught.value


def test_nesting_500_deep_is_refused_at_its_place() -> None:
    text = _with_attribute("[" * 500 + "1" + "]" * 500)
    error = _error(text)
    line = text.splitlines().index(next(row for row in text.splitlines() if "x = [" in row)) + 1
    assert error.location.line == line
    assert f"nested more than {MAX_NESTING} deep" in str(error)
    assert len(str(error)) < 600      # the snippet is a window, not the 1,000-character line


def test_nesting_at_the_limit_round_trips() -> None:
    """Deep but allowed: parses (the verifier, not the parser, judges the attribute)."""
    text = GEMM.replace(PERM, "{perm = [1, 0], \"t:x\" = " + "[" * MAX_NESTING + "1" +
                        "]" * MAX_NESTING + "}")
    module = parse_module(text, "m.tir")
    assert print_module(parse_module(print_module(module))) == print_module(module)


def test_brackets_in_strings_and_comments_do_not_count() -> None:
    text = "// " + "[" * 200 + "\n" + GEMM.replace(PERM, '{perm = [1, 0], "t:s" = "' +
                                                   "[" * 200 + '"}')
    parse_module(text, "m.tir")


@pytest.mark.parametrize("value, fragment", [
    ("9" * 5000, "(5000 digits) does not fit in 64 bits"),
    ("9" * 20, "does not fit in 64 bits"),
    ("-9223372036854775809", "out of range"),
])
def test_huge_integer_attribute(value: str, fragment: str) -> None:
    error = _error(_with_attribute(value))
    assert fragment in str(error) and error.location.line == 14


def test_largest_int64_is_accepted() -> None:
    parse_module(GEMM.replace(PERM, '{perm = [1, 0], "t:n" = 9223372036854775807}'))


@pytest.mark.parametrize("old, new, fragment", [
    ("tensor<3x5xf32>", "tensor<" + "9" * 5000 + "x5xf32>", "dimension"),
    ("tensor<3x5xf32>", "tensor<99999999999999999999x5xf32>", "does not fit in 64 bits"),
    ("tensor<3x5xf32>", "tensor<4294967296x4294967296x5xf32>", "more than 64-bit sizes"),
    ("dense<f32, [], [0.5]>", "dense<f32, [99999999999999999999], [0.5]>", "dimension"),
    ("dense<f32, [], [2.0]>", "dense<i32, [], [3000000000]>", "i32 value 3000000000 is out of "
                                                              "range"),
    ("dense<f32, [], [2.0]>", "dense<i8, [], [" + "9" * 5000 + "]>", "does not fit"),
])
def test_numbers_in_types_and_dense_values(old: str, new: str, fragment: str) -> None:
    assert old in GEMM
    assert fragment in str(_error(GEMM.replace(old, new, 1)))


def test_cli_reports_them_without_traceback(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    for index, text in enumerate([_with_attribute("[" * 500 + "]" * 500),
                                  _with_attribute("9" * 5000)]):
        path = tmp_path / f"m{index}.tir"
        path.write_text(text)
        assert_user_error(run_tcc(["opt", path], capsys), f"{path}:14:")


@pytest.mark.parametrize("content", [
    "root:x:0:0:root:/root:/bin/bash\nsecret line\n",
    '{"format": "transcode-technology/1"}',
])
def test_files_of_another_kind_are_not_quoted(tmp_path: Path, content: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "other.tir"
    path.write_text(content)
    err = assert_user_error(run_tcc(["opt", path], capsys), "not IR text")
    assert content.splitlines()[0] not in err
    hw = tmp_path / "other.hwdsl"
    hw.write_text(content)
    err = assert_user_error(run_tcc(["hw", "check", hw], capsys), "not a hardware description")
    assert content.splitlines()[0] not in err
