"""Benchmark of the hardware DSL: parse and validate speed.

    .venv/bin/python bench/bench_hwdsl.py [--repeat N]

Prints a table of:
- the first parse (builds the LALR parser from hwdsl.lark),
- parse + validate of one library design, after the first (target <= 5 ms),
- 1,000 distinct designs (printed from points of transcode-space): syntax
  only, and parse + validate (target <= 1 s),
- loading transcode-space and building its points.

Times are the best of ``--repeat`` runs (default 3) of wall-clock time; the
machine's load average is printed beside them, because a shared machine can
slow every figure down.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _best(function, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    from backends.elector import format_design, list_library, parse_design, resolve_space
    from backends.elector.hwdsl import parse_syntax
    import_seconds = time.perf_counter() - start

    rows: list[tuple[str, str, str]] = []
    edge_path = next(entry.path for entry in list_library() if entry.name == "acceltran-edge")
    edge_text = edge_path.read_text()

    start = time.perf_counter()
    parse_design(edge_text, str(edge_path))
    first = time.perf_counter() - start
    rows.append(("import backends.elector", f"{import_seconds * 1e3:8.1f} ms", ""))
    rows.append(("first parse (builds LALR parser + loads 14nm)", f"{first * 1e3:8.1f} ms", ""))

    for entry in list_library():
        if entry.kind != "design":
            continue
        text = entry.path.read_text()
        samples = []
        for _ in range(200):
            begin = time.perf_counter()
            parse_design(text, str(entry.path))
            samples.append(time.perf_counter() - begin)
        median = statistics.median(samples)
        rows.append((f"parse+validate {entry.name} (median of 200)", f"{median * 1e3:8.3f} ms",
                     "target <= 5 ms: " + ("met" if median <= 5e-3 else "MISSED")))

    space = resolve_space("transcode-space")
    texts = [format_design(point) for point in space.sample(1000, seed=0)]
    syntax_time = _best(lambda: [parse_syntax(text, "bench.hwdsl") for text in texts],
                        args.repeat)
    full_time = _best(lambda: [parse_design(text, "bench.hwdsl") for text in texts],
                      args.repeat)
    rows.append(("1,000 designs: syntax only (Lark LALR)", f"{syntax_time:8.3f} s", ""))
    rows.append(("1,000 designs: parse+validate", f"{full_time:8.3f} s",
                 "target <= 1 s: " + ("met" if full_time <= 1.0 else "MISSED")))

    space_path = next(entry.path for entry in list_library() if entry.name == "transcode-space")
    from backends.elector import load_space

    load_time = _best(lambda: load_space(space_path), args.repeat)
    rows.append(("load transcode-space (checks every alternative)", f"{load_time * 1e3:8.1f} ms",
                 f"{space.size:,} points"))
    indices = space.sample_indices(1000, seed=1)
    point_time = _best(lambda: [space.point(index) for index in indices], args.repeat)
    rows.append(("build 1,000 points of transcode-space", f"{point_time:8.3f} s", ""))

    width = max(len(row[0]) for row in rows)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"hardware DSL benchmark (python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {load:.2f})")
    print(f"{'measurement'.ljust(width)}  {'time':>11}  note")
    print(f"{'-' * width}  {'-' * 11}  {'-' * 20}")
    for name, value, note in rows:
        print(f"{name.ljust(width)}  {value:>11}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
