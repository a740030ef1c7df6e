"""The sweep driver: a strategy, an evaluator, an executor and a results store.

:func:`run_sweep` loops::

    points  = strategy.ask(batch)                  # valid, deterministic for the seed
    keys    = [point_key(point) ...]               # hash of everything that determines it
    stored  = store.get_many(keys)                 # answered without evaluating
    for each completion of executor.run(the others):
        store.put(key, outcome)                    # committed as it arrives
    strategy.tell(points, outcomes)                # in proposal order
    store.add_trials(sweep, seq, keys, scores)

Resuming.  A sweep is named (``name``; by default strategy, seed and a hash
of its configuration), and its configuration -- space, evaluator settings,
objective, strategy and options, seed, batch size -- is stored with it.
Running the same sweep again (after Ctrl-C, ``kill -9``, or to raise the
budget) replays the strategy from the seed: its proposals are the same, they
are found in the store and told without evaluating, and the sweep continues
from the first point that is not stored.  Nothing committed is lost and
nothing is evaluated twice; only evaluations in flight at the kill are
repeated.  The replay checks each proposal against the recorded trial order
and stops with an error if the strategy diverged (which would mean a
nondeterministic strategy).

The budget counts *trials*: proposals told to the strategy, whether
evaluated now or answered from the store (a store shared between sweeps
answers points another sweep evaluated).

Sharing.  Sweeps running at the same time on one database share the work:
each point is claimed in the database just before it goes to a worker
(:class:`~tools.codesign.store.Claimer`); a point another live sweep holds
is skipped, waited for and told from the store once it arrives, and a claim
whose owner died is taken over.  Two identical sweeps on one database
evaluate every point once between them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transcode_ir.errors import UserError

__all__ = ["SweepConfig", "SweepResult", "Trial", "run_sweep", "sweep_config"]

#: How often a sweep looks again for points another sweep is evaluating.
CLAIM_POLL_SECONDS = 0.1


@dataclass
class Trial:
    """One proposal of a sweep: where it came from and what it scored."""

    seq: int
    point: Any
    key: str
    outcome: Any
    score: float
    cached: bool


@dataclass
class SweepResult:
    """What a sweep did and found."""

    name: str
    sweep_id: int
    strategy: str
    trials: list[Trial]
    evaluated: int                  # evaluated in this run
    reused: int                     # answered from the store in this run
    seconds: float
    stopped: str                    # "budget", "converged", "exhausted", "target reached",
    #                                 "time limit", "interrupted" (Ctrl-C)
    objective: Any
    space: Any
    best: Trial | None = None
    front: list[Trial] = field(default_factory=list)
    taken_over: int = 0             # abandoned claims of dead sweeps this run took over

    @property
    def failed(self) -> int:
        return sum(1 for t in self.trials if t.outcome.status != "ok")

    def best_so_far(self) -> list[float]:
        """Best score after each trial (``-inf`` until a feasible one)."""
        out, best = [], -math.inf
        for trial in self.trials:
            best = max(best, trial.score)
            out.append(best)
        return out

    def summary(self) -> str:
        lines = [(f"sweep {self.name}: {len(self.trials)} trials ({self.evaluated} evaluated "
                  f"now, {self.reused} from the store, {self.failed} failed) in "
                  f"{self.seconds:.1f} s; stopped: {self.stopped}")]
        if self.best is not None and math.isfinite(self.best.score):
            lines.append(f"best score {self.best.score:.6f}: "
                         f"{self.space.describe(self.best.point)}")
            metrics = self.best.outcome.metrics
            lines.append("  " + ", ".join(f"{k} {v:.6g}" for k, v in metrics.items()
                                          if isinstance(v, (int, float))))
            lines.append(f"  accuracy source: {self.best.outcome.accuracy_source}; simulator: "
                         f"{self.best.outcome.simulator}")
            if hasattr(self.objective, "describe"):
                guide = getattr(self.objective, "guide", self.objective)   # Pareto: its score
                lines.append(f"  score: {guide.describe()}")
        else:
            lines.append("no feasible point found")
        return "\n".join(lines)


@dataclass
class SweepConfig:
    """How a sweep runs: the strategy and everything :func:`run_sweep` needs
    besides the space and the evaluator.

    ``strategy``: a registered strategy's name, its text form
    (``boshcode{initial=8,patience=10}``) or an options object
    (:class:`~tools.codesign.strategies.StrategyOptions`); ``strategy_options``
    (field names) go on top.  ``objective``: a
    :class:`~tools.codesign.objectives.WeightedObjective` (default, range
    scale) or :class:`~tools.codesign.objectives.ParetoObjective`.
    ``executor``: an :class:`~tools.codesign.executors.Executor` or its spec
    (``local``, ``inline``, ``ray``, ``ray://HOST:PORT``) with ``workers``.
    ``batch_size`` (the round size: points asked per round) is part of what
    makes a run reproducible.  ``time_limit`` (seconds) stops the sweep between
    rounds (running it again resumes); ``target`` stops it at the first trial
    whose score reaches it; ``stop_on_convergence`` (None: when the strategy
    was given a stopping rule, e.g. boshcode's ``patience``) stops it when the
    strategy says it has converged.
    """

    db: str | Path
    budget: int
    strategy: Any = "random"
    seed: int = 0
    objective: Any = None
    executor: Any = "local"
    workers: int = 2
    batch_size: int = 8
    name: str | None = None
    strategy_options: dict[str, Any] = field(default_factory=dict)
    progress: Any = None
    stop_on_convergence: bool | None = None
    time_limit: float | None = None
    target: float | None = None

    def strategy_spec(self) -> Any:
        """The strategy's options object (text form parsed, overrides applied)."""
        from tools.codesign.strategies import parse_strategy

        return parse_strategy(self.strategy, **dict(self.strategy_options or {}))


def sweep_config(space: Any, evaluator: Any, objective: Any, strategy: str,
                 strategy_options: dict[str, Any], seed: int, batch_size: int
                 ) -> tuple[dict[str, Any], str]:
    """The configuration that determines a sweep's proposals, and its hash."""
    from tools.version import TOOL_VERSION

    config = {"space": space.to_json(), "evaluator": evaluator.identity(),
              "objective": objective.to_json(), "strategy": strategy,
              "strategy_options": strategy_options, "seed": seed, "batch_size": batch_size,
              "tool_version": TOOL_VERSION}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()
                            ).hexdigest()
    return config, digest


def run_sweep(space: Any, evaluator: Any, config: SweepConfig | Any = "random",
              **settings: Any) -> SweepResult:
    """Run (or resume) a sweep; see the module docstring.

    ``space``: a :class:`~tools.codesign.spaces.JointSpace`; ``evaluator``: an
    :class:`~tools.codesign.evaluation.Evaluator`; ``config``: a
    :class:`SweepConfig`.  For short calls the fields may be given as keywords
    instead, with the strategy in the third argument:
    ``run_sweep(space, evaluator, "random", db=..., budget=...)``.
    """
    if isinstance(config, SweepConfig):
        if settings:
            config = dataclasses.replace(config, **settings)
    else:
        try:
            config = SweepConfig(strategy=config, **settings)
        except TypeError as err:
            raise TypeError(f"run_sweep: {err} (the fields of SweepConfig are accepted)"
                            ) from None
    return _run(space, evaluator, config)


def _run(space: Any, evaluator: Any, config: SweepConfig) -> SweepResult:
    from tools.codesign.evaluation import point_identity, point_key
    from tools.codesign.executors import Executor, make_executor
    from tools.codesign.objectives import WeightedObjective, pareto_front
    from tools.codesign.progress import SilentProgress
    from tools.codesign.store import ResultsStore

    budget, seed, batch_size, executor = (config.budget, config.seed, config.batch_size,
                                          config.executor)
    time_limit, target = config.time_limit, config.target
    if budget < 0:
        raise UserError(f"budget must be >= 0, got {budget}")
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    spec = config.strategy_spec()
    strategy = spec.name
    stop_on_convergence = (config.stop_on_convergence if config.stop_on_convergence is not None
                           else getattr(spec, "patience", None) is not None)
    objective = config.objective or WeightedObjective(scale="range")
    progress = config.progress or SilentProgress()
    recorded_config, digest = sweep_config(space, evaluator, objective, strategy, spec.changed(),
                                           seed, batch_size)
    name = config.name
    name = name or f"{strategy}-seed{seed}-{digest[:8]}"
    started = time.perf_counter()
    runner: Executor | None = None
    if not isinstance(executor, Executor):
        runner = make_executor(executor, config.workers)  # a bad spec fails before the database
        runner.preflight()
    else:
        executor.preflight()
    store = ResultsStore(config.db)
    runner_started = False
    claimer = None
    try:
        claimer = store.claimer()
        sweep_id = store.sweep(name, recorded_config, digest)
        recorded = {seq: key for seq, key, _, _ in store.trials(sweep_id)}
        search = spec.build(space, objective, seed)
        trials: list[Trial] = []
        evaluated = reused = failed = 0
        stopped = "budget"
        progress.start(budget, f"{name}")
        best = -math.inf
        try:
            while len(trials) < budget:
                if target is not None and best >= target:
                    stopped = "target reached"
                    break
                if stop_on_convergence and search.converged:
                    stopped = "converged"
                    break
                if time_limit is not None and time.perf_counter() - started > time_limit:
                    stopped = "time limit"
                    break
                if search.exhausted_space:
                    stopped = "exhausted"
                    break
                count = min(batch_size, budget - len(trials))
                points = search.ask(count)
                identities = [point_identity(space, evaluator, p) for p in points]
                keys = [point_key(space, evaluator, p, identity)
                        for p, identity in zip(points, identities)]
                base = len(trials)
                for offset, key in enumerate(keys):
                    expected = recorded.get(base + offset)
                    if expected is not None and expected != key:
                        raise UserError(
                            f"sweep {name!r}: replaying the strategy proposed a different point at "
                            f"trial {base + offset} than the stored run (the strategy is not "
                            "deterministic, or the space, evaluator or tool changed); start a new "
                            "sweep with another --name")
                stored = store.get_many(keys)
                outcomes: dict[str, Any] = {k: r.outcome() for k, r in stored.items()}
                todo: list[int] = []
                for position, key in enumerate(keys):
                    if key not in outcomes and key not in {keys[i] for i in todo}:
                        todo.append(position)
                if todo:
                    if not runner_started:
                        runner = executor if isinstance(executor, Executor) else runner
                        assert runner is not None
                        runner.start(evaluator, space)
                        runner_started = True
                    # Each point is claimed just before it goes to a worker; points
                    # another live sweep holds are skipped, then waited for (their
                    # results are taken as stored ones) or taken over if abandoned.
                    run = list(todo)
                    def admit(index: int, run: list[int] = run, keys: list[str] = keys) -> bool:
                        return claimer.claim(keys[run[index]])
                    while True:
                        for index, outcome in (runner.run([points[i] for i in run], admit)
                                               if run else ()):
                            position = run[index]
                            point, key = points[position], keys[position]
                            store.put(key, identities[position],
                                      point.to_json(), space.describe(point),
                                      f"{space.hardware.name}#{point.hardware}", outcome)
                            outcomes[key] = outcome
                            evaluated += 1
                            failed += outcome.status != "ok"
                            best = max(best, objective.score(outcome))
                            if len(outcomes) < len(keys):
                                progress.update(base + len(outcomes), evaluated, reused, failed,
                                                best if math.isfinite(best) else None)
                        missing = [i for i in todo if keys[i] not in outcomes]
                        if not missing:
                            break
                        for key, result in store.get_many([keys[i] for i in missing]).items():
                            outcomes[key] = result.outcome()
                            stored[key] = result
                        missing = [i for i in missing if keys[i] not in outcomes]
                        run, admit = [i for i in missing if claimer.claim(keys[i])], None
                        if missing and not run:
                            time.sleep(CLAIM_POLL_SECONDS)
                told = [outcomes[k] for k in keys]
                if not objective.calibrated and objective.calibrate(told):
                    # range scale: measured on this round, before any score is told
                    best = max((objective.score(o) for o in told), default=-math.inf)
                search.tell(points, told)
                rows = []
                for offset, (point, key, outcome) in enumerate(zip(points, keys, told)):
                    score = objective.score(outcome)
                    cached = key in stored
                    reused += cached
                    if cached:
                        failed += outcome.status != "ok"
                    best = max(best, score)
                    trials.append(Trial(base + offset, point, key, outcome, score, cached))
                    if base + offset not in recorded:
                        rows.append((base + offset, key, int(cached), score))
                if rows:
                    store.add_trials(sweep_id, rows)
                progress.update(len(trials), evaluated, reused, failed,
                                best if math.isfinite(best) else None)
        except KeyboardInterrupt:
            stopped = "interrupted"
            if runner_started and runner is not None and runner is not executor:
                getattr(runner, "abort", runner.close)()
                runner_started = False
        # Every finished evaluation is already committed (store.put as it
        # arrives).  A sweep cut short -- Ctrl-C or --time-limit -- is marked
        # 'interrupted', never left 'running'; the same command resumes it.
        store.set_sweep_state(sweep_id, "interrupted" if stopped in ("interrupted", "time limit")
                              else "done")
    except sqlite3.DatabaseError as error:
        raise store._sqlite_error(error) from None
    finally:
        if runner is not None and runner is not executor and runner_started:
            try:
                runner.close()
            except KeyboardInterrupt:            # a second Ctrl-C while closing
                pass
        if claimer is not None:
            claimer.close()
        store.close()
    scored = [t for t in trials if math.isfinite(t.score)]
    best_trial = max(scored, key=lambda t: t.score) if scored else None
    front: list[Trial] = []
    if objective.to_json().get("kind") == "pareto":
        unique = {t.key: t for t in trials if t.outcome.status == "ok"}
        front = pareto_front(unique.values(), lambda t: objective.values(t.outcome),
                             objective.directions)
    result = SweepResult(name, sweep_id, strategy, trials, evaluated, reused,
                         time.perf_counter() - started, stopped, objective, space, best_trial,
                         front, claimer.taken_over)
    progress.finish()
    return result
