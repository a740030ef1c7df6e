"""Benchmark of the event-driven simulator: speed on BERT-Base, and its gap to the
analytical simulator across the zoo.

    .venv/bin/python bench/bench_event_sim.py [--repeat N] [--no-gaps] [--models a,b]

Prints two tables:

1. BERT-Base, batch 4 x sequence 128, on each library design (acceltran-edge
   and acceltran-server): ``simulate_event`` (waves mode) on the mapped
   forward function and on the mapped training step -- wall clock and CPU
   time (best of ``--repeat``), the simulator's peak traced allocation
   (``tracemalloc``, a separate run) and the process's peak resident memory
   (``ru_maxrss``, which includes the imported model and the mapping) --
   against the targets: <= 10 s inference, <= 30 s training (CPU time), <= 2 GB.
   The number of waves the simulator processed and the tile-products behind
   them are printed too.
2. For every zoo model on acceltran-edge and acceltran-server, inference and a
   training step at batch 4 x sequence 128: the event simulator's latency and
   energy relative to the analytical simulator's, and the event simulator's
   CPU time.

On a shared, loaded machine the wall clock includes waiting for a CPU; CPU
time measures the code (the load average is printed).  ONNX exports (torch,
dynamic batch and sequence) are made once, untimed, into ``out/bench/``.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "out" / "bench"
BATCH, SEQ = 4, 128
ZOO = ("bert-tiny", "bert-mini", "bert-small", "bert-medium", "bert-base",
       "flexibert-mix-a", "flexibert-mix-b", "flexibert-mix-c")
TARGETS = {"inference": 10.0, "training": 30.0}
DESIGNS = ("acceltran-edge", "acceltran-server")
MEMORY_TARGET_MB = 2048


def onnx_path(model: str) -> Path:
    """The model's torchscript export (batch and sequence dynamic), made once."""
    name = f"{model}-b1-s128-torchscript.onnx"
    path = OUT / name if model == "bert-base" else OUT / "zoo" / name
    if not path.exists():
        from frontends.export import export_onnx

        print(f"exporting {model} to {path} (once, not timed) ...", file=sys.stderr)
        path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(model, path, exporter="torchscript", batch=1, seq=128)
    return path


def mapped_function(model: str, design: str, train: bool):  # -> (MappedFunction, Accelerator)
    from backends.elector import resolve_design
    from backends.elector.compile_pipeline import loss_output, training_pipeline
    from backends.elector.mapping import map_function
    from backends.elector.tiling import StaticFunction, schedule_function
    from tools.commands.compile import import_onnx_file
    from transcode_ir import run_pipeline

    module = import_onnx_file(onnx_path(model), BATCH, SEQ)
    pipeline = training_pipeline("adam", loss_output(module)) if train else "default"
    run_pipeline(module, pipeline, verify_each=False)
    static = StaticFunction(module, "train_step" if train else "forward")
    accelerator = resolve_design(design)
    mappings, plan = map_function(static, accelerator)
    return schedule_function(static, accelerator, mappings, plan=plan), accelerator


def best(function, repeat: int):
    """Best wall and CPU seconds of ``repeat`` calls, and the last result."""
    best_wall = best_cpu = float("inf")
    result = None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu, result


def traced_peak_mb(function) -> float:
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def table(header: tuple[str, ...], body: list[tuple[str, ...]]) -> str:
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]
    lines = []
    for line in [header, tuple("-" * w for w in widths)] + body:
        lines.append("  ".join([line[0].ljust(widths[0])]
                               + [c.rjust(w) for c, w in zip(line[1:], widths[1:])]).rstrip())
    return "\n".join(lines)


def speed(repeat: int) -> None:
    from backends.elector.event_sim import _Engine, simulate_event
    from backends.elector.tiling import hardware_consts

    rows = []
    for design in DESIGNS:
        for mode, train in (("inference", False), ("training", True)):
            mapped, accelerator = mapped_function("bert-base", design, train)
            run = functools.partial(simulate_event, mapped, accelerator)
            wall, cpu, result = best(run, repeat)
            peak = traced_peak_mb(functools.partial(run, compare=False))
            engine = _Engine(mapped, hardware_consts(accelerator, train), "waves")
            engine.run()
            tiles = sum(work.tiles for op in mapped.ops for work in op.work)
            ok = "yes" if cpu <= TARGETS[mode] and peak <= MEMORY_TARGET_MB else "NO"
            rows.append((design, mode, f"{len(mapped.ops):,}", f"{tiles:,}",
                         f"{engine.waves_issued:,}", f"{engine.waves_processed:,}",
                         f"{wall:,.2f} s", f"{cpu:,.2f} s", f"<= {TARGETS[mode]:g} s",
                         f"{peak:,.0f} MiB", ok, f"{result.cycles:,.0f}"))
            print("  " + "  ".join(rows[-1]), file=sys.stderr, flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"bench_event_sim: BERT-Base batch {BATCH} x seq {SEQ} (waves mode); "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(table(("design", "simulate_event", "ops", "tile work", "waves", "stepped", "wall",
                 "CPU", "target (CPU)", "peak traced", "meets", "cycles"), rows))
    print("(tile work: the contract's tiles -- tile-products, module tiles, 64-byte blocks, "
          "lane-cycles; waves: as grouped; stepped: waves simulated one by one, the rest "
          "skipped in closed form)")
    print(f"process peak RSS (model, mapping and simulator): {rss:,.0f} MiB "
          f"(target <= {MEMORY_TARGET_MB:,} MiB)")
    print()


def gaps(models: list[str]) -> None:
    from backends.elector.analytical import simulate_analytical
    from backends.elector.event_sim import simulate_event

    rows = []
    for model in models:
        for design in ("acceltran-edge", "acceltran-server"):
            for train in (False, True):
                mapped, accelerator = mapped_function(model, design, train)
                analytical = simulate_analytical(mapped, accelerator)
                cpu = time.process_time()
                event = simulate_event(mapped, accelerator, compare=False)
                cpu = time.process_time() - cpu
                latency = event.cycles / analytical.cycles - 1
                energy = event.energy.total_nj / analytical.energy.total_nj - 1
                largest = max(event.stalls.items(), key=lambda kv: kv[1])[0]
                rows.append((model, design, "training" if train else "inference",
                             f"{analytical.cycles:,.0f}", f"{event.cycles:,.0f}",
                             f"{latency:+.1%}", f"{energy:+.1%}", largest, f"{cpu:.2f} s"))
                print("  " + "  ".join(rows[-1]), file=sys.stderr, flush=True)
    print(f"event vs analytical, batch {BATCH} x seq {SEQ}:")
    print(table(("model", "design", "function", "analytical cycles", "event cycles",
                 "latency", "energy", "largest stall class", "event CPU"), rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-gaps", action="store_true", help="only the BERT-Base speed table")
    parser.add_argument("--models", default=",".join(ZOO),
                        help="zoo models of the gap table (comma separated)")
    args = parser.parse_args()
    speed(args.repeat)
    if not args.no_gaps:
        gaps([m for m in args.models.split(",") if m])
    return 0


if __name__ == "__main__":
    sys.exit(main())
