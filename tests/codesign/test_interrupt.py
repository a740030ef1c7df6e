"""Ctrl-C and --time-limit leave a sweep 'interrupted' (not 'running') with
every finished evaluation kept, and the same command resumes it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

from tools.cli import main

# A synthetic sweep whose evaluations take 50 ms each (the evaluator's
# ``delay``), through the real driver and a local worker pool.
_SCRIPT = """
import sys
import tools.codesign.evaluation as evaluation
evaluation.SyntheticEvaluator.__init__.__defaults__ = (0, 13, 0.05, None)
from tools.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _state(db) -> tuple[str, int, int]:
    with sqlite3.connect(db) as connection:
        state = connection.execute("SELECT state FROM sweeps").fetchone()[0]
        results = connection.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        trials = connection.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    return state, results, trials


def test_sigint_marks_sweep_interrupted_and_keeps_results(tmp_path) -> None:
    db = tmp_path / "int.sqlite"
    arguments = ["sweep", "transcode-space", "--synthetic", "--db", str(db), "--budget",
                 "100000", "--executor", "local", "--workers", "1", "--round-size", "4",
                 "--quiet", "--no-report"]
    process = subprocess.Popen([sys.executable, "-c", _SCRIPT, *arguments],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if db.exists():
                try:
                    if _state(db)[2] >= 8:                 # two rounds recorded
                        break
                except (sqlite3.Error, TypeError):   # tables made, the sweep's row not yet
                    pass
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in err and "resume" in err
    state, results, trials = _state(db)
    assert state == "interrupted"
    assert trials >= 8 and results >= trials                 # finished work kept


def test_time_limit_marks_interrupted_then_resume_finishes(tmp_path, capsys) -> None:
    db = tmp_path / "tl.sqlite"
    base = ["sweep", "transcode-space", "--synthetic", "--db", str(db), "--executor", "inline",
            "--quiet", "--no-report", "--budget", "16", "--round-size", "4"]
    assert main(base + ["--time-limit", "0"]) == 0
    assert _state(db)[0] == "interrupted"
    assert main(base) == 0
    assert _state(db)[0] == "done" and _state(db)[2] == 16
    capsys.readouterr()
    assert main(["sweep", "status", str(db)]) == 0
    assert "[done]" in capsys.readouterr().out
