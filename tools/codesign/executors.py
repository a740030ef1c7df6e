"""Where evaluations run: in-line, a local process pool, or Ray.

Every executor takes a batch of points and yields ``(position, outcome)`` as
evaluations finish (any order); the sweep commits each outcome as it arrives
and tells the strategy in proposal order once the batch is done.

* :class:`InlineExecutor` -- in this process, one at a time (debugging,
  benchmarks of the evaluator itself).  A hard crash takes the sweep down.
* :class:`LocalPoolExecutor` -- the default: ``workers`` spawned processes
  (``concurrent.futures``), each set up once with the evaluator and the space
  (models stay prepared in the worker between evaluations).
* :class:`RayExecutor` -- ``workers`` Ray actors, each holding the evaluator
  and the space.  ``address=None`` starts a local instance (or uses the one
  this process already started); ``"auto"`` or ``host:port`` joins a running
  cluster; ``ray://host:port`` connects through Ray Client.

A Python exception in an evaluation is already a failed outcome
(:func:`~tools.codesign.evaluation.evaluate_safely`).  A worker that *dies*
(segfault, ``os._exit``, OOM kill) breaks a process pool or kills an actor:
the executor then starts fresh workers and re-runs the batch's unfinished
points one at a time, so the point that kills its worker again is recorded as
a failed outcome ("worker process died") and the others complete normally.
The same point gives the same outcome on every executor: the evaluation is
the same function of the point.
"""

from __future__ import annotations

import concurrent.futures
import gc
import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from transcode_ir.errors import UserError

__all__ = ["Executor", "InlineExecutor", "LocalPoolExecutor", "RayExecutor", "make_executor"]

_WORKER: dict[str, Any] = {}


#: The cyclic garbage collector's thresholds in worker processes.  An evaluation
#: allocates many short-lived objects and few cycles while the caches it fills
#: (prepared models, residency plans, candidate tables) grow: with the default
#: (700, 10, 10), full collections over those caches cost about a fifth of a
#: BERT-Base evaluation's CPU in a fresh worker.
WORKER_GC_THRESHOLDS = (10_000, 20, 100)


def _initialise_worker(evaluator: Any, space: Any) -> None:
    gc.set_threshold(*WORKER_GC_THRESHOLDS)
    _WORKER["evaluator"] = evaluator
    _WORKER["space"] = space
    evaluator.setup()


def _evaluate_in_worker(point_json: dict[str, Any]) -> dict[str, Any]:
    from tools.codesign.evaluation import evaluate_safely
    from tools.codesign.spaces import JointPoint

    point = JointPoint.from_json(point_json)
    return evaluate_safely(_WORKER["evaluator"], _WORKER["space"], point).to_json()


def _crashed(point: Any, detail: str) -> Any:
    from tools.codesign.evaluation import Outcome

    return Outcome.failed(f"worker process died while evaluating this point ({detail})")


class Executor:
    """Base class: ``start`` once, ``run(points)`` per batch, ``close`` at the end."""

    name = "base"
    workers = 1

    def start(self, evaluator: Any, space: Any) -> None:
        raise NotImplementedError

    def run(self, points: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return f"{self.name} ({self.workers} worker{'s' if self.workers != 1 else ''})"

    def __enter__(self) -> Executor:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InlineExecutor(Executor):
    """Evaluate in this process, in order."""

    name = "inline"

    def start(self, evaluator: Any, space: Any) -> None:
        self.evaluator, self.space = evaluator, space
        evaluator.setup()

    def run(self, points: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        from tools.codesign.evaluation import evaluate_safely

        for position, point in enumerate(points):
            yield position, evaluate_safely(self.evaluator, self.space, point)


class LocalPoolExecutor(Executor):
    """A pool of spawned worker processes (see the module docstring)."""

    name = "local"

    def __init__(self, workers: int = 2) -> None:
        if workers < 1:
            raise UserError(f"--workers must be at least 1, got {workers}")
        self.workers = workers
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def start(self, evaluator: Any, space: Any) -> None:
        """Start the workers (kept when started again with the same evaluator
        and space, so one pool can serve several sweeps)."""
        if self._pool is not None and self._arguments[0] is evaluator \
                and self._arguments[1] is space:
            return
        self.close()
        self._arguments = (evaluator, space)
        self._pool = self._new_pool(self.workers)

    def _new_pool(self, workers: int) -> concurrent.futures.ProcessPoolExecutor:
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_initialise_worker, initargs=self._arguments)

    def run(self, points: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        from tools.codesign.evaluation import Outcome

        assert self._pool is not None, "start() first"
        futures = {self._pool.submit(_evaluate_in_worker, p.to_json()): i
                   for i, p in enumerate(points)}
        unfinished = set(range(len(points)))
        broken = False
        try:
            for future in concurrent.futures.as_completed(futures):
                position = futures[future]
                try:
                    document = future.result()
                except BrokenProcessPool:
                    broken = True
                    break
                unfinished.discard(position)
                yield position, Outcome.from_json(document)
        finally:
            if not broken and unfinished:       # interrupted by the caller
                for future in futures:
                    future.cancel()
        if not broken:
            return
        self._pool.shutdown(wait=False, cancel_futures=True)
        # Isolate: the unfinished points one at a time in a one-worker pool
        # (a fresh one after each death), so only the culprit fails.
        pool = self._new_pool(1)
        try:
            for position in sorted(unfinished):
                try:
                    document = pool.submit(_evaluate_in_worker,
                                           points[position].to_json()).result()
                    outcome = Outcome.from_json(document)
                except BrokenProcessPool:
                    outcome = _crashed(points[position], "the local worker exited abnormally")
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = self._new_pool(1)
                yield position, outcome
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool(self.workers)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayExecutor(Executor):
    """Ray actors (see the module docstring)."""

    name = "ray"

    def __init__(self, workers: int = 2, address: str | None = None) -> None:
        if workers < 1:
            raise UserError(f"--workers must be at least 1, got {workers}")
        self.workers = workers
        self.address = address
        self._actors: list[Any] = []
        self._given: tuple[Any, Any] | None = None
        self._started_ray = False

    def describe(self) -> str:
        where = self.address or "local instance"
        return f"ray ({self.workers} actors, {where})"

    def start(self, evaluator: Any, space: Any) -> None:
        try:
            import ray
        except ImportError:
            raise UserError("--executor ray needs the ray package (pip install ray)") from None
        if not ray.is_initialized():
            if self.address is None:
                ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
            else:
                ray.init(address=self.address, log_to_driver=False, configure_logging=False)
            self._started_ray = True
        self._ray = ray

        @ray.remote(num_cpus=1, max_restarts=0)
        class _Worker:
            def __init__(self, evaluator: Any, space: Any) -> None:
                _initialise_worker(evaluator, space)

            def evaluate(self, point_json: dict[str, Any]) -> dict[str, Any]:
                return _evaluate_in_worker(point_json)

        self._actor_class = _Worker
        if self._actors and self._given == (evaluator, space):
            return
        self._given = (evaluator, space)
        self._arguments = (ray.put(evaluator), ray.put(space))
        self._actors = [self._new_actor() for _ in range(self.workers)]

    def _new_actor(self) -> Any:
        return self._actor_class.remote(*self._arguments)

    def run(self, points: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        from tools.codesign.evaluation import Outcome

        ray = self._ray
        queue = list(range(len(points)))
        idle = list(range(len(self._actors)))
        running: dict[Any, tuple[int, int]] = {}       # ref -> (position, actor slot)
        suspects: list[int] = []
        while queue or running:
            while queue and idle:
                position, slot = queue.pop(0), idle.pop(0)
                ref = self._actors[slot].evaluate.remote(points[position].to_json())
                running[ref] = (position, slot)
            done, _ = ray.wait(list(running), num_returns=1)
            ref = done[0]
            position, slot = running.pop(ref)
            try:
                document = ray.get(ref)
            except ray.exceptions.RayActorError:
                self._actors[slot] = self._new_actor()
                idle.append(slot)
                suspects.append(position)
                continue
            idle.append(slot)
            yield position, Outcome.from_json(document)
        # Points whose actor died: re-run one at a time to find the culprit.
        for position in suspects:
            try:
                document = ray.get(self._actors[0].evaluate.remote(points[position].to_json()))
                outcome = Outcome.from_json(document)
            except ray.exceptions.RayActorError:
                self._actors[0] = self._new_actor()
                outcome = _crashed(points[position], "the Ray actor died")
            yield position, outcome

    def close(self) -> None:
        if not self._actors:
            return
        for actor in self._actors:
            try:
                self._ray.kill(actor)
            except Exception:  # noqa: BLE001, S110 - best effort at shutdown
                pass
        self._actors = []
        if self._started_ray:
            self._ray.shutdown()
            self._started_ray = False


def make_executor(spec: str = "local", workers: int = 2) -> Executor:
    """``local`` | ``inline`` | ``ray`` (start a local instance) |
    ``ray://HOST:PORT`` (Ray Client) | ``ray:ADDRESS`` (join a cluster:
    ``ray:auto``, ``ray:127.0.0.1:6379``)."""
    if spec in ("local", "pool"):
        return LocalPoolExecutor(workers)
    if spec == "inline":
        return InlineExecutor()
    if spec == "ray":
        return RayExecutor(workers)
    if spec.startswith("ray://"):
        return RayExecutor(workers, spec)
    if spec.startswith("ray:"):
        return RayExecutor(workers, spec[4:])
    raise UserError(f"--executor {spec!r}: expected local, inline, ray, ray://HOST:PORT or "
                    "ray:ADDRESS")
