"""Text-IR tests: run the ``// RUN:`` lines of every file in ``filecheck/``.

The files follow lit's conventions (``%s`` is the file, ``%S`` its folder,
``%t`` a temporary path, ``not`` inverts an exit status), so
``lit tests/passes/filecheck`` runs them in a shell (see ``lit.cfg.py``).

This runner keeps them in the pytest suite and runs them *in process*: a
small interpreter for the shell subset the files use (``|``, ``&&``, ``>``,
``2>&1``, ``not``, and the commands ``tcc``, ``filecheck`` and ``diff``)
calls :func:`tools.cli.main` and the ``filecheck`` package's ``main``
directly, so a RUN line costs milliseconds rather than a Python start-up.
Set ``TRANSCODE_FILECHECK_SUBPROCESS=1`` to run the lines in bash instead.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "filecheck"
FILES = sorted(HERE.glob("*.tir"))
BIN = Path(sys.executable).parent


def run_lines(path: Path) -> list[str]:
    lines: list[str] = []
    for line in path.read_text().splitlines():
        m = re.match(r"\s*//\s*RUN:\s*(.*)", line)
        if m:
            if lines and lines[-1].endswith("\\"):
                lines[-1] = lines[-1][:-1] + m.group(1)
            else:
                lines.append(m.group(1))
    return lines


class _Bytes(io.StringIO):
    """A text stream with a ``buffer`` (filecheck reads ``sys.stdin.buffer``)."""

    @property
    def buffer(self) -> io.BytesIO:
        return io.BytesIO(self.getvalue().encode())


def _call(argv: list[str], stdin: str, cwd: Path) -> tuple[int, str, str]:
    """Run one command in process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    name, args = argv[0], argv[1:]
    old_stdin = sys.stdin
    sys.stdin = _Bytes(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                if name == "tcc":
                    from tools.cli import main

                    code = main(args)
                elif name == "filecheck":
                    from filecheck.main import main as filecheck_main

                    code = filecheck_main(["filecheck"] + args) or 0
                elif name == "diff":
                    a, b = (Path(cwd, p).read_text() for p in args)
                    code = 0 if a == b else 1
                    if code:
                        print(f"{args[0]} and {args[1]} differ")
                else:
                    raise AssertionError(f"the in-process runner does not know {name!r}")
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        sys.stdin = old_stdin
    return int(code or 0), out.getvalue(), err.getvalue()


def _run_pipeline(words: list[str], cwd: Path) -> tuple[int, str]:
    """Run ``a | b | c`` (with ``not``, ``> file`` and ``2>&1``); returns
    (exit code, diagnostics)."""
    stages: list[list[str]] = [[]]
    for w in words:
        if w == "|":
            stages.append([])
        else:
            stages[-1].append(w)
    data, log, code = "", "", 0
    for stage in stages:
        invert = stage[:1] == ["not"]
        stage = stage[1:] if invert else stage
        merge = "2>&1" in stage
        stage = [w for w in stage if w != "2>&1"]
        target = None
        if ">" in stage:
            i = stage.index(">")
            target, stage = stage[i + 1], stage[:i]
        code, out, err = _call(stage, data, cwd)
        if invert:
            code = 0 if code else 1
        data = err + out if merge else out
        if not merge:
            log += err
        if target is not None:
            Path(cwd, target).write_text(data)
            data = ""
        if code:
            log += out if not merge else data
            return code, f"{' '.join(stage)} exited {code}\n{log}"
    return code, log


def _run_in_process(command: str, cwd: Path) -> None:
    words = shlex.split(command)
    sequences: list[list[str]] = [[]]
    for w in words:
        if w == "&&":
            sequences.append([])
        else:
            sequences[-1].append(w)
    for words in sequences:
        code, log = _run_pipeline(words, cwd)
        assert code == 0, f"RUN: {command}\n{log}"


def _run_in_bash(command: str, cwd: Path) -> None:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    script = 'not() { ! "$@"; }\n' + command
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (f"RUN: {command}\nexit {proc.returncode}\n"
                                  f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_filecheck(path: Path, tmp_path: Path) -> None:
    commands = run_lines(path)
    assert commands, f"{path.name} has no RUN line"
    run = _run_in_bash if os.environ.get("TRANSCODE_FILECHECK_SUBPROCESS") else _run_in_process
    for command in commands:
        command = (command.replace("%s", str(path)).replace("%S", str(path.parent))
                   .replace("%t", str(tmp_path / path.stem)))
        run(command, path.parent)
