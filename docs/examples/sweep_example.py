"""A scripted sweep with the tools.codesign Python API (docs/codesign.md).

Costs BERT-Tiny on designs of the TransCODE hardware space with the ELECTOR
analytical simulator, twice -- random search and regularised evolution, in
one results database -- under an area limit; then reads the database back,
prints the Pareto front of latency against energy, writes plots and a CSV,
and prints the best design's full report.

    python docs/examples/sweep_example.py [OUTPUT_DIR] [BUDGET]

Run it again and it resumes: every point is already in the database, so
nothing is evaluated twice.  The test suite runs it (tests/codesign).
The ``if __name__ == "__main__"`` guard matters: the local executor starts
worker processes with ``spawn``, which re-imports this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tools.codesign import (
    Constraints,
    CostEvaluator,
    HardwareSpace,
    JointSpace,
    ModelSpace,
    ResultsStore,
    ScheduleSpace,
    WeightedObjective,
    final_report,
    make_executor,
    pareto_front,
    run_sweep,
    write_plots,
)
from tools.codesign.progress import Progress
from tools.codesign.report import export_csv


def main(output: Path, budget: int) -> None:
    output.mkdir(parents=True, exist_ok=True)
    db = output / "example.sqlite"

    # 1. The space: one model (a hardware-only search), a hardware design space
    #    from the library, and schedules: let the mapper choose tiles per op,
    #    or force the design's tile with the best loop order per op.
    space = JointSpace(ModelSpace.single("bert-tiny"), HardwareSpace("transcode-space"),
                       ScheduleSpace(tiles=("auto", "design")))

    # 2. What a point costs: the analytical simulator at sequence length 64;
    #    the model is exported and imported once (cached on disk), then costed
    #    on every design.
    evaluator = CostEvaluator(simulator="analytical", seq=64)

    # 3. What we want: the paper's weighted score, with a hard area limit.
    objective = WeightedObjective(constraints=Constraints(max_area_mm2=500.0))
    print(objective.describe())

    # 4. Two strategies into one database (points one of them evaluated are
    #    answered from the store for the other), on one pool of two worker
    #    processes (each keeps the prepared model between evaluations).
    results = {}
    with make_executor("local", workers=2) as pool:
        for strategy in ("random", "evolution"):
            results[strategy] = run_sweep(
                space, evaluator, strategy, db=db, budget=budget, seed=0, objective=objective,
                executor=pool, batch_size=8, progress=Progress(),
                strategy_options={"population": 8, "sample": 3} if strategy == "evolution"
                else {})
            print(results[strategy].summary())

    # 5. Read the store back: every evaluated point, with status and metrics.
    with ResultsStore(db) as store:
        rows = [row for row in store.rows() if row["status"] == "ok"]
        print(f"{store.count()} points stored, {len(rows)} feasible; sweeps: "
              + ", ".join(f"{s['name']} ({s['trials']} trials)" for s in store.sweeps()))
    front = pareto_front(rows, lambda r: (r["latency_ms"], r["energy_nj"]), ("min", "min"))
    print("Pareto front, latency (ms) against energy (uJ):")
    for row in sorted(front, key=lambda r: r["latency_ms"]):
        print(f"  {row['latency_ms']:9.4f} ms  {row['energy_nj'] / 1e3:10.1f} uJ  "
              f"{row['area_mm2']:8.1f} mm2  {row['hardware']}")

    # 6. Plots, a CSV, and the best design's full report.
    best = max(results.values(), key=lambda r: r.best.score if r.best else float("-inf")).best
    for path in write_plots(db, output, best=best.outcome.metrics):
        print(f"wrote {path}")
    print(f"wrote {export_csv(db, output / 'results.csv')} rows to {output / 'results.csv'}")
    print(final_report(space, evaluator, best.point).text.split("\n\n")[0])


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("sweep-example"),
         int(sys.argv[2]) if len(sys.argv) > 2 else 32)
