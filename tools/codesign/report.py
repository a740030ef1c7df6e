"""After a sweep: the best pair's full report, comparisons, status and export.

* :func:`final_report` re-runs the best point through the *event* simulator
  when ``backends.elector.event_sim`` is available (else the analytical one,
  and the report says so), with every chosen mapping re-checked by z3, and
  renders ELECTOR's :class:`~backends.elector.report.Report`.
* :func:`compare` states a pair against a baseline pair in the paper's terms:
  accuracy difference, latency ratio, energy ratio.
* :func:`status_text`, :func:`export_csv`, :func:`export_json`: what ``tcc
  sweep status`` and ``tcc sweep export`` print and write.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["FinalReport", "compare", "export_csv", "export_json", "export_parquet", "export_table",
           "final_report", "hardware_columns", "status_document", "status_text"]


class FinalReport:
    """The best pair's report (``text``) and which simulator made it."""

    def __init__(self, text: str, simulator: str, note: str, report: Any = None,
                 metrics: Mapping[str, float] | None = None) -> None:
        self.text = text
        self.simulator = simulator
        self.note = note
        self.report = report
        self.metrics = dict(metrics or {})

    def __str__(self) -> str:
        return self.text


def final_report(space: Any, evaluator: Any, point: Any, simulator: str = "auto"
                 ) -> FinalReport:
    """The full ELECTOR report of ``point`` (see the module docstring).
    ``simulator``: ``auto`` (the event simulator),
    ``event`` or ``analytical``."""
    from tools.codesign.costmodel import simulate_on_design
    from tools.codesign.evaluation import CostEvaluator

    if not isinstance(evaluator, CostEvaluator):
        text = ("best point (synthetic evaluator: no simulator report)\n"
                + space.describe(point))
        return FinalReport(text, "synthetic", "synthetic evaluator")
    from backends.elector.area import area_breakdown
    from backends.elector.assumptions import nonlinearity_notes
    from backends.elector.hierarchy import storage_levels
    from backends.elector.report import Report
    from backends.elector.target import build_target
    from tools.version import TOOL_VERSION

    if simulator == "auto":
        simulator = "event"
    note = ("final numbers from the event-driven simulator" if simulator == "event"
            else "final numbers from the analytical simulator (as asked)")
    prepared = evaluator.prepare(space, point)
    accelerator, accuracy, pipeline, static = (prepared.accelerator, prepared.accuracy,
                                               prepared.pipeline, prepared.static)
    result, mapped = simulate_on_design(static, accelerator, tile=prepared.tile,
                                        order=prepared.order, simulator=simulator,
                                        objective=evaluator.mapper_objective,
                                        pipeline=pipeline, check=True)
    training = evaluator.function == "train_step"
    report = Report(
        model=point.model, source=f"codesign point ({space.hardware.name}#{point.hardware})",
        function=evaluator.function, training=training, optimizer="adam" if training else None,
        batch=accelerator.mapping.batch, seq=evaluator.seq,
        pipeline=rerunnable_pipeline(pipeline, space, point, evaluator.mapper_objective),
        design=accelerator.name, design_hash=build_target(accelerator).design_hash,
        technology=accelerator.technology.name, clock_hz=accelerator.clock_hz,
        peak_macs_per_cycle=accelerator.peak_macs_per_cycle, tool_version=TOOL_VERSION,
        mapped=mapped, result=result, area=area_breakdown(accelerator, training),
        hierarchy=storage_levels(accelerator),
        notes=[note, *nonlinearity_notes(static.function, accelerator),
               f"schedule: {point.schedule.describe()}",
               (f"accuracy: {accuracy.value if accuracy.value is not None else 'not evaluated'}"
                f" (source: {accuracy.source})")])
    metrics = {"latency_cycles": result.cycles, "latency_ms": result.seconds * 1e3,
               "dynamic_energy_nj": result.energy.dynamic_nj,
               "leakage_energy_nj": result.energy.leakage_nj,
               "energy_nj": result.energy.total_nj,
               "area_mm2": area_breakdown(accelerator, training).total_mm2,
               "accuracy": accuracy.value}
    header = f"best pair: {space.describe(point)}\n{note}\n"
    return FinalReport(header + report.to_text(max_ops=25), simulator, note, report, metrics)


def design_reference(space: Any, point: Any) -> str:
    """``SPACE#INDEX`` naming a sweep point's design so that ``--hw`` and
    ``elector-map{hw=...}`` find it again: the library name for a library
    space, else the space's file."""
    from backends.elector import LIBRARY_DIR

    design_space = space.hardware.space
    filename = getattr(design_space, "filename", None)
    source = space.hardware.name
    if filename and Path(filename).is_file():
        path = Path(filename).resolve()
        library = Path(LIBRARY_DIR).resolve()
        source = path.stem if path.parent == library else str(path)
    return f"{source}#{point.hardware}"


def rerunnable_pipeline(pipeline: str, space: Any, point: Any, objective: str) -> str:
    """The report's pipeline line, with the mapping pass's options spelt out
    (``elector-map`` alone fails: it needs ``hw``), so it re-runs as printed.
    A schedule with a fixed tile and loop order adds its ``tile`` pass
    (:meth:`~tools.codesign.spaces.Schedule.tile_pass`) before the mapping;
    with loop order ``auto`` (the best order per op for that tile) there is no
    pass that says so, and the report's schedule note does."""
    from transcode_ir.passes import _format_scalar, format_pass

    accelerator = space.hardware.accelerator(point.hardware)
    tile = point.schedule.tile_pass(accelerator.mapping.tiles)
    if tile is not None:
        pipeline = f"{pipeline},{format_pass(tile)}"
    return (f"{pipeline},elector-map{{hw={_format_scalar(design_reference(space, point))},"
            f"objective={objective}}}")


def compare(pair: Mapping[str, Any], baseline: Mapping[str, Any]) -> dict[str, float | None]:
    """The paper's comparison of ``pair`` with ``baseline`` (metric dicts):
    accuracy difference (percentage points), latency ratio and energy ratio
    (baseline / pair: > 1 means the pair is faster / more frugal)."""
    def ratio(metric: str) -> float | None:
        a, b = pair.get(metric), baseline.get(metric)
        return b / a if a and b else None

    accuracy = None
    if pair.get("accuracy") is not None and baseline.get("accuracy") is not None:
        accuracy = 100.0 * (pair["accuracy"] - baseline["accuracy"])
    return {"accuracy_difference_pp": accuracy, "latency_ratio": ratio("latency_ms"),
            "energy_ratio": ratio("energy_nj"),
            "dynamic_energy_ratio": ratio("dynamic_energy_nj"), "area_ratio": ratio("area_mm2")}


def status_text(db: str | Path) -> str:
    """A summary of a results database: counts, failures by reason, sweeps, best."""
    from tools.codesign.store import ResultsStore

    with ResultsStore(db, readonly=True) as store, store.decoding():
        total, ok = store.count(), store.count("ok")
        lines = [f"{db}: {total} evaluated points ({ok} ok, {total - ok} failed)"]
        reasons: dict[str, int] = {}
        for result in store.results("failed"):
            reason = (result.reason or "failed").splitlines()[0]
            reason = reason.split(" at ")[0] if "cannot be mapped" in reason else reason
            reasons[reason[:90]] = reasons.get(reason[:90], 0) + 1
        for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1])[:5]:
            lines.append(f"  failed x{count}: {reason}")
        claims = store.claims()
        if claims:
            import time

            from tools.codesign.store import _abandoned

            now = time.time()
            gone = [c for c in claims if _abandoned((c["owner"], c["machine"], c["pid"],
                                                     c["start"], c["heartbeat"]), now)]
            live = [c for c in claims if c not in gone]
            if live:
                owners = sorted({(c["machine"].split("/")[0], c["pid"]) for c in live})
                lines.append(f"  being evaluated now: {len(live)} point"
                             f"{'s' if len(live) != 1 else ''} claimed by "
                             + ", ".join(f"pid {pid} on {host}" for host, pid in owners))
            if gone:
                lines.append(f"  {len(gone)} abandoned claim{'s' if len(gone) != 1 else ''} "
                             "(its sweep is gone; the next sweep that needs the point takes "
                             "it over)")
        sources = {}
        for row in store.rows():
            sources[row["accuracy_source"]] = sources.get(row["accuracy_source"], 0) + 1
        if sources:
            lines.append("  accuracy sources: " + ", ".join(f"{k} ({v})"
                                                           for k, v in sources.items()))
        for entry in store.sweeps():
            trials = store.trials(entry["id"])
            scores = [s for _, _, _, s in trials if s is not None]
            best = max(scores) if scores else None
            config = entry["config"]
            lines.append(f"sweep {entry['name']} [{entry['state']}]: strategy "
                         f"{config.get('strategy')}, seed {config.get('seed')}, "
                         f"{entry['trials']} trials ({entry['evaluated']} evaluated, "
                         f"{entry['trials'] - entry['evaluated']} from the store), best "
                         + (f"{best:.6f}" if best is not None else "-"))
            if best is not None:
                key = next(k for _, k, _, s in trials if s == best)
                stored = store.get(key)
                if stored is not None:
                    lines.append(f"  {stored.description}")
    return "\n".join(lines)


#: Columns of ``tcc sweep export --csv/--parquet``, before the hardware's
#: ``hw_*`` columns (see :func:`export_table`).
def status_document(db: str | Path) -> dict[str, Any]:
    """``tcc sweep status DB --json``: counts, failure reasons and every
    sweep (state, strategy, seed, trials, best score and design), numbers as
    numbers."""
    from tools.codesign.store import ResultsStore

    with ResultsStore(db, readonly=True) as store, store.decoding():
        total, ok = store.count(), store.count("ok")
        reasons: dict[str, int] = {}
        for result in store.results("failed"):
            reason = (result.reason or "failed").splitlines()[0][:200]
            reasons[reason] = reasons.get(reason, 0) + 1
        sweeps = []
        for entry in store.sweeps():
            trials = store.trials(entry["id"])
            scored = [(s, k) for _, k, _, s in trials if s is not None]
            best = max(scored) if scored else None
            stored = store.get(best[1]) if best else None
            config = entry["config"]
            sweeps.append({"name": entry["name"], "state": entry["state"],
                           "strategy": config.get("strategy"), "seed": config.get("seed"),
                           "objective": _objective_label(config.get("objective") or {}),
                           "trials": entry["trials"], "evaluated": entry["evaluated"],
                           "best_score": best[0] if best else None,
                           "best_key": best[1] if best else None,
                           "best_description": stored.description if stored else None})
    return {"database": str(db), "results": total, "ok": ok, "failed": total - ok,
            "failure_reasons": reasons, "sweeps": sweeps}


_EXPORT_COLUMNS = ("sweep", "sweep_state", "trial", "objective", "score",
                   "key", "status", "reason", "model", "batch", "sequence_length", "function",
                   "simulator", "pipeline", "tile", "order", "tau_i", "tau_t",
                   "accuracy", "accuracy_source", "latency_cycles", "latency_ms",
                   "dynamic_energy_nj", "leakage_energy_nj", "energy_nj", "area_mm2",
                   "seconds", "worker", "tool_version", "hardware")

#: The unit each dimension's base value is in, as a column-name suffix.
_UNIT_SUFFIX = {"frequency": "_hz", "size": "_bytes", "bandwidth": "_bytes_per_s",
                "energy": "_nj", "bits": "_bits"}


def hardware_columns(text: str) -> dict[str, Any]:
    """Every parameter of a design (DSL text) as ``hw_<block>_<key><unit>``
    columns: numbers in base units (Hz, bytes, bytes/s, nJ, bits; the unit in
    the name), switches as booleans, words as text; a value left to the
    technology's default (a bandwidth, an energy per access) is None.
    ``config`` (banks-ranks-channels) and ``tiles`` (b x x x y) are split."""
    from backends.elector.hwdsl import BLOCK_SCHEMAS, TOP_LEVEL_FIELDS, _syntax_and_settings

    _, settings, _ = _syntax_and_settings(text, "<export>", False)
    out: dict[str, Any] = {}
    fields = [((), key, spec) for key, spec in TOP_LEVEL_FIELDS.items() if key != "description"]
    fields += [((block,), key, spec) for block, schema in BLOCK_SCHEMAS.items()
               for key, spec in schema.fields.items()]
    for prefix, key, spec in fields:
        value = settings.values.get((*prefix, key), spec.default)
        name = "hw_" + "_".join((*prefix, key))
        if spec.kind == "config":
            for part, number in zip(("banks", "ranks", "channels"), value or (None,) * 3):
                out[f"{name}_{part}"] = number
        elif spec.kind == "dims":
            for part, number in zip(("b", "x", "y"), value or (None,) * 3):
                out[f"{name}_{part}"] = number
        elif spec.kind in _UNIT_SUFFIX:
            if value is not None:
                value = int(value) if spec.kind in ("size", "bits") else float(value)
            out[name + _UNIT_SUFFIX[spec.kind]] = value
        elif spec.kind == "count":
            out[name] = int(value) if value is not None else None
        else:
            out[name] = value
    return out


def _objective_label(objective: Mapping[str, Any]) -> str:
    kind = objective.get("kind", "")
    if kind == "pareto":
        return "pareto:" + ",".join(objective.get("metrics", []))
    if kind == "weighted":
        return "weighted (" + ("range" if objective.get("scale") == "range" else "paper") + \
            " scale)"
    return str(kind)


def export_table(db: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The export's columns and rows: one row per result and sweep that
    tried it (first trial), plus results no sweep of the file recorded
    (sweep empty).  Every field is typed (numbers are numbers)."""
    from tools.codesign.store import ResultsStore

    with ResultsStore(db, readonly=True) as store, store.decoding():
        results = store.rows()
        sweeps = store.sweeps()
        trials = {entry["id"]: store.trials(entry["id"]) for entry in sweeps}
    hardware_cache: dict[str, dict[str, Any]] = {}
    base: dict[str, dict[str, Any]] = {}
    hw_names: list[str] = []
    for row in results:
        identity = json.loads(row.get("identity") or "{}")
        evaluator = identity.get("evaluator") or json.loads(row.get("evaluator") or "{}")
        schedule = json.loads(row.get("schedule") or "{}")
        text = (identity.get("point") or {}).get("hardware")
        hardware: dict[str, Any] = {}
        if isinstance(text, str):
            if text not in hardware_cache:
                try:
                    hardware_cache[text] = hardware_columns(text)
                except Exception:            # a design this version cannot read: no hw columns
                    hardware_cache[text] = {}
            hardware = hardware_cache[text]
            for name in hardware:
                if name not in hw_names:
                    hw_names.append(name)
        record = {name: row.get(name) for name in _EXPORT_COLUMNS if name in row}
        record.update({
            "batch": hardware.get("hw_mapping_batch"),
            "sequence_length": evaluator.get("seq"),
            "function": evaluator.get("function"),
            "tile": schedule.get("tile"), "order": schedule.get("order"),
            "tau_i": schedule.get("tau_i"), "tau_t": schedule.get("tau_t"),
        })
        record.update(hardware)
        base[row["key"]] = record
    out: list[dict[str, Any]] = []
    used: set[tuple[int, str]] = set()
    for entry in sweeps:
        label = _objective_label(entry["config"].get("objective") or {})
        for seq, key, _, score in trials[entry["id"]]:
            if key in base and (entry["id"], key) not in used:
                used.add((entry["id"], key))
                out.append({**base[key], "sweep": entry["name"], "sweep_state": entry["state"],
                            "trial": seq, "objective": label, "score": score})
    in_a_sweep = {key for _, key in used}
    out.extend(record for key, record in base.items() if key not in in_a_sweep)
    columns = list(_EXPORT_COLUMNS) + hw_names + ["description"]
    for record in out:
        record.setdefault("description", None)
        for name in columns:
            value = record.setdefault(name, None)
            if isinstance(value, float) and not math.isfinite(value):
                record[name] = None
    descriptions = {row["key"]: row.get("description") for row in results}
    for record in out:
        record["description"] = descriptions.get(record["key"])
    return columns, out


def export_csv(db: str | Path, path: str | Path) -> int:
    """Write :func:`export_table` as CSV (``-``: standard output); returns the row count."""
    columns, rows = export_table(db)
    from transcode_ir.fileio import open_output

    with open_output(path, "w") as handle:           # atomic; OSError -> one message
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    return len(rows)


def export_parquet(db: str | Path, path: str | Path) -> int:
    """Write :func:`export_table` as Parquet (pyarrow, imported here only)."""
    columns, rows = export_table(db)
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        from transcode_ir.errors import UserError

        raise UserError("--parquet needs pyarrow (pip install pyarrow==26.0.1); --csv and "
                        "--json need nothing") from None
    table = pa.Table.from_pylist(rows, schema=_arrow_schema(pa, columns, rows))
    from transcode_ir.fileio import output_path

    with output_path(path) as temporary:
        pq.write_table(table, str(temporary))
    return len(rows)


def _arrow_schema(pa: Any, columns: list[str], rows: list[dict[str, Any]]) -> Any:
    """Column types: fixed for the known numeric columns, else from the values
    (by the unit suffix when a column is empty everywhere)."""
    fixed = {"trial": pa.int64(), "batch": pa.int64(), "sequence_length": pa.int64(),
             "latency_cycles": pa.float64(), "score": pa.float64(), "accuracy": pa.float64(),
             **{m: pa.float64() for m in ("latency_ms", "dynamic_energy_nj", "tau_i", "tau_t",
                                          "leakage_energy_nj", "energy_nj", "area_mm2",
                                          "seconds")}}
    fields = []
    for name in columns:
        kinds = {type(r[name]) for r in rows if r.get(name) is not None}
        if name in fixed:
            kind = fixed[name]
        elif not kinds and name.endswith(("_hz", "_per_s", "_nj")):
            kind = pa.float64()
        elif not kinds and name.endswith(("_bytes", "_bits")):
            kind = pa.int64()
        elif kinds == {bool}:
            kind = pa.bool_()
        elif kinds and kinds <= {int}:
            kind = pa.int64()
        elif kinds and kinds <= {int, float}:
            kind = pa.float64()
        else:
            kind = pa.string()
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


def export_json(db: str | Path, path: str | Path) -> int:
    """Write results, sweeps and trials as one JSON document; returns the row count."""
    from tools.codesign.store import ResultsStore

    with ResultsStore(db, readonly=True) as store, store.decoding():
        rows = store.rows()
        for row in rows:
            for column in ("identity", "point", "schedule", "evaluator", "metrics"):
                row[column] = json.loads(row[column])
        sweeps = store.sweeps()
        for entry in sweeps:
            entry["trials"] = [{"seq": s, "key": k, "cached": bool(c), "score": v}
                               for s, k, c, v in store.trials(entry["id"])]
    document = {"format": "transcode.codesign-results", "version": 1, "results": rows,
                "sweeps": sweeps}

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    from transcode_ir.fileio import write_text

    write_text(path, json.dumps(clean(document), indent=1) + "\n")
    return len(rows)
