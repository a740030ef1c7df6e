"""Executors: a crashing worker becomes a failed outcome; Ray and the local pool agree."""

from __future__ import annotations

import random

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


@pytest.mark.ray
def test_ray_and_local_pool_give_identical_results(tmp_path, small_space_file,
                                                   model_cache_dir) -> None:
    ray = pytest.importorskip("ray")
    from tools.codesign.modelcache import ModelKey

    space = JointSpace(ModelSpace.single("bert-tiny"), HardwareSpace(str(small_space_file)))
    evaluator = CostEvaluator(cache_dir=model_cache_dir, seq=32)
    evaluator.models.static(ModelKey("bert-tiny", 1, 32))      # built before the workers start
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        from tools.codesign.executors import RayExecutor

        results = {}
        for label, executor in (("ray", RayExecutor(2)), ("local", "local")):
            results[label] = run_sweep(space, evaluator, "random", db=tmp_path / f"{label}.sqlite",
                                       budget=16, seed=5, batch_size=8, executor=executor,
                                       workers=2)
            if label == "ray":
                executor.close()
    finally:
        ray.shutdown()
    ray_trials, local_trials = results["ray"].trials, results["local"].trials
    assert [t.key for t in ray_trials] == [t.key for t in local_trials]
    for a, b in zip(ray_trials, local_trials):
        assert (a.outcome.status, a.outcome.reason) == (b.outcome.status, b.outcome.reason)
        assert a.outcome.metrics == b.outcome.metrics
    assert results["ray"].evaluated == results["local"].evaluated == 16
    workers = {t.outcome.worker for t in ray_trials}
    assert len(workers) >= 1 and all(":" in w for w in workers)
