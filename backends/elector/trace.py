"""Trace export of a ``tcc compile`` report (``--trace trace.json``).

Writes the Chrome trace event format (the JSON object form: ``traceEvents``
plus ``displayTimeUnit`` and ``otherData``), which Perfetto
(ui.perfetto.dev, "Open trace file") and ``chrome://tracing`` open:

* one process: the model on the design, with the simulator's name;
* one track (thread) per module class that ran ops -- "MAC lanes",
  "DMA engines", "layer-norm modules", ... as the text report names them.
  Ops of one class can overlap in time (the event simulator runs several
  on disjoint modules of the class), and a trace viewer needs the slices of
  one track to nest, so overlapping ops go to further tracks of the class
  ("MAC lanes #2", ...), each op on the first track free at its start.  The
  report does not say which processing-element group ran an op, so these
  tracks are overlap lanes, not PE groups;
* each op is a complete event (``ph: "X"``) named by its source location
  (its kind when it has none), from ``start_cycle`` to ``end_cycle``, with
  the op's figures in ``args``;
* stalls (event simulator) are their own slices, on a "<class> stalls"
  track: one slice per op and stall class with cycles, named
  ``stall: <class>``, lasting the stall cycles.  The simulator reports the
  cycles an op's module array waited per class, not when it waited, so the
  slices of an op are laid end to end from its start (a reading aid: their
  lengths are exact, their positions are not);
* utilisation over time, when the report has a timeline, as one counter
  track per class (``ph: "C"``).

Times: ``ts`` and ``dur`` are microseconds (the format's unit) of the
design's clock, ``cycles / clock_hz * 1e6``; ``args`` keep the cycles.
Built from the JSON report (:meth:`Report.to_json`), so
``tcc compile --json`` output can be turned into a trace later too
(:func:`trace_from_json`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["PID", "track_label", "trace_from_json", "write_trace"]

PID = 1
_STALL_TID_BASE = 1000
_COUNTER_LABELS = {"mac": "mac_lane", "layernorm": "layer_norm"}


def track_label(unit: str) -> str:
    """The text report's name of a module class (``mac`` -> ``MAC lanes``)."""
    from backends.elector.costing import ENERGY_LABELS

    key = {"mac": "mac_lane", "layernorm": "layer_norm"}.get(unit, unit)
    return ENERGY_LABELS.get(key, unit)


def _lanes(items: Sequence[tuple[float, float, Any]]) -> list[list[tuple[float, float, Any]]]:
    """Greedy interval packing: each item on the first lane free at its start."""
    lanes: list[list[tuple[float, float, Any]]] = []
    ends: list[float] = []
    for item in sorted(items, key=lambda it: (it[0], it[1])):
        for index, end in enumerate(ends):
            if end <= item[0]:
                lanes[index].append(item)
                ends[index] = item[1]
                break
        else:
            lanes.append([item])
            ends.append(item[1])
    return lanes


def trace_from_json(report: Mapping[str, Any],
                    timeline: Sequence[Any] | None = None) -> dict[str, Any]:
    """The trace (a JSON-ready dict) of a JSON report; ``timeline``: the
    result's :class:`~backends.elector.schedule.TimelinePoint` list, for
    counter tracks (not part of the JSON report)."""
    clock = float(report["design"]["clock_hz"])
    us = 1e6 / clock

    def meta(name: str, tid: int, args: dict[str, Any]) -> dict[str, Any]:
        return {"ph": "M", "name": name, "pid": PID, "tid": tid, "args": args}

    model, design = report["model"], report["design"]
    events: list[dict[str, Any]] = [
        meta("process_name", 0, {"name": f"{model['name']} on {design['name']} "
                                          f"({report['simulator']} simulator)"}),
        meta("process_sort_index", 0, {"sort_index": 0}),
    ]
    units: list[str] = []
    for op in report["ops"]:
        if op["unit"] not in units:
            units.append(op["unit"])
    tid = 0
    for unit_index, unit in enumerate(units):
        label = track_label(unit)
        ops = [(op["start_cycle"], op["end_cycle"], op) for op in report["ops"]
               if op["unit"] == unit]
        for lane_index, lane in enumerate(_lanes(ops)):
            tid += 1
            name = label if lane_index == 0 else f"{label} #{lane_index + 1}"
            events.append(meta("thread_name", tid, {"name": name}))
            events.append(meta("thread_sort_index", tid, {"sort_index": tid}))
            for start, end, op in lane:
                events.append({
                    "ph": "X", "cat": "op", "name": op["loc"] or op["kind"], "pid": PID,
                    "tid": tid, "ts": start * us, "dur": (end - start) * us,
                    "args": _op_args(op)})
        stalls = []
        for op in report["ops"]:
            if op["unit"] != unit:
                continue
            parts = [(name, cycles) for name, cycles in op.get("stalls", {}).items() if cycles > 0]
            if parts:
                total = sum(c for _, c in parts)
                stalls.append((op["start_cycle"], op["start_cycle"] + total, (op, parts)))
        for lane_index, lane in enumerate(_lanes(stalls)):
            stall_tid = _STALL_TID_BASE + 100 * unit_index + lane_index
            events.append(meta("thread_name", stall_tid, {
                "name": f"{label} stalls" + (f" #{lane_index + 1}" if lane_index else "")}))
            events.append(meta("thread_sort_index", stall_tid, {"sort_index": stall_tid}))
            for start, _, (op, parts) in lane:
                at = start
                for name, cycles in parts:
                    events.append({
                        "ph": "X", "cat": "stall", "name": f"stall: {name}", "pid": PID,
                        "tid": stall_tid, "ts": at * us, "dur": cycles * us,
                        "args": {"op": op["index"], "source": op["loc"], "class": name,
                                 "cycles": cycles,
                                 "placement": "cycles exact; laid end to end from the op's "
                                              "start (the simulator does not record when)"}})
                    at += cycles
    if timeline:
        for point in timeline:
            for name, value in point.utilisation.items():
                key = _COUNTER_LABELS.get(name, name)
                if name == "sparsity":
                    continue
                events.append({"ph": "C", "name": f"utilisation: {track_label(key)}",
                               "pid": PID, "ts": point.cycle * us,
                               "args": {"fraction": float(value)}})
    return {
        "traceEvents": events,
        "displayTimeUnit": "ns",
        "otherData": {"tool": f"tcc {report['tool']['version']}", "model": model["name"],
                      "design": design["name"], "design_hash": design["hash"],
                      "clock_hz": clock, "simulator": report["simulator"],
                      "pipeline": report["pipeline"], "cycles": report["summary"]["cycles"]},
    }


def _op_args(op: Mapping[str, Any]) -> dict[str, Any]:
    args = {key: op[key] for key in ("index", "kind", "loc", "layer", "unit", "tile", "order",
                                     "start_cycle", "end_cycle", "cycles", "roofline_cycles",
                                     "bound", "macs", "density") if key in op}
    args["dynamic_nj"] = sum(op.get("dynamic_nj", {}).values())
    stalls = {k: v for k, v in op.get("stalls", {}).items() if v}
    if stalls:
        args["stalls"] = stalls
    return args


def write_trace(report: Any, path: str | Path) -> Path:
    """Write the trace of ``report`` (a :class:`~backends.elector.report.Report`
    or its JSON dict) to ``path``."""
    if isinstance(report, Mapping):
        trace = trace_from_json(report)
    else:
        trace = trace_from_json(report.to_json(), report.result.timeline)
    return write_text(path, json.dumps(trace, separators=(",", ":"), default=float) + "\n",
                      "--trace")


def write_text(path: str | Path, text: str, flag: str) -> Path:
    """Write an output file atomically (:mod:`transcode_ir.fileio`), making
    its folder when missing; a path that cannot be written is one error
    naming the flag and the path."""
    from transcode_ir.errors import UserError
    from transcode_ir.fileio import FileError, describe_os_error
    from transcode_ir.fileio import write_text as write_atomically

    path = Path(path)
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise FileError(describe_os_error(err, path.parent, "create the folder")) from None
        return write_atomically(path, text)
    except UserError as err:
        raise UserError(f"{flag}: {err}") from None
