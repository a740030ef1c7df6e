"""Sweep processes end with their parent; a default Ray sweep listens on loopback only.

Each test starts a real sweep in a subprocess, waits until results arrive,
records the sweep's process tree (and, for Ray, the listening sockets that
tree holds, from the operating system's socket table), kills the sweep with
SIGKILL and checks that every process it started is gone within a bounded
time.  Issue 13 found pool workers and the resource tracker alive 60 s after
such a kill, and six Ray listeners on all addresses plus one on the external
interface.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.codesign.processes import alive, command, descendants, is_loopback, listeners

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(),
                                reason="reads the Linux /proc process and socket tables")

SCRIPT = textwrap.dedent("""\
    import sys
    from tools.codesign.evaluation import SyntheticEvaluator
    from tools.codesign.spaces import HardwareSpace, JointSpace, ModelSpace
    from tools.codesign.sweep import run_sweep

    if __name__ == "__main__":
        space = JointSpace(ModelSpace.single("bert-tiny"), HardwareSpace("transcode-space"))
        run_sweep(space, SyntheticEvaluator(seed=2, delay=float(sys.argv[3])), "random",
                  db=sys.argv[1], budget=2000, seed=1, batch_size=4, executor=sys.argv[2],
                  workers=2)
""")


def _count(db: Path) -> int:
    try:
        connection = sqlite3.connect(db, timeout=5)
        try:
            return connection.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        finally:
            connection.close()
    except sqlite3.OperationalError:
        return 0


def _start_sweep(tmp_path: Path, executor: str, delay: float, wait: float
                 ) -> tuple[subprocess.Popen, set[int]]:
    """A running sweep and its process tree, once results arrive."""
    script = tmp_path / "sweep.py"
    script.write_text(SCRIPT)
    db = tmp_path / "sweep.sqlite"
    process = subprocess.Popen([sys.executable, str(script), str(db), executor, str(delay)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + wait
    while _count(db) < 4:
        if process.poll() is not None:
            pytest.fail(process.stderr.read().decode()[-3000:])
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no results within {wait:.0f} s")
        time.sleep(0.2)
    return process, descendants(process.pid)


def _kill_and_check(process: subprocess.Popen, tree: set[int], within: float) -> float:
    """SIGKILL the sweep; every process of ``tree`` must be gone ``within`` seconds."""
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed = time.monotonic()
    try:
        while any(alive(pid) for pid in tree) and time.monotonic() - killed < within:
            time.sleep(0.1)
        left = {pid: command(pid) for pid in tree if alive(pid)}
        assert not left, f"still running {within:.0f} s after kill -9 of the sweep: {left}"
        return time.monotonic() - killed
    finally:
        for pid in tree:                          # never leave strays behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_pool_workers_and_resource_tracker_end_with_a_killed_sweep(tmp_path: Path) -> None:
    process, tree = _start_sweep(tmp_path, "local", 0.05, wait=120)
    commands = [command(pid) for pid in tree]
    assert sum("multiprocessing" in c for c in commands) >= 3, commands  # 2 workers + tracker
    seconds = _kill_and_check(process, tree, within=10)
    print(f"pool: {len(tree)} processes gone {seconds:.2f} s after kill -9")


@pytest.mark.ray
@pytest.mark.xdist_group("ray")      # one Ray instance at a time
def test_default_ray_sweep_listens_on_loopback_only_and_ends_with_its_parent(
        tmp_path: Path) -> None:
    pytest.importorskip("ray")
    process, tree = _start_sweep(tmp_path, "ray", 0.2, wait=240)
    tree = descendants(process.pid)                     # actors are up: look again
    mine = tree | {process.pid}
    sockets = [(host, port, sorted(pids & mine)) for host, port, pids in listeners()
               if pids & mine]
    described = "\n".join(f"  {host}:{port} {[command(p) for p in pids]}"
                          for host, port, pids in sockets)
    # GCS server, raylet (two), the driver, the two actors, agents.
    assert len(sockets) >= 5, described
    outside = [s for s in sockets if not is_loopback(s[0])]
    assert not outside, f"listeners outside 127.0.0.0/8:\n{described}"
    seconds = _kill_and_check(process, tree, within=20)
    print(f"ray: {len(sockets)} listeners, all loopback; {len(tree)} processes gone "
          f"{seconds:.2f} s after kill -9")
