"""PNG plots of a ``tcc compile`` report (what ``--plots DIR`` writes).

* ``energy.png``: energy by class, dynamic and leakage side by side, on a
  log axis (the classes span several decades: a few nJ of DMA next to
  hundreds of uJ of main memory), each bar labelled with its value.
* ``utilisation.png``: one small panel per module class and memory level,
  named exactly as the text report's utilisation table names them, each
  titled with the text report's figure for the whole run.  The MAC-lane
  panel stands for the sparsity units and FIFOs too (they are busy whenever
  their lane is, so the text report gives them the same figure); the DMA
  panel counts the engines busy while main memory transfers, as the text
  report does.  The event
  simulator's timeline has every class and level; for the analytical one the
  module classes come from its per-op timeline and the memory levels from
  each op's transfer time over its interval.

matplotlib is used through :class:`matplotlib.figure.Figure` and the Agg
canvas object only: nothing here selects or changes pyplot's global backend,
so plotting inside a notebook keeps its inline backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["TIMELINE_CLASSES", "new_figure", "save_figure", "time_unit", "utilisation_series",
           "write_energy_plot", "write_utilisation_plot"]

#: Timeline names of the simulators -> the text report's utilisation key.
TIMELINE_CLASSES: Mapping[str, str] = {
    "mac": "mac_lane", "softmax": "softmax", "layernorm": "layer_norm", "dma": "dma",
    "dataflow": "dataflow",
    "main_memory": "main_memory", "activation_buffer": "activation_buffer",
    "weight_buffer": "weight_buffer", "mask_buffer": "mask_buffer",
}
#: Classes the text report lists that share the MAC lanes' busy time.
_WITH_MAC = ("pre_sparsity", "post_sparsity", "fifo", "stochastic_rounding")
_ORDER = ("mac_lane", "softmax", "layer_norm", "dataflow", "dma", "main_memory",
          "activation_buffer", "weight_buffer", "mask_buffer")
_MEMORY = {"main_memory", "activation_buffer", "weight_buffer", "mask_buffer"}


def new_figure(width: float, height: float) -> Any:
    """A Figure with its own Agg canvas (pyplot's state is not touched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Any, path: str | Path, dpi: int = 110) -> Path:
    """Write a PNG atomically (:func:`transcode_ir.fileio.output_path`)."""
    from transcode_ir.fileio import FileError, describe_os_error, output_path

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FileError(describe_os_error(err, path.parent, "create the folder")) from None
    with output_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi, format="png")
    return path


def time_unit(seconds: float) -> tuple[str, float]:
    """A readable unit for a span of ``seconds``: (name, factor to multiply by)."""
    if seconds >= 1:
        return "s", 1.0
    if seconds >= 1e-3:
        return "ms", 1e3
    if seconds >= 1e-6:
        return "us", 1e6
    return "ns", 1e9


def _label(key: str) -> str:
    from backends.elector.costing import ENERGY_LABELS

    return ENERGY_LABELS.get(key, key.replace("_", " "))


def _steps(intervals: Iterable[tuple[float, float, float]]) -> tuple[list[float], list[float]]:
    """Sum of ``(start, end, level)`` intervals as a step function (capped at 1)."""
    events: dict[float, float] = {}
    for start, end, level in intervals:
        if end > start and level > 0:
            events[start] = events.get(start, 0.0) + level
            events[end] = events.get(end, 0.0) - level
    times, values, current = [], [], 0.0
    for t in sorted(events):
        current += events[t]
        times.append(t)
        values.append(min(max(current, 0.0), 1.0))
    return times, values


def _add_steps(a: tuple[list[float], list[float]], b: tuple[list[float], list[float]],
               weight: float) -> tuple[list[float], list[float]]:
    """The step series ``a + weight * b`` (capped at 1) on the union of their times."""
    import bisect

    def at(series: tuple[list[float], list[float]], t: float) -> float:
        index = bisect.bisect_right(series[0], t) - 1
        return series[1][index] if index >= 0 else 0.0

    times = sorted(set(a[0]) | set(b[0]))
    return times, [min(at(a, t) + weight * at(b, t), 1.0) for t in times]


def utilisation_series(report: Any) -> dict[str, tuple[list[float], list[float]]]:
    """``{text-report key: (cycles, fractions)}`` step series (post) of the
    report's module classes and memory levels, in the text report's order."""
    result = report.result
    series: dict[str, tuple[list[float], list[float]]] = {}
    if result.timeline:
        cycles = [p.cycle for p in result.timeline]
        names = sorted({n for p in result.timeline for n in p.utilisation})
        for name in names:
            key = TIMELINE_CLASSES.get(name)
            if key is None:
                continue        # "sparsity": the same busy time as the MAC lanes
            series[key] = (cycles, [p.utilisation.get(name, 0.0) for p in result.timeline])
    if result.simulator != "event" or not any(k in _MEMORY for k in series):
        # The analytical timeline has module classes only: each level's
        # transfer time over each op's interval.
        for level in sorted(_MEMORY):
            intervals = [(r.start_cycle, r.end_cycle,
                          r.memory_cycles.get(level, 0.0) / r.cycles)
                         for r in result.ops if r.cycles > 0]
            times, values = _steps(intervals)
            if times:
                series[level] = (times, values)
    if "dma" in series and "main_memory" in series:
        # The text report counts a DMA engine busy while main memory transfers.
        engines = next((row.count for row in report.area.rows if row.kind == "dma"), 0)
        if engines:
            series["dma"] = _add_steps(series["dma"], series["main_memory"], 1.0 / engines)
    end = result.cycles
    out = {}
    for key in _ORDER:
        if key in series:
            times, values = series[key]
            if times and times[-1] < end:          # close the last step at the end of the run
                times, values = [*times, end], [*values, values[-1]]
            out[key] = (list(times), list(values))
    return out


def write_utilisation_plot(report: Any, path: str | Path) -> Path:
    """Small multiples of utilisation over time, one panel per class."""
    result = report.result
    text = dict(result.utilisation)
    series = utilisation_series(report)
    shown = [key for key in series
             if max(series[key][1], default=0.0) > 0 or text.get(key, 0.0) > 0]
    missing = [key for key, value in text.items()
               if key not in series and key not in _WITH_MAC and value > 0]
    unit, factor = time_unit(result.seconds)
    per_cycle = factor / report.clock_hz
    rows = max(len(shown), 1)
    figure = new_figure(9, 0.95 * rows + 1.3)
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    source = ("event simulator" if result.simulator == "event"
              else "analytical simulator (per-op intervals)")
    figure.suptitle(f"utilisation over time: {report.model} on {report.design} "
                    f"({source})", fontsize=9)
    palette = {"mac_lane": "tab:blue", "softmax": "tab:orange", "layer_norm": "tab:green",
               "dataflow": "tab:olive", "dma": "tab:brown", "main_memory": "tab:red",
               "activation_buffer": "tab:purple", "weight_buffer": "tab:pink",
               "mask_buffer": "tab:gray"}
    for ax, key in zip(axes, shown):
        times, values = series[key]
        xs = [t * per_cycle for t in times]
        colour = palette.get(key, "tab:blue")
        ax.fill_between(xs, values, step="post", alpha=0.35, color=colour, linewidth=0)
        ax.step(xs, values, where="post", color=colour, linewidth=0.8)
        name = _label(key)
        if key == "mac_lane":
            name += " (also sparsity units, FIFOs)"
        what = "bandwidth" if key in _MEMORY else "busy"
        ax.set_title(f"{name}: {text.get(key, 0.0):.1%} {what} over the run", fontsize=8,
                     loc="left", pad=2)
        ax.set_ylim(0, 1.05)
        ax.set_yticks([0, 0.5, 1])
        ax.set_yticklabels(["0", "50%", "100%"], fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(True, axis="y", alpha=0.3)
        ax.margins(x=0)
    if not shown:
        axes[0].text(0.5, 0.5, "no timeline recorded", ha="center", va="center",
                     transform=axes[0].transAxes)
    axes[-1].set_xlabel(f"time ({unit})", fontsize=8)
    if missing:
        figure.text(0.01, 0.005, "not in the timeline: " + ", ".join(
            f"{_label(k)} {text[k]:.1%}" for k in missing), fontsize=7, color="0.3")
    figure.tight_layout(rect=(0, 0.02, 1, 1), h_pad=0.4)
    return save_figure(figure, path)


def write_energy_plot(report: Any, path: str | Path) -> Path:
    """Energy by class, dynamic and leakage bars on a log axis."""
    energy = report.result.energy
    rows = [row for row in energy.rows if row.total_nj > 0]
    figure = new_figure(9, 0.36 * max(len(rows), 1) + 1.4)
    ax = figure.subplots()
    height = 0.38
    positions = list(range(len(rows)))
    series: Sequence[tuple[str, str, Any, float]] = (
        ("dynamic", "tab:blue", lambda row: row.dynamic_nj, -height / 2),
        ("leakage", "tab:orange", lambda row: row.leakage_nj, height / 2))
    smallest = min((v for row in rows for v in (row.dynamic_nj, row.leakage_nj or 0.0)
                    if v and v > 0), default=1.0)
    for name, colour, value_of, offset in series:
        ys, widths = [], []
        for index, row in enumerate(rows):
            value = value_of(row)
            if value:
                ys.append(index + offset)
                widths.append(value)
        floor = smallest / 10      # bars start at the axis' left edge (log scale)
        ax.barh(ys, [w - floor for w in widths], height=height, color=colour, label=name,
                left=floor)
        for y, value in zip(ys, widths):
            ax.text(value * 1.15, y, _energy_text(value), va="center", fontsize=6.5)
    ax.set_xscale("log")
    ax.set_yticks(positions)
    ax.set_yticklabels([row.label for row in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("energy (nJ, log scale)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlim(smallest / 10, max((row.total_nj for row in rows), default=1.0) * 12)
    no_leak = [row.label for row in rows if row.leakage_nj is None]
    ax.set_title(f"energy by class: {report.model} on {report.design} ({report.mode}), total "
                 f"{_energy_text(energy.total_nj)}"
                 + (f"; leakage not characterised: {', '.join(no_leak)}" if no_leak else ""),
                 fontsize=8)
    ax.grid(True, axis="x", which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    figure.tight_layout()
    return save_figure(figure, path)


def _energy_text(nj: float) -> str:
    for limit, unit in ((1e9, "J"), (1e6, "mJ"), (1e3, "uJ")):
        if nj >= limit:
            return f"{nj / limit:.3g} {unit}"
    return f"{nj:.3g} nJ"
