"""``technology = ...`` loads only library names or ``.json`` files, and
never quotes the content of a file that is not a technology table (issue 13,
point 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends.elector import LIBRARY_DIR
from tests.hardening.conftest import assert_user_error, run_tcc

EDGE = (LIBRARY_DIR / "acceltran-edge.hwdsl").read_text()
SECRET = "root:x:0:0:secret-line:/root:/bin/bash"


def _design(tmp_path: Path, technology: str) -> Path:
    path = tmp_path / "d.hwdsl"
    assert 'technology = "14nm"' in EDGE
    path.write_text(EDGE.replace('technology = "14nm"', f'technology = "{technology}"'))
    return path


@pytest.mark.parametrize("name", ["secret.txt", "secret", "/etc/passwd", "secret.json.bak"])
def test_a_file_not_ending_in_json_is_not_opened(tmp_path: Path, name: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "secret.txt").write_text(SECRET + "\n")
    design = _design(tmp_path, name)
    err = assert_user_error(run_tcc(["hw", "check", design], capsys), f"{design}:7:16",
                            "nor a path ending in .json")
    assert "secret-line" not in err and "root:x" not in err


@pytest.mark.parametrize("content", [SECRET + "\n", "\xff\xfe binary", '{"a": [1,\n' + SECRET])
def test_a_json_file_that_does_not_parse_is_not_quoted(tmp_path: Path, content: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tech.json"
    path.write_bytes(content.encode("utf-8", errors="surrogateescape") if "\xff" not in content
                     else b"\xff\xfe binary")
    err = assert_user_error(run_tcc(["hw", "check", _design(tmp_path, "tech.json")], capsys),
                            "tech.json", "transcode-technology/1")
    assert "secret-line" not in err and "binary" not in err


def test_a_huge_json_is_not_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "big.json"
    with open(path, "wb") as stream:
        stream.truncate(17 * 2**20)        # sparse: 17 MiB of zeros, no disk used
    assert_user_error(run_tcc(["hw", "check", _design(tmp_path, "big.json")], capsys),
                      "more than the 16 MiB")
