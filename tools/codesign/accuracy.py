"""Accuracy sources: where a point's accuracy comes from, always named.

Every source returns an :class:`AccuracyResult` whose ``source`` says which
source made the number (it goes into the results database beside the value):

``none``
    No accuracy: the objective leaves its accuracy term out.  The default of a
    hardware sweep (a fixed model's accuracy is a constant).
``measured:listops``  (:class:`MeasuredAccuracy`)
    Trains the model as a classifier on the built-in ListOps task
    (:func:`frontends.tasks.train_classifier`, seeded, DynaProp with the
    point's tau_I / tau_T while training and evaluating) and returns the
    validation accuracy (the test accuracy is kept in ``details``).  Results
    are cached on disk by a hash of (model, thresholds, task and trainer
    settings); the DynaProp density profile of the evaluation is written
    beside it so the cost model uses densities measured on the same run.
    Imports torch (only here and in the BOSHCODE surrogate).
``table:FILE``  (:class:`TableAccuracy`)
    Measured values the user supplies: CSV with columns ``model,accuracy``
    (optionally ``tau_i,tau_t``), or JSON (``{"<model>": acc}`` or a list of
    ``{"model", "accuracy", "tau_i"?, "tau_t"?}`` records).  Models are
    matched by canonical description, so zoo names and any spelling of a
    description work.  A model missing from the table is a failed
    evaluation naming the model.
``surrogate:FILE``  (:class:`SurrogateAccuracy`)
    A ridge regression (numpy) fitted on a table of measured values over
    model features (depth, width, heads and head-type mix, feed-forward
    width, parameter count, tau_I, tau_T); its source label gives the number
    of measured points and the leave-one-out RMSE, so a reader can judge it.
    Predictions are clipped to the measured range widened by one LOO-RMSE: a
    linear model must not promise accuracies no measurement came near (a
    search would chase the extrapolation).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from transcode_ir.errors import UserError

__all__ = [
    "AccuracyResult",
    "AccuracySource",
    "MeasuredAccuracy",
    "NoAccuracy",
    "SurrogateAccuracy",
    "TableAccuracy",
    "make_accuracy_source",
    "model_features",
]


@dataclass(frozen=True)
class AccuracyResult:
    value: float | None
    source: str
    profile: str | None = None          # DynaProp density profile measured with it
    details: Mapping[str, Any] = field(default_factory=dict)


class AccuracySource:
    """Base class: ``accuracy(model, schedule)`` and an ``identity`` that goes
    into every result key."""

    name = "none"

    def identity(self) -> dict[str, Any]:
        return {"kind": self.name}

    def accuracy(self, model: str, schedule: Any) -> AccuracyResult:
        raise NotImplementedError

    @property
    def label(self) -> str:
        return self.name


class NoAccuracy(AccuracySource):
    """No accuracy (see the module docstring)."""

    name = "none"

    def accuracy(self, model: str, schedule: Any) -> AccuracyResult:
        return AccuracyResult(None, "none")


def _canonical(model: str) -> str:
    from frontends.zoo import format_description, resolve_config

    return format_description(resolve_config(model, check_space=False))


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _read_records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise UserError(f"accuracy table {path}: no such file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            document = json.loads(text)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{err.lineno}:{err.colno}: not JSON: {err.msg}") from None
        if isinstance(document, Mapping):
            return [{"model": k, "accuracy": v} for k, v in document.items()]
        if isinstance(document, list):
            return [dict(r) for r in document]
        raise UserError(f"{path}: expected an object {{model: accuracy}} or a list of records")
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or "model" not in rows[0] or "accuracy" not in rows[0]:
        raise UserError(f"{path}: a CSV accuracy table needs a header with model,accuracy "
                        "(and optionally tau_i,tau_t)")
    return rows


def _table(path: Path) -> dict[tuple[str, float, float], float]:
    table: dict[tuple[str, float, float], float] = {}
    for number, record in enumerate(_read_records(path), start=1):
        try:
            model = _canonical(str(record["model"]))
            value = float(record["accuracy"])
            tau_i = float(record.get("tau_i") or 0.0)
            tau_t = float(record.get("tau_t") or 0.0)
        except (KeyError, ValueError) as err:
            raise UserError(f"{path}: record {number}: {err}") from None
        except UserError as err:
            raise UserError(f"{path}: record {number}: {err}") from None
        if not 0.0 <= value <= 1.0:
            raise UserError(f"{path}: record {number}: accuracy {value} outside [0, 1] "
                            "(give fractions, not percentages)")
        table[(model, tau_i, tau_t)] = value
    if not table:
        raise UserError(f"{path}: the accuracy table is empty")
    return table


class TableAccuracy(AccuracySource):
    """Measured values from a user's CSV/JSON table (see the module docstring)."""

    name = "table"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._table = _table(self.path)
        self._digest = _file_digest(self.path)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]

    def identity(self) -> dict[str, Any]:
        return {"kind": "table", "file": self.path.name, "sha256": self._digest}

    @property
    def label(self) -> str:
        return f"table:{self.path.name}"

    def accuracy(self, model: str, schedule: Any) -> AccuracyResult:
        key = (_canonical(model), float(schedule.tau_i), float(schedule.tau_t))
        value = self._table.get(key)
        if value is None:
            raise UserError(f"no accuracy for model {model!r} (tau_i {schedule.tau_i!r}, "
                            f"tau_t {schedule.tau_t!r}) in {self.path}")
        return AccuracyResult(value, self.label)


# --------------------------------------------------------------------------- surrogate


def model_features(model: str, tau_i: float = 0.0, tau_t: float = 0.0) -> np.ndarray:
    """Fixed-length features of a model (for the accuracy surrogate)."""
    from frontends.zoo import resolve_config
    from frontends.zoo.description import HEAD_TYPES

    config = resolve_config(model, check_space=False)
    layers = config.layers
    heads = [h for layer in layers for h in layer.heads]
    mix = [sum(1 for h in heads if h == t) / len(heads) for t in HEAD_TYPES]
    return np.array([
        len(layers) / 12.0,
        float(np.mean([layer.hidden for layer in layers])) / 768.0,
        float(np.mean([layer.num_heads for layer in layers])) / 12.0,
        float(np.mean([np.mean(layer.ff) for layer in layers])) / 4096.0,
        float(np.mean([len(layer.ff) for layer in layers])) / 3.0,
        math.log10(config.parameter_count()) / 9.0,
        tau_i * 10.0,
        tau_t * 1000.0,
        *mix,
    ])


class SurrogateAccuracy(AccuracySource):
    """Ridge regression on measured values (see the module docstring)."""

    name = "surrogate"

    def __init__(self, path: str | Path, ridge: float = 1e-2) -> None:
        self.path = Path(path)
        self.ridge = ridge
        table = _table(self.path)
        self._digest = _file_digest(self.path)
        keys = sorted(table)
        x = np.stack([model_features(m, ti, tt) for m, ti, tt in keys])
        y = np.array([table[k] for k in keys])
        self._mean = x.mean(axis=0)
        self._scale = x.std(axis=0) + 1e-9
        self._weights = self._fit(x, y)
        self.count = len(keys)
        self.loo_rmse = self._leave_one_out(x, y)
        margin = self.loo_rmse if math.isfinite(self.loo_rmse) else 0.0
        self.bounds = (max(float(y.min()) - margin, 0.0), min(float(y.max()) + margin, 1.0))

    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path), "ridge": self.ridge}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["ridge"])  # type: ignore[misc]

    def _design(self, x: np.ndarray) -> np.ndarray:
        z = (x - self._mean) / self._scale
        return np.hstack([z, np.ones((len(z), 1))])

    def _fit(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        a = self._design(x)
        penalty = self.ridge * np.eye(a.shape[1])
        penalty[-1, -1] = 0.0
        return np.linalg.solve(a.T @ a + penalty, a.T @ y)

    def _leave_one_out(self, x: np.ndarray, y: np.ndarray) -> float:
        if len(y) < 3:
            return math.nan
        errors = []
        for i in range(len(y)):
            keep = np.arange(len(y)) != i
            w = self._fit(x[keep], y[keep])
            errors.append(float((self._design(x[i:i + 1]) @ w)[0]) - y[i])
        return float(np.sqrt(np.mean(np.square(errors))))

    def identity(self) -> dict[str, Any]:
        return {"kind": "surrogate", "model": "ridge", "ridge": self.ridge,
                "file": self.path.name, "sha256": self._digest}

    @property
    def label(self) -> str:
        return (f"surrogate:ridge(n={self.count}, loo-rmse={self.loo_rmse:.3f}, "
                f"fitted on {self.path.name})")

    def accuracy(self, model: str, schedule: Any) -> AccuracyResult:
        x = model_features(model, schedule.tau_i, schedule.tau_t)[None, :]
        low, high = self.bounds
        value = float(np.clip(self._design(x) @ self._weights, low, high)[0])
        return AccuracyResult(value, self.label)


# --------------------------------------------------------------------------- measured


@dataclass(frozen=True)
class MeasuredSettings:
    """Task and trainer settings of measured accuracy (all go into the key)."""

    task: str = "listops"
    train_size: int = 2000
    validation_size: int = 300
    test_size: int = 300
    max_length: int = 64
    steps: int = 200
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


class MeasuredAccuracy(AccuracySource):
    """Train on the built-in task and measure (see the module docstring)."""

    name = "measured"

    def __init__(self, settings: MeasuredSettings | None = None,
                 cache_dir: str | Path | None = None) -> None:
        from tools.codesign.modelcache import default_cache_dir

        self.settings = settings or MeasuredSettings()
        if self.settings.task != "listops":
            raise UserError(f"measured accuracy: unknown task {self.settings.task!r}; the "
                            "built-in task is listops")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._data: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"settings": self.settings, "cache_dir": str(self.cache_dir)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["settings"], state["cache_dir"])  # type: ignore[misc]

    def identity(self) -> dict[str, Any]:
        return {"kind": "measured", **self.settings.to_json()}

    @property
    def label(self) -> str:
        s = self.settings
        return f"measured:{s.task}(steps={s.steps}, train={s.train_size}, seed={s.seed})"

    @property
    def vocab_size(self) -> int:
        from frontends.tasks.listops import VOCABULARY

        return len(VOCABULARY)

    def _path(self, model: str, tau_i: float, tau_t: float) -> Path:
        text = json.dumps({"model": _canonical(model), "tau_i": tau_i, "tau_t": tau_t,
                           **self.settings.to_json()}, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:24]
        return self.cache_dir / "accuracy" / f"{digest}.json"

    def accuracy(self, model: str, schedule: Any) -> AccuracyResult:
        from tools.codesign.modelcache import atomic_write_text, file_lock

        path = self._path(model, schedule.tau_i, schedule.tau_t)
        if not path.exists():
            with file_lock(path.with_suffix(".lock")):
                if not path.exists():
                    record = self._train(model, float(schedule.tau_i), float(schedule.tau_t),
                                         path.with_suffix(".profile.json"))
                    atomic_write_text(path, json.dumps(record, indent=1))
        record = json.loads(path.read_text())
        return AccuracyResult(record["validation_accuracy"], self.label, record.get("profile"),
                              {"test_accuracy": record["test_accuracy"],
                               "train_seconds": record["seconds"], "cached": True})

    def _task(self) -> Any:
        if self._data is None:
            from frontends.tasks import load_task

            s = self.settings
            self._data = load_task(s.task, train_size=s.train_size,
                                   validation_size=s.validation_size, test_size=s.test_size,
                                   max_length=s.max_length, seed=s.seed)
        return self._data

    def _train(self, model: str, tau_i: float, tau_t: float, profile_path: Path
               ) -> dict[str, Any]:
        from frontends.tasks.trainer import TrainConfig, train_classifier

        s = self.settings
        started = time.perf_counter()
        config = TrainConfig(steps=s.steps, batch_size=s.batch_size,
                             learning_rate=s.learning_rate, seed=s.seed)
        use_dynaprop = tau_i > 0 or tau_t > 0
        result = train_classifier(_canonical(model), self._task(), config, tau_i=tau_i,
                                  tau_t=tau_t, dynaprop=use_dynaprop)
        profile = None
        if use_dynaprop and result.evaluation_statistics is not None:
            from frontends.dynaprop.profile import build_profile, write_profile

            document = build_profile(
                result.evaluation_statistics, model=_canonical(model),
                description=_canonical(model), seed=s.seed, mode="inference", tau_i=tau_i,
                tau_t=tau_t, data={"task": s.task, "split": "validation+test",
                                   "batches": (math.ceil(s.validation_size / config.eval_batch_size)
                                               + math.ceil(s.test_size / config.eval_batch_size)),
                                   "batch_size": config.eval_batch_size,
                                   "examples": s.validation_size + s.test_size,
                                   "train_steps_before": s.steps,
                                   "task_config": self.settings.to_json()},
                module_prefix="bert.", tool="tools.codesign")
            write_profile(document, profile_path)
            profile = str(profile_path)
        return {"model": _canonical(model), "tau_i": tau_i, "tau_t": tau_t,
                "validation_accuracy": result.validation_accuracy,
                "test_accuracy": result.test_accuracy,
                "majority_accuracy": result.majority_accuracy,
                "final_loss": result.final_loss, "seconds": time.perf_counter() - started,
                "settings": self.settings.to_json(), "profile": profile}


def make_accuracy_source(spec: str | None, cache_dir: str | Path | None = None,
                         settings: MeasuredSettings | None = None) -> AccuracySource:
    """``none`` | ``measured`` | ``table:FILE`` | ``surrogate:FILE``."""
    if spec is None or spec in ("", "none"):
        return NoAccuracy()
    if spec in ("measured", "measured:listops"):
        return MeasuredAccuracy(settings, cache_dir)
    kind, _, argument = spec.partition(":")
    if kind == "table" and argument:
        return TableAccuracy(argument)
    if kind == "surrogate" and argument:
        return SurrogateAccuracy(argument)
    raise UserError(f"accuracy source {spec!r}: expected none, measured, table:FILE or "
                    "surrogate:FILE")
