"""Benchmark of the hardware DSL: parse and validate speed.

    .venv/bin/python bench/bench_hwdsl.py [--repeat N]

Prints a table of:
- the first parse (builds the LALR parser from hwdsl.lark),
- parse + validate of one library design, after the first (target <= 5 ms),
- 1,000 distinct designs (printed from points of transcode-space): syntax
  only, and parse + validate (target <= 1 s),
- loading transcode-space and building its points.

Each figure is given as wall-clock time and as CPU time of this process
(``time.process_time``), best of ``--repeat`` runs (default 3).  On a shared,
loaded machine the wall clock counts time spent waiting for a CPU; the CPU
time is the better measure of the code, and the load average is printed so
that a reader can tell which situation a run was in.  The last line times a
fixed pure-Python loop, to scale the figures to another machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _best(function, repeat: int) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds of ``repeat`` calls."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu


def _verdict(cpu_seconds: float, wall_seconds: float, target: float) -> str:
    if wall_seconds <= target:
        return "met"
    if cpu_seconds <= target:
        return "met in CPU time (wall clock slowed by machine load)"
    return "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    from backends.elector import format_design, list_library, parse_design, resolve_space
    from backends.elector.hwdsl import parse_syntax
    import_seconds = time.perf_counter() - start

    rows: list[tuple[str, str, str, str]] = []
    from backends.elector import LIBRARY_DIR

    edge_path = LIBRARY_DIR / "acceltran-edge.hwdsl"
    edge_text = edge_path.read_text()

    wall, cpu = time.perf_counter(), time.process_time()
    parse_design(edge_text, str(edge_path))
    first_wall, first_cpu = time.perf_counter() - wall, time.process_time() - cpu
    rows.append(("import backends.elector", f"{import_seconds * 1e3:.1f} ms", "", ""))
    rows.append(("first parse (builds LALR tables + loads 14nm)", f"{first_wall * 1e3:.1f} ms",
                 f"{first_cpu * 1e3:.1f} ms", ""))

    for entry in list_library():
        if entry.kind != "design":
            continue
        text = entry.path.read_text()
        walls, cpus = [], []
        for _ in range(200):
            wall, cpu = time.perf_counter(), time.process_time()
            parse_design(text, str(entry.path))
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        rows.append((f"parse+validate {entry.name} (median of 200)", f"{wall * 1e3:.3f} ms",
                     f"{cpu * 1e3:.3f} ms", "target <= 5 ms: " + _verdict(cpu, wall, 5e-3)))

    space = resolve_space("transcode-space")
    texts = [format_design(point) for point in space.sample(1000, seed=0)]
    lines = sum(text.count("\n") for text in texts) / len(texts)
    wall, cpu = _best(lambda: [parse_syntax(text, "bench.hwdsl") for text in texts], args.repeat)
    rows.append((f"1,000 designs ({lines:.0f} lines each): syntax only", f"{wall:.3f} s",
                 f"{cpu:.3f} s", ""))
    wall, cpu = _best(lambda: [parse_design(text, "bench.hwdsl") for text in texts], args.repeat)
    rows.append(("1,000 designs: parse+validate", f"{wall:.3f} s", f"{cpu:.3f} s",
                 "target <= 1 s: " + _verdict(cpu, wall, 1.0)))

    space_path = next(entry.path for entry in list_library() if entry.name == "transcode-space")
    from backends.elector import load_space

    wall, cpu = _best(lambda: load_space(space_path), args.repeat)
    rows.append(("load transcode-space (checks every alternative)", f"{wall * 1e3:.1f} ms",
                 f"{cpu * 1e3:.1f} ms", f"{space.size:,} points"))
    indices = space.sample_indices(1000, seed=1)
    wall, cpu = _best(lambda: [space.point(index) for index in indices], args.repeat)
    rows.append(("build 1,000 points of transcode-space", f"{wall:.3f} s", f"{cpu:.3f} s", ""))

    # Issue 13: one block of many entries (parsing was quadratic in them:
    # 100k entries took 249.6 s).  A 1 MiB file, a duplicate key at the
    # second entry; the error is reported after the whole file is read.
    from transcode_ir.errors import UserError

    entries = 60_000
    body = "\n".join(f"  k{i} = {i}" for i in range(entries))
    big = f'accelerator "x" {{\n pe_array {{\n  pes = 64\n  pes = 65\n{body}\n }}\n}}\n'

    def parse_big() -> None:
        try:
            parse_design(big, "big.hwdsl")
        except UserError:
            pass

    wall, cpu = _best(parse_big, args.repeat)
    rows.append((f"{len(big) / 2**20:.2f} MiB file, {entries:,} entries in one block "
                 "(duplicate key)", f"{wall:.3f} s", f"{cpu:.3f} s",
                 "linear (was quadratic: 100k entries 249.6 s)"))

    def reference_loop() -> None:
        total = 0
        for number in range(5_000_000):
            total += number

    wall, cpu = _best(reference_loop, args.repeat)
    rows.append(("calibration: pure-Python loop of 5M additions", f"{wall:.3f} s", f"{cpu:.3f} s",
                 "~0.2 s on an idle 2020s desktop CPU"))

    width = max(len(row[0]) for row in rows)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"hardware DSL benchmark (python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {load:.2f})")
    print(f"{'measurement'.ljust(width)}  {'wall':>10}  {'cpu':>10}  note")
    print(f"{'-' * width}  {'-' * 10}  {'-' * 10}  {'-' * 20}")
    for name, wall_text, cpu_text, note in rows:
        print(f"{name.ljust(width)}  {wall_text:>10}  {cpu_text:>10}  {note}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
