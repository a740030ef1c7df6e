"""The results store and resumption: kill -9 mid-sweep, resume, same database."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tools.codesign.evaluation import SyntheticEvaluator
from tools.codesign.spaces import HardwareSpace, JointSpace, ModelSpace
from tools.codesign.sweep import run_sweep

BUDGET = 48
SCRIPT = textwrap.dedent("""\
    import sys
    from tools.codesign.evaluation import SyntheticEvaluator
    from tools.codesign.spaces import HardwareSpace, JointSpace, ModelSpace
    from tools.codesign.sweep import run_sweep

    if __name__ == "__main__":
        space = JointSpace(ModelSpace.single("bert-tiny"), HardwareSpace("transcode-space"))
        run_sweep(space, SyntheticEvaluator(seed=4, delay=float(sys.argv[2])), "evolution",
                  db=sys.argv[1], budget={budget}, seed=11, batch_size=4, executor="inline",
                  strategy_options={{"population": 12, "sample": 4}})
""").format(budget=BUDGET)
COLUMNS = ("key", "point", "status", "reason", "accuracy", "latency_cycles", "dynamic_energy_nj",
           "leakage_energy_nj", "area_mm2", "metrics", "pipeline", "tool_version", "identity")


def _space() -> JointSpace:
    return JointSpace(ModelSpace.single("bert-tiny"), HardwareSpace("transcode-space"))


def _sweep(db: Path, **extra):
    return run_sweep(_space(), SyntheticEvaluator(seed=4), "evolution", db=db, budget=BUDGET,
                     seed=11, batch_size=4, executor="inline",
                     strategy_options={"population": 12, "sample": 4}, **extra)


def _contents(db: Path) -> tuple[list[tuple], list[tuple]]:
    connection = sqlite3.connect(db)
    results = connection.execute(f"SELECT {', '.join(COLUMNS)} FROM results ORDER BY key"
                                 ).fetchall()
    trials = connection.execute("SELECT seq, key, score FROM trials ORDER BY seq").fetchall()
    connection.close()
    return results, trials


def _count(db: Path) -> int:
    try:
        connection = sqlite3.connect(db, timeout=5)
        count = connection.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        connection.close()
        return count
    except sqlite3.OperationalError:
        return 0


def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    reference = tmp_path / "reference.sqlite"
    uninterrupted = _sweep(reference)
    assert uninterrupted.evaluated + uninterrupted.reused == BUDGET

    killed = tmp_path / "killed.sqlite"
    script = tmp_path / "sweep.py"
    script.write_text(SCRIPT)
    process = subprocess.Popen([sys.executable, str(script), str(killed), "0.05"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _count(killed) < 14 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, process.stderr.read().decode()[-2000:]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = _count(killed)
    assert 14 <= before < BUDGET

    resumed = _sweep(killed)
    results, trials = _contents(killed)
    assert (results, trials) == _contents(reference)
    assert len({row[0] for row in results}) == len(results)          # no duplicates
    assert resumed.evaluated == len(results) - before                 # nothing evaluated twice
    assert resumed.reused == BUDGET - resumed.evaluated
    again = _sweep(killed)                                            # a finished sweep: all stored
    assert again.evaluated == 0 and again.best.key == uninterrupted.best.key


def test_database_is_wal_and_budget_can_grow(tmp_path: Path) -> None:
    db = tmp_path / "grow.sqlite"
    first = run_sweep(_space(), SyntheticEvaluator(), "random", db=db, budget=10, seed=1,
                      executor="inline")
    second = run_sweep(_space(), SyntheticEvaluator(), "random", db=db, budget=25, seed=1,
                       executor="inline")
    assert [t.key for t in second.trials[:10]] == [t.key for t in first.trials]
    assert second.evaluated == 15 and second.reused == 10
    connection = sqlite3.connect(db)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 25
    connection.close()


def test_a_diverging_replay_is_refused(tmp_path: Path) -> None:
    import pytest

    from tools.codesign.store import ResultsStore
    from transcode_ir.errors import UserError

    db = tmp_path / "diverge.sqlite"
    result = run_sweep(_space(), SyntheticEvaluator(), "random", db=db, budget=8, seed=1,
                       executor="inline", name="fixed-name")
    with ResultsStore(db) as store:
        store.add_trials(result.sweep_id, [(3, "0" * 64, 0, 0.0)])   # tamper with the record
    with pytest.raises(UserError, match="different point at trial 3"):
        run_sweep(_space(), SyntheticEvaluator(), "random", db=db, budget=8, seed=1,
                  executor="inline", name="fixed-name")
