"""The DynaProp study: train a grid of (τ_I, τ_T) settings, report accuracy against sparsity.

For every pair of the grid, :func:`run_study` trains a fresh classifier from the
same seed on the same data (:func:`frontends.tasks.trainer.train_classifier`,
with a DynaProp runtime attached even at τ = 0 so that every row is measured the
same way) and records:

* accuracy on the validation and test splits (evaluated with τ_I pruning on,
  as DynaTran infers);
* activation sparsity: zeros over elements at all prune points, forward,
  during evaluation (and during training, ``training_activation_sparsity``);
* gradient sparsity: the same over the activation gradients at the prune
  points, during training;
* weight-gradient sparsity: over the gradients of every Linear parameter,
  during training.

:class:`StudyResult` writes the text table, the JSON document and a PNG plot
(matplotlib, a Figure on its own Agg canvas, imported only when plotting).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from frontends.tasks.listops import ListOpsConfig
from frontends.tasks.trainer import TrainConfig, TrainResult, majority_baseline, train_classifier
from transcode_ir.errors import UserError

__all__ = ["STUDY_FORMAT", "STUDY_VERSION", "StudyResult", "StudyRow", "load_checkpoint",
           "run_study"]

STUDY_FORMAT = "transcode.dynaprop-study"
STUDY_VERSION = 1


@dataclass(frozen=True)
class StudyRow:
    """One trained (τ_I, τ_T) setting; fractions in [0, 1]."""

    tau_i: float
    tau_t: float
    validation_accuracy: float
    test_accuracy: float
    activation_sparsity: float
    training_activation_sparsity: float
    gradient_sparsity: float
    weight_gradient_sparsity: float
    final_loss: float
    seconds: float

    @classmethod
    def from_result(cls, result: TrainResult) -> StudyRow:
        training = result.training_statistics
        evaluation = result.evaluation_statistics
        nan = math.nan
        return cls(
            tau_i=result.tau_i,
            tau_t=result.tau_t,
            validation_accuracy=result.validation_accuracy,
            test_accuracy=result.test_accuracy,
            activation_sparsity=evaluation.activation_sparsity if evaluation else nan,
            training_activation_sparsity=training.activation_sparsity if training else nan,
            gradient_sparsity=training.gradient_sparsity if training else nan,
            weight_gradient_sparsity=training.weight_gradient_sparsity if training else nan,
            final_loss=result.final_loss,
            seconds=result.seconds,
        )


@dataclass
class StudyResult:
    """All rows of a study plus everything that determined them."""

    model: str
    task: str
    seed: int
    task_config: dict[str, Any]
    train_config: dict[str, Any]
    majority_accuracy: float
    rows: list[StudyRow] = field(default_factory=list)
    command: str | None = None
    tool: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": STUDY_FORMAT,
            "version": STUDY_VERSION,
            "model": self.model,
            "task": self.task,
            "seed": self.seed,
            "task_config": self.task_config,
            "train_config": self.train_config,
            "majority_accuracy": _json_number(self.majority_accuracy),
            "rows": [{k: _json_number(v) for k, v in asdict(row).items()} for row in self.rows],
            "command": self.command,
            "tool": self.tool,
        }

    def format_table(self) -> str:
        """A text table, one line per setting (percentages)."""
        from transcode_ir.tables import format_table

        lines = [
            (
                f"DynaProp study: {self.model} on {self.task}, seed {self.seed}, "
                f"{self.train_config.get('steps')} steps of batch "
                f"{self.train_config.get('batch_size')}"
            ),
            f"chance (majority label of train, on test): {_percent(self.majority_accuracy)}",
            (
                "act sp = activation sparsity at the prune points during evaluation; grad sp = "
                "activation-gradient sparsity during training; wgrad sp = weight-gradient "
                "sparsity during training (all element-weighted, %)"
            ),
        ]
        header = ("tau_i", "tau_t", "val acc", "test acc", "act sp", "grad sp", "wgrad sp",
                  "loss", "sec")
        rows = [(f"{row.tau_i:.4g}", f"{row.tau_t:.2g}", _percent(row.validation_accuracy),
                 _percent(row.test_accuracy), _percent(row.activation_sparsity),
                 _percent(row.gradient_sparsity), _percent(row.weight_gradient_sparsity),
                 f"{row.final_loss:.3f}", f"{row.seconds:.1f}") for row in self.rows]
        lines.append(format_table(header, rows, align="r" * len(header)))
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """Accuracy against activation and gradient sparsity, as a PNG."""
        # A Figure on its own Agg canvas: pyplot's global backend is left alone.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(11, 4.5))
        FigureCanvasAgg(figure)
        axes = figure.subplots(1, 2, sharey=True)
        tau_ts = sorted({row.tau_t for row in self.rows})
        markers = "osD^v<>p*h"
        panels = (
            ("activation_sparsity", "activation sparsity (evaluation, τ_I)"),
            ("gradient_sparsity", "activation-gradient sparsity (training, τ_T)"),
        )
        for axis, (attribute, label) in zip(axes, panels):
            for index, tau_t in enumerate(tau_ts):
                rows = [row for row in self.rows if row.tau_t == tau_t]
                xs = [100 * getattr(row, attribute) for row in rows]
                ys = [100 * row.test_accuracy for row in rows]
                axis.plot(xs, ys, marker=markers[index % len(markers)], linestyle="-",
                          label=f"τ_T = {tau_t:g}")
                for row, x, y in zip(rows, xs, ys):
                    axis.annotate(f"τ_I={row.tau_i:g}", (x, y), textcoords="offset points",
                                  xytext=(4, 4), fontsize=7)
            if not math.isnan(self.majority_accuracy):
                axis.axhline(100 * self.majority_accuracy, color="grey", linestyle="--",
                             linewidth=1, label="majority label")
            axis.set_xlabel(f"{label} [%]")
            axis.grid(True, alpha=0.3)
        axes[0].set_ylabel("test accuracy [%]")
        axes[1].legend(fontsize=8, loc="best")
        figure.suptitle(
            f"DynaProp: {self.model} on {self.task}, {self.train_config.get('steps')} steps, "
            f"seed {self.seed}"
        )
        figure.tight_layout()
        target = Path(path)
        figure.savefig(target, dpi=110)
        return target

    def write(self, directory: str | Path, stem: str = "study") -> dict[str, Path]:
        """Write ``study.txt``, ``study.json`` and ``study.png`` into ``directory``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "table": out / f"{stem}.txt",
            "json": out / f"{stem}.json",
            "plot": out / f"{stem}.png",
        }
        paths["table"].write_text(self.format_table() + "\n", encoding="utf-8")
        paths["json"].write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        self.plot(paths["plot"])
        return paths


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}"


def _json_number(value: Any) -> Any:
    """NaN is not JSON: write it as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _train_setting(
    model: str, task: str, task_config: ListOpsConfig, train_config: TrainConfig,
    tau_i: float, tau_t: float,
) -> StudyRow:
    """One setting, in whatever process runs it (the data is regenerated: it is cheap)."""
    from frontends.dynaprop.kernels import keep_freed_memory
    from frontends.tasks import load_task

    keep_freed_memory()
    data = load_task(task, **task_config.to_json())
    trained = train_classifier(model, data, train_config, tau_i=tau_i, tau_t=tau_t, dynaprop=True)
    return StudyRow.from_result(trained)


def run_study(
    model: str,
    tau_i_values: Sequence[float],
    tau_t_values: Sequence[float],
    *,
    task: str = "listops",
    task_config: ListOpsConfig | None = None,
    train_config: TrainConfig | None = None,
    jobs: int = 1,
    on_row: Callable[[StudyRow], None] | None = None,
    checkpoint: str | Path | None = None,
) -> StudyResult:
    """Train every (τ_I, τ_T) pair (τ_T varies fastest) and collect a :class:`StudyResult`.

    ``jobs > 1`` trains that many settings at once in worker processes (each
    with ``train_config.threads`` threads); every setting is seeded on its own,
    so the rows are the same for any ``jobs``.  ``on_row`` sees rows as they
    finish; the result keeps grid order.

    ``checkpoint``: a JSON-lines file where each finished setting is appended
    (and flushed to disk) as it finishes, with everything that determined it.
    Settings already there with the same model, task and training
    configuration are taken from it instead of trained again, so a study cut
    short (Ctrl-C, a killed job) resumes where it stopped when run again.
    ``on_row`` is not called for reused rows.
    """
    from frontends.tasks import load_task

    if not tau_i_values or not tau_t_values:
        raise UserError("a study needs at least one tau_i and one tau_t value")
    if not isinstance(jobs, int) or jobs < 1:
        raise UserError(f"jobs: expected an integer >= 1, got {jobs!r}")
    task_config = task_config if task_config is not None else ListOpsConfig()
    train_config = train_config if train_config is not None else TrainConfig()
    data = load_task(task, **task_config.to_json())
    result = StudyResult(
        model=model,
        task=task,
        seed=train_config.seed,
        task_config=task_config.to_json(),
        train_config=train_config.to_json(),
        majority_accuracy=majority_baseline(data),
    )
    grid = [(tau_i, tau_t) for tau_i in tau_i_values for tau_t in tau_t_values]
    identity = _setting_identity(result)
    rows: dict[int, StudyRow] = {}
    if checkpoint is not None:
        finished = load_checkpoint(checkpoint, identity)
        for index, setting in enumerate(grid):
            if setting in finished:
                rows[index] = finished[setting]
    todo = [index for index in range(len(grid)) if index not in rows]

    def finish(index: int, row: StudyRow) -> None:
        rows[index] = row
        if checkpoint is not None:
            _append_checkpoint(checkpoint, identity, row)
        if on_row is not None:
            on_row(row)

    from transcode_ir.progress import stage  # stderr, terminals only

    if todo and (jobs == 1 or len(todo) == 1):
        for count, index in enumerate(todo, 1):
            tau_i, tau_t = grid[index]
            with stage(f"setting {count}/{len(todo)} (tau_i={tau_i:g}, tau_t={tau_t:g}): "
                       "training", total=train_config.steps) as running:
                trained = train_classifier(
                    model, data, train_config, tau_i=tau_i, tau_t=tau_t, dynaprop=True,
                    on_step=lambda step, loss: running.advance(step + 1),
                )
            finish(index, StudyRow.from_result(trained))
    elif todo:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        context = multiprocessing.get_context("spawn")  # no forked torch thread pools
        pool = ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=context)
        try:
            futures = {
                pool.submit(_train_setting, model, task, task_config, train_config,
                            *grid[index]): index
                for index in todo
            }
            with stage(f"training {len(todo)} settings in {min(jobs, len(todo))} worker "
                       "processes", total=len(todo)) as running:
                for future in as_completed(futures):
                    finish(futures[future], future.result())
                    running.advance()
        except BaseException:
            # Ctrl-C (or a failed setting): finished rows are in the checkpoint
            # already; settings in flight are dropped, not waited for.
            processes = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
            raise
        pool.shutdown(wait=True)
    result.rows.extend(rows[index] for index in range(len(grid)))
    return result


def _setting_identity(result: StudyResult) -> dict[str, Any]:
    """What determines a row besides its (τ_I, τ_T) (threads and jobs do not)."""
    train = {k: v for k, v in result.train_config.items() if k != "threads"}
    return {"format": STUDY_FORMAT, "version": STUDY_VERSION, "model": result.model,
            "task": result.task, "task_config": result.task_config, "train_config": train}


def load_checkpoint(path: str | Path, identity: dict[str, Any]
                    ) -> dict[tuple[float, float], StudyRow]:
    """Rows of ``path`` (see :func:`run_study`) whose identity matches, by (τ_I, τ_T).
    A missing file is empty; a torn last line (a kill while writing) is skipped."""
    path = Path(path)
    found: dict[tuple[float, float], StudyRow] = {}
    if not path.is_file():
        return found
    wanted = json.dumps(identity, sort_keys=True)
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
            if json.dumps(entry["identity"], sort_keys=True) != wanted:
                continue
            values = {k: (math.nan if v is None else v) for k, v in entry["row"].items()}
            row = StudyRow(**values)
        except (ValueError, KeyError, TypeError):
            continue
        found[(row.tau_i, row.tau_t)] = row
    return found


def _append_checkpoint(path: str | Path, identity: dict[str, Any], row: StudyRow) -> None:
    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"identity": identity,
                       "row": {k: _json_number(v) for k, v in asdict(row).items()}},
                      sort_keys=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())
