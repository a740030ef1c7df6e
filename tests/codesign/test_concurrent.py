"""Two sweeps on one database share the work (claims), and a killed one's claims are taken over.

Issue 13: two identical sweeps on one database each evaluated almost every
point (579 and 588 of 600).  Here two identical sweeps run in subprocesses
released together by a start file; every point is evaluated exactly once
between them.  Then one of two is killed with SIGKILL mid-run and the other
finishes every point, taking over the claim the dead one held.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

BUDGET = 96
SCRIPT = textwrap.dedent("""\
    import json, sys, time
    from pathlib import Path
    from tools.codesign.evaluation import SyntheticEvaluator
    from tools.codesign.spaces import HardwareSpace, JointSpace, ModelSpace
    from tools.codesign.sweep import run_sweep

    if __name__ == "__main__":
        db, go, ready, delay = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4])
        space = JointSpace(ModelSpace.single("bert-tiny"), HardwareSpace("transcode-space"))
        ready.touch()
        while not go.exists():
            time.sleep(0.01)
        result = run_sweep(space, SyntheticEvaluator(seed=3, delay=delay), "random", db=db,
                           budget={budget}, seed=7, batch_size=8, executor="inline")
        print(json.dumps({{"evaluated": result.evaluated, "reused": result.reused,
                          "trials": len(result.trials), "taken_over": result.taken_over,
                          "keys": sorted({{t.key for t in result.trials}})}}))
""").format(budget=BUDGET)


def _launch(tmp_path: Path, db: Path, count: int, delay: float) -> list[subprocess.Popen]:
    script = tmp_path / "sweep.py"
    script.write_text(SCRIPT)
    go = tmp_path / "go"
    processes, ready = [], []
    for index in range(count):
        ready.append(tmp_path / f"ready{index}")
        processes.append(subprocess.Popen(
            [sys.executable, str(script), str(db), str(go), str(ready[-1]), str(delay)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready):
        assert time.monotonic() < deadline and all(p.poll() is None for p in processes), \
            [p.stderr.read() for p in processes if p.poll() is not None]
        time.sleep(0.05)
    go.touch()
    return processes


def _finish(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _machine() -> str:
    from tools.codesign.lifetime import owner_identity

    return owner_identity().machine


def _table(db: Path, query: str) -> list[tuple]:
    connection = sqlite3.connect(db, timeout=30)
    try:
        return connection.execute(query).fetchall()
    finally:
        connection.close()


def test_two_identical_sweeps_on_one_database_evaluate_each_point_once(tmp_path: Path) -> None:
    db = tmp_path / "shared.sqlite"
    first, second = (_finish(p) for p in _launch(tmp_path, db, 2, delay=0.03))
    distinct = _table(db, "SELECT COUNT(*) FROM results")[0][0]
    assert first["keys"] == second["keys"] and len(first["keys"]) == distinct
    assert first["trials"] == second["trials"] == BUDGET
    # Every point evaluated exactly once between the two (no duplicates), and
    # both did part of the work.
    assert first["evaluated"] + second["evaluated"] == distinct
    assert first["evaluated"] > 0 and second["evaluated"] > 0
    assert first["reused"] == BUDGET - first["evaluated"]
    assert _table(db, "SELECT COUNT(*) FROM claims")[0][0] == 0
    print(f"evaluated {first['evaluated']} + {second['evaluated']} of {distinct}")


def test_killing_one_sweep_lets_the_other_finish_its_points(tmp_path: Path) -> None:
    db = tmp_path / "shared.sqlite"
    victim, survivor = _launch(tmp_path, db, 2, delay=0.05)
    deadline = time.monotonic() + 120
    while True:
        for process in (victim, survivor):
            assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the sweeps did not get under way in 120 s"
        try:                                      # both under way, the victim with 5+
            if _table(db, "SELECT COUNT(*) FROM results")[0][0] >= 20 and _table(
                    db, f"SELECT COUNT(*) FROM results WHERE worker LIKE '%:{victim.pid}'"
                    )[0][0] >= 5:
                break
        except sqlite3.OperationalError:          # the schema is not there yet
            pass
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    # Claims the dead sweep left (unless the survivor already took them over).
    held = _table(db, f"SELECT COUNT(*) FROM claims WHERE pid = {victim.pid}")[0][0]
    result = _finish(survivor)
    assert result["trials"] == BUDGET
    distinct = _table(db, "SELECT COUNT(*) FROM results")[0][0]
    assert distinct == len(result["keys"])
    by_victim = _table(db, "SELECT COUNT(*) FROM results WHERE worker LIKE "
                           f"'%:{victim.pid}'")[0][0]
    assert by_victim > 0 and result["evaluated"] + by_victim == distinct     # none twice
    assert _table(db, "SELECT COUNT(*) FROM claims")[0][0] == 0
    assert result["taken_over"] >= held
    victim_db = tmp_path / "victim.sqlite"                 # status names an abandoned claim
    victim_db.write_bytes(db.read_bytes())
    connection = sqlite3.connect(victim_db)
    connection.execute("INSERT INTO claims VALUES ('k', 'o', ?, ?, 0, 0)",
                       (_machine(), victim.pid))
    connection.commit()
    connection.close()
    from tools.codesign.report import status_text

    assert "1 abandoned claim (its sweep is gone" in status_text(victim_db)
    print(f"victim stored {by_victim}, survivor evaluated {result['evaluated']}, "
          f"took over {result['taken_over']} claim(s) ({held} left just after the kill)")


def test_a_claim_is_abandoned_only_when_its_owner_is_gone(tmp_path: Path) -> None:
    from tools.codesign.store import STALE_AFTER, ResultsStore, _abandoned

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    from tools.codesign.lifetime import owner_identity

    me = owner_identity()
    now = time.time()
    assert not _abandoned(("x", me.machine, me.pid, me.start, now - 3600), now)   # alive
    assert _abandoned(("x", me.machine, child.pid, me.start, now), now)         # pid gone
    assert _abandoned(("x", me.machine, me.pid, me.start + 1, now), now)         # pid reused
    assert not _abandoned(("x", "elsewhere/1", 1, 5, now - STALE_AFTER / 2), now)
    assert _abandoned(("x", "elsewhere/1", 1, 5, now - STALE_AFTER - 1), now)   # no heartbeat
    with ResultsStore(tmp_path / "c.sqlite") as store:
        one, two = store.claimer(), store.claimer()
        try:
            assert one.claim("k") and not two.claim("k") and one.claim("k")
            from tools.codesign.report import status_text

            assert f"1 point claimed by pid {os.getpid()}" in status_text(store.path)
        finally:
            one.close()
        assert two.claim("k")                     # released at close
        two.close()
        assert store.claims() == []
