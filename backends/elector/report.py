"""Reports of ``tcc compile``: text tables, JSON (docs/report-schema.md) and plots.

A :class:`Report` bundles what a run produced -- the
:class:`~backends.elector.schedule.MappedFunction` (the mapping per op) and
the :class:`~backends.elector.schedule.SimulationResult` -- with where it
came from (model, function, batch and sequence, the exact pass pipeline, the
design's name and hash, the tool version, the simulator, and where the
densities came from).  It renders as

* :meth:`Report.to_text`: readable tables (summary, energy by class, area by
  class, utilisation, bytes per level, per-layer table, per-op table with
  the chosen mapping, notes);
* :meth:`Report.to_json`: a dict following the stable schema documented in
  ``docs/report-schema.md`` (``schema_version`` :data:`SCHEMA_VERSION`);
* :meth:`Report.write_plots`: PNG files (energy breakdown; utilisation over
  time -- from the event simulator's timeline when it ran, else the per-op
  timeline of the analytical one).

Energy and area parts are sums of their rows, so they add up to the totals.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.elector.area import AreaBreakdown
from backends.elector.costing import ENERGY_LABELS
from backends.elector.mapping import format_bytes
from backends.elector.schedule import LEVELS, MappedFunction, SimulationResult

__all__ = ["SCHEMA_VERSION", "Report", "layer_of"]

SCHEMA_VERSION = 1
_LAYER = re.compile(r"^(.*?\.\d+)(\.|$)")


def layer_of(loc: str) -> str:
    """The layer a source name belongs to: up to its first numbered component
    (``encoder.layer.3.attention.self`` -> ``encoder.layer.3``), else its
    first component (``embeddings``), else ``(no source name)``."""
    if not loc:
        return "(no source name)"
    m = _LAYER.match(loc)
    if m:
        return m.group(1)
    return loc.split(".")[0]


@dataclass
class Report:
    """One compiled and simulated model on one design (see module docstring)."""

    model: str
    source: str
    function: str
    training: bool
    optimizer: str | None
    batch: int | None
    seq: int | None
    pipeline: str
    design: str
    design_hash: str
    technology: str
    clock_hz: float
    peak_macs_per_cycle: int
    tool_version: str
    mapped: MappedFunction
    result: SimulationResult
    area: AreaBreakdown
    notes: list[str] = field(default_factory=list)
    shape_sources: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ derived

    @property
    def nothing_to_compute(self) -> bool:
        """No mapped op, or none that takes a cycle: there is no latency to speak of."""
        return not self.mapped.ops or self.result.cycles <= 0

    @property
    def achieved_fraction(self) -> float | None:
        """``roofline / cycles``, or None when it means nothing: nothing to
        compute, or a roofline below one cycle (a scalar model)."""
        r = self.result
        if self.nothing_to_compute or r.roofline_cycles < 1:
            return None
        return r.achieved_fraction

    @property
    def throughput(self) -> float | None:
        """Sequences per second: ``batch / seconds`` (None without a batch or a latency)."""
        if not self.batch or self.nothing_to_compute or not self.result.seconds:
            return None
        return self.batch / self.result.seconds

    def warnings(self) -> list[str]:
        """Sentences that say why figures are missing."""
        out = []
        if self.nothing_to_compute:
            out.append("nothing to compute: after the passes no op of the model does any work "
                       "(its outputs are inputs or constants), so latency and energy are zero "
                       "and no ratio is reported")
        elif self.result.roofline_cycles < 1:
            out.append(f"the roofline is {self.result.roofline_cycles:.3g} cycles (below one "
                       "cycle): the model does too little work for an achieved fraction to "
                       "mean anything, so none is reported")
        if self.batch is None:
            out.append("the model's inputs have no batch axis: no throughput is reported")
        return out

    @property
    def mode(self) -> str:
        return "training" if self.training else "inference"

    def layers(self) -> list[dict[str, Any]]:
        """Per-layer rows, in first-appearance order."""
        rows: dict[str, dict[str, Any]] = {}
        for op, res in zip(self.mapped.ops, self.result.ops):
            key = layer_of(op.loc)
            row = rows.setdefault(key, {"layer": key, "ops": 0, "cycles": 0.0, "macs": 0,
                                        "roofline_cycles": 0.0, "dynamic_nj": 0.0})
            row["ops"] += 1
            row["cycles"] += res.cycles
            row["macs"] += op.macs
            row["roofline_cycles"] += res.roofline_cycles
            row["dynamic_nj"] += sum(res.dynamic_energy_nj.values())
        return list(rows.values())

    def density_summary(self) -> dict[str, int]:
        out = {"measured": 0, "profile": 0, "assumed": 0, "dense": 0}
        out.update(self.mapped.densities)
        return out

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict (schema in docs/report-schema.md)."""
        r = self.result
        energy = r.energy
        area_rows = [{"class": row.kind, "label": row.item, "count": row.count,
                      "area_um2": row.area_um2} for row in self.area.rows]
        ops = []
        for op, res in zip(self.mapped.ops, r.ops):
            by_level = op.bytes_by_level()
            ops.append({
                "index": op.index, "kind": op.kind, "loc": op.loc, "layer": layer_of(op.loc),
                "unit": op.unit, "tile": str(op.tile) if op.tile else None, "order": op.order,
                "weights": op.weights,
                "start_cycle": res.start_cycle, "end_cycle": res.end_cycle, "cycles": res.cycles,
                "compute_cycles": res.compute_cycles,
                "memory_cycles": dict(res.memory_cycles),
                "fill_cycles": op.fill_cycles,
                "roofline_cycles": res.roofline_cycles, "bound": res.bound,
                "macs": op.macs, "effective_macs": op.effective_macs,
                "padded_macs": op.padded_macs, "ops": op.ops, "density": op.density,
                "tiles": op.num_tiles, "waves": op.waves,
                "lane_cycles_per_tile": op.lane_cycles_per_tile,
                "reloads": {t.role: t.reloads for t in op.operands if t.reloads},
                "density_sources": sorted({t.source for t in op.operands
                                           if t.role not in ("spill", "scores")}),
                "bytes": {lv: {"read": by_level[lv][0], "written": by_level[lv][1]}
                          for lv in LEVELS},
                "dynamic_nj": dict(res.dynamic_energy_nj),
                "stalls": dict(res.stalls),
            })
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "tcc", "version": self.tool_version},
            "model": {"name": self.model, "source": self.source, "function": self.function,
                      "mode": self.mode, "optimizer": self.optimizer, "batch": self.batch,
                      "seq": self.seq, "shape_sources": list(self.shape_sources)},
            "pipeline": self.pipeline,
            "design": {"name": self.design, "hash": self.design_hash,
                       "technology": self.technology, "clock_hz": self.clock_hz,
                       "peak_macs_per_cycle": self.peak_macs_per_cycle},
            "simulator": r.simulator,
            "summary": {
                "cycles": r.cycles, "seconds": r.seconds,
                "throughput_sequences_per_s": self.throughput,
                "roofline_cycles": r.roofline_cycles, "roofline_bound": r.roofline_bound,
                "achieved_fraction": self.achieved_fraction,
                "nothing_to_compute": self.nothing_to_compute,
                "energy_nj": energy.total_nj, "area_um2": self.area.total_um2,
            },
            "energy": {
                "unit": "nJ",
                "classes": [{"class": row.energy_class, "label": row.label,
                             "dynamic_nj": row.dynamic_nj, "leakage_nj": row.leakage_nj,
                             "total_nj": row.total_nj} for row in energy.rows],
                "dynamic_nj": energy.dynamic_nj, "leakage_nj": energy.leakage_nj,
                "total_nj": energy.total_nj,
                "not_characterised": [row.energy_class + ".leakage" for row in energy.rows
                                      if row.leakage_nj is None],
                "assumptions": list(energy.assumptions),
            },
            "area": {"unit": "um2", "training_hardware": self.area.training,
                     "classes": area_rows, "total_um2": self.area.total_um2,
                     "not_characterised": [row["class"] for row in area_rows
                                           if row["area_um2"] is None]},
            "utilisation": dict(r.utilisation),
            "bytes": {lv: {"read": r.bytes_by_level[lv][0], "written": r.bytes_by_level[lv][1]}
                      for lv in LEVELS},
            "densities": self.density_summary(),
            "layers": self.layers(),
            "ops": ops,
            "stalls": dict(r.stalls),
            "notes": self.warnings() + list(r.notes) + self.notes,
        }

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=1, default=float) + "\n")
        return path

    # ------------------------------------------------------------------ text

    def to_text(self, max_ops: int = 40) -> str:
        r = self.result
        out: list[str] = []
        out.append(f"tcc compile: {self.model} ({self.function}, {self.mode}"
                   + (f", {self.optimizer}" if self.training and self.optimizer else "")
                   + (f", batch {self.batch}" if self.batch else "")
                   + (f" x seq {self.seq}" if self.batch and self.seq else "") + ")")
        out.append(f"design     {self.design} @ {self.design_hash} (technology {self.technology}, "
                   f"{self.clock_hz / 1e6:g} MHz, {self.peak_macs_per_cycle:,} MACs/cycle)")
        out.append(f"pipeline   {self.pipeline}")
        out.append(f"simulator  {r.simulator}; tcc {self.tool_version}")
        if self.shape_sources:
            out.append("shapes     " + "; ".join(self.shape_sources))
        dens = self.density_summary()
        assumed = " (* assumed figures)" if dens.get("assumed") else ""
        out.append("densities  " + ", ".join(f"{k} {v}" for k, v in dens.items())
                   + " tensors" + assumed)
        out.append("")
        throughput = self.throughput
        achieved = self.achieved_fraction
        if self.nothing_to_compute:
            out.append("latency    0 cycles: nothing to compute (see the warning below)")
        else:
            out.append(f"latency    {r.cycles:,.0f} cycles = {_seconds(r.seconds)}"
                       + (f"  ({throughput:,.1f} sequences/s)" if throughput else ""))
        if achieved is None:
            out.append(f"roofline   {r.roofline_cycles:.3g} cycles; no ratio to the roofline "
                       "(see the warning below)")
        else:
            out.append(f"roofline   {r.roofline_cycles:,.0f} cycles ({r.roofline_bound}-bound); "
                       f"achieved {achieved:.1%} of the roof")
        out.append(f"energy     {_nj(r.energy.total_nj)} (dynamic {_nj(r.energy.dynamic_nj)}, "
                   f"leakage {_nj(r.energy.leakage_nj)})")
        out.append(f"area       {self.area.total_mm2:,.3f} mm2"
                   + (" (main memory not characterised)" if self.area.not_characterised else ""))
        out.append("")
        out.append(_table(
            ("energy class", "dynamic", "leakage", "total", "share"),
            [(row.label, _nj(row.dynamic_nj),
              _nj(row.leakage_nj) if row.leakage_nj is not None else "not characterised",
              _nj(row.total_nj), _share(row.total_nj, r.energy.total_nj))
             for row in r.energy.rows],
            ("total", _nj(r.energy.dynamic_nj), _nj(r.energy.leakage_nj), _nj(r.energy.total_nj),
             "100.0%")))
        out.append("")
        out.append(_table(
            ("area class", "count", "mm2", "share"),
            [(row.item, f"{row.count:,}",
              f"{row.area_mm2:,.3f}" if row.area_mm2 is not None else "not characterised",
              _share(row.area_um2 or 0.0, self.area.total_um2) if row.area_um2 is not None else "-")
             for row in self.area.rows],
            ("total", "", f"{self.area.total_mm2:,.3f}", "100.0%")))
        out.append("")
        util = [(ENERGY_LABELS.get(k, k), f"{v:.1%}") for k, v in r.utilisation.items()]
        out.append(_table(("utilisation (busy / bandwidth)", "fraction"), util))
        out.append("")
        out.append(_table(("bytes moved", "read", "written"),
                          [(lv.replace("_", " "), format_bytes(r.bytes_by_level[lv][0]),
                            format_bytes(r.bytes_by_level[lv][1])) for lv in LEVELS]))
        out.append("")
        layers = self.layers()
        out.append(_table(("layer (source name)", "ops", "cycles", "roofline", "MACs",
                           "dyn energy"),
                          [(row["layer"], str(row["ops"]), f"{row['cycles']:,.0f}",
                            f"{row['roofline_cycles']:,.0f}", f"{row['macs']:,}",
                            _nj(row["dynamic_nj"])) for row in layers]))
        out.append("")
        rows = list(zip(self.mapped.ops, r.ops))
        shown = rows
        if len(rows) > max_ops:
            shown = sorted(rows, key=lambda pair: -pair[1].cycles)[:max_ops]
            shown.sort(key=lambda pair: pair[0].index)
            out.append(f"per-op table: the {max_ops} longest of {len(rows)} ops "
                       "(all of them in --json)")
        out.append(_table(
            ("#", "op", "source name", "unit", "mapping", "cycles", "roofline", "bound", "MACs",
             "density"),
            [(str(op.index), op.kind, _short(op.loc, 44), op.unit, _mapping_text(op),
              f"{res.cycles:,.0f}", f"{res.roofline_cycles:,.0f}", res.bound,
              f"{op.macs:,}" if op.macs else "", _density_text(op)) for op, res in shown]))
        warnings = self.warnings()
        notes = list(r.notes) + self.notes
        if dens.get("assumed"):
            notes.append("* some densities are assumed (given by hand), not measured")
        if notes or warnings:
            out.append("")
            out.extend(f"warning: {text}" for text in warnings)
            out.extend(f"note: {note}" for note in notes)
        return "\n".join(out)

    # ------------------------------------------------------------------ plots

    def write_plots(self, directory: str | Path) -> list[Path]:
        """Write ``energy.png`` and ``utilisation.png`` into ``directory``
        (see :mod:`backends.elector.plots`; pyplot's backend is not touched)."""
        from backends.elector.plots import write_energy_plot, write_utilisation_plot

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        return [write_energy_plot(self, directory / "energy.png"),
                write_utilisation_plot(self, directory / "utilisation.png")]


# --------------------------------------------------------------------------- formatting


def _seconds(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.3f} us"


def _nj(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:,.3f} mJ"
    if value >= 1e3:
        return f"{value / 1e3:,.3f} uJ"
    return f"{value:,.3f} nJ"


def _share(part: float, total: float) -> str:
    return f"{part / total:6.1%}" if total else "-"


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3):]


def _density_text(op: Any) -> str:
    """The op's MAC density, marked ``*`` when any operand's density is assumed."""
    sources = {t.source for t in op.operands if t.role not in ("spill", "scores")}
    if sources <= {"dense"}:
        return ""
    return f"{op.density:.3g}" + ("*" if "assumed" in sources else "")


def _mapping_text(op: Any) -> str:
    parts = []
    if op.tile is not None:
        parts.append(f"{op.tile.x}x{op.tile.y}" if op.order is None else str(op.tile))
    if op.order:
        parts.append(op.order)
    if op.weights:
        parts.append(f"w:{op.weights}")
    return " ".join(parts)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]],
           total: Sequence[str] | None = None) -> str:
    body = [tuple(header)] + [tuple(r) for r in rows] + ([tuple(total)] if total else [])
    widths = [max(len(line[c]) for line in body) for c in range(len(header))]

    def render(line: Sequence[str]) -> str:
        cells = [line[0].ljust(widths[0])]
        cells += [cell.rjust(w) for cell, w in zip(line[1:], widths[1:])]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [render(header), rule] + [render(r) for r in rows]
    if total:
        lines += [rule, render(total)]
    return "\n".join(lines)
