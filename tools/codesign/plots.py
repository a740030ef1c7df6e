"""Plots of a results database: the Pareto front and best-so-far curves.

* :func:`plot_pareto` -- every feasible evaluated point of two metrics (log
  axes), the non-dominated front drawn as a step line, an optional marked
  best point and baseline.  With accuracy in the store the points are
  coloured by it.
* :func:`plot_best_so_far` -- for every sweep in the database (or the ones
  named), the best objective score against the number of trials.

Figures are :class:`matplotlib.figure.Figure` objects drawn on their own Agg
canvas (pyplot's global backend is never touched, so a notebook keeps its
inline plots); each function returns the path it wrote.  Axes whose values
span a decade or more are logarithmic; energies are shown in the unit that
suits their size (nJ, uJ, mJ or J) and no axis uses an offset, so tick labels
read as plain numbers.  The points of the Pareto front are labelled with
their design.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["design_label", "plot_best_so_far", "plot_pareto", "write_plots"]

_LABELS = {"latency_ms": "latency (ms)", "latency_cycles": "latency (cycles)",
           "dynamic_energy_nj": "dynamic energy (nJ)", "leakage_energy_nj": "leakage energy (nJ)",
           "energy_nj": "energy (nJ)", "area_mm2": "area (mm$^2$)", "accuracy": "accuracy"}


_SCALED = {"energy_nj": (("J", 1e9), ("mJ", 1e6), ("uJ", 1e3), ("nJ", 1.0)),
           "dynamic_energy_nj": (("J", 1e9), ("mJ", 1e6), ("uJ", 1e3), ("nJ", 1.0)),
           "leakage_energy_nj": (("J", 1e9), ("mJ", 1e6), ("uJ", 1e3), ("nJ", 1.0)),
           "latency_ms": (("s", 1e3), ("ms", 1.0), ("us", 1e-3))}


def _figure(width: float = 6.4, height: float = 4.8) -> Any:
    from backends.elector.plots import new_figure

    return new_figure(width, height)


def _scale(metric: str, values: Sequence[float]) -> tuple[str, float]:
    """(axis label, divisor) for ``metric`` given the values it shows."""
    label = _LABELS.get(metric, metric)
    positive = sorted(v for v in values if v and v > 0)
    if metric in _SCALED and positive:
        middle = positive[len(positive) // 2]
        for unit, divisor in _SCALED[metric]:
            if middle >= divisor or divisor == _SCALED[metric][-1][1]:
                base = label.split(" (")[0]
                return f"{base} ({unit})", divisor
    return label, 1.0


def _plain_axis(axes: Any, axis: str, values: Sequence[float]) -> None:
    """Log scale when the positive values span a decade or more; never an offset."""
    from matplotlib.ticker import ScalarFormatter

    positive = [v for v in values if v and v > 0]
    if positive and max(positive) / min(positive) >= 10:
        getattr(axes, f"set_{axis}scale")("log")
        return
    formatter = ScalarFormatter(useOffset=False)
    formatter.set_scientific(False)
    getattr(axes, f"{axis}axis").set_major_formatter(formatter)


def design_label(row: Mapping[str, Any]) -> str:
    """A short name of a stored point's design: its hardware (``space#index``),
    prefixed by the model when the model varies."""
    hardware = str(row.get("hardware") or "")
    return hardware or str(row.get("key", ""))[:10]


def front_rows(rows: Sequence[Mapping[str, Any]], x: str, y: str,
               front_metrics: Sequence[str] | None = None) -> list[Mapping[str, Any]]:
    """The Pareto-optimal rows, sorted by ``x``: over ``x`` and ``y``, or over
    ``front_metrics`` when given (the metrics a weighted objective weighs, on
    whose front its best point always lies; drawn projected on ``x``, ``y``)."""
    from tools.codesign.objectives import METRIC_DIRECTIONS, pareto_front

    names = tuple(front_metrics) if front_metrics else (x, y)
    # a metric no row has (accuracy when none was asked) does not take part
    names = tuple(m for m in names if any(r.get(m) is not None for r in rows)) or (x, y)
    usable = [r for r in rows if all(r.get(m) is not None for m in names)]
    front = pareto_front(usable, lambda r: tuple(float(r[m]) for m in names),
                         tuple(METRIC_DIRECTIONS.get(m, "min") for m in names))
    front.sort(key=lambda r: r[x])
    return front


def front_label(x: str, y: str, front_metrics: Sequence[str] | None, count: int) -> str:
    if not front_metrics or set(front_metrics) == {x, y}:
        return f"Pareto front ({count})"
    return f"Pareto-optimal in {', '.join(front_metrics)} ({count})"


def plot_pareto(rows: Iterable[Mapping[str, Any]], path: str | Path,
                x: str = "latency_ms", y: str = "energy_nj", title: str = "",
                best: Mapping[str, Any] | None = None,
                baseline: Mapping[str, Any] | None = None, max_labels: int = 12,
                front_metrics: Sequence[str] | None = None) -> Path:
    """Scatter of ``x`` against ``y`` over result rows (dicts with metric
    columns and ``status``), the front of the two (both minimised unless the
    metric is accuracy) highlighted and its points (up to ``max_labels``)
    labelled with their design."""
    rows = [r for r in rows if r.get("status") == "ok" and r.get(x) is not None
            and r.get(y) is not None]
    extra = [p for p in (best, baseline) if p is not None and p.get(x) is not None]
    x_label, x_div = _scale(x, [r[x] for r in rows] + [p[x] for p in extra])
    y_label, y_div = _scale(y, [r[y] for r in rows] + [p[y] for p in extra])
    figure = _figure(7.2, 5.2)
    axes = figure.subplots()
    front: list[Mapping[str, Any]] = []
    if rows:
        accuracy = [r.get("accuracy") for r in rows]
        coloured = all(a is not None for a in accuracy) and len({round(a, 6) for a in accuracy}) > 1
        colours: dict[str, Any] = ({"c": accuracy, "cmap": "viridis"} if coloured
                                   else {"color": "tab:gray"})
        scatter = axes.scatter([r[x] / x_div for r in rows], [r[y] / y_div for r in rows], s=12,
                               alpha=0.6, label=f"evaluated ({len(rows)})", **colours)
        if coloured:
            figure.colorbar(scatter, ax=axes, label="accuracy")
        front = front_rows(rows, x, y, front_metrics)
        projected = bool(front_metrics) and set(front_metrics) != {x, y}
        axes.step([r[x] / x_div for r in front], [r[y] / y_div for r in front], where="post",
                  color="tab:red", linewidth=0 if projected else 1.5, marker="o",
                  markersize=4, label=front_label(x, y, front_metrics, len(front)))
        names = [design_label(r) for r in front[:max_labels]]
        prefix = names[0].split("#")[0] + "#" if names and "#" in names[0] else ""
        if prefix and all(n.startswith(prefix) for n in names):
            names = ["#" + n[len(prefix):] for n in names]      # the space is in the title
        for index, (r, name) in enumerate(zip(front, names)):
            right = index % 2 == 0
            axes.annotate(name, (r[x] / x_div, r[y] / y_div), textcoords="offset points",
                          xytext=(7, 5) if right else (-7, -11), ha="left" if right else "right",
                          fontsize=7, color="tab:red",
                          bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                                "alpha": 0.8})
        if prefix:
            title = title or f"designs of {prefix[:-1]}"
    if best is not None and best.get(x) is not None:
        axes.scatter([best[x] / x_div], [best[y] / y_div], marker="*", s=220, color="gold",
                     edgecolor="black", zorder=5,
                     label="best (objective)" + (f": {design_label(best)}"
                                                 if design_label(best) else ""))
    if baseline is not None and baseline.get(x) is not None:
        axes.scatter([baseline[x] / x_div], [baseline[y] / y_div], marker="X", s=120,
                     color="black", zorder=5, label=baseline.get("label", "baseline"))
    _plain_axis(axes, "x", [r[x] for r in rows] + [p[x] for p in extra])
    _plain_axis(axes, "y", [r[y] for r in rows] + [p[y] for p in extra])
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.set_title((title + ": " if title else "") + f"{y_label} against {x_label}", fontsize=10)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    if len(front) > max_labels:
        figure.text(0.01, 0.01, f"{len(front) - max_labels} more front points not labelled",
                    fontsize=7, color="0.3")
    figure.tight_layout()
    return _save(figure, path)


def plot_best_so_far(curves: Mapping[str, Sequence[float]], path: str | Path,
                     title: str = "best objective against evaluations",
                     reference: float | None = None, log_x: bool = False) -> Path:
    """One line per curve (``{label: best score after each trial}``)."""
    figure = _figure()
    axes = figure.subplots()
    for label, values in curves.items():
        shown = [v if v is not None and math.isfinite(v) else math.nan for v in values]
        axes.step(range(1, len(shown) + 1), shown, where="post", label=label, linewidth=1.4)
    if reference is not None:
        axes.axhline(reference, color="black", linestyle="--", linewidth=1,
                     label="reference")
    if log_x:
        axes.set_xscale("log")
    from matplotlib.ticker import ScalarFormatter

    formatter = ScalarFormatter(useOffset=False)
    formatter.set_scientific(False)
    axes.yaxis.set_major_formatter(formatter)
    axes.set_xlabel("evaluations (trials)")
    axes.set_ylabel("best objective so far (higher is better)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


def _save(figure: Any, path: str | Path) -> Path:
    """Write a PNG atomically (a temporary file beside it, then a rename); a
    folder that cannot be made or written is one error naming it."""
    from transcode_ir.fileio import FileError, describe_os_error, output_path

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FileError(describe_os_error(error, path.parent, "create the folder")) from None
    with output_path(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png")
    return path


def best_so_far_curves(db: str | Path) -> dict[str, list[float]]:
    """``{sweep name: best score after each trial}`` for every sweep in ``db``."""
    from tools.codesign.store import ResultsStore

    curves: dict[str, list[float]] = {}
    with ResultsStore(db, readonly=True) as store:
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
        baseline: Mapping[str, Any] | None = None, title: str = "",
        front_metrics: Sequence[str] | None = None,
        keys: Iterable[str] | None = None) -> list[Path]:
    """Write ``pareto.png`` and ``best_so_far.png`` for ``db`` into ``directory``
    (``keys``: only these results, e.g. one sweep's; ``front_metrics``: see
    :func:`front_rows`)."""
    from tools.codesign.store import ResultsStore

    directory = Path(directory)
    with ResultsStore(db, readonly=True) as store:
        rows = store.rows()
    if keys is not None:
        wanted = set(keys)
        rows = [r for r in rows if r["key"] in wanted]
    paths = [plot_pareto(rows, directory / "pareto.png", metrics[0], metrics[1], title, best,
                         baseline, front_metrics=front_metrics),
             plot_best_so_far(best_so_far_curves(db), directory / "best_so_far.png")]
    return paths
