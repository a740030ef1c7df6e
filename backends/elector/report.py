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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.elector.area import AreaBreakdown
from backends.elector.costing import ENERGY_LABELS
from backends.elector.mapping import format_bytes
from backends.elector.schedule import LEVELS, MappedFunction, SimulationResult

__all__ = ["SCHEMA_VERSION", "DecodeReport", "Report", "layer_of"]

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
    #: The design's storage levels, outermost first
    #: (:func:`backends.elector.hierarchy.storage_levels`); empty when the
    #: maker of the report did not give them (the JSON's ``hierarchy`` is
    #: then null and the HTML report has no hierarchy picture).
    hierarchy: tuple[Any, ...] = ()

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

    def hierarchy_summary(self) -> dict[str, Any] | None:
        """The storage hierarchy with this run's figures (the JSON's
        ``hierarchy``; docs/report-schema.md), or None without levels."""
        if not self.hierarchy:
            return None
        return hierarchy_summary(self.hierarchy, self.mapped, self.result, self.clock_hz)

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
                "bounding_level": res.bounding_level,
                "level_utilisation": dict(res.level_utilisation),
                "macs": op.macs, "effective_macs": op.effective_macs,
                "padded_macs": op.padded_macs, "ops": op.ops, "density": op.density,
                "tiles": op.num_tiles, "waves": op.waves,
                "lane_cycles_per_tile": op.lane_cycles_per_tile,
                "reloads": {t.role: t.reloads for t in op.operands if t.reloads},
                "density_sources": sorted({t.source for t in op.operands
                                           if t.role not in ("spill", "scores")}),
                "bytes": {lv: {"read": by_level[lv][0], "written": by_level[lv][1]}
                          for lv in _levels_of(by_level)},
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
                             "leakage_busy_nj": row.leakage_busy_nj,
                             "leakage_idle_nj": row.leakage_idle_nj,
                             "total_nj": row.total_nj} for row in energy.rows],
                "dynamic_nj": energy.dynamic_nj, "leakage_nj": energy.leakage_nj,
                "leakage_busy_nj": energy.leakage_busy_nj,
                "leakage_idle_nj": energy.leakage_idle_nj,
                "total_nj": energy.total_nj,
                "power_gating": energy.power_gating,
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
                      for lv in _levels_of(r.bytes_by_level)},
            "hierarchy": self.hierarchy_summary(),
            "densities": self.density_summary(),
            "layers": self.layers(),
            "ops": ops,
            "stalls": dict(r.stalls),
            "notes": self.warnings() + list(r.notes) + self.notes,
        }

    def write_json(self, path: str | Path) -> Path:
        from transcode_ir.fileio import write_text  # atomic; '-' is standard output

        return write_text(path, json.dumps(self.to_json(), indent=1, default=float) + "\n")

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
                   f"leakage {_nj(r.energy.leakage_nj)}: busy {_nj(r.energy.leakage_busy_nj)}, "
                   f"idle {_nj(r.energy.leakage_idle_nj)}; power gating: "
                   f"{r.energy.power_gating})")
        out.append(f"area       {self.area.total_mm2:,.3f} mm2"
                   + (" (main memory not characterised)" if self.area.not_characterised else ""))
        hierarchy = self.hierarchy_summary()
        if hierarchy is not None and not self.nothing_to_compute:
            import textwrap

            out.append(textwrap.fill(hierarchy["caption"], width=100, initial_indent="hierarchy  ",
                                     subsequent_indent=" " * 11))
        out.append("")
        out.append(_table(
            ("energy class", "dynamic", "leakage", "leak busy", "leak idle", "total", "share"),
            [(row.label, _nj(row.dynamic_nj),
              _nj(row.leakage_nj) if row.leakage_nj is not None else "not characterised",
              _nj(row.leakage_busy_nj) if row.leakage_nj is not None else "-",
              _nj(row.leakage_idle_nj) if row.leakage_nj is not None else "-",
              _nj(row.total_nj), _share(row.total_nj, r.energy.total_nj))
             for row in r.energy.rows],
            ("total", _nj(r.energy.dynamic_nj), _nj(r.energy.leakage_nj),
             _nj(r.energy.leakage_busy_nj), _nj(r.energy.leakage_idle_nj),
             _nj(r.energy.total_nj), "100.0%")))
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
                            format_bytes(r.bytes_by_level[lv][1]))
                           for lv in _levels_of(r.bytes_by_level)]))
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
            ("#", "op", "source name", "unit", "mapping", "cycles", "roofline", "bound",
             "limit", "level busy", "MACs", "density"),
            [(str(op.index), op.kind, _short(op.loc, 44), op.unit, _mapping_text(op),
              f"{res.cycles:,.0f}", f"{res.roofline_cycles:,.0f}", res.bound,
              res.bounding_level or "-", _levels_text(res.level_utilisation),
              f"{op.macs:,}" if op.macs else "", _density_text(op)) for op, res in shown]))
        out.append("(bound: what bounds the op's roofline; limit: what set its own duration, "
                   "compute or the level whose bytes over its bandwidth took longest; level "
                   "busy: each level's transfer time over the op's cycles -- mm main memory, "
                   "act / wgt / mask the buffers"
                   + (", pe the per-PE buffers)" if "pe_buffer" in r.bytes_by_level else ")"))
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


# --------------------------------------------------------------------------- decoders


@dataclass
class DecodeReport:
    """A causal LM with a KV cache on one design: the prefill of the prompt
    (time to first token) and the decode steps (per-token latency and energy
    as the cache grows), with the cache's size and traffic per level.

    ``plan`` is the :class:`backends.elector.compile_pipeline.DecodePlan`;
    ``prefill`` the prefill's :class:`Report` (None without a prefill graph);
    ``steps`` a :class:`Report` per simulated cache length;
    ``cache_traffic`` per simulated cache length, level -> ``[read,
    written]`` bytes of the cache in that step; ``appended`` per cache length
    how many results were turned into in-place appends."""

    model: str
    source: str
    design: str
    design_hash: str
    clock_hz: float
    tool_version: str
    batch: int | None
    plan: Any
    bytes_per_element: float
    activation_buffer_bytes: int
    prefill: Report | None
    steps: dict[int, Report]
    cache_traffic: dict[int, dict[str, list[float]]]
    prefill_cache_traffic: dict[str, list[float]] | None = None
    appended: dict[int, int] = field(default_factory=dict)
    shape_sources: list[str] = field(default_factory=list)
    #: Where the cache starts each simulated step: ``activation_buffer`` or ``main_memory``.
    placement: dict[int, str] = field(default_factory=dict)
    #: Parameter bytes (at the data width), the weight buffer, and whether
    #: decode steps start with the weights in it.
    weight_bytes: float = 0.0
    weight_buffer_bytes: int = 0
    weights_on_chip: bool = False

    # ------------------------------------------------------------------ derived

    @property
    def bytes_per_token(self) -> float:
        """Cache bytes per token: 2 (key, value) x layers x KV heads x head
        dim x batch x bytes per element."""
        p = self.plan
        return 2 * p.layers * p.kv_heads * p.head_dim * (self.batch or 1) * self.bytes_per_element

    def cache_bytes(self, tokens: int) -> float:
        return self.bytes_per_token * tokens

    def step_rows(self) -> list[dict[str, Any]]:
        """One row per decode step: ``step`` (1-based), ``cache_length``,
        ``cycles``, ``seconds``, ``energy_nj``, ``simulated`` (False:
        interpolated linearly in cache length between simulated neighbours)."""
        known = sorted(self.steps)
        rows = []
        for j, length in enumerate(self.plan.step_cache_lengths, start=1):
            if length in self.steps:
                r = self.steps[length].result
                rows.append({"step": j, "cache_length": length, "cycles": r.cycles,
                             "seconds": r.seconds, "energy_nj": r.energy.total_nj,
                             "simulated": True})
                continue
            lo = max(k for k in known if k < length)
            hi = min(k for k in known if k > length)
            w = (length - lo) / (hi - lo)
            a, b = self.steps[lo].result, self.steps[hi].result
            rows.append({"step": j, "cache_length": length,
                         "cycles": a.cycles + w * (b.cycles - a.cycles),
                         "seconds": a.seconds + w * (b.seconds - a.seconds),
                         "energy_nj": a.energy.total_nj + w * (b.energy.total_nj
                                                               - a.energy.total_nj),
                         "simulated": False})
        return rows

    def summary(self) -> dict[str, Any]:
        p = self.plan
        rows = self.step_rows()
        first = self.steps[p.context].result
        total_s = sum(r["seconds"] for r in rows)
        total_nj = sum(r["energy_nj"] for r in rows)
        out: dict[str, Any] = {
            "ttft_cycles": self.prefill.result.cycles if self.prefill else None,
            "ttft_seconds": self.prefill.result.seconds if self.prefill else None,
            "prefill_energy_nj": self.prefill.result.energy.total_nj if self.prefill else None,
            "per_token_cycles": first.cycles, "per_token_seconds": first.seconds,
            "per_token_energy_nj": first.energy.total_nj,
            "per_token_energy_nj_per_sequence": first.energy.total_nj / (self.batch or 1),
            "decode_steps": p.steps, "decode_seconds": total_s, "decode_energy_nj": total_nj,
            "mean_token_seconds": total_s / p.steps, "mean_token_energy_nj": total_nj / p.steps,
            "decode_tokens_per_s": (self.batch or 1) * p.steps / total_s if total_s else None,
            "simulated_steps": sum(1 for r in rows if r["simulated"]),
        }
        if self.prefill:
            out["end_to_end_seconds"] = self.prefill.result.seconds + total_s
            out["end_to_end_energy_nj"] = self.prefill.result.energy.total_nj + total_nj
        return out

    def cache_summary(self) -> dict[str, Any]:
        p = self.plan
        end = p.context + p.steps
        per_token = self.bytes_per_token
        fits = int(self.activation_buffer_bytes // per_token) if per_token else 0
        return {
            "layers": p.layers, "kv_heads": p.kv_heads, "head_dim": p.head_dim,
            "batch": self.batch, "bytes_per_element": self.bytes_per_element,
            "bytes_per_token": per_token,
            "bytes_at_context": self.cache_bytes(p.context),
            "tokens_at_end": end, "bytes_at_end": self.cache_bytes(end),
            "placement_mode": getattr(p, "kv_cache", "main-memory"),
            "lives_between_steps": self.placement.get(p.context, "main_memory"),
            "placement": {str(k): v for k, v in sorted(self.placement.items())},
            "activation_buffer_bytes": self.activation_buffer_bytes,
            "fits_activation_buffer_at_end": self.cache_bytes(end) <= self.activation_buffer_bytes,
            "max_tokens_in_activation_buffer": fits,
            "traffic_per_step": {str(k): {lv: {"read": v[0], "written": v[1]}
                                          for lv, v in t.items()}
                                 for k, t in self.cache_traffic.items()},
            "prefill_traffic": ({lv: {"read": v[0], "written": v[1]}
                                 for lv, v in self.prefill_cache_traffic.items()}
                                if self.prefill_cache_traffic is not None else None),
        }

    def notes(self) -> list[str]:
        p = self.plan
        out = []
        simulated = sorted(self.steps)
        if len(simulated) < p.steps:
            out.append(f"{len(simulated)} of {p.steps} decode steps simulated (cache lengths "
                       f"{', '.join(map(str, simulated))}); the others are interpolated "
                       "linearly in cache length between their simulated neighbours "
                       "(--decode-samples all simulates every step)")
        else:
            out.append(f"every decode step simulated (cache lengths {simulated[0]}.."
                       f"{simulated[-1]})")
        if all(self.appended.get(k) for k in simulated):
            out.append("decode steps append to the cache in place: the exported graph returns "
                       "concat(past, new) as its present key/value; tcc returns the new rows "
                       "instead (what a KV-cache implementation writes), while attention still "
                       "reads the whole concatenated cache")
        else:
            out.append("some decode steps return the whole cache (no concat(past, new) found to "
                       "turn into an append): their main-memory writes include a copy of the "
                       "cache")
        mode = getattr(p, "kv_cache", "main-memory")
        fit = int(self.activation_buffer_bytes // self.bytes_per_token) if self.bytes_per_token \
            else 0
        if mode == "auto":
            out.append(f"--kv-cache auto: the cache stays in the activation buffer between steps "
                       f"while it fits (up to {fit:,} tokens at this batch) and lives in main "
                       "memory once it does not; a step whose cache is on chip does not read it "
                       "from main memory unless the step's other tensors evict it (then it is "
                       "spilled and read back, as the traffic table shows)")
        elif mode == "on-chip":
            out.append("--kv-cache on-chip: the cache stays in the activation buffer between "
                       "steps (unless a step's other tensors evict it: see the traffic table)")
        else:
            out.append("--kv-cache main-memory: the cache lives in main memory between steps "
                       "and every decode step reads it from there")
        out.append("function results are written to main memory: the appended rows of each "
                   "step and the cache the prefill leaves are counted as main-memory writes "
                   "whatever the placement")
        mode = getattr(p, "weights", "main-memory")
        sizes = (f"{format_bytes(self.weight_bytes)} of parameters, "
                 f"{format_bytes(self.weight_buffer_bytes)} weight buffer")
        if self.weights_on_chip:
            out.append(f"--decode-weights auto: the weights fit the weight buffer ({sizes}), so "
                       "decode steps start with them there (the prefill loaded them); the "
                       "prefill itself loads them from main memory (a cold start, in the TTFT)")
        elif mode == "auto":
            out.append(f"--decode-weights auto: the weights do not fit the weight buffer "
                       f"({sizes}), so the prefill and every decode step load them from main "
                       "memory")
        else:
            out.append(f"--decode-weights main-memory: the prefill and every decode step load the "
                       f"weights from main memory ({sizes})")
        return out

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        p = self.plan
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "decode",
            "tool": {"name": "tcc", "version": self.tool_version},
            "model": {"name": self.model, "source": self.source, "batch": self.batch,
                      "context": p.context, "decode_steps": p.steps,
                      "shape_sources": list(self.shape_sources)},
            "design": {"name": self.design, "hash": self.design_hash, "clock_hz": self.clock_hz},
            "summary": self.summary(),
            "steps": self.step_rows(),
            "kv_cache": self.cache_summary(),
            "weights": {"mode": getattr(p, "weights", "main-memory"),
                        "bytes": self.weight_bytes,
                        "weight_buffer_bytes": self.weight_buffer_bytes,
                        "on_chip_between_steps": self.weights_on_chip},
            "notes": self.notes(),
            "prefill": self.prefill.to_json() if self.prefill else None,
            "decode": {str(k): r.to_json() for k, r in sorted(self.steps.items())},
        }

    def write_json(self, path: str | Path) -> Path:
        from transcode_ir.fileio import write_text  # atomic; '-' is standard output

        return write_text(path, json.dumps(self.to_json(), indent=1, default=float) + "\n")

    # ------------------------------------------------------------------ text

    def to_text(self, max_ops: int = 40) -> str:
        p = self.plan
        s = self.summary()
        c = self.cache_summary()
        out = [f"tcc compile: {self.model} (decoder with KV cache, batch {self.batch}, "
               f"context {p.context}, {p.steps} decode step{'s' if p.steps != 1 else ''})",
               f"design     {self.design} @ {self.design_hash} "
               f"({self.clock_hz / 1e6:g} MHz); tcc {self.tool_version}"]
        if self.shape_sources:
            out.append("shapes     " + "; ".join(self.shape_sources))
        out.append(f"simulated  {'prefill of ' + str(p.context) + ' tokens; ' if self.prefill else ''}"
                   f"decode steps at cache lengths {', '.join(map(str, sorted(self.steps)))} "
                   f"({s['simulated_steps']} of {p.steps} steps)")
        out.append("")
        rows = []
        if self.prefill:
            rows.append(("time to first token", f"{s['ttft_cycles']:,.0f}",
                         _seconds(s["ttft_seconds"]), _nj(s["prefill_energy_nj"]),
                         f"prefill of {p.context} tokens"))
        rows.append((f"per token @ context {p.context}", f"{s['per_token_cycles']:,.0f}",
                     _seconds(s["per_token_seconds"]), _nj(s["per_token_energy_nj"]),
                     f"decode step over a cache of {p.context} tokens"
                     + (f"; {_nj(s['per_token_energy_nj_per_sequence'])} per sequence"
                        if (self.batch or 1) > 1 else "")))
        step_cycles = sum(r["cycles"] for r in self.step_rows())
        rows.append((f"{p.steps} decode step{'s' if p.steps != 1 else ''}", f"{step_cycles:,.0f}",
                     _seconds(s["decode_seconds"]), _nj(s["decode_energy_nj"]),
                     f"mean {_seconds(s['mean_token_seconds'])}, "
                     f"{_nj(s['mean_token_energy_nj'])} per step; "
                     f"{s['decode_tokens_per_s']:,.0f} tokens/s"))
        if self.prefill:
            rows.append((f"prompt + {p.steps} token{'s' if p.steps != 1 else ''}",
                         f"{s['ttft_cycles'] + step_cycles:,.0f}",
                         _seconds(s["end_to_end_seconds"]), _nj(s["end_to_end_energy_nj"]),
                         "prefill, then the decode steps"))
        out.append(_table(("generation", "cycles", "latency", "energy", "what"), rows))
        if not self.prefill:
            out.append("time to first token: not reported, no prefill graph (give --prefill "
                       "FILE with a decode-step ONNX file)")
        out.append("")
        out.append(_table(("step", "cache", "cycles", "latency", "energy", "figure"),
                          [(str(r["step"]), f"{r['cache_length']:,}", f"{r['cycles']:,.0f}",
                            _seconds(r["seconds"]), _nj(r["energy_nj"]),
                            "simulated" if r["simulated"] else "interpolated")
                           for r in self.step_rows()]))
        out.append("")
        out.append(f"KV cache   2 (key, value) x {p.layers} layers x {p.kv_heads} KV heads x "
                   f"{p.head_dim} head dim x batch {self.batch} x "
                   f"{self.bytes_per_element:g} bytes = {format_bytes(c['bytes_per_token'])} per "
                   f"token; {format_bytes(c['bytes_at_context'])} at context {p.context}, "
                   f"{format_bytes(c['bytes_at_end'])} after {p.steps} step"
                   f"{'s' if p.steps != 1 else ''} ({c['tokens_at_end']:,} tokens)")
        fit = ("fits" if c["fits_activation_buffer_at_end"] else "does not fit")
        where = {"activation_buffer": "the activation buffer", "main_memory": "main memory"}
        places = sorted(set(self.placement.values()))
        lives = (where[places[0]] if len(places) == 1 else
                 f"{where.get(self.placement.get(p.context), 'main memory')} at context "
                 f"{p.context}, main memory once it outgrows the buffer")
        out.append(f"           lives in {lives} between steps (--kv-cache "
                   f"{c['placement_mode']}); at {c['tokens_at_end']:,} tokens it {fit} in the "
                   f"{format_bytes(self.activation_buffer_bytes)} activation buffer (which holds "
                   f"up to {c['max_tokens_in_activation_buffer']:,} tokens of it)")
        traffic = self.cache_traffic[p.context]
        head = ("cache bytes per level", f"step @{p.context} read", "written")
        rows = [(lv.replace("_", " "), format_bytes(v[0]), format_bytes(v[1]))
                for lv, v in traffic.items()]
        if self.prefill_cache_traffic is not None:
            head = head + ("prefill read", "written")
            rows = [row + (format_bytes(self.prefill_cache_traffic[lv][0]),
                           format_bytes(self.prefill_cache_traffic[lv][1]))
                    for row, lv in zip(rows, traffic)]
        out.append(_table(head, rows))
        out.append("")
        out.extend(f"note: {note}" for note in self.notes())
        if self.prefill:
            out.append("")
            out.append(f"=== prefill ({p.context} tokens) " + "=" * 40)
            out.append(self.prefill.to_text(max_ops=max_ops))
        out.append("")
        out.append(f"=== decode step (cache of {p.context} tokens) " + "=" * 30)
        out.append(self.steps[p.context].to_text(max_ops=max_ops))
        return "\n".join(out)


# --------------------------------------------------------------------------- hierarchy

#: Readable names of the storage levels (captions, the HTML picture).
LEVEL_LABELS: Mapping[str, str] = {
    "main_memory": "main memory", "activation_buffer": "activation buffer",
    "weight_buffer": "weight buffer", "mask_buffer": "mask buffer",
    "pe_buffer": "per-PE buffer", "lane_fifo": "lane FIFOs", "compute": "compute"}

#: The operand class each global buffer holds (main-memory bytes are split by it).
_BUFFER_CLASS = {"activation_buffer": "activation", "weight_buffer": "weight",
                 "mask_buffer": "mask"}


def hierarchy_summary(levels: Sequence[Any], mapped: MappedFunction, result: SimulationResult,
                      clock_hz: float) -> dict[str, Any]:
    """The storage levels of a design (``StorageLevel`` objects, outermost
    first) with what the run did at each: bytes read and written, busy
    fraction over the run, and the op cycles it bounded (the sum of the
    cycles of the ops whose ``bounding_level`` is that level).  ``compute``
    is the same for the ops bound by their modules.  ``caption`` says what
    bounds most op cycles, computed from these figures."""
    bound_cycles: dict[str, float] = {}
    bound_ops: dict[str, int] = {}
    for res in result.ops:
        key = res.bounding_level or "unknown"
        bound_cycles[key] = bound_cycles.get(key, 0.0) + res.cycles
        bound_ops[key] = bound_ops.get(key, 0) + 1
    op_cycles = sum(bound_cycles.values())

    def share(key: str) -> float:
        return bound_cycles.get(key, 0.0) / op_cycles if op_cycles else 0.0

    # Main-memory bytes by the class of the operand that moved them (the
    # buffer it lives in on chip), and how often each resident weight-class
    # tensor crossed main memory.
    by_class = {cls: [0.0, 0.0] for cls in ("activation", "weight", "mask")}
    weight_sizes: dict[str, float] = {}
    weight_reads = 0.0
    for op in mapped.ops:
        for t in op.operands:
            cls = _BUFFER_CLASS.get(t.level)
            if cls is None:
                continue
            by_class[cls][0] += t.main_memory_read_bytes
            by_class[cls][1] += t.main_memory_write_bytes
            if cls == "weight" and t.resident and t.main_memory_read_bytes > 0:
                weight_reads += t.main_memory_read_bytes
                weight_sizes[t.value] = max(weight_sizes.get(t.value, 0.0),
                                            t.tensor_bytes * t.density)
    weight_bytes = sum(weight_sizes.values())
    rows = []
    for lv in levels:
        moved = result.bytes_by_level.get(lv.name)
        busy = result.utilisation.get("fifo" if lv.name == "lane_fifo" else lv.name)
        rows.append({
            "name": lv.name, "label": LEVEL_LABELS.get(lv.name, lv.name.replace("_", " ")),
            "sharing": lv.sharing, "instances": lv.instances,
            "capacity_bytes": lv.capacity_bytes, "banks": lv.banks,
            "bank_bytes_per_cycle": lv.bank_bytes_per_cycle,
            "bytes_per_cycle": lv.bytes_per_cycle,
            "total_bytes_per_cycle": lv.total_bytes_per_cycle,
            "bandwidth_bytes_per_s": lv.total_bytes_per_cycle * clock_hz,
            "operands": sorted(lv.operands), "multicast": lv.multicast,
            "read_bytes": None if moved is None else moved[0],
            "written_bytes": None if moved is None else moved[1],
            "busy_fraction": busy,
            "bound_cycles": bound_cycles.get(lv.name, 0.0),
            "bound_ops": bound_ops.get(lv.name, 0),
            "bound_fraction": share(lv.name)})
    compute = {"name": "compute", "label": LEVEL_LABELS["compute"],
               "busy_fraction": result.utilisation.get("mac_lane"),
               "bound_cycles": bound_cycles.get("compute", 0.0),
               "bound_ops": bound_ops.get("compute", 0), "bound_fraction": share("compute")}
    candidates = [*rows, compute]
    top = max(candidates, key=lambda row: row["bound_cycles"])
    out = {
        "levels": rows, "compute": compute, "op_cycles": op_cycles, "training": mapped.training,
        "unattributed_cycles": bound_cycles.get("unknown", 0.0),
        "bounding": top["name"] if op_cycles else None,
        "main_memory_bytes_by_operand": {cls: {"read": rw[0], "written": rw[1]}
                                         for cls, rw in by_class.items()},
        "weight_bytes_loaded": weight_bytes,
        "weight_loads": weight_reads / weight_bytes if weight_bytes else None,
    }
    out["caption"] = _hierarchy_caption(out, top, len(result.ops))
    return out


def _hierarchy_caption(summary: Mapping[str, Any], top: Mapping[str, Any], n_ops: int) -> str:
    """One line: what bounds most op cycles and, computed from the figures, why."""
    if not summary["op_cycles"]:
        return "no op took a cycle: nothing bounds the run"
    head = (f"{top['label']} bounds {top['bound_fraction']:.0%} of the op cycles "
            f"({top['bound_ops']} of {n_ops} ops)")
    if top["name"] == "compute":
        busy = top["busy_fraction"]
        return head + (f": the MAC lanes are the limit (busy {busy:.0%} of the run)"
                       if busy is not None else ": the modules are the limit")
    level = next(row for row in summary["levels"] if row["name"] == top["name"])
    busy = level["busy_fraction"]
    busy_text = f"busy {busy:.0%} of the run" if busy is not None else "busy fraction unknown"
    head = head[:-1] + f", {busy_text})"
    if top["name"] != "main_memory":
        banks = level["banks"]
        return head + (f": its {banks} bank{'s' if banks != 1 else ''} of "
                       f"{level['bank_bytes_per_cycle']:,.1f} B/cycle are the limit")
    by_class = summary["main_memory_bytes_by_operand"]
    parts = {f"{cls} reads": rw["read"] for cls, rw in by_class.items()}
    parts["writes"] = sum(rw["written"] for rw in by_class.values())
    total = sum(parts.values())
    if not total:
        return head
    shown = sorted((value / total, name) for name, value in parts.items()
                   if value / total >= 0.05)[::-1]
    text = head + ": its bytes are " + ", ".join(f"{share:.0%} {name}" for share, name in shown)
    loads = summary["weight_loads"]
    if loads is not None and any(name == "weight reads" for _, name in shown):
        step = "training step" if summary.get("training") else "inference"
        text += (f"; each weight is loaded once per {step}" if abs(loads - 1) < 0.05
                 else f"; each weight is loaded {loads:.2g} times per {step} on average")
    return text


# --------------------------------------------------------------------------- formatting


def _seconds(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.3f} us"


def _levels_of(by_level: Mapping[str, object]) -> tuple[str, ...]:
    """The four levels every run has, then those only some designs have (pe_buffer)."""
    return (*LEVELS, *(level for level in by_level if level not in LEVELS))


_LEVEL_SHORT = {"main_memory": "mm", "activation_buffer": "act", "weight_buffer": "wgt",
                "mask_buffer": "mask", "pe_buffer": "pe"}


def _levels_text(utilisation: Mapping[str, float]) -> str:
    """Each level's busy fraction of one op, levels under 0.5% left out."""
    parts = [f"{_LEVEL_SHORT.get(level, level)} {value:.0%}"
             for level, value in utilisation.items() if value >= 0.005]
    return " ".join(parts) or "-"


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
    from transcode_ir.tables import format_table  # the one table helper (issue 14 item 8)

    return format_table(header, rows, total=total)
