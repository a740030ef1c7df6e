"""Co-design benchmarks: evaluation throughput, sample efficiency, joint demo.

    python bench/bench_codesign.py throughput [--model bert-base] [--points 200] [--workers 2]
    python bench/bench_codesign.py efficiency [--out bench-out] [--seeds 5] [--random 2000]
                                              [--cap 1000] [--strategies boshcode,tpe,evolution]
    python bench/bench_codesign.py demo [--minutes 30] [--out demo-out]

throughput
    A random sweep of ``--points`` fresh designs of transcode-space for one
    model, analytical simulator, local pool of ``--workers`` processes, with
    the results store.  Prints evaluations per second (wall clock, models
    already prepared), the workers' time per evaluation (wall clock inside the
    worker, and CPU from ``/proc`` on Linux), the sweep process's own CPU per
    evaluation (strategy, keys, store, pool traffic), the rate that CPU allows
    on as many idle cores as workers (workers / (worker + sweep CPU per
    evaluation)) and the load average before and after each model, so the
    figure on an idle machine can be read off even when the bench shares the
    machine.  It first times a fixed pure-Python loop (the calibration of
    ``bench/bench_hwdsl.py``) alone and in as many concurrent processes as
    workers, so that a slow machine can be told apart from slow code.

efficiency
    Evaluations each strategy needs to reach the best objective that
    ``--random`` random samples find (per seed; median over ``--seeds``),
    hardware-only, fixed BERT-Base (batch from the design, sequence 128), the
    paper's weighted objective (accuracy term left out: fixed model), the
    analytical simulator.  BERT-Base cost about 70 ms of CPU per design here (about
    28 ms since the mapper work of issue 7),
    too slow for 5 x (2,000 + 3 strategies) fresh evaluations in minutes, so
    the bench uses a precomputed, exhaustively evaluated *product sub-space* of
    transcode-space (:data:`SUBSPACE`, 5,184 designs: every parameter keeps its
    smallest and largest values and one or two in between; all 11 memories are
    reduced to 4 representative ones).  Every design of it is evaluated once,
    for real, into the results database; the strategies then search that
    sub-space unchanged (it is an ordinary .hwdsl design space) and every
    proposal is answered from the store.  A strategy that does not reach the
    target within ``--cap`` evaluations is reported as ``> cap``.
    Each strategy run stops when it reaches the target (``run_sweep(...,
    target=...)``); with ``--to-optimum`` it goes on to the sub-space's true
    optimum (or the cap) and the evaluations to the optimum are reported too
    (random's count there is from its ``--random`` samples).

demo
    The joint co-design demo (``tcc codesign --demo``; tools/codesign/demo.py).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

SUBSPACE = """\
# A 5,184-point product sub-space of transcode-space for the sample-efficiency
# bench (bench/bench_codesign.py): each parameter keeps its extremes and a
# value or two between them.
design_space "transcode-subspace" {
  technology = "14nm"
  clock = 700 MHz
  data_width = 20 bits
  pe_array {
    pes in {64, 256, 1024}
    lanes in {8, 32, 128}
    macs_per_lane in {1, 16}
    nonlinearity = gelu
  }
  softmax { per_pe in {4, 32} }
  sparsity { pre = on  post = on  stochastic_rounding = off }
  activation_buffer { size in {4 MiB, 16 MiB, 64 MiB} }
  weight_buffer { size in {8 MiB, 32 MiB, 128 MiB} }
  mask_buffer { size = 4 MiB }
  main_memory in {
    { type = rram  config = 32-2-1 },
    { type = rram  config = 1-2-32 },
    { type = dram  config = 32-2-1 },
    { type = hbm   config = 32-1-4 },
  }
  mapping {
    tiles in {1x16x16, 4x32x32}
    batch in {4, 32}
  }
}
"""


def _space(hardware: str | Path, model: str = "bert-base"):
    from tools.codesign import HardwareSpace, JointSpace, ModelSpace

    return JointSpace(ModelSpace.single(model), HardwareSpace(str(hardware)))


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


# --------------------------------------------------------------------------- throughput


def _cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU seconds of processes (Linux ``/proc``; None elsewhere)."""
    total = 0.0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return total


def _worker_pids(pool) -> list[int]:
    processes = getattr(getattr(pool, "_pool", None), "_processes", None) or {}
    return sorted(processes)


def _reference_loop(_: object = None) -> float:
    """CPU seconds of a fixed pure-Python loop (bench/bench_hwdsl.py's
    calibration: 5M additions), the yardstick of how fast this machine runs
    Python right now."""
    started = time.process_time()
    total = 0
    for number in range(5_000_000):
        total += number
    return time.process_time() - started


def _calibration(workers: int) -> tuple[float, float]:
    """The reference loop's CPU seconds alone and, as the median of
    ``workers`` processes, when that many run it at once (the workers'
    situation: on a virtual machine two busy vCPUs can slow each other)."""
    from concurrent.futures import ProcessPoolExecutor

    alone = min(_reference_loop() for _ in range(3))
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_reference_loop, range(workers)))  # start the processes
        together = statistics.median(list(pool.map(_reference_loop, range(workers))))
    return alone, together


def throughput(args: argparse.Namespace) -> None:
    from tools.codesign import CostEvaluator, run_sweep
    from tools.codesign.executors import make_executor

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    loads = [os.getloadavg()[0]]
    calibration = _calibration(args.workers)
    for model in args.model.split(","):
        space = _space("transcode-space", model)
        evaluator = CostEvaluator(seq=args.seq)
        db = out / f"throughput-{model}.sqlite"
        if db.exists():
            db.unlink()
        with make_executor("local", args.workers) as pool:
            # Warm-up: workers start and prepare the model at every batch size.
            run_sweep(space, evaluator, "random", db=db, budget=3 * args.workers * 4,
                      seed=10_000, executor=pool, batch_size=args.workers * 4, name="warm-up")
            pids = _worker_pids(pool)
            workers_before = _cpu_seconds(pids)
            parent_before = time.process_time()
            started = time.perf_counter()
            result = run_sweep(space, evaluator, "random", db=db, budget=args.points, seed=1,
                               executor=pool, batch_size=args.workers * 8, name="timed")
            wall = time.perf_counter() - started
            parent = time.process_time() - parent_before
            workers_after = _cpu_seconds(pids)
        loads.append(os.getloadavg()[0])
        seconds = [t.outcome.seconds for t in result.trials if not t.cached]
        ok = sum(1 for t in result.trials if t.outcome.status == "ok")
        evaluated = max(result.evaluated, 1)
        worker_cpu = (None if not pids or workers_before is None or workers_after is None
                      else (workers_after - workers_before) / evaluated)
        # On idle cores (as many as workers, the sweep process sharing them):
        # the CPU an evaluation takes in a worker and in the sweep process.
        per_evaluation = ((worker_cpu if worker_cpu is not None else statistics.mean(seconds))
                          + parent / evaluated)
        rows.append([model, str(result.evaluated), f"{ok}", f"{result.evaluated / wall:.1f}",
                     f"{1e3 * statistics.mean(seconds):.1f}",
                     "-" if worker_cpu is None else f"{1e3 * worker_cpu:.1f}",
                     f"{1e3 * parent / evaluated:.1f}",
                     f"{args.workers / per_evaluation:.1f}"])
    print(f"throughput: random designs of transcode-space, analytical simulator, seq {args.seq}, "
          f"{args.workers} worker processes, results stored; {os.cpu_count()} cores, load "
          f"average (1 min) {' -> '.join(f'{v:.2f}' for v in loads)}")
    print(f"machine calibration (bench/bench_hwdsl.py's pure-Python loop of 5M additions, CPU): "
          f"{calibration[0]:.3f} s alone, {calibration[1]:.3f} s with {args.workers} running at "
          f"once (about 0.2 s on an idle 2020s desktop CPU; figures below scale with it)")
    print(_table(["model", "evaluated", "feasible", "eval/s (wall)", "worker ms/eval (wall)",
                  "worker CPU ms/eval", "parent CPU ms/eval",
                  f"eval/s on {args.workers} idle cores (from CPU)"], rows))


# --------------------------------------------------------------------------- efficiency


def _evaluations_to_reach(result, target: float) -> int | None:
    best = -math.inf
    for index, trial in enumerate(result.trials, start=1):
        best = max(best, trial.score)
        if best >= target - 1e-12:
            return index
    return None


def efficiency(args: argparse.Namespace) -> None:
    from tools.codesign import CostEvaluator, WeightedObjective, run_sweep
    from tools.codesign.executors import make_executor
    from tools.codesign.progress import Progress

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    hwdsl = out / "transcode-subspace.hwdsl"
    hwdsl.write_text(SUBSPACE)
    space = _space(hwdsl)
    evaluator = CostEvaluator()             # the default sequence length
    objective = WeightedObjective()
    db = out / "efficiency.sqlite"
    started = time.perf_counter()
    with make_executor("local", args.workers) as pool:
        everything = run_sweep(space, evaluator, "random", db=db, budget=space.size, seed=0,
                               objective=objective, executor=pool, batch_size=32,
                               name="exhaustive", progress=Progress(interval=30, plain=True))
    optimum = everything.best.score
    print(f"sub-space: {space.hardware.size} designs, evaluated exhaustively "
          f"({everything.evaluated} now, {everything.reused} stored; "
          f"{time.perf_counter() - started:.0f} s); "
          f"{sum(t.outcome.status != 'ok' for t in everything.trials)} infeasible; "
          f"true optimum {optimum:.6f}")
    print(f"  {space.describe(everything.best.point)}")
    strategies = args.strategies.split(",")
    needed: dict[str, list[int | None]] = {s: [] for s in strategies}
    to_optimum: dict[str, list[int | None]] = {s: [] for s in ["random", *strategies]}
    bests: dict[str, list[float]] = {s: [] for s in strategies}
    targets = []
    curves: dict[str, list[float]] = {}
    for seed in range(args.seeds):
        baseline = run_sweep(space, evaluator, "random", db=db, budget=args.random, seed=seed + 1,
                             objective=objective, executor="inline", name=f"random-{seed}")
        target = baseline.best.score
        targets.append(target)
        to_optimum["random"].append(_evaluations_to_reach(baseline, optimum))
        curves[f"random seed {seed}"] = baseline.best_so_far()
        for strategy in strategies:
            t0 = time.perf_counter()
            result = run_sweep(space, evaluator, strategy, db=db, budget=args.cap, seed=seed + 1,
                               objective=objective, executor="inline",
                               name=f"{strategy}-{seed}", batch_size=8,
                               target=optimum if args.to_optimum else target)
            count = _evaluations_to_reach(result, target)
            needed[strategy].append(count)
            to_optimum[strategy].append(_evaluations_to_reach(result, optimum))
            bests[strategy].append(result.best.score)
            curves[f"{strategy} seed {seed}"] = result.best_so_far()
            print(f"seed {seed}: target {target:.6f} (random best of {args.random}); "
                  f"{strategy}: {count if count else f'> {args.cap}'} evaluations "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)

    def median(values: list[int | None]) -> str:
        finite = sorted(v if v is not None else math.inf for v in values)
        value = statistics.median(finite)
        return f"> {args.cap}" if math.isinf(value) else f"{value:g}"

    rows = []
    for strategy in strategies:
        values = needed[strategy]
        rows.append([strategy, median(values),
                     ", ".join(str(v) if v else f">{args.cap}" for v in values),
                     f"{sum(v is not None for v in values)}/{len(values)}",
                     median(to_optimum[strategy]) if args.to_optimum else "-"])
    print()
    print(f"sample efficiency: BERT-Base on the transcode sub-space ({space.hardware.size} designs),"
          f" analytical simulator, weighted objective; target = best of {args.random} random "
          f"samples (median target {statistics.median(targets):.6f}, optimum {optimum:.6f})")
    rows.append(["random", f"{args.random} (by definition)", "-", "-",
                 median(to_optimum["random"])])
    print(_table(["strategy", "median evaluations", "per seed", "reached",
                  "median evaluations to the optimum"], rows))
    from tools.codesign.plots import plot_best_so_far

    mean_curves = {}
    for strategy in ["random", *strategies]:
        series = [v for k, v in curves.items() if k.startswith(f"{strategy} seed")]
        length = min(len(s) for s in series)
        mean_curves[strategy] = [statistics.mean(s[i] for s in series) for i in range(length)]
    path = plot_best_so_far(mean_curves, out / "efficiency_best_so_far.png",
                            "BERT-Base, transcode sub-space: best score (mean of seeds)",
                            reference=optimum, log_x=True)
    print(f"plot: {path}")


def demo(args: argparse.Namespace) -> None:
    from tools.codesign.demo import DemoSettings, run_demo

    run_demo(DemoSettings(minutes=args.minutes, db=str(Path(args.out) / "demo.sqlite"),
                          plots=args.out, workers=args.workers, seed=args.seed))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="bench", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--model", default="bert-base,bert-tiny")
    t.add_argument("--points", type=int, default=200)
    t.add_argument("--workers", type=int, default=2)
    from tools.options import SEQUENCE_LENGTH

    t.add_argument("--seq", type=int, default=SEQUENCE_LENGTH)
    t.add_argument("--out", default="bench-out")
    t.set_defaults(func=throughput)
    e = sub.add_parser("efficiency")
    e.add_argument("--out", default="bench-out")
    e.add_argument("--seeds", type=int, default=5)
    e.add_argument("--random", type=int, default=2000)
    e.add_argument("--cap", type=int, default=1000)
    e.add_argument("--workers", type=int, default=2)
    e.add_argument("--strategies", default="boshcode,tpe,evolution")
    e.add_argument("--to-optimum", action="store_true",
                   help="run each strategy until the sub-space's true optimum (or the cap) "
                        "and report evaluations to it too")
    e.set_defaults(func=efficiency)
    d = sub.add_parser("demo")
    d.add_argument("--minutes", type=float, default=30.0)
    d.add_argument("--out", default="demo-out")
    d.add_argument("--workers", type=int, default=2)
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=demo)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
