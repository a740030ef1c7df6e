"""Text-IR tests of the ``dynaprop`` pass: run the ``// RUN:`` lines of ``filecheck/*.tir``.

They follow lit's conventions (``%s`` the file, ``%S`` its folder, ``not`` inverts an
exit status).  ``tcc`` stands for ``python -m tests.dynaprop_ir.tcc``, which registers
the pass before running the driver (see that module).  Files without RUN lines are inputs
of other files' checks.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "filecheck"
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run_lines(path: Path) -> list[str]:
    return [m.group(1) for line in path.read_text().splitlines()
            if (m := re.match(r"\s*//\s*RUN:\s*(.*)", line))]


FILES = [p for p in sorted(HERE.glob("*.tir")) if run_lines(p)]


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_filecheck(path: Path) -> None:
    tcc = f"{shlex.quote(sys.executable)} -m tests.dynaprop_ir.tcc"
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    for command in run_lines(path):
        command = (command.replace("%s", shlex.quote(str(path)))
                   .replace("%S", shlex.quote(str(path.parent))))
        command = re.sub(r"(^|\|\s*|not\s+)tcc\b", lambda m: m.group(1) + tcc, command)
        script = 'not() { ! "$@"; }\n' + command
        proc = subprocess.run(["bash", "-o", "pipefail", "-c", script], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (f"RUN: {command}\nexit {proc.returncode}\n"
                                      f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
