"""``tcc compile --trace``: the Chrome trace event format (issue 14 item 2).

The trace is checked with a strict validator of the format written here from
its specification (the "Trace Event Format" document: the JSON object form
with ``traceEvents``; complete events ``ph: "X"`` with ``ts``/``dur`` in
microseconds; metadata ``ph: "M"`` naming processes and threads; counters
``ph: "C"``) plus the rule trace viewers apply to slices of one thread: they
must nest.  (No PyPI parser of the format works offline: Perfetto's trace
processor downloads its binary on first use.)  Then its slices are compared
with the JSON report of the same run: one slice per op at the op's times,
one per op and stall class with the stall cycles.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict

import pytest

from backends.elector.trace import trace_from_json, track_label

METADATA = {"process_name": "name", "thread_name": "name", "process_sort_index": "sort_index",
            "thread_sort_index": "sort_index"}

# One xdist worker builds the shared fixtures (compiles, sweep database) once.
pytestmark = pytest.mark.xdist_group("reports")


def _refuse_constant(name: str) -> float:
    raise AssertionError(f"{name} is not JSON")


def validate(trace: dict) -> dict[tuple[int, int], str]:
    """Strict checks of the Chrome trace event format; the thread names."""
    assert isinstance(trace, dict) and isinstance(trace.get("traceEvents"), list)
    assert trace.get("displayTimeUnit") in (None, "ms", "ns")
    names: dict[tuple[int, int], str] = {}
    slices: dict[tuple[int, int], list[tuple[float, float]]] = defaultdict(list)
    for event in trace["traceEvents"]:
        assert isinstance(event, dict), event
        ph = event.get("ph")
        assert ph in ("X", "M", "C"), event
        assert isinstance(event.get("name"), str) and event["name"], event
        assert isinstance(event.get("pid"), int), event
        if ph == "M":
            assert event["name"] in METADATA, event
            value = event["args"][METADATA[event["name"]]]
            assert isinstance(value, str if METADATA[event["name"]] == "name" else int), event
            if event["name"] == "thread_name":
                assert isinstance(event.get("tid"), int)
                assert (event["pid"], event["tid"]) not in names, "thread named twice"
                names[(event["pid"], event["tid"])] = value
            continue
        ts = event.get("ts")
        assert isinstance(ts, (int, float)) and math.isfinite(ts) and ts >= 0, event
        if ph == "C":
            assert event["args"] and all(isinstance(v, (int, float)) and math.isfinite(v)
                                         for v in event["args"].values()), event
            continue
        assert isinstance(event.get("tid"), int), event
        dur = event.get("dur")
        assert isinstance(dur, (int, float)) and math.isfinite(dur) and dur >= 0, event
        assert isinstance(event.get("args", {}), dict)
        slices[(event["pid"], event["tid"])].append((ts, ts + dur))
    for track, spans in slices.items():
        assert track in names, f"slices on unnamed thread {track}"
        spans.sort(key=lambda s: (s[0], -s[1]))
        stack: list[float] = []
        for start, end in spans:                 # slices of one thread must nest
            while stack and stack[-1] <= start + 1e-9:
                stack.pop()
            assert not stack or end <= stack[-1] + 1e-9, f"slices overlap on {names[track]}"
            stack.append(end)
    return names


def test_trace_matches_the_json_report(compiled) -> None:
    report = json.loads(compiled["json"].read_text())
    trace = json.loads(compiled["trace"].read_text(), parse_constant=_refuse_constant)
    names = validate(trace)
    us = 1e6 / report["design"]["clock_hz"]
    events = trace["traceEvents"]
    ops = [e for e in events if e["ph"] == "X" and e["cat"] == "op"]
    stalls = [e for e in events if e["ph"] == "X" and e["cat"] == "stall"]
    assert len(ops) == len(report["ops"]) > 20
    by_index = {e["args"]["index"]: e for e in ops}
    for op in report["ops"]:
        event = by_index[op["index"]]
        assert event["name"] == (op["loc"] or op["kind"])
        assert event["ts"] == pytest.approx(op["start_cycle"] * us, rel=1e-12, abs=1e-9)
        assert event["dur"] == pytest.approx(op["cycles"] * us, rel=1e-9, abs=1e-9)
        track = names[(event["pid"], event["tid"])]
        assert track.split(" #")[0] == track_label(op["unit"])   # one track set per class
    expected = {(op["index"], name): cycles for op in report["ops"]
                for name, cycles in op["stalls"].items() if cycles > 0}
    assert expected and len(stalls) == len(expected)
    for event in stalls:
        key = (event["args"]["op"], event["args"]["class"])
        assert event["name"] == f"stall: {key[1]}"
        assert event["dur"] == pytest.approx(expected[key] * us, rel=1e-9)
        assert names[(event["pid"], event["tid"])].startswith(
            track_label(report["ops"][key[0]]["unit"]) + " stalls")
    total = max(e["ts"] + e["dur"] for e in ops)
    assert total == pytest.approx(report["summary"]["cycles"] * us, rel=1e-9)
    tracks = {names[(e["pid"], e["tid"])].split(" #")[0] for e in ops}
    assert tracks == {track_label(op["unit"]) for op in report["ops"]}
    assert any(e["ph"] == "C" for e in events)          # utilisation counters


def test_trace_of_a_json_file_and_the_analytical_simulator(reports) -> None:
    """From a JSON report alone (no stalls: the analytical simulator)."""
    report = reports["analytical"].to_json()
    trace = trace_from_json(json.loads(json.dumps(report, default=float)))
    validate(trace)
    ops = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert len(ops) == len(report["ops"]) and all(e["cat"] == "op" for e in ops)
