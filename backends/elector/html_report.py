"""Interactive HTML reports: ``tcc compile --html`` and sweep/co-design results.

One self-contained file that works offline: the page, its data and the
plotting library are all inlined (no request leaves the file).  The charts
use plotly.js, inlined from the ``plotly`` Python package
(:func:`plotly.offline.get_plotlyjs`); the figures are written here as plain
plotly.js JSON, so only the bundled JavaScript is taken from the package.
Why plotly: its one-file bundle embeds offline and gives zoom, pan, hover
and click events on every chart without a server; its horizontal bars with a
``base`` draw a timeline directly, and log axes are one setting.  (bokeh
embeds offline too, but its timeline and click-to-open need more custom
JavaScript, and a standalone bokeh page inlines several bundles.)

A compile report (:func:`render_report`, :func:`write_html`) has

* the summary (latency, roofline, energy, area), the design (its settings,
  and its DSL text when given) and the exact pass pipeline;
* an op timeline with one row per module class (overlapping ops of a class
  go to further rows, as in the trace export), zoomable; each bar is an op,
  named by its source location;
* a roofline chart (MAC-array ops against the peak MAC rate and the
  main-memory bandwidth) and every op's simulated cycles against its own
  roofline bound;
* energy and area by class (log axes), utilisation (per class over time
  when the report object carries the simulator's timeline);
* the per-layer and per-op tables (click a heading to sort), notes.

A sweep report (:func:`render_sweep`, :func:`write_sweep_html`) has the
Pareto front of two metrics (every point named by its design; clicking a
point opens its record: the design's DSL text, model, schedule, pipeline,
metrics -- or its full compile report when one was written, as for the best
point), the best-so-far curves and a sortable table of the front.

``plotly`` is imported only here, and this module only when an HTML report
is asked for.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from backends.elector.report import _levels_text, _seconds

__all__ = ["design_text", "render_report", "render_sweep", "write_html", "write_sweep_html"]

_COLOURS = {"mac": "#1f77b4", "softmax": "#ff7f0e", "layernorm": "#2ca02c", "dma": "#8c564b",
            "dataflow": "#bcbd22", "sparsity": "#9467bd"}
_BOUND_COLOURS = {"compute": "#1f77b4", "main_memory": "#d62728",
                  "activation_buffer": "#9467bd", "weight_buffer": "#e377c2",
                  "mask_buffer": "#7f7f7f"}

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;
background:#fafafa}
header{background:#263238;color:#fff;padding:14px 24px}
header h1{font-size:20px;margin:0 0 4px}
header .sub{opacity:.8;font-size:13px}
main{padding:8px 24px 40px;max-width:1400px}
section{background:#fff;border:1px solid #e0e0e0;border-radius:6px;margin:14px 0;padding:10px 16px}
h2{font-size:16px;margin:6px 0 10px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #e0e0e0;border-radius:6px;padding:8px 12px;min-width:150px;background:#fff}
.card .v{font-size:18px;font-weight:600}.card .k{font-size:12px;color:#666}
table{border-collapse:collapse;font-size:12.5px;margin:4px 0}
th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th{background:#f3f5f7;position:sticky;top:0}
th.sortable{cursor:pointer}th.sortable:hover{background:#e3e8ec}
th[data-dir=asc]::after{content:" \\25B2"}th[data-dir=desc]::after{content:" \\25BC"}
td.t,th.t{text-align:left}
.scroll{max-height:520px;overflow:auto;border:1px solid #eee}
pre,code{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:360px;white-space:pre-wrap}
.chart{width:100%}
.two{display:grid;grid-template-columns:1fr 1fr;gap:12px}
@media(max-width:1000px){.two{grid-template-columns:1fr}}
.muted{color:#666;font-size:12.5px}
.design-card{display:none}.design-card.open{display:block}
nav a{margin-right:12px;color:#fff;opacity:.85;font-size:13px}
.caption{font-size:15px;font-weight:600;margin:2px 0 6px}
svg.hier{max-width:100%;height:auto;margin-top:8px}
svg.hier text{font:12px system-ui,-apple-system,Segoe UI,Roboto,sans-serif;fill:#263238}
svg.hier text.name{font-size:14px;font-weight:600}
svg.hier text.small{font-size:11px}svg.hier text.muted{fill:#607d8b}
svg.hier text.tag{font-size:11px;font-weight:700;fill:#d62728}
"""

_SORT_JS = """
function tccSortable(table){
  table.querySelectorAll('th').forEach(function(th, col){
    th.classList.add('sortable');
    th.addEventListener('click', function(){
      var dir = th.dataset.dir === 'asc' ? 'desc' : 'asc';
      table.querySelectorAll('th').forEach(function(o){ delete o.dataset.dir; });
      th.dataset.dir = dir;
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      rows.sort(function(a, b){
        var x = a.cells[col], y = b.cells[col];
        var u = x.dataset.v !== undefined ? parseFloat(x.dataset.v) : NaN;
        var w = y.dataset.v !== undefined ? parseFloat(y.dataset.v) : NaN;
        var c = (!isNaN(u) && !isNaN(w)) ? u - w : x.textContent.localeCompare(y.textContent);
        return dir === 'asc' ? c : -c;
      });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
}
document.querySelectorAll('table.sort').forEach(tccSortable);
"""


# --------------------------------------------------------------------------- helpers


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _json(value: Any) -> str:
    """JSON safe to inline in a <script> element."""
    text = json.dumps(value, separators=(",", ":"), default=float, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _nj(value: float | None) -> str:
    if value is None:
        return "not characterised"
    for limit, unit in ((1e9, "J"), (1e6, "mJ"), (1e3, "uJ")):
        if abs(value) >= limit:
            return f"{value / limit:,.3f} {unit}"
    return f"{value:,.3f} nJ"


def _num(value: Any, fmt: str = "{:,.0f}") -> str:
    """A numeric table cell (sortable by its value)."""
    if value is None:
        return '<td data-v="">-</td>'
    return f'<td data-v="{float(value)!r}">{_e(fmt.format(value))}</td>'


def _table(header: Sequence[str], rows: Iterable[str], sortable: bool = True,
           text_columns: Sequence[int] = (0,), table_id: str = "") -> str:
    heads = "".join(f'<th class="t">{_e(h)}</th>' if i in text_columns else f"<th>{_e(h)}</th>"
                    for i, h in enumerate(header))
    ident = f' id="{table_id}"' if table_id else ""
    cls = ' class="sort"' if sortable else ""
    return (f"<table{cls}{ident}><thead><tr>{heads}</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _page(title: str, subtitle: str, body: str, figures: Mapping[str, Mapping[str, Any]],
          extra_js: str = "") -> str:
    """The whole document: CSS, plotly.js, the figures (JSON) and the body."""
    config = {"displaylogo": False, "responsive": True, "typesetMath": False,
              "toImageButtonOptions": {"format": "png", "scale": 2}}
    draws = "".join(
        f"Plotly.newPlot({_json(name)}, F[{_json(name)}].data, F[{_json(name)}].layout, C);"
        for name in figures)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style>"
        f"<script>{_plotly_js()}</script></head><body>"
        f"<header><h1>{_e(title)}</h1><div class=\"sub\">{subtitle}</div></header>"
        f"<main>{body}</main>"
        f"<script>var F = {_json(_finite(dict(figures)))}; var C = {_json(config)};\n"
        f"{draws}\n{_SORT_JS}\n{extra_js}</script></body></html>\n")


# --------------------------------------------------------------------------- compile report


def _unit_label(unit: str) -> str:
    from backends.elector.trace import track_label

    return track_label(unit)


def _timeline_figure(data: Mapping[str, Any]) -> dict[str, Any]:
    from backends.elector.trace import _lanes

    us = 1e6 / float(data["design"]["clock_hz"])
    units: list[str] = []
    for op in data["ops"]:
        if op["unit"] not in units:
            units.append(op["unit"])
    traces, rows = [], []
    for unit in units:
        ops = [(op["start_cycle"], op["end_cycle"], op) for op in data["ops"]
               if op["unit"] == unit]
        y, base, width, custom, text = [], [], [], [], []
        for lane_index, lane in enumerate(_lanes(ops)):
            row = _unit_label(unit) + ("" if lane_index == 0 else f" #{lane_index + 1}")
            rows.append(row)
            for start, end, op in lane:
                y.append(row)
                base.append(start * us)
                width.append((end - start) * us)
                custom.append([op["index"], op["loc"] or "(no source name)", op["kind"],
                               op["cycles"], op["start_cycle"], op["end_cycle"], op["bound"],
                               sum(op.get("stalls", {}).values())])
                text.append(op["loc"].rsplit(".", 1)[-1] if op["loc"] else op["kind"])
        traces.append({
            "type": "bar", "orientation": "h", "name": _unit_label(unit), "y": y, "base": base,
            "x": width, "customdata": custom, "text": text, "textposition": "inside",
            "insidetextanchor": "middle", "textfont": {"size": 10}, "textangle": 0,
            "marker": {"color": _COLOURS.get(unit, "#17becf"),
                       "line": {"color": "rgba(255,255,255,0.9)", "width": 0.6}},
            "hovertemplate": ("<b>%{customdata[1]}</b><br>op %{customdata[0]}: "
                              "%{customdata[2]}<br>%{customdata[4]:,.0f} - %{customdata[5]:,.0f}"
                              " cycles (%{customdata[3]:,.0f})<br>bound: %{customdata[6]}"
                              "<br>stall cycles: %{customdata[7]:,.0f}<extra>%{fullData.name}"
                              "</extra>"),
        })
    height = max(220, 46 * len(rows) + 120)
    return {"data": traces, "layout": {
        "height": height, "barmode": "overlay", "bargap": 0.25,
        "uniformtext": {"mode": "hide", "minsize": 9},
        "margin": {"l": 150, "r": 20, "t": 30, "b": 45},
        "xaxis": {"title": {"text": "time (us); drag to zoom, double-click to reset"},
                  "zeroline": False},
        "yaxis": {"categoryorder": "array", "categoryarray": rows[::-1], "automargin": True},
        "legend": {"orientation": "h", "y": 1.08},
        "hoverlabel": {"align": "left"}}}


def _main_memory_bandwidth(ops: Sequence[Mapping[str, Any]]) -> float | None:
    """Bytes per cycle of main memory, as the ops' transfer times imply."""
    rates = []
    for op in ops:
        cycles = op.get("memory_cycles", {}).get("main_memory", 0.0)
        moved = op["bytes"]["main_memory"]["read"] + op["bytes"]["main_memory"]["written"]
        if cycles > 0 and moved > 0:
            rates.append(moved / cycles)
    if not rates:
        return None
    rates.sort()
    return rates[len(rates) // 2]


def _roofline_figure(data: Mapping[str, Any]) -> dict[str, Any]:
    """MAC-array ops on the classic roofline: MACs per main-memory byte against
    MACs per cycle, under the peak and the main-memory bandwidth roofs."""
    peak = float(data["design"]["peak_macs_per_cycle"])
    bandwidth = _main_memory_bandwidth(data["ops"])
    mac_ops = [op for op in data["ops"] if op["macs"] and op["cycles"] > 0]
    placed, on_chip = [], []
    for op in mac_ops:
        moved = op["bytes"]["main_memory"]["read"] + op["bytes"]["main_memory"]["written"]
        (placed if moved > 0 else on_chip).append((op, op["macs"] / moved if moved else None))
    intensities = [x for _, x in placed]
    right = max(intensities + [peak / bandwidth if bandwidth else 1.0], default=1.0) * 8
    left = min(intensities + [peak / bandwidth / 8 if bandwidth else 1.0], default=1.0) / 4
    traces: list[dict[str, Any]] = []
    if bandwidth:
        ridge = peak / bandwidth
        xs = [left, ridge, right * 2]
        traces.append({"type": "scatter", "mode": "lines", "x": xs,
                       "y": [min(peak, bandwidth * x) for x in xs],
                       "name": f"roof: {peak:,.0f} MACs/cycle, {bandwidth:,.1f} B/cycle main "
                               "memory", "line": {"color": "#444", "width": 2},
                       "hoverinfo": "skip"})
    for bound in sorted({op["bound"] for op, _ in placed}):
        group = [(op, x) for op, x in placed if op["bound"] == bound]
        traces.append(_op_points(group, f"bound: {bound}", _BOUND_COLOURS.get(bound, "#17becf"),
                                 "circle"))
    if on_chip:
        group = [(op, right) for op, _ in on_chip]
        traces.append(_op_points(group, "no main-memory traffic (drawn at the right edge)",
                                 "#2ca02c", "triangle-right"))
    return {"data": traces, "layout": {
        "height": 430, "margin": {"l": 70, "r": 20, "t": 30, "b": 50},
        "xaxis": {"type": "log", "title": {"text": "MACs per byte of main-memory traffic"}},
        "yaxis": {"type": "log", "title": {"text": "achieved MACs per cycle"}},
        "legend": {"orientation": "h", "y": -0.2, "font": {"size": 11}},
        "title": {"text": "roofline (ops with MACs)", "font": {"size": 13}}}}


def _op_points(group: Sequence[tuple[Mapping[str, Any], float]], name: str, colour: str,
               symbol: str) -> dict[str, Any]:
    return {"type": "scatter", "mode": "markers", "name": name,
            "x": [x for _, x in group], "y": [op["macs"] / op["cycles"] for op, _ in group],
            "customdata": [[op["index"], op["loc"] or op["kind"], op["kind"], op["cycles"],
                            op["macs"]] for op, _ in group],
            "marker": {"color": colour, "symbol": symbol, "size": 9, "opacity": 0.8,
                       "line": {"color": "#fff", "width": 0.5}},
            "hovertemplate": ("<b>%{customdata[1]}</b><br>op %{customdata[0]}: %{customdata[2]}"
                              "<br>%{customdata[4]:,} MACs in %{customdata[3]:,.0f} cycles"
                              "<br>%{y:,.1f} MACs/cycle<extra></extra>")}


def _bound_figure(data: Mapping[str, Any]) -> dict[str, Any]:
    """Every op: simulated cycles against its roofline bound (log-log)."""
    ops = [op for op in data["ops"] if op["cycles"] > 0 and op["roofline_cycles"] > 0]
    traces: list[dict[str, Any]] = []
    if ops:
        low = min(min(op["roofline_cycles"], op["cycles"]) for op in ops) / 1.5
        high = max(max(op["roofline_cycles"], op["cycles"]) for op in ops) * 1.5
        traces.append({"type": "scatter", "mode": "lines", "x": [low, high], "y": [low, high],
                       "name": "at the roof (cycles = bound)",
                       "line": {"color": "#444", "dash": "dash"}, "hoverinfo": "skip"})
    for bound in sorted({op["bound"] for op in ops}):
        group = [op for op in ops if op["bound"] == bound]
        traces.append({
            "type": "scatter", "mode": "markers", "name": f"bound: {bound}",
            "x": [op["roofline_cycles"] for op in group], "y": [op["cycles"] for op in group],
            "customdata": [[op["index"], op["loc"] or op["kind"], op["kind"],
                            op["roofline_cycles"] / op["cycles"]] for op in group],
            "marker": {"color": _BOUND_COLOURS.get(bound, "#17becf"), "size": 8,
                       "opacity": 0.8},
            "hovertemplate": ("<b>%{customdata[1]}</b><br>op %{customdata[0]}: %{customdata[2]}"
                              "<br>%{y:,.0f} cycles, roof %{x:,.0f} (%{customdata[3]:.0%})"
                              "<extra></extra>")})
    return {"data": traces, "layout": {
        "height": 430, "margin": {"l": 70, "r": 20, "t": 30, "b": 50},
        "xaxis": {"type": "log", "title": {"text": "roofline bound of the op (cycles)"}},
        "yaxis": {"type": "log", "title": {"text": "simulated cycles"}},
        "legend": {"orientation": "h", "y": -0.2, "font": {"size": 11}},
        "title": {"text": "every op against its own roof", "font": {"size": 13}}}}


def _energy_figure(data: Mapping[str, Any]) -> dict[str, Any]:
    rows = [row for row in data["energy"]["classes"] if row["total_nj"] > 0]
    labels = [row["label"] for row in rows]
    traces = []
    for part, colour in (("dynamic", "#1f77b4"), ("leakage", "#ff7f0e")):
        values = [row[f"{part}_nj"] for row in rows]
        traces.append({"type": "bar", "orientation": "h", "name": part, "y": labels,
                       "x": [v if v else None for v in values], "marker": {"color": colour},
                       "text": [_nj(v) if v else "" for v in values],
                       "textposition": "outside", "cliponaxis": False,
                       "hovertemplate": "%{y}: %{text}<extra>" + part + "</extra>"})
    return {"data": traces, "layout": {
        "height": 34 * len(rows) + 110, "barmode": "group",
        "margin": {"l": 200, "r": 60, "t": 30, "b": 45},
        "xaxis": {"type": "log", "title": {"text": "energy (nJ, log scale)"}},
        "yaxis": {"autorange": "reversed"},
        "legend": {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02,
                   "yanchor": "bottom"},
        "title": {"text": f"energy by class, total {_nj(data['energy']['total_nj'])}",
                  "font": {"size": 13}, "x": 0.02, "xanchor": "left"}}}


def _area_figure(data: Mapping[str, Any]) -> dict[str, Any]:
    rows = [row for row in data["area"]["classes"] if row["area_um2"]]
    labels = [row["label"] for row in rows]
    mm2 = [row["area_um2"] / 1e6 for row in rows]
    return {"data": [{"type": "bar", "orientation": "h", "y": labels, "x": mm2,
                      "name": "area", "marker": {"color": "#607d8b"},
                      "text": [f"{v:,.3f} mm2" for v in mm2], "textposition": "outside",
                      "cliponaxis": False,
                      "customdata": [row["count"] for row in rows],
                      "hovertemplate": "%{y}<br>%{customdata:,} x, %{x:,.4f} mm2"
                                       "<extra></extra>"}],
            "layout": {"height": 34 * len(rows) + 110,
                       "margin": {"l": 260, "r": 80, "t": 30, "b": 45},
                       "xaxis": {"type": "log", "title": {"text": "area (mm2, log scale)"}},
                       "yaxis": {"autorange": "reversed"},
                       "title": {"text": f"area by class, total "
                                         f"{data['area']['total_um2'] / 1e6:,.3f} mm2"
                                         + (" (main memory not characterised)"
                                            if data["area"]["not_characterised"] else ""),
                                 "font": {"size": 13}}}}


def _utilisation_figure(report: Any) -> dict[str, Any] | None:
    """Per-class utilisation over time (small multiples), from a Report object."""
    from backends.elector.plots import _MEMORY, _label, utilisation_series

    series = utilisation_series(report)
    if not series:
        return None
    text = dict(report.result.utilisation)
    us = 1e6 / report.clock_hz
    keys = list(series)
    n = len(keys)
    gap = 0.04
    height = (1 - gap * (n - 1)) / n
    traces, layout = [], {"height": 95 * n + 80, "showlegend": False,
                          "margin": {"l": 60, "r": 20, "t": 20, "b": 45}, "annotations": []}
    for i, key in enumerate(keys):
        times, values = series[key]
        axis = "" if i == 0 else str(i + 1)
        traces.append({"type": "scatter", "mode": "lines", "line": {"shape": "hv", "width": 1},
                       "fill": "tozeroy", "x": [t * us for t in times], "y": values,
                       "xaxis": f"x{axis}", "yaxis": f"y{axis}", "name": _label(key),
                       "hovertemplate": "%{x:.3f} us: %{y:.0%}<extra>" + _label(key)
                                        + "</extra>"})
        top = 1 - i * (height + gap)
        layout[f"yaxis{axis}"] = {"domain": [top - height, top], "range": [0, 1.05],
                                  "tickformat": ".0%", "tickvals": [0, 0.5, 1]}
        layout[f"xaxis{axis}"] = {"matches": "x" if i else None, "showticklabels": i == n - 1,
                                  "anchor": f"y{axis}"}
        what = "bandwidth" if key in _MEMORY else "busy"
        name = _label(key) + (" (also sparsity units, FIFOs)" if key == "mac_lane" else "")
        layout["annotations"].append({
            "text": f"{name}: {text.get(key, 0.0):.1%} {what} over the run",
            "xref": "paper", "yref": "paper", "x": 0, "y": top, "xanchor": "left",
            "yanchor": "bottom", "showarrow": False, "font": {"size": 11}})
    layout[f"xaxis{'' if n == 1 else n}"]["title"] = {"text": "time (us)"}
    layout["xaxis"].pop("matches", None)
    return {"data": traces, "layout": layout}


# --------------------------------------------------------------------------- hierarchy picture

_SVG_WIDTH = 960
_SVG_MARGIN = 16
_SVG_GAP = 18               # between boxes of one tier
_TIER_GAP = 54              # between tiers (the byte lines run here)
_BOX_HEIGHT = 128
_COMPUTE_HEIGHT = 66
_BAR_WIDTH = 130
_LINE_MAX = 18.0            # stroke width of the line that moves the most bytes
_SHARING = {"chip": "one for the chip", "pe": "one per PE", "lane": "one per MAC lane"}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _rate(bytes_per_s: float) -> str:
    for limit, unit in ((1e12, "TB/s"), (1e9, "GB/s"), (1e6, "MB/s")):
        if bytes_per_s >= limit:
            return f"{bytes_per_s / limit:,.3g} {unit}"
    return f"{bytes_per_s:,.0f} B/s"


def _hierarchy_tiers(levels: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Levels grouped by tier, outermost first: main memory, the chip's
    buffers (side by side), per-PE buffers, per-lane FIFOs."""
    order = {"chip": 1, "pe": 2, "lane": 3}
    tiers: dict[int, list[Mapping[str, Any]]] = {}
    for row in levels:
        tier = 0 if row["name"] == "main_memory" else order.get(row["sharing"], 1)
        tiers.setdefault(tier, []).append(row)
    return [tiers[k] for k in sorted(tiers)]


def _svg_bar(x: float, y: float, label: str, fraction: float | None, colour: str,
             title: str, kind: str, suffix: str = "") -> str:
    width = _BAR_WIDTH * max(0.0, min(1.0, fraction or 0.0))
    return (f'<g class="bar {kind}" data-fraction="{fraction!r}"><title>{_e(title)}</title>'
            f'<text x="{x:.1f}" y="{y + 9:.1f}" class="small">{_e(label)}</text>'
            f'<rect x="{x + 62:.1f}" y="{y:.1f}" width="{_BAR_WIDTH}" height="11" rx="2" '
            f'fill="#eceff1" stroke="#cfd8dc"/>'
            f'<rect class="fill" x="{x + 62:.1f}" y="{y:.1f}" width="{width:.2f}" height="11" '
            f'rx="2" fill="{colour}"/>'
            f'<text x="{x + 68 + _BAR_WIDTH:.1f}" y="{y + 9:.1f}" class="small">'
            f'{_e(_pct(fraction) + suffix)}</text></g>')


def _ops_suffix(ops: int) -> str:
    return f" ({ops:,} op{'s' if ops != 1 else ''})"


def _level_box(row: Mapping[str, Any], x: float, y: float, w: float, top: bool,
               clock_hz: float) -> str:
    from backends.elector.mapping import format_bytes

    name, instances = row["name"], row["instances"]
    what = {"pe": "PEs", "lane": "lanes"}.get(row["sharing"], "")
    capacity = ("off chip (capacity not modelled)" if row["capacity_bytes"] is None
                else f"{format_bytes(row['capacity_bytes'])}"
                + (f" each × {instances:,} {what}" if instances > 1 else ", one for the chip"))
    banks = f"{row['banks']:,} bank{'s' if row['banks'] != 1 else ''}"
    port = f"{banks} × {row['bank_bytes_per_cycle']:,.1f} B/cycle"
    if instances > 1:
        bandwidth = (f"= {row['bytes_per_cycle']:,.1f} × {instances:,} = "
                     f"{row['total_bytes_per_cycle']:,.0f} B/cycle")
    else:
        bandwidth = f"= {row['total_bytes_per_cycle']:,.1f} B/cycle"
    bandwidth += f", {_rate(row['bandwidth_bytes_per_s'])}"
    if row["read_bytes"] is None:
        moved = "bytes not counted per level (one row per lane cycle)"
    else:
        moved = (f"read {format_bytes(row['read_bytes'])} · "
                 f"written {format_bytes(row['written_bytes'])}")
    holds = "holds " + " + ".join(row["operands"])
    title = (f"{row['label']} ({name}): {_SHARING.get(row['sharing'], row['sharing'])}, "
             f"{instances:,} instance(s); capacity "
             + ("unbounded" if row["capacity_bytes"] is None
                else f"{row['capacity_bytes']:,} bytes each")
             + f"; {row['banks']:,} bank(s) × {row['bank_bytes_per_cycle']:.6g} B/cycle = "
             f"{row['bytes_per_cycle']:.6g} B/cycle per instance, "
             f"{row['total_bytes_per_cycle']:.6g} B/cycle in all "
             f"({row['bandwidth_bytes_per_s']:.6g} B/s at {clock_hz / 1e6:g} MHz); {holds}; "
             f"multicast {'on' if row['multicast'] else 'off'}"
             + ("" if row["read_bytes"] is None
                else f"; {row['read_bytes']:,.0f} bytes read, {row['written_bytes']:,.0f} "
                     "written in the run"))
    busy_title = (f"{row['label']}: busy {row['busy_fraction']!r} of the run"
                  if row["busy_fraction"] is not None else f"{row['label']}: busy not known")
    if name == "lane_fifo":
        busy_title += " (the lane FIFO modules' busy fraction)"
    bound_title = (f"{row['label']} bounds {row['bound_ops']} op(s): "
                   f"{row['bound_cycles']:,.2f} of the ops' cycles "
                   f"({row['bound_fraction']:.4%})")
    stroke = ' stroke="#d62728" stroke-width="3"' if top else ' stroke="#90a4ae"'
    fill = "#fff3f2" if top else "#f5f8fa"
    tag = ('<text class="tag" x="{:.1f}" y="{:.1f}" text-anchor="end">bounds the most cycles'
           '</text>'.format(x + w - 10, y + 19) if top else
           f'<text class="small muted" x="{x + w - 10:.1f}" y="{y + 19:.1f}" '
           f'text-anchor="end">{_e(holds)}</text>')
    lines = [capacity, port, bandwidth, moved]
    body = "".join(f'<text class="line" x="{x + 10:.1f}" y="{y + 38 + 15 * i:.1f}">{_e(t)}</text>'
                   for i, t in enumerate(lines))
    bars = (_svg_bar(x + 10, y + 96, "busy", row["busy_fraction"], "#1f77b4", busy_title,
                     "busy")
            + _svg_bar(x + 10, y + 111, "bounds", row["bound_fraction"], "#d62728",
                       bound_title, "bound", _ops_suffix(row["bound_ops"])))
    return (f'<g class="level{" top" if top else ""}" id="level-{_e(name)}" '
            f'data-level="{_e(name)}" data-capacity="{row["capacity_bytes"]!r}" '
            f'data-instances="{instances}" data-banks="{row["banks"]}" '
            f'data-bytes-per-cycle="{row["total_bytes_per_cycle"]!r}" '
            f'data-read="{row["read_bytes"]!r}" data-written="{row["written_bytes"]!r}">'
            f"<title>{_e(title)}</title>"
            f'<rect class="box" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{_BOX_HEIGHT}" '
            f'rx="6" fill="{fill}"{stroke}/>'
            f'<text class="name" x="{x + 10:.1f}" y="{y + 19:.1f}">{_e(row["label"])}</text>'
            f"{tag}{body}{bars}</g>")


def _hierarchy_svg(h: Mapping[str, Any], clock_hz: float) -> str:
    """The storage levels as boxes, outermost at the top, joined by lines as
    thick as the bytes they move; the compute box at the bottom."""
    from backends.elector.mapping import format_bytes

    tiers = _hierarchy_tiers(h["levels"])
    top = h.get("bounding")
    inner = _SVG_WIDTH - 2 * _SVG_MARGIN
    columns = max(len(t) for t in tiers)
    col_w = (inner - _SVG_GAP * (columns - 1)) / columns
    boxes: dict[str, tuple[float, float, float]] = {}     # name -> (x, y, width)
    y = _SVG_MARGIN
    chip = next((t for t in tiers if t[0]["sharing"] == "chip" and t[0]["name"] != "main_memory"),
                [])
    chip_x = {row["name"]: _SVG_MARGIN + i * (col_w + _SVG_GAP) for i, row in enumerate(chip)}
    for tier in tiers:
        for i, row in enumerate(tier):
            if len(tier) == 1 and row["sharing"] == "pe" and chip:
                # Under the buffers whose classes it holds.
                held = [chip_x[b["name"]] for b in chip
                        if set(b["operands"]) & set(row["operands"])] or list(chip_x.values())
                x, w = min(held), max(held) + col_w - min(held)
            elif len(tier) == 1:
                x, w = _SVG_MARGIN, inner
            else:
                x, w = _SVG_MARGIN + i * (col_w + _SVG_GAP), col_w
            boxes[row["name"]] = (x, y, w)
        y += _BOX_HEIGHT + _TIER_GAP
    compute_y = y
    height = compute_y + _COMPUTE_HEIGHT + _SVG_MARGIN

    # The lines: main memory to each chip buffer (the main-memory bytes of its
    # operand class), each buffer to the next level down holding its class.
    rows = {row["name"]: row for row in h["levels"]}
    by_class = h.get("main_memory_bytes_by_operand", {})
    pe = next((row for row in h["levels"] if row["sharing"] == "pe"), None)
    fifo = next((row for row in h["levels"] if row["sharing"] == "lane"), None)
    edges: list[tuple[str, str, float, str]] = []
    for row in chip:
        cls = row["operands"][0] if len(row["operands"]) == 1 else None
        rw = by_class.get(cls, {"read": 0.0, "written": 0.0}) if cls else None
        if "main_memory" in rows and rw is not None:
            edges.append(("main_memory", row["name"], rw["read"] + rw["written"],
                          f"main memory ↔ {row['label']}: operands held in the "
                          f"{row['label']} read {rw['read']:,.0f} bytes from main memory and "
                          f"write {rw['written']:,.0f} bytes to it (results, updated "
                          "parameters included, live in the activation buffer)"))
        below = pe if pe is not None and set(pe["operands"]) & set(row["operands"]) else fifo
        if below is not None:
            moved = (row["read_bytes"] or 0.0) + (row["written_bytes"] or 0.0)
            edges.append((row["name"], below["name"], moved,
                          f"{row['label']} ↔ {below['label']}: {row['read_bytes'] or 0:,.0f} "
                          f"bytes read from the buffer, {row['written_bytes'] or 0:,.0f} "
                          "written to it"))
    if pe is not None and fifo is not None:
        moved = (pe["read_bytes"] or 0.0) + (pe["written_bytes"] or 0.0)
        edges.append((pe["name"], fifo["name"], moved,
                      f"{pe['label']} ↔ {fifo['label']}: {pe['read_bytes'] or 0:,.0f} bytes "
                      f"read from the PE buffers, {pe['written_bytes'] or 0:,.0f} written"))
    most = max((e[2] for e in edges), default=0.0) or 1.0
    parts = []
    for upper, lower, moved, title in edges:
        ux, uy, uw = boxes[upper]
        lx, ly, lw = boxes[lower]
        if upper == "main_memory":
            x0 = boxes[lower][0] + boxes[lower][2] / 2
            x1 = x0
        else:
            x0 = ux + uw / 2
            x1 = x0 if lx <= x0 <= lx + lw else lx + lw / 2
        y0, y1 = uy + _BOX_HEIGHT, ly
        width = _LINE_MAX * moved / most
        dash = ' stroke-dasharray="3 3"' if moved <= 0 else ""
        label = format_bytes(moved)
        parts.append(
            f'<g class="edge" data-from="{_e(upper)}" data-to="{_e(lower)}" '
            f'data-bytes="{moved!r}"><title>{_e(title)}</title>'
            f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" stroke="#546e7a" '
            f'stroke-opacity="0.55" stroke-width="{max(width, 1.0):.2f}"{dash}/>'
            f'<text class="small" x="{x0 + max(width, 1.0) / 2 + 6:.1f}" '
            f'y="{y0 + 18 + (y1 - y0 - _TIER_GAP) / 2:.1f}">{_e(label)}</text></g>')
    if fifo is not None:
        fx, fy, fw = boxes[fifo["name"]]
        parts.append(f'<line x1="{fx + fw / 2:.1f}" y1="{fy + _BOX_HEIGHT:.1f}" '
                     f'x2="{fx + fw / 2:.1f}" y2="{compute_y:.1f}" stroke="#546e7a" '
                     'stroke-opacity="0.55" stroke-width="1" stroke-dasharray="3 3"/>')
    for name, (x, by, w) in boxes.items():
        parts.append(_level_box(rows[name], x, by, w, name == top, clock_hz))
    compute = h["compute"]
    is_top = top == "compute"
    compute_title = (f"compute (the busiest module class, first tiles included) bounds "
                     f"{compute['bound_ops']} op(s): {compute['bound_cycles']:,.2f} of the ops' "
                     f"cycles; MAC lanes busy {_pct(compute['busy_fraction'])} of the run")
    stroke = ' stroke="#d62728" stroke-width="3"' if is_top else ' stroke="#90a4ae"'
    parts.append(
        f'<g class="compute{" top" if is_top else ""}" id="level-compute" data-level="compute">'
        f"<title>{_e(compute_title)}</title>"
        f'<rect class="box" x="{_SVG_MARGIN}" y="{compute_y:.1f}" width="{inner:.1f}" '
        f'height="{_COMPUTE_HEIGHT}" rx="6" fill="{"#fff3f2" if is_top else "#eef7ee"}"'
        f"{stroke}/>"
        f'<text class="name" x="{_SVG_MARGIN + 10}" y="{compute_y + 19:.1f}">compute '
        "(MAC lanes and the other modules)</text>"
        + ('<text class="tag" x="{:.1f}" y="{:.1f}" text-anchor="end">bounds the most cycles'
           "</text>".format(_SVG_MARGIN + inner - 10, compute_y + 19) if is_top else "")
        + _svg_bar(_SVG_MARGIN + 10, compute_y + 32, "busy", compute["busy_fraction"],
                   "#1f77b4", "MAC lanes busy " + _pct(compute["busy_fraction"])
                   + " of the run", "busy")
        + _svg_bar(_SVG_MARGIN + 10, compute_y + 47, "bounds", compute["bound_fraction"],
                   "#d62728", f"compute bounds {compute['bound_ops']} op(s): "
                   f"{compute['bound_cycles']:,.2f} op cycles", "bound",
                   _ops_suffix(compute["bound_ops"]))
        + "</g>")
    return (f'<svg class="hier" id="hierarchy-svg" xmlns="http://www.w3.org/2000/svg" '
            f'viewBox="0 0 {_SVG_WIDTH} {height:.0f}" width="{_SVG_WIDTH}" '
            f'height="{height:.0f}" role="img" aria-label="storage hierarchy">'
            + "".join(parts) + "</svg>")


def _hierarchy_section(data: Mapping[str, Any]) -> str:
    h = data.get("hierarchy")
    if not h:
        return ""
    return ('<section id="hierarchy"><h2>Memory hierarchy</h2>'
            f'<p class="caption" id="hierarchy-caption">{_e(h["caption"])}</p>'
            '<div class="muted">Storage levels of the design, outermost at the top (the '
            "chip's global buffers side by side, then the per-PE buffers when the design has "
            "them, then the lane FIFOs); the box with the red border bounds the most op cycles. "
            "Each box: capacity and instances, banks × port = bandwidth, bytes read and "
            "written in the run; the blue bar is the level's busy fraction over the run, the "
            "red bar the share of the ops' summed cycles whose bounding level it is.  Line "
            "thickness is proportional to the bytes moved between two levels.  Hover for exact "
            "numbers.</div>" + _hierarchy_svg(h, float(data["design"]["clock_hz"]))
            + "</section>")


def render_report(data: Mapping[str, Any], report: Any = None,
                  design_text: str | None = None) -> str:
    """The HTML page of a JSON report (``Report.to_json()``); ``report``: the
    :class:`~backends.elector.report.Report` itself, for the utilisation
    timeline (not in the JSON); ``design_text``: the design's DSL text."""
    model, design, summary = data["model"], data["design"], data["summary"]
    energy = data["energy"]
    title = (f"{model['name']} on {design['name']} ({model['function']}, {model['mode']}"
             + (f", batch {model['batch']} x seq {model['seq']}" if model.get("batch") else "")
             + ")")
    subtitle = (f"{_e(data['simulator'])} simulator; design {_e(design['name'])} @ "
                f"{_e(design['hash'])}; {_e(data['tool']['name'])} {_e(data['tool']['version'])}"
                '<nav style="margin-top:6px"><a href="#hierarchy">memory hierarchy</a>'
                '<a href="#timeline">timeline</a>'
                '<a href="#roofline">roofline</a><a href="#energy">energy &amp; area</a>'
                '<a href="#layers">layers</a><a href="#ops-table">ops</a>'
                '<a href="#design">design &amp; pipeline</a></nav>')
    figures: dict[str, dict[str, Any]] = {
        "timeline": _timeline_figure(data), "roofline": _roofline_figure(data),
        "bounds": _bound_figure(data), "energy": _energy_figure(data),
        "area": _area_figure(data)}
    utilisation = _utilisation_figure(report) if report is not None else None
    if utilisation is not None:
        figures["utilisation"] = utilisation
    cards = [("latency", f"{summary['cycles']:,.0f} cycles", _seconds(summary["seconds"])),
             ("roofline", f"{summary['roofline_cycles']:,.0f} cycles",
              f"{summary['roofline_bound']}-bound; achieved {summary['achieved_fraction']:.1%}"
              if summary.get("achieved_fraction") is not None
              else "no ratio: nothing to compute or under one cycle"),
             ("energy", _nj(energy["total_nj"]),
              f"dynamic {_nj(energy['dynamic_nj'])}, leakage {_nj(energy['leakage_nj'])}"
              + (f" (idle {_nj(energy['leakage_idle_nj'])}; power gating "
                 f"{energy.get('power_gating', 'none')})"
                 if energy.get("leakage_idle_nj") is not None else "")),
             ("area", f"{data['area']['total_um2'] / 1e6:,.3f} mm2",
              "main memory not characterised" if data["area"]["not_characterised"] else ""),
             ("ops", f"{len(data['ops']):,}", f"{len(data['layers'])} layers")]
    if summary.get("throughput_sequences_per_s"):
        cards.insert(1, ("throughput", f"{summary['throughput_sequences_per_s']:,.1f}/s",
                         "sequences per second"))
    body = ['<section><div class="cards">' + "".join(
        f'<div class="card"><div class="k">{_e(k)}</div><div class="v">{_e(v)}</div>'
        f'<div class="k">{_e(s)}</div></div>' for k, v, s in cards) + "</div></section>"]
    body.append(_hierarchy_section(data))
    body.append('<section><h2 id="timeline-h">Op timeline (one row per module class)</h2>'
                '<div class="muted">Each bar is an op, named by its source location; ops of '
                'one class that overlap in time go to further rows.  Hover for its figures; '
                'drag to zoom, double-click to reset.</div>'
                '<div id="timeline" class="chart"></div></section>')
    body.append('<section><h2>Roofline</h2><div class="two"><div id="roofline" class="chart">'
                '</div><div id="bounds" class="chart"></div></div></section>')
    body.append('<section><h2>Energy and area</h2><div class="two"><div id="energy" '
                'class="chart"></div><div id="area" class="chart"></div></div>'
                '<div class="two"><div>' + _energy_table(data) + "</div><div>"
                + _area_table(data) + "</div></div></section>")
    util_rows = [f'<tr><td class="t">{_e(_util_label(k))}</td>{_num(v, "{:.1%}")}</tr>'
                 for k, v in data["utilisation"].items()]
    body.append('<section><h2>Utilisation</h2>'
                + ('<div id="utilisation" class="chart"></div>' if utilisation else "")
                + '<div class="two"><div>'
                + _table(("class (busy / bandwidth)", "fraction of the run"), util_rows)
                + "</div><div>" + _bytes_table(data) + "</div></div></section>")
    body.append('<section><h2 id="layers">Per layer</h2>' + _layer_table(data) + "</section>")
    body.append('<section><h2 id="ops-table">Per op</h2><div class="muted">Click a heading to '
                'sort.</div><div class="scroll">' + _op_table(data) + "</div></section>")
    design_rows = "".join(f'<tr><td class="t">{_e(k)}</td><td class="t">{_e(v)}</td></tr>'
                          for k, v in design.items())
    model_rows = "".join(f'<tr><td class="t">{_e(k)}</td><td class="t">{_e(v)}</td></tr>'
                         for k, v in model.items())
    body.append('<section><h2 id="design">Design, model and pipeline</h2><div class="two"><div>'
                f'<table>{design_rows}</table></div><div><table>{model_rows}</table></div></div>'
                + (f"<h2>Design (DSL)</h2><pre>{_e(design_text)}</pre>" if design_text else "")
                + f'<h2>Pipeline (exact)</h2><pre id="pipeline">{_e(data["pipeline"])}</pre>'
                + _notes(data) + "</section>")
    return _page(title, subtitle, "".join(body), figures)


def _util_label(key: str) -> str:
    from backends.elector.costing import ENERGY_LABELS

    return ENERGY_LABELS.get(key, key)


def _energy_table(data: Mapping[str, Any]) -> str:
    energy = data["energy"]
    total = energy["total_nj"] or 1.0
    rows = [f'<tr><td class="t">{_e(row["label"])}</td>'
            f'<td data-v="{row["dynamic_nj"]!r}">{_e(_nj(row["dynamic_nj"]))}</td>'
            f'<td data-v="{row["leakage_nj"] or 0.0!r}">{_e(_nj(row["leakage_nj"]))}</td>'
            + "".join(f'<td data-v="{row.get(key) or 0.0!r}">'
                      f'{_e(_nj(row.get(key)) if row.get(key) is not None else "-")}</td>'
                      for key in ("leakage_busy_nj", "leakage_idle_nj"))
            + f'<td data-v="{row["total_nj"]!r}">{_e(_nj(row["total_nj"]))}</td>'
            f'{_num(row["total_nj"] / total, "{:.1%}")}</tr>' for row in energy["classes"]]
    return _table(("energy class", "dynamic", "leakage", "leakage busy", "leakage idle",
                   "total", "share"), rows)


def _area_table(data: Mapping[str, Any]) -> str:
    area = data["area"]
    rows = [f'<tr><td class="t">{_e(row["label"])}</td>{_num(row["count"])}'
            + (_num(row["area_um2"] / 1e6, "{:,.4f}") if row["area_um2"] is not None
               else '<td data-v="">not characterised</td>') + "</tr>"
            for row in area["classes"]]
    return _table(("area class", "count", "mm2"), rows)


def _bytes_table(data: Mapping[str, Any]) -> str:
    from backends.elector.mapping import format_bytes

    rows = [f'<tr><td class="t">{_e(level.replace("_", " "))}</td>'
            f'<td data-v="{rw["read"]!r}">{_e(format_bytes(rw["read"]))}</td>'
            f'<td data-v="{rw["written"]!r}">{_e(format_bytes(rw["written"]))}</td></tr>'
            for level, rw in data["bytes"].items()]
    return _table(("bytes moved", "read", "written"), rows)


def _layer_table(data: Mapping[str, Any]) -> str:
    rows = [f'<tr><td class="t">{_e(row["layer"])}</td>{_num(row["ops"])}{_num(row["cycles"])}'
            f'{_num(row["roofline_cycles"])}{_num(row["macs"])}'
            f'<td data-v="{row["dynamic_nj"]!r}">{_e(_nj(row["dynamic_nj"]))}</td></tr>'
            for row in data["layers"]]
    return _table(("layer (source name)", "ops", "cycles", "roofline", "MACs", "dyn energy"),
                  rows, table_id="layer-table")


def _op_table(data: Mapping[str, Any]) -> str:
    rows = []
    for op in data["ops"]:
        mapping = " ".join(str(p) for p in (op.get("tile"), op.get("order"),
                                            f"w:{op['weights']}" if op.get("weights") else None)
                           if p)
        dyn = sum(op.get("dynamic_nj", {}).values())
        stalls = sum(op.get("stalls", {}).values())
        rows.append(
            f'<tr>{_num(op["index"])}<td class="t">{_e(op["kind"])}</td>'
            f'<td class="t" title="{_e(op["loc"])}">{_e(op["loc"])}</td>'
            f'<td class="t">{_e(_unit_label(op["unit"]))}</td><td class="t">{_e(mapping)}</td>'
            f'{_num(op["start_cycle"])}{_num(op["end_cycle"])}{_num(op["cycles"])}'
            f'{_num(op["roofline_cycles"])}<td class="t">{_e(op["bound"])}</td>'
            f'<td class="t">{_e(op.get("bounding_level") or "-")}</td>'
            f'<td class="t">{_e(_levels_text(op.get("level_utilisation", {})))}</td>'
            f'{_num(op["macs"])}{_num(op["density"], "{:.3g}")}'
            f'<td data-v="{dyn!r}">{_e(_nj(dyn))}</td>{_num(stalls)}</tr>')
    return _table(("#", "op", "source name", "class", "mapping", "start", "end", "cycles",
                   "roofline", "bound", "limit", "level busy", "MACs", "density", "dyn energy",
                   "stall cycles"),
                  rows, text_columns=(1, 2, 3, 4, 9, 10, 11), table_id="op-table")


def _notes(data: Mapping[str, Any]) -> str:
    notes = list(data.get("notes", []))
    notes += [a for a in data["energy"].get("assumptions", []) if a not in notes]
    if not notes:
        return ""
    return "<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>"


def write_html(report: Any, path: str | Path, design_text: str | None = None) -> Path:
    """Write the HTML report of ``report`` (a Report or its JSON dict)."""
    if isinstance(report, Mapping):
        page = render_report(report, None, design_text)
    else:
        page = render_report(report.to_json(), report, design_text)
    from backends.elector.trace import write_text

    return write_text(path, page, "--html")


def design_text(hw: str) -> str | None:
    """The normalised DSL text of a library design or .hwdsl file (None if
    it cannot be read: the report then shows the design's summary only)."""
    try:
        from backends.elector.design_library import resolve_design
        from backends.elector.hwdsl import format_design

        return format_design(resolve_design(hw))
    except Exception:  # noqa: BLE001 - the report is still useful without it
        return None


# --------------------------------------------------------------------------- sweeps


def _axis_scale(values: Sequence[float]) -> str:
    positive = [v for v in values if v is not None and v > 0]
    return "log" if positive and max(positive) / min(positive) >= 10 else "linear"


def render_sweep(rows: Sequence[Mapping[str, Any]], curves: Mapping[str, Sequence[float]],
                 metrics: tuple[str, str] = ("latency_ms", "energy_nj"), title: str = "",
                 best_key: str | None = None, reports: Mapping[str, str] | None = None,
                 source: str = "", front_metrics: Sequence[str] | None = None) -> str:
    """The HTML page of a results database's rows (``ResultsStore.rows()``).
    ``reports``: ``{result key: href}`` of full compile reports written
    beside the page (a click on such a point opens it)."""
    from tools.codesign.plots import _LABELS, _scale, design_label, front_label, front_rows

    reports = dict(reports or {})
    x, y = metrics
    ok = [r for r in rows if r.get("status") == "ok" and r.get(x) is not None
          and r.get(y) is not None]
    failed = sum(1 for r in rows if r.get("status") != "ok")
    front = front_rows(ok, x, y, front_metrics)       # the best point's front (cli helper)
    projected = bool(front_metrics) and set(front_metrics) != {x, y}
    front_keys = {r["key"] for r in front}
    x_label, x_div = _scale(x, [r[x] for r in ok])
    y_label, y_div = _scale(y, [r[y] for r in ok])

    def points(group: Sequence[Mapping[str, Any]], name: str, marker: dict[str, Any],
               mode: str = "markers") -> dict[str, Any]:
        return {"type": "scatter", "mode": mode, "name": name,
                "x": [r[x] / x_div for r in group], "y": [r[y] / y_div for r in group],
                "text": [design_label(r) for r in group],
                "customdata": [[r["key"], r.get("description", ""), r.get("accuracy")]
                               for r in group],
                "marker": marker, "textposition": "top right", "textfont": {"size": 10},
                "hovertemplate": ("<b>%{text}</b><br>" + _e(x_label) + ": %{x:.4g}<br>"
                                  + _e(y_label) + ": %{y:.4g}<br>click to open"
                                  "<extra></extra>")}

    others = [r for r in ok if r["key"] not in front_keys]
    accuracy = [r.get("accuracy") for r in others]
    marker: dict[str, Any] = {"size": 7, "color": "#9e9e9e", "opacity": 0.6}
    if others and all(a is not None for a in accuracy):
        marker = {"size": 7, "color": accuracy, "colorscale": "Viridis", "opacity": 0.7,
                  "colorbar": {"title": {"text": "accuracy"}, "len": 0.6}}
    traces = [points(others, f"evaluated ({len(ok)})", marker),
              points(front, front_label(x, y, front_metrics, len(front)),
                     {"size": 10, "color": "#d62728", "line": {"color": "#fff", "width": 1}},
                     "markers+text" if projected else "lines+markers+text")]
    traces[1]["line"] = {"shape": "hv", "color": "#d62728", "width": 1.5}
    best = [r for r in ok if r["key"] == best_key]
    if best:
        traces.append(points(best, "best (objective)", {"size": 18, "symbol": "star",
                                                        "color": "gold",
                                                        "line": {"color": "#000", "width": 1}}))
    pareto = {"data": traces, "layout": {
        "height": 560, "margin": {"l": 80, "r": 30, "t": 30, "b": 60}, "hovermode": "closest",
        "xaxis": {"type": _axis_scale([r[x] for r in ok]), "title": {"text": x_label}},
        "yaxis": {"type": _axis_scale([r[y] for r in ok]), "title": {"text": y_label}},
        "legend": {"orientation": "h", "y": 1.07}}}
    figures = {"pareto": pareto}
    if curves:
        figures["best"] = {"data": [
            {"type": "scatter", "mode": "lines", "line": {"shape": "hv"}, "name": name,
             "x": list(range(1, len(values) + 1)),
             "y": [v if v is not None and math.isfinite(v) else None for v in values]}
            for name, values in curves.items()], "layout": {
            "height": 340, "margin": {"l": 80, "r": 20, "t": 20, "b": 50},
            "xaxis": {"title": {"text": "evaluations (trials)"}},
            "yaxis": {"title": {"text": "best objective so far (higher is better)"},
                      "tickformat": ".4~f"}, "legend": {"orientation": "h", "y": 1.12}}}
    shown = front + best + [r for r in ok if r["key"] not in front_keys and r not in best]
    cards = []
    for r in shown[:2000]:
        cards.append(_design_card(r, metrics, reports.get(r["key"])))
    front_rows = [
        f'<tr><td class="t"><a href="#d-{_e(r["key"])}" data-key="{_e(r["key"])}" '
        f'class="open">{_e(design_label(r))}</a></td>{_num(r[x], "{:.4g}")}'
        f'{_num(r[y], "{:.4g}")}{_num(r.get("area_mm2"), "{:.4g}")}'
        f'{_num(r.get("accuracy"), "{:.4f}")}<td class="t">{_e(r.get("model", ""))}</td></tr>'
        for r in front]
    body = [
        '<section><div class="cards">'
        f'<div class="card"><div class="k">evaluated</div><div class="v">{len(rows):,}</div>'
        f'<div class="k">{len(ok):,} ok, {failed:,} failed</div></div>'
        f'<div class="card"><div class="k">Pareto front</div><div class="v">{len(front)}</div>'
        f'<div class="k">{_e(x_label)} / {_e(y_label)}</div></div>'
        '</div></section>',
        '<section><h2>Pareto front</h2><div class="muted">Every point is a design; the front '
        'is labelled.  Click a point to open its record (or its full report, where one was '
        'written).</div><div id="pareto" class="chart"></div></section>',
        '<section><h2>Front designs</h2>' + _table(
            ("design", _LABELS.get(x, x), _LABELS.get(y, y), "area (mm2)", "accuracy", "model"),
            front_rows, text_columns=(0, 5), table_id="front-table") + "</section>",
    ]
    if curves:
        body.append('<section><h2>Best objective so far</h2><div id="best" class="chart">'
                    "</div></section>")
    body.append('<section id="records"><h2>Design record</h2><div class="muted" id="pick">'
                "Click a point of the chart or a design of the table.</div>"
                + "".join(cards) + "</section>")
    reports_js = _json(reports)
    extra = ("var R = " + reports_js + ";\n"
             "function tccOpen(key){ if (R[key]) { window.location.href = R[key]; return; }\n"
             "  document.querySelectorAll('.design-card.open').forEach(function(c){"
             " c.classList.remove('open'); });\n"
             "  var card = document.getElementById('d-' + key); if (!card) return;\n"
             "  card.classList.add('open'); document.getElementById('pick').style.display='none';"
             "\n  card.scrollIntoView({behavior: 'instant', block: 'start'}); }\n"
             "document.getElementById('pareto').on('plotly_click', function(ev){"
             " if (ev.points.length) tccOpen(ev.points[0].customdata[0]); });\n"
             "document.querySelectorAll('a.open').forEach(function(a){"
             " a.addEventListener('click', function(e){ e.preventDefault();"
             " tccOpen(a.dataset.key); }); });\n"
             "if (location.hash.indexOf('#d-') === 0) tccOpen(location.hash.slice(3));\n")
    page_title = title or "design-space sweep"
    subtitle = _e(source) if source else ""
    return _page(page_title, subtitle, "".join(body), figures, extra)


def _design_card(row: Mapping[str, Any], metrics: tuple[str, str], href: str | None) -> str:
    from tools.codesign.plots import design_label

    try:
        identity = json.loads(row.get("identity") or "{}")
    except ValueError:
        identity = {}
    point = identity.get("point", {}) if isinstance(identity, dict) else {}
    dsl = point.get("hardware") if isinstance(point, dict) else None
    try:
        details = json.loads(row.get("metrics") or "{}")
    except ValueError:
        details = {}
    values = details.get("metrics", {}) if isinstance(details, dict) else {}
    metric_rows = "".join(f'<tr><td class="t">{_e(k)}</td><td>{_e(f"{v:.6g}")}</td></tr>'
                          for k, v in sorted(values.items()) if isinstance(v, (int, float)))
    fields = "".join(f'<tr><td class="t">{_e(k)}</td><td class="t">{_e(row.get(k))}</td></tr>'
                     for k in ("hardware", "model", "schedule", "pipeline", "simulator",
                               "accuracy_source", "tool_version", "key") if row.get(k))
    link = (f'<p><a href="{_e(href)}">open the full compile report of this design</a></p>'
            if href else "")
    return (f'<div class="design-card" id="d-{_e(row["key"])}"><h2>{_e(design_label(row))}</h2>'
            f'<div class="muted">{_e(row.get("description", ""))}</div>{link}'
            f'<div class="two"><div><table>{fields}</table></div><div><table>{metric_rows}'
            "</table></div></div>"
            + (f"<h2>Design (DSL)</h2><pre>{_e(dsl)}</pre>" if dsl else "") + "</div>")


def write_sweep_html(db: str | Path, path: str | Path,
                     metrics: tuple[str, str] = ("latency_ms", "energy_nj"),
                     best_key: str | None = None, best_report: Any = None,
                     best_design_text: str | None = None, title: str = "",
                     front_metrics: Sequence[str] | None = None,
                     keys: Any = None) -> list[Path]:
    """Write the sweep page of ``db`` to ``path``; with ``best_report`` (a
    Report of the best point) also its compile report beside it
    (``<stem>-best.html``), which a click on the best point opens.  Returns
    the paths written."""
    from tools.codesign.plots import best_so_far_curves
    from tools.codesign.store import ResultsStore

    path = Path(path)
    with ResultsStore(db, readonly=True) as store, store.decoding():
        rows = store.rows()
    if keys is not None:
        wanted = set(keys)
        rows = [r for r in rows if r["key"] in wanted]
    written = []
    reports: dict[str, str] = {}
    if best_report is not None and best_key is not None and str(path) != "-":
        # (on standard output the page is alone: no best-point page beside it)
        if best_design_text is None:
            for row in rows:
                if row["key"] == best_key:
                    point = json.loads(row.get("identity") or "{}").get("point", {})
                    best_design_text = point.get("hardware") if isinstance(point, dict) else None
        best_path = path.with_name(path.stem + "-best.html")
        write_html(best_report, best_path, best_design_text)
        reports[best_key] = best_path.name
        written.append(best_path)
    page = render_sweep(rows, best_so_far_curves(db), metrics, title, best_key, reports,
                        source=f"results database {Path(db).name}", front_metrics=front_metrics)
    from backends.elector.trace import write_text

    return [write_text(path, page, "--html"), *written]
