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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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


def point_key(space: Any, evaluator: Evaluator, point: Any) -> str:
    """The result key of ``point``: SHA-256 of its canonical identity."""
    text = json.dumps(point_identity(space, evaluator, point), sort_keys=True,
                      separators=(",", ":"))
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
    the passes before mapping (``default`` for inference, ``training`` for a
    training step with ``function="train_step"``).  ``seq``: sequence length
    the model is costed at.  ``vocab_size``: the embedding vocabulary models
    are built with (None: the zoo's; measured accuracy uses its task's).
    ``densities`` for tau > 0: ``measured`` (the profile of the accuracy
    source's training run), ``profile:FILE``, ``assumed:D`` (one density for
    every prune point) or ``by-tau:T1=D1,T2=D2`` (one per tau_I; the IR
    records them as assumed).
    ``mapper_objective``: what the ELECTOR mapper minimises per op.
    """

    name = "elector"

    def __init__(self, accuracy: Any = None, *, simulator: str = "analytical",
                 base_pipeline: str = "default", function: str = "forward", seq: int = 128,
                 vocab_size: int | None = None, densities: str = "measured",
                 mapper_objective: str = "latency", cache_dir: str | Path | None = None,
                 memory_items: int = 8) -> None:
        from tools.codesign.accuracy import MeasuredAccuracy, NoAccuracy
        from tools.codesign.costmodel import SIMULATORS
        from tools.codesign.modelcache import ModelCache

        if simulator not in SIMULATORS:
            raise UserError(f"unknown simulator {simulator!r}; accepted: {', '.join(SIMULATORS)}")
        self.accuracy_source = accuracy if accuracy is not None else NoAccuracy()
        self.simulator = simulator
        self.base_pipeline = base_pipeline
        self.function = function
        self.seq = seq
        if vocab_size is None and isinstance(self.accuracy_source, MeasuredAccuracy):
            vocab_size = self.accuracy_source.vocab_size
        self.vocab_size = vocab_size
        self.densities = densities
        self.mapper_objective = mapper_objective
        self.models = ModelCache(cache_dir, memory_items)

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

    def pipeline(self, point: Any) -> str:
        """The pass pipeline before ``elector-map`` (canonical text), with a
        ``dynaprop`` stage when the schedule prunes (its density source named;
        a measured profile is named by the run that measures it)."""
        schedule = point.schedule
        if schedule.tau_i == 0 and schedule.tau_t == 0:
            return self.base_pipeline
        source = self._density_option(None, schedule.tau_i)
        return (f"{self.base_pipeline},dynaprop{{tau-i={schedule.tau_i:g},"
                f"tau-t={schedule.tau_t:g},{source}}}")

    def _density_option(self, profile: str | None, tau_i: float = 0.0) -> str:
        kind, _, argument = self.densities.partition(":")
        if kind == "assumed":
            return f"density={float(argument):g}"
        if kind == "by-tau":
            table = {}
            for item in argument.split(","):
                tau, _, density = item.partition("=")
                table[float(tau)] = float(density)
            if tau_i not in table:
                raise UserError(f"densities {self.densities!r} gives no density for tau_i "
                                f"{tau_i:g}")
            return f"density={table[tau_i]:g}"
        if kind == "profile":
            return f'profile="{argument}"'
        if kind == "measured":
            return f'profile="{profile}"' if profile else "profile=<measured>"
        raise UserError(f"densities {self.densities!r}: expected measured, profile:FILE, "
                        "assumed:D or by-tau:T1=D1,T2=D2")

    def setup(self) -> None:
        import backends.elector.analytical
        import backends.elector.mapping  # noqa: F401

    def evaluate(self, space: Any, point: Any) -> Outcome:
        from tools.codesign.costmodel import cost_on_design
        from tools.codesign.modelcache import ModelKey

        accuracy = self.accuracy_source.accuracy(point.model, point.schedule)
        accelerator = space.hardware.accelerator(point.hardware)
        pipeline = self.base_pipeline
        schedule = point.schedule
        if schedule.tau_i > 0 or schedule.tau_t > 0:
            profile = accuracy.profile
            if self.densities == "measured" and not profile:
                raise UserError(f"tau_i={schedule.tau_i:g}/tau_t={schedule.tau_t:g} needs "
                                "measured densities, and the accuracy source "
                                f"{self.accuracy_label!r} measured none; use measured accuracy "
                                "or --densities profile:FILE / assumed:D")
            pipeline = (f"{self.base_pipeline},dynaprop{{tau-i={schedule.tau_i:g},"
                        f"tau-t={schedule.tau_t:g},"
                        f"{self._density_option(profile, schedule.tau_i)}}}")
        key = ModelKey(point.model, accelerator.mapping.batch, self.seq, pipeline,
                       self.function, self.vocab_size)
        static = self.models.static(key)
        cost = cost_on_design(static, accelerator, schedule, simulator=self.simulator,
                              objective=self.mapper_objective, pipeline=pipeline)
        metrics: dict[str, float | None] = dict(cost.metrics())
        metrics["accuracy"] = accuracy.value
        details = {"pipeline": pipeline, "batch": accelerator.mapping.batch}
        if accuracy.details:
            details["accuracy"] = dict(accuracy.details)
        return Outcome("ok", metrics, None, accuracy.source, cost.simulator, details=details)
