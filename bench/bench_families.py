"""Benchmark: the model-family matrix -- every family × exporter through every stage.

    .venv/bin/python bench/bench_families.py [--families a,b] [--exporters torchscript,dynamo]
                                             [--json out.json]

Builds each family of frontends/hf (transformers configs, seeded random
weights, no hub), exports it with both exporters through the plain Hugging
Face call, and runs the stages of :mod:`frontends.hf.matrix` -- export
(onnxruntime = torch), import (interpreter = onnxruntime), shared weights,
``tcc compile`` inference / training / event simulator, the dynaprop pass and
IR → ONNX (= interpreter), tolerance 1e-4 -- then prints the pass/fail table
(Markdown, as kept in the README's "Model families" section), the first error
of each failing row, and the CPU seconds of the export and of the other stages.

A stage after a failed export or import is shown as ``·`` (not run).  Runs in
one process with one torch thread; every export is made once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SHORT = {"export": "export", "import": "import", "shared": "shared", "inference": "infer",
         "training": "train", "gradients": "grads", "event": "event", "dynaprop": "dynaprop", "to-onnx": "IR→ONNX"}


def main(argv: list[str] | None = None) -> int:
    from frontends.hf import matrix

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(matrix.MATRIX))
    parser.add_argument("--exporters", default=",".join(matrix.EXPORTERS))
    parser.add_argument("--json", default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    names = [n for n in args.families.split(",") if n]
    exporters = [e for e in args.exporters.split(",") if e]
    rows = []
    start_all, cpu_all = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="bench-families-") as folder:
        models: dict[str, object] = {}
        for name in names:
            for exporter in exporters:
                subject = matrix.subject(name, exporter, Path(folder))
                subject.model = models.get(name)
                row = {"family": subject.family.family, "name": name, "exporter": exporter,
                       "cells": {}, "errors": {}, "cpu": {}}
                blocked = False
                for cell in matrix.CELLS:
                    if blocked:
                        row["cells"][cell] = "·"
                        continue
                    cpu = time.process_time()
                    try:
                        detail = matrix.run_cell(subject, cell)
                        row["cells"][cell] = "ok"
                        row["errors"][cell] = detail
                    except Exception as err:  # noqa: BLE001 - reported in the table
                        row["cells"][cell] = "FAIL"
                        first = (str(err).splitlines() or [""])[0]
                        row["errors"][cell] = f"{type(err).__name__}: {first}"[:300]
                        blocked = cell in ("export", "import")
                    row["cpu"][cell] = time.process_time() - cpu
                    if cell == "export":
                        models[name] = subject.model
                rows.append(row)
                print(f"  {name:<20} {exporter:<11} "
                      + " ".join(f"{SHORT[c]}={row['cells'][c]}" for c in matrix.CELLS),
                      file=sys.stderr, flush=True)
    wall, cpu_total = time.perf_counter() - start_all, time.process_time() - cpu_all

    header = ["family", "exporter"] + [SHORT[c] for c in matrix.CELLS] + ["export CPU s",
                                                                          "rest CPU s"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        export_cpu = row["cpu"].get("export", 0.0)
        rest = sum(v for k, v in row["cpu"].items() if k != "export")
        cells = [row["cells"][c] for c in matrix.CELLS]
        print(f"| {row['family']} (`{row['name']}`) | {row['exporter']} | " + " | ".join(cells)
              + f" | {export_cpu:.1f} | {rest:.1f} |")
    passed = sum(v == "ok" for r in rows for v in r["cells"].values())
    total = sum(len(r["cells"]) for r in rows)
    print(f"\n{passed} of {total} cells pass; {len(rows)} family × exporter rows; "
          f"{wall:.0f} s wall, {cpu_total:.0f} s CPU (this process).")
    failures = [(r, c) for r in rows for c in matrix.CELLS if r["cells"][c] == "FAIL"]
    if failures:
        print("\nFirst failure of each row:")
        seen = set()
        for row, cell in failures:
            key = (row["name"], row["exporter"])
            if key in seen:
                continue
            seen.add(key)
            print(f"- {row['name']} / {row['exporter']} / {cell}: {row['errors'][cell]}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "wall_s": wall, "cpu_s": cpu_total},
                                              indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
