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
  and the space.  ``address=None`` starts a private local instance (or uses
  the one this process already started): every Ray listener on the loopback
  address, token authentication with a fresh token, no dashboard, no usage
  statistics (see :func:`private_ray_settings`).  Joining a cluster is
  explicit: ``"auto"`` or ``host:port`` joins a running cluster;
  ``ray://host:port`` connects through Ray Client.  An address that does not
  answer is an error naming it, within seconds.

Both executors that start processes make them end with the sweep: pool
workers exit when their parent dies, and a watchdog ends a local Ray
instance's processes (:mod:`tools.codesign.lifetime`).

``run(points, admit)`` asks ``admit(position)`` just before it sends a point
to a worker and skips the point when it says no (the sweep driver claims the
point in the results database there, so concurrent sweeps share the work);
with ``admit`` it keeps only about ``workers`` points in flight.

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
import contextlib
import gc
import multiprocessing
import os
import secrets
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from transcode_ir.errors import UserError

__all__ = ["Executor", "InlineExecutor", "LocalPoolExecutor", "RayExecutor", "make_executor",
           "private_ray_settings"]

Admit = Callable[[int], bool] | None

_WORKER: dict[str, Any] = {}


#: The cyclic garbage collector's thresholds in worker processes.  An evaluation
#: allocates many short-lived objects and few cycles while the caches it fills
#: (prepared models, residency plans, candidate tables) grow: with the default
#: (700, 10, 10), full collections over those caches cost about a fifth of a
#: BERT-Base evaluation's CPU in a fresh worker.
WORKER_GC_THRESHOLDS = (10_000, 20, 100)


def _initialise_worker(evaluator: Any, space: Any, parent_pid: int | None = None,
                       kernel_signal: bool = False) -> None:
    if parent_pid is not None:
        from tools.codesign.lifetime import end_with_parent

        end_with_parent(parent_pid, kernel_signal)
    gc.set_threshold(*WORKER_GC_THRESHOLDS)
    # Ctrl-C on a terminal signals the whole process group: the sweep (the
    # parent) handles it -- it marks the sweep interrupted and ends the
    # workers -- so a worker does not die with its own traceback.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
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

    def preflight(self) -> None:
        """Cheap checks before a sweep opens its database (e.g. that a
        cluster's address answers)."""

    def start(self, evaluator: Any, space: Any) -> None:
        raise NotImplementedError

    def run(self, points: Sequence[Any], admit: Admit = None) -> Iterator[tuple[int, Any]]:
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

    def run(self, points: Sequence[Any], admit: Admit = None) -> Iterator[tuple[int, Any]]:
        from tools.codesign.evaluation import evaluate_safely

        for position, point in enumerate(points):
            if admit is None or admit(position):
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
        # Workers end with this process (see tools.codesign.lifetime); the
        # kernel's parent-death signal follows the creating *thread*, so it is
        # asked for only when the pool is made by the main thread.
        main = threading.current_thread() is threading.main_thread()
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_initialise_worker, initargs=(*self._arguments, os.getpid(), main))

    def run(self, points: Sequence[Any], admit: Admit = None) -> Iterator[tuple[int, Any]]:
        from tools.codesign.evaluation import Outcome

        assert self._pool is not None, "start() first"
        pending = deque(range(len(points)))
        limit = len(points) if admit is None else self.workers + 1
        while pending:
            futures: dict[concurrent.futures.Future[Any], int] = {}
            suspects: list[int] = []
            try:
                while pending or futures:
                    while pending and len(futures) < limit:
                        position = pending.popleft()
                        if admit is None or admit(position):
                            futures[self._pool.submit(_evaluate_in_worker,
                                                      points[position].to_json())] = position
                    if not futures:
                        break
                    done, _ = concurrent.futures.wait(
                        futures, return_when=concurrent.futures.FIRST_COMPLETED)
                    for future in done:
                        position = futures.pop(future)
                        try:
                            document = future.result()
                        except BrokenProcessPool:
                            suspects.append(position)
                            continue
                        yield position, Outcome.from_json(document)
                    if suspects:
                        break
            finally:
                if not suspects:                 # interrupted by the caller
                    for future in futures:
                        future.cancel()
            if not suspects:
                return
            # A worker died: the pool is broken and every point in flight is
            # suspect.  Re-run them one at a time in a one-worker pool (a fresh
            # one after each death) so only the culprit fails, then go on.
            for future, position in futures.items():
                if future.done() and not future.cancelled() and future.exception() is None:
                    yield position, Outcome.from_json(future.result())
                else:
                    suspects.append(position)
            self._pool.shutdown(wait=False, cancel_futures=True)
            pool = self._new_pool(1)
            try:
                for position in sorted(suspects):
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

    def abort(self) -> None:
        """End the workers now, dropping evaluations in flight (after Ctrl-C)."""
        if self._pool is not None:
            processes = list((getattr(self._pool, "_processes", None) or {}).values())
            for process in processes:
                with contextlib.suppress(Exception):
                    process.terminate()
            self._pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                with contextlib.suppress(Exception):
                    process.join(5)
            self._pool = None


#: Environment of a local Ray instance started by ``tcc`` (set while it runs).
#: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes Ray take the loopback address
#: as the node's address (as it does on Windows and macOS), so its GCS server,
#: raylet, object manager, agents and workers listen on 127.0.0.1 only;
#: ``RAY_AUTH_MODE=token`` with a fresh random ``RAY_AUTH_TOKEN`` (Ray >= 2.52)
#: makes every call to it carry a secret only this process tree knows (it is
#: never written to disk).  ``RAY_AUTH_MODE`` or ``RAY_USAGE_STATS_ENABLED``
#: already set by the user are respected.  Ray reads the authentication mode
#: when it is imported, so the fresh token needs ``token=True`` and a process
#: that has not imported ray yet (``tcc`` has not; otherwise Ray's own default
#: applies: since 2.52 a local ``ray.init`` makes a token in ~/.ray/auth_token).
def private_ray_settings(token: bool = True) -> dict[str, str]:
    settings = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    if "RAY_USAGE_STATS_ENABLED" not in os.environ:
        settings["RAY_USAGE_STATS_ENABLED"] = "0"
    if token and "RAY_AUTH_MODE" not in os.environ:
        settings["RAY_AUTH_MODE"] = "token"
        settings["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    return settings


@contextlib.contextmanager
def _environment(settings: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _host_port(text: str, spec: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--executor {spec}: expected HOST:PORT after the scheme "
                        "(e.g. ray://10.0.0.5:10001 or ray:10.0.0.5:6379)")
    return host, int(port)


def _check_reachable(host: str, port: int, spec: str, timeout: float = 5.0) -> None:
    """Fail fast, naming the address, when nothing answers there."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        if isinstance(error, TimeoutError) or reason == "timed out":
            reason = f"no answer within {timeout:g} s"
        raise UserError(
            f"--executor {spec}: no Ray cluster answers at {host}:{port} ({reason}).  Check "
            "the address and that the cluster runs (a Ray Client address is the head's "
            "--ray-client-server-port, 10001 by default); use --executor ray for a private "
            "local instance instead.") from None


class RayExecutor(Executor):
    """Ray actors (see the module docstring)."""

    name = "ray"

    def __init__(self, workers: int = 2, address: str | None = None) -> None:
        if workers < 1:
            raise UserError(f"--workers must be at least 1, got {workers}")
        self.workers = workers
        self.address = address
        self.spec = "ray" if address is None else (
            address if address.startswith("ray://") else f"ray:{address}")
        if address is not None and address != "auto":
            self._target = _host_port(address.removeprefix("ray://"), self.spec)
        self._actors: list[Any] = []
        self._given: tuple[Any, Any] | None = None
        self._started_ray = False
        self._watchdog: Any = None
        self._settings: Any = None

    def describe(self) -> str:
        where = self.address or "private local instance"
        return f"ray ({self.workers} actors, {where})"

    def preflight(self) -> None:
        if self.address not in (None, "auto") and not self._actors:
            _check_reachable(*self._target, self.spec)

    def start(self, evaluator: Any, space: Any) -> None:
        self.preflight()                                     # before the slow import
        # Ray reads its settings (the token among them) when it is imported:
        # a private instance's environment goes in first (see _start_local).
        imported = "ray" in sys.modules
        settings = contextlib.ExitStack()
        if self.address is None and not (imported and sys.modules["ray"].is_initialized()):
            settings.enter_context(_environment(private_ray_settings(token=not imported)))
        try:
            import ray
        except ImportError:
            settings.close()
            raise UserError("--executor ray needs the ray package (pip install ray)") from None
        if not ray.is_initialized():
            if self.address is None:
                self._start_local(ray, settings)
            else:
                self._join(ray)
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

    def _start_local(self, ray: Any, settings: contextlib.ExitStack) -> None:
        from ray._private import ray_constants

        from tools.codesign.lifetime import Watchdog

        # The constant is read when ray is imported; set it for this process too
        # in case ray was imported before (ray.init resolves 127.0.0.1 to the
        # machine's external address unless it is off).
        cluster = ray_constants.ENABLE_RAY_CLUSTER
        ray_constants.ENABLE_RAY_CLUSTER = False
        settings.callback(setattr, ray_constants, "ENABLE_RAY_CLUSTER", cluster)
        self._watchdog = Watchdog()
        settings.callback(self._watchdog.close)
        try:
            ray.init(address="local", num_cpus=self.workers, include_dashboard=False,
                     _node_ip_address="127.0.0.1", log_to_driver=False,
                     configure_logging=False)
        except Exception as error:  # noqa: BLE001 - any failure of Ray's start
            with contextlib.suppress(Exception):
                ray.shutdown()
            settings.close()
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise UserError(f"--executor ray: could not start a local Ray instance "
                            f"({type(error).__name__}: {first})") from None
        self._settings = settings

    def _join(self, ray: Any) -> None:
        try:
            ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        except Exception as error:  # noqa: BLE001 - any failure to connect
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise UserError(f"--executor {self.spec}: could not join the Ray cluster at "
                            f"{self.address} ({type(error).__name__}: {first})") from None

    def _new_actor(self) -> Any:
        return self._actor_class.remote(*self._arguments)

    def run(self, points: Sequence[Any], admit: Admit = None) -> Iterator[tuple[int, Any]]:
        from tools.codesign.evaluation import Outcome

        ray = self._ray
        queue = deque(range(len(points)))
        idle = list(range(len(self._actors)))
        running: dict[Any, tuple[int, int]] = {}       # ref -> (position, actor slot)
        suspects: list[int] = []
        while queue or running:
            while queue and idle:
                position = queue.popleft()
                if admit is not None and not admit(position):
                    continue
                slot = idle.pop(0)
                ref = self._actors[slot].evaluate.remote(points[position].to_json())
                running[ref] = (position, slot)
            if not running:
                break
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
        for actor in self._actors:
            try:
                self._ray.kill(actor)
            except Exception:  # noqa: BLE001, S110 - best effort at shutdown
                pass
        self._actors = []
        if self._started_ray:
            self._ray.shutdown()
            self._started_ray = False
        if self._settings is not None:
            settings, self._settings = self._settings, None
            settings.close()


def make_executor(spec: str = "local", workers: int = 2) -> Executor:
    """``local`` | ``inline`` | ``ray`` (start a private local instance) |
    ``ray://HOST:PORT`` (Ray Client) | ``ray:ADDRESS`` (join a cluster:
    ``ray:auto``, ``ray:10.0.0.5:6379``)."""
    if spec in ("local", "pool"):
        return LocalPoolExecutor(workers)
    if spec == "inline":
        return InlineExecutor()
    if spec == "ray":
        return RayExecutor(workers)
    if spec.startswith("ray://"):
        return RayExecutor(workers, spec)
    if spec.startswith("ray:") and len(spec) > 4:
        return RayExecutor(workers, spec[4:])
    raise UserError(f"--executor {spec!r}: expected local, inline, ray, ray://HOST:PORT or "
                    "ray:ADDRESS")
