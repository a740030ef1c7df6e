"""Shared helpers of the input-hardening tests (issue 13).

:func:`run_tcc` runs the ``tcc`` driver in this process and checks the rule
every test here enforces: a user mistake ends with exit code 1 (2 for an
argparse usage error) and one ``error:`` paragraph on stderr, never a
traceback.  :func:`small_module` writes a small ``.tir`` + ``.npz`` pair
(the gemm golden case with seeded data).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tools.cli import main

REPO = Path(__file__).resolve().parents[2]
GEMM_TIR = REPO / "tests" / "frontend" / "golden" / "gemm.tir"


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def run_tcc(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Outcome:
    """``tcc ARGV`` in process; a Python exception escaping it fails the test."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:          # argparse usage errors
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return Outcome(code, captured.out, captured.err)


def assert_user_error(outcome: Outcome, *fragments: str, code: int = 1) -> str:
    """One error paragraph containing every fragment, and exit ``code``."""
    assert outcome.code == code, (outcome.code, outcome.err)
    err = outcome.err.strip()
    if code == 2:
        assert "error:" in err
    else:
        assert err.startswith("error: "), err
        assert "\n\n" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def small_module(folder: Path, name: str = "gemm") -> Path:
    """``folder/name.tir`` and ``name.npz`` (seeded parameter data)."""
    rng = np.random.default_rng(0)
    tir = folder / f"{name}.tir"
    shutil.copyfile(GEMM_TIR, tir)
    np.savez(folder / f"{name}.npz", **{
        "pooler.dense.weight_transposed": rng.standard_normal((6, 4)).astype(np.float32),
        "pooler.dense.bias": rng.standard_normal(4).astype(np.float32),
        "proj": rng.standard_normal((5, 3)).astype(np.float32),
    })
    return tir


@pytest.fixture()
def module_file(tmp_path: Path) -> Path:
    return small_module(tmp_path)


@pytest.fixture()
def tiny_tmpfs(tmp_path: Path):
    """A 64 KiB tmpfs (a device that fills up), when this process may mount
    one (root in a sandbox that allows it); skips otherwise -- the
    monkeypatched ENOSPC tests cover the same path everywhere."""
    mount = tmp_path / "full"
    mount.mkdir()
    if not shutil.which("mount"):
        pytest.skip("no mount command")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
