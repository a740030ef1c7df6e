"""Executors: a crashing worker becomes a failed outcome; Ray and the local pool agree."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from tools.codesign.evaluation import CostEvaluator, SyntheticEvaluator, evaluate_safely
from tools.codesign.executors import LocalPoolExecutor
from tools.codesign.spaces import HardwareSpace, JointSpace, ModelSpace
from tools.codesign.sweep import run_sweep


def _points(space: JointSpace, count: int, seed: int = 0) -> list:
    rng = random.Random(seed)
    return [space.sample(rng) for _ in range(count)]


def test_worker_crash_is_recorded_and_the_rest_complete() -> None:
    space = JointSpace(ModelSpace.single("bert-tiny"), HardwareSpace("transcode-space"))
    points = _points(space, 6)
    victim = points[2]
    evaluator = SyntheticEvaluator(seed=1, crash_when=f'"hardware":{victim.hardware},')
    with LocalPoolExecutor(2) as pool:
        pool.start(evaluator, space)
        outcomes = dict(pool.run(points))
        assert outcomes[2].status == "failed"
        assert "worker process died" in outcomes[2].reason
        expected = [evaluate_safely(SyntheticEvaluator(seed=1), space, p) for p in points]
        for position in (0, 1, 3, 4, 5):
            assert outcomes[position].metrics == expected[position].metrics
        again = dict(pool.run(points[3:]))                   # the pool works after a crash
        assert again[0].metrics == expected[3].metrics
        asked: list[int] = []                                # admit: claimed points only
        admitted = dict(pool.run(points, admit=lambda i: asked.append(i) or i != 2))
        assert sorted(asked) == list(range(6)) and sorted(admitted) == [0, 1, 3, 4, 5]
        assert all(admitted[i].metrics == expected[i].metrics for i in admitted)


@pytest.mark.ray
@pytest.mark.xdist_group("ray")      # one Ray instance at a time
def test_ray_and_local_pool_give_identical_results(tmp_path, small_space_file,
                                                   model_cache_dir) -> None:
    ray = pytest.importorskip("ray")
    from tools.codesign.executors import RayExecutor
    from tools.codesign.modelcache import ModelKey

    space = JointSpace(ModelSpace.single("bert-tiny"), HardwareSpace(str(small_space_file)))
    evaluator = CostEvaluator(cache_dir=model_cache_dir, seq=32)
    evaluator.models.static(ModelKey("bert-tiny", 1, 32))      # built before the workers start
    results = {}
    executor = RayExecutor(2)             # starts the private local instance itself
    try:
        for label, spec in (("ray", executor), ("local", "local")):
            results[label] = run_sweep(space, evaluator, "random", db=tmp_path / f"{label}.sqlite",
                                       budget=16, seed=5, batch_size=8, executor=spec,
                                       workers=2)
        if Path("/proc/net/tcp").exists():  # this process's Ray listens on loopback only
            from tests.codesign.processes import descendants, is_loopback, listeners

            mine = descendants(os.getpid()) | {os.getpid()}
            ours = [(h, p) for h, p, pids in listeners() if pids & mine]
            assert ours and all(is_loopback(h) for h, _ in ours), ours
    finally:
        executor.close()
    assert not ray.is_initialized()
    ray_trials, local_trials = results["ray"].trials, results["local"].trials
    assert [t.key for t in ray_trials] == [t.key for t in local_trials]
    for a, b in zip(ray_trials, local_trials):
        assert (a.outcome.status, a.outcome.reason) == (b.outcome.status, b.outcome.reason)
        assert a.outcome.metrics == b.outcome.metrics
    assert results["ray"].evaluated == results["local"].evaluated == 16
    workers = {t.outcome.worker for t in ray_trials}
    assert len(workers) >= 1 and all(":" in w for w in workers)


def test_unreachable_ray_cluster_fails_fast_naming_the_address(capsys, tmp_path) -> None:
    """Issue 13: ``--executor ray://127.0.0.1:1`` was a ConnectionError traceback after 32 s."""
    from tools.cli import main

    started = time.monotonic()
    code = main(["sweep", "transcode-space", "--synthetic", "--db", str(tmp_path / "unused.sqlite"),
                 "--executor", "ray://127.0.0.1:1", "--budget", "4", "--quiet"])
    err = capsys.readouterr().err
    assert code != 0 and time.monotonic() - started < 10
    assert "ray://127.0.0.1:1" in err and "127.0.0.1:1" in err and "Traceback" not in err
    assert not (tmp_path / "unused.sqlite").exists()          # nothing created
    for spec in ("ray:127.0.0.1:1", "ray://nowhere", "ray:"):
        assert main(["sweep", "transcode-space", "--synthetic", "--db", str(tmp_path / "unused.sqlite"),
                     "--executor", spec, "--budget", "4", "--quiet"]) != 0
        err = capsys.readouterr().err
        assert "--executor" in err and "Traceback" not in err
