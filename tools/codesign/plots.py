"""Plots of a results database: the Pareto front and best-so-far curves.

* :func:`plot_pareto` -- every feasible evaluated point of two metrics (log
  axes), the non-dominated front drawn as a step line, an optional marked
  best point and baseline.  With accuracy in the store the points are
  coloured by it.
* :func:`plot_best_so_far` -- for every sweep in the database (or the ones
  named), the best objective score against the number of trials.

matplotlib runs headless (Agg); each function returns the path it wrote.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_best_so_far", "plot_pareto", "write_plots"]

_LABELS = {"latency_ms": "latency (ms)", "latency_cycles": "latency (cycles)",
           "dynamic_energy_nj": "dynamic energy (nJ)", "leakage_energy_nj": "leakage energy (nJ)",
           "energy_nj": "energy (nJ)", "area_mm2": "area (mm$^2$)", "accuracy": "accuracy"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pareto(rows: Iterable[Mapping[str, Any]], path: str | Path,
                x: str = "latency_ms", y: str = "energy_nj", title: str = "",
                best: Mapping[str, Any] | None = None,
                baseline: Mapping[str, Any] | None = None) -> Path:
    """Scatter of ``x`` against ``y`` over result rows (dicts with metric
    columns and ``status``), the front of the two (both minimised unless the
    metric is accuracy) highlighted."""
    from tools.codesign.objectives import METRIC_DIRECTIONS, pareto_front

    plt = _pyplot()
    rows = [r for r in rows if r.get("status") == "ok" and r.get(x) is not None
            and r.get(y) is not None]
    figure, axes = plt.subplots(figsize=(6.4, 4.8))
    if rows:
        accuracy = [r.get("accuracy") for r in rows]
        coloured = all(a is not None for a in accuracy) and len({round(a, 6) for a in accuracy}) > 1
        colours: dict[str, Any] = ({"c": accuracy, "cmap": "viridis"} if coloured
                                   else {"color": "tab:gray"})
        scatter = axes.scatter([r[x] for r in rows], [r[y] for r in rows], s=10, alpha=0.55,
                               label=f"evaluated ({len(rows)})", **colours)
        if coloured:
            figure.colorbar(scatter, ax=axes, label="accuracy")
        directions = (METRIC_DIRECTIONS[x], METRIC_DIRECTIONS[y])
        front = pareto_front(rows, lambda r: (r[x], r[y]), directions)
        front.sort(key=lambda r: r[x])
        axes.step([r[x] for r in front], [r[y] for r in front], where="post", color="tab:red",
                  linewidth=1.5, marker="o", markersize=4, label=f"Pareto front ({len(front)})")
    if best is not None and best.get(x) is not None:
        axes.scatter([best[x]], [best[y]], marker="*", s=220, color="gold", edgecolor="black",
                     zorder=5, label="best (objective)")
    if baseline is not None and baseline.get(x) is not None:
        axes.scatter([baseline[x]], [baseline[y]], marker="X", s=120, color="black", zorder=5,
                     label=baseline.get("label", "baseline"))
    for axis, metric in (("x", x), ("y", y)):
        values = [r[metric] for r in rows if r[metric] and r[metric] > 0]
        if values and max(values) / max(min(values), 1e-30) > 50:
            getattr(axes, f"set_{axis}scale")("log")
    axes.set_xlabel(_LABELS.get(x, x))
    axes.set_ylabel(_LABELS.get(y, y))
    axes.set_title(title or f"{_LABELS.get(y, y)} against {_LABELS.get(x, x)}")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_best_so_far(curves: Mapping[str, Sequence[float]], path: str | Path,
                     title: str = "best objective against evaluations",
                     reference: float | None = None, log_x: bool = False) -> Path:
    """One line per curve (``{label: best score after each trial}``)."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 4.8))
    for label, values in curves.items():
        shown = [v if v is not None and math.isfinite(v) else math.nan for v in values]
        axes.plot(range(1, len(shown) + 1), shown, label=label, linewidth=1.4)
    if reference is not None:
        axes.axhline(reference, color="black", linestyle="--", linewidth=1,
                     label="reference")
    if log_x:
        axes.set_xscale("log")
    axes.set_xlabel("evaluations (trials)")
    axes.set_ylabel("best objective so far")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def best_so_far_curves(db: str | Path) -> dict[str, list[float]]:
    """``{sweep name: best score after each trial}`` for every sweep in ``db``."""
    from tools.codesign.store import ResultsStore

    curves: dict[str, list[float]] = {}
    with ResultsStore(db) as store:
        for entry in store.sweeps():
            best, values = -math.inf, []
            for _, _, _, score in store.trials(entry["id"]):
                if score is not None:
                    best = max(best, score)
                values.append(best)
            curves[entry["name"]] = values
    return curves


def write_plots(db: str | Path, directory: str | Path, metrics: tuple[str, str] = (
        "latency_ms", "energy_nj"), best: Mapping[str, Any] | None = None,
        baseline: Mapping[str, Any] | None = None, title: str = "") -> list[Path]:
    """Write ``pareto.png`` and ``best_so_far.png`` for ``db`` into ``directory``."""
    from tools.codesign.store import ResultsStore

    directory = Path(directory)
    with ResultsStore(db) as store:
        rows = store.rows()
    paths = [plot_pareto(rows, directory / "pareto.png", metrics[0], metrics[1], title, best,
                         baseline),
             plot_best_so_far(best_so_far_curves(db), directory / "best_so_far.png")]
    return paths
