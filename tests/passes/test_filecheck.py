"""Text-IR tests: run the ``// RUN:`` lines of every file in ``filecheck/``.

The files follow lit's conventions (``%s`` is the file, ``%S`` its folder, ``%t`` a
temporary path, ``not`` inverts an exit status), so ``lit tests/passes/filecheck`` runs them
too; this runner keeps them in the pytest suite without lit's process pool.
``tcc`` and ``filecheck`` are taken from the interpreter's environment.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "filecheck"
FILES = sorted(HERE.glob("*.tir"))
BIN = Path(sys.executable).parent


def run_lines(path: Path) -> list[str]:
    lines = []
    for line in path.read_text().splitlines():
        m = re.match(r"\s*//\s*RUN:\s*(.*)", line)
        if m:
            if lines and lines[-1].endswith("\\"):
                lines[-1] = lines[-1][:-1] + m.group(1)
            else:
                lines.append(m.group(1))
    return lines


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_filecheck(path: Path, tmp_path: Path) -> None:
    commands = run_lines(path)
    assert commands, f"{path.name} has no RUN line"
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    for command in commands:
        command = (command.replace("%s", str(path)).replace("%S", str(path.parent))
                   .replace("%t", str(tmp_path / path.stem)))
        script = 'not() { ! "$@"; }\n' + command
        proc = subprocess.run(["bash", "-o", "pipefail", "-c", script], cwd=path.parent, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (f"RUN: {command}\nexit {proc.returncode}\n"
                                      f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
