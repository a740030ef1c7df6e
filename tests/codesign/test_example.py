"""docs/examples/sweep_example.py runs, and resumes without evaluating again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "sweep_example.py"


def test_sweep_example_runs_and_resumes(tmp_path, model_cache_dir) -> None:
    env = dict(os.environ, TRANSCODE_CACHE=str(model_cache_dir))
    command = [sys.executable, str(EXAMPLE), str(tmp_path / "out"), "8"]
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600,
                           check=False)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Pareto front, latency (ms) against energy (uJ):" in first.stdout
    assert "tcc compile: l2:h128:sdp*2:ff512" in first.stdout
    for name in ("pareto.png", "best_so_far.png", "results.csv", "example.sqlite"):
        assert (tmp_path / "out" / name).exists()
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600,
                           check=False)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "(0 evaluated now, 8 from the store" in second.stdout
