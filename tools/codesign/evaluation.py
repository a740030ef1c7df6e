"""Evaluating a point: point -> metrics, and the key that names the result.

An :class:`Evaluator` turns a :class:`~tools.codesign.spaces.JointPoint` into
an :class:`Outcome`: status ``ok`` with metrics (latency, dynamic and leakage
energy, area, accuracy and its source), or ``failed`` with the reason.
:func:`evaluate_safely` is what executors call: it never raises -- an
infeasible mapping, a missing accuracy, any exception become a failed
outcome with the reason -- and it times the evaluation.

:class:`CostEvaluator` is the real one: accuracy from an
:mod:`accuracy source <tools.codesign.accuracy>`, then the model prepared once
(:class:`~tools.codesign.modelcache.ModelCache`) and costed on the design with
the analytical simulator (or the event simulator on request) through
:func:`tools.codesign.costmodel.cost_on_design`.

:class:`SyntheticEvaluator` is a cheap, deterministic stand-in with the same
interface (smooth closed-form metrics of the point's encoding, a few
infeasible points, optional delay and an optional crash): for testing the
machinery -- stores, resumption, executors, strategies -- at thousands of
evaluations per second.

The result key (:func:`point_key`) is a SHA-256 of the canonical JSON of
everything that determined the result: the model description, the design's
normalised DSL text, the schedule, the exact pass pipeline, the tool version
and the evaluator's settings (simulator, sequence length, accuracy source).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from transcode_ir.defaults import INFERENCE_PIPELINE, MAPPER_OBJECTIVE, SEQUENCE_LENGTH
from transcode_ir.errors import UserError

__all__ = [
    "CostEvaluator",
    "Evaluator",
    "Outcome",
    "SyntheticEvaluator",
    "evaluate_safely",
    "point_identity",
    "point_key",
]


@dataclass
class Outcome:
    """The result of evaluating one point."""

    status: str                                  # "ok" or "failed"
    metrics: dict[str, float | None] = field(default_factory=dict)
    reason: str | None = None
    accuracy_source: str | None = None
    simulator: str | None = None
    seconds: float = 0.0
    worker: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "metrics": self.metrics, "reason": self.reason,
                "accuracy_source": self.accuracy_source, "simulator": self.simulator,
                "seconds": self.seconds, "worker": self.worker, "details": self.details}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Outcome:
        return cls(document["status"], dict(document.get("metrics") or {}),
                   document.get("reason"), document.get("accuracy_source"),
                   document.get("simulator"), float(document.get("seconds") or 0.0),
                   document.get("worker") or "", dict(document.get("details") or {}))

    @classmethod
    def failed(cls, reason: str, **extra: Any) -> Outcome:
        return cls("failed", {}, reason, **extra)


class Evaluator:
    """Base class of evaluators (see the module docstring).

    Subclasses set ``name``, return their settings from :meth:`identity`
    (they go into every result key), say which pass pipeline a point gets
    (:meth:`pipeline`) and implement :meth:`evaluate`.  :meth:`setup` runs
    once per worker process before the first evaluation.
    """

    name = "base"

    def identity(self) -> dict[str, Any]:
        return {"evaluator": self.name}

    def pipeline(self, point: Any) -> str:
        return ""

    def setup(self) -> None:
        """Per-worker initialisation (imports, caches)."""

    def evaluate(self, space: Any, point: Any) -> Outcome:
        raise NotImplementedError

    @property
    def accuracy_label(self) -> str:
        return "none"

    @property
    def simulator_label(self) -> str:
        return self.name


def point_identity(space: Any, evaluator: Evaluator, point: Any) -> dict[str, Any]:
    """Everything that determines the result of ``point`` (see module docstring)."""
    from tools.version import TOOL_VERSION

    return {"point": space.identity(point), "pipeline": evaluator.pipeline(point),
            "tool_version": TOOL_VERSION, "evaluator": evaluator.identity()}


def point_key(space: Any, evaluator: Evaluator, point: Any,
              identity: Mapping[str, Any] | None = None) -> str:
    """The result key of ``point``: SHA-256 of its canonical identity
    (``identity``: :func:`point_identity`'s, when the caller has it already)."""
    if identity is None:
        identity = point_identity(space, evaluator, point)
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _worker_label() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _reason(err: BaseException) -> str:
    if isinstance(err, UserError):
        return str(err).strip()
    frames = traceback.extract_tb(err.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"crash: {type(err).__name__}: {err}{where}"


def evaluate_safely(evaluator: Evaluator, space: Any, point: Any) -> Outcome:
    """Evaluate, never raise: any error becomes a failed outcome with its reason."""
    started = time.perf_counter()
    try:
        outcome = evaluator.evaluate(space, point)
    except Exception as err:  # noqa: BLE001 - a sweep records every failure and goes on
        outcome = Outcome.failed(_reason(err), accuracy_source=evaluator.accuracy_label,
                                 simulator=evaluator.simulator_label)
    outcome.seconds = time.perf_counter() - started
    outcome.worker = _worker_label()
    return outcome


# --------------------------------------------------------------------------- synthetic


class SyntheticEvaluator(Evaluator):
    """Deterministic closed-form metrics of a point's continuous encoding.

    Metrics are smooth functions of ``space.to_vector(point)`` with weights
    drawn from ``seed``, scaled to the real metrics' magnitudes; about one
    point in ``fail_every`` (by key hash) is infeasible.  ``delay`` sleeps per
    evaluation (kill tests); ``crash_when`` (a substring of the point's
    canonical JSON) makes the worker process exit hard (crash tests).
    """

    name = "synthetic"

    def __init__(self, seed: int = 0, fail_every: int = 13, delay: float = 0.0,
                 crash_when: str | None = None) -> None:
        self.seed = seed
        self.fail_every = fail_every
        self.delay = delay
        self.crash_when = crash_when

    def identity(self) -> dict[str, Any]:
        return {"evaluator": self.name, "seed": self.seed, "fail_every": self.fail_every}

    def pipeline(self, point: Any) -> str:
        return "synthetic"

    def evaluate(self, space: Any, point: Any) -> Outcome:
        if self.delay:
            time.sleep(self.delay)
        encoded = space.encode(point)
        if self.crash_when is not None and self.crash_when in encoded:
            os._exit(17)
        digest = int(hashlib.sha256(encoded.encode()).hexdigest()[:8], 16)
        if self.fail_every and digest % self.fail_every == 0:
            return Outcome.failed("synthetic: no mapping fits (activation-staging-fits)",
                                  accuracy_source="synthetic", simulator="synthetic")
        vector = space.to_vector(point)
        rng = np.random.default_rng(self.seed)
        weights = rng.normal(size=(5, max(len(vector), 1)))
        centre = rng.uniform(0.2, 0.8, size=max(len(vector), 1))
        v = vector if len(vector) else np.zeros(1)
        bowl = float(np.sum((v - centre) ** 2))
        latency = 2e8 * (1.0 + bowl + 0.5 * math.tanh(float(weights[0] @ v)))
        dynamic = 3e9 * (1.0 + 0.5 * bowl + 0.4 * math.tanh(float(weights[1] @ v)))
        leakage = 1e9 * (1.0 + 0.3 * math.tanh(float(weights[2] @ v)) + 0.2 * bowl)
        area = 50.0 + 400.0 * (1.0 + math.tanh(float(weights[3] @ v)))
        accuracy = 0.5 + 0.3 / (1.0 + math.exp(-float(weights[4] @ v)))
        metrics = {"latency_cycles": latency, "latency_ms": latency / 7e5,
                   "dynamic_energy_nj": dynamic, "leakage_energy_nj": leakage,
                   "energy_nj": dynamic + leakage, "area_mm2": area, "accuracy": accuracy}
        return Outcome("ok", metrics, None, "synthetic", "synthetic")

    @property
    def accuracy_label(self) -> str:
        return "synthetic"


# --------------------------------------------------------------------------- real


class CostEvaluator(Evaluator):
    """Accuracy from a named source, cost through ELECTOR (module docstring).

    ``simulator``: ``analytical`` (default) or ``event``.  ``base_pipeline``:
    the passes before mapping (``default`` for inference, the training
    pipeline with ``function="train_step"``), text or pass objects.  ``seq``:
    sequence length the model is costed at.  ``vocab_size``: the embedding
    vocabulary models are built with (None: the zoo's; measured accuracy uses
    its task's).  ``densities`` for tau > 0: ``measured`` (the profile of the
    accuracy source's training run), ``profile:FILE``, ``assumed:D`` (one
    density for every prune point) or ``by-tau:T1=D1,T2=D2`` (one per tau_I;
    the IR records them as assumed).  ``mapper_objective``: what the ELECTOR
    mapper minimises per op.

    A point's pipeline is a tuple of pass objects -- the base pipeline's,
    then its schedule's (:meth:`Schedule.passes
    <tools.codesign.spaces.Schedule.passes>`, thresholds as exact floats) --
    and its text (:meth:`pipeline`) is only their printed form.
    """

    name = "elector"

    def __init__(self, accuracy: Any = None, *, simulator: str = "analytical",
                 base_pipeline: str | Sequence[Any] = INFERENCE_PIPELINE,
                 function: str = "forward", seq: int = SEQUENCE_LENGTH,
                 vocab_size: int | None = None, densities: str = "measured",
                 mapper_objective: str = MAPPER_OBJECTIVE, cache_dir: str | Path | None = None,
                 memory_items: int = 8) -> None:
        from backends.elector.compile_pipeline import SIMULATORS
        from tools.codesign.accuracy import MeasuredAccuracy, NoAccuracy
        from tools.codesign.modelcache import ModelCache

        if simulator not in SIMULATORS:
            raise UserError(f"unknown simulator {simulator!r}; accepted: {', '.join(SIMULATORS)}")
        self.accuracy_source = accuracy if accuracy is not None else NoAccuracy()
        self.simulator = simulator
        if isinstance(base_pipeline, str):
            self.base_pipeline = base_pipeline
            self._base_passes: tuple[Any, ...] | None = None     # parsed on first use
        else:
            from transcode_ir.passes import format_pipeline

            self._base_passes = tuple(base_pipeline)
            self.base_pipeline = format_pipeline(self._base_passes)
        self.function = function
        self.seq = seq
        if vocab_size is None and isinstance(self.accuracy_source, MeasuredAccuracy):
            vocab_size = self.accuracy_source.vocab_size
        self.vocab_size = vocab_size
        self.densities = densities
        self._density = _density_source(densities)
        self.mapper_objective = mapper_objective
        self.models = ModelCache(cache_dir, memory_items)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_base_passes"] = None            # pass objects are rebuilt from the text
        return state

    def identity(self) -> dict[str, Any]:
        return {"evaluator": self.name, "simulator": self.simulator, "function": self.function,
                "seq": self.seq, "vocab_size": self.vocab_size,
                "mapper_objective": self.mapper_objective, "densities": self.densities,
                "accuracy": self.accuracy_source.identity()}

    @property
    def accuracy_label(self) -> str:
        return self.accuracy_source.label

    @property
    def simulator_label(self) -> str:
        return self.simulator

    @property
    def base_passes(self) -> tuple[Any, ...]:
        """The base pipeline's pass objects (parsed once per process)."""
        if self._base_passes is None:
            from transcode_ir.passes import parse_pipeline

            self._base_passes = tuple(parse_pipeline(self.base_pipeline))
        return self._base_passes

    def passes(self, schedule: Any, profile: str | None = None) -> tuple[Any, ...]:
        """The pass objects of a point with ``schedule``: the base pipeline's,
        then the schedule's (a ``dynaprop`` pass with this evaluator's
        density source when it prunes; ``profile``: the measured one)."""
        if not schedule.prunes:
            return self.base_passes
        return self.base_passes + schedule.passes(**self._density.option(profile,
                                                                         schedule.tau_i))

    def pipeline(self, point: Any) -> str:
        """The printed form of the point's passes before ``elector-map`` (the
        base pipeline as given, then the schedule's passes; a measured profile
        is named ``<measured>``, by the run that measures it)."""
        schedule = point.schedule
        if not schedule.prunes:
            return self.base_pipeline
        return self._text(self.passes(schedule, "<measured>"))

    def _text(self, passes: tuple[Any, ...]) -> str:
        from transcode_ir.passes import format_pipeline

        extra = passes[len(self.base_passes):]
        return ",".join(filter(None, (self.base_pipeline, format_pipeline(extra))))

    def setup(self) -> None:
        import backends.elector.analytical
        import backends.elector.mapping  # noqa: F401

    def prepare(self, space: Any, point: Any) -> PreparedPoint:
        """Accuracy, design, passes and the prepared model of ``point``: what
        :meth:`evaluate` and the final report (:func:`tools.codesign.report.final_report`)
        both cost."""
        from tools.codesign.modelcache import ModelKey

        accuracy = self.accuracy_source.accuracy(point.model, point.schedule)
        accelerator = space.hardware.accelerator(point.hardware)
        schedule = point.schedule
        profile = None
        if schedule.prunes:
            profile = accuracy.profile
            if self._density.kind == "measured" and not profile:
                raise UserError(f"tau_i={schedule.tau_i!r}/tau_t={schedule.tau_t!r} needs "
                                "measured densities, and the accuracy source "
                                f"{self.accuracy_label!r} measured none; use measured accuracy "
                                "or --densities profile:FILE / assumed:D")
        passes = self.passes(schedule, profile)
        key = ModelKey(point.model, accelerator.mapping.batch, self.seq, passes,
                       self.function, self.vocab_size)
        return PreparedPoint(accuracy, accelerator, passes, self._text(passes),
                             self.models.static(key),
                             schedule.forced_tile(accelerator.mapping.tiles), schedule.order)

    def evaluate(self, space: Any, point: Any) -> Outcome:
        from tools.codesign.costmodel import cost_on_design

        prepared = self.prepare(space, point)
        cost = cost_on_design(prepared.static, prepared.accelerator, tile=prepared.tile,
                              order=prepared.order, simulator=self.simulator,
                              objective=self.mapper_objective, pipeline=prepared.pipeline)
        metrics: dict[str, float | None] = dict(cost.metrics())
        accuracy = prepared.accuracy
        metrics["accuracy"] = accuracy.value
        details = {"pipeline": prepared.pipeline, "batch": prepared.accelerator.mapping.batch}
        if accuracy.details:
            details["accuracy"] = dict(accuracy.details)
        return Outcome("ok", metrics, None, accuracy.source, cost.simulator, details=details)


@dataclass(frozen=True)
class PreparedPoint:
    """A point ready to cost: its accuracy result, design, pass objects and
    their printed form, the prepared model, and the schedule's forced tile
    ``(b, x, y)`` (None: the mapper chooses) and loop order."""

    accuracy: Any
    accelerator: Any
    passes: tuple[Any, ...]
    pipeline: str
    static: Any
    tile: tuple[int, int, int] | None
    order: str


@dataclass(frozen=True)
class _DensitySource:
    """``--densities``, parsed once: where a pruning schedule's densities come from."""

    kind: str                                   # measured, profile, assumed, by-tau
    profile: str = ""
    density: float | None = None
    table: tuple[tuple[float, float], ...] = ()
    text: str = ""

    def option(self, measured: str | None, tau_i: float) -> dict[str, Any]:
        """The ``dynaprop`` pass's density option for a point at ``tau_i``."""
        if self.kind == "assumed":
            return {"density": self.density}
        if self.kind == "by-tau":
            for tau, density in self.table:
                if tau == tau_i:
                    return {"density": density}
            raise UserError(f"densities {self.text!r} gives no density for tau_i {tau_i!r}")
        if self.kind == "profile":
            return {"profile": self.profile}
        return {"profile": measured or "<measured>"}


def _density_source(text: str) -> _DensitySource:
    kind, _, argument = text.partition(":")
    expected = ("expected measured, profile:FILE, assumed:D or by-tau:T1=D1,T2=D2 "
                "(D a fraction of nonzeros in [0, 1])")
    try:
        if kind == "measured" and not argument:
            return _DensitySource("measured", text=text)
        if kind == "profile" and argument:
            return _DensitySource("profile", profile=argument, text=text)
        if kind == "assumed":
            density = float(argument)
            if 0.0 <= density <= 1.0:
                return _DensitySource("assumed", density=density, text=text)
        if kind == "by-tau":
            table = []
            for item in argument.split(","):
                tau, _, density = item.partition("=")
                table.append((float(tau), float(density)))
            if table and all(0.0 <= d <= 1.0 for _, d in table):
                return _DensitySource("by-tau", table=tuple(table), text=text)
    except ValueError:
        pass
    raise UserError(f"densities {text!r}: {expected}")
