"""Benchmark: the full pass pipeline, autodiff included, on BERT-Base.

    .venv/bin/python bench/bench_passes.py [--onnx PATH] [--batch 4] [--seq 128]
                                           [--pipeline training] [--repeat 3] [--no-verify]

BERT-Base (TorchScript export, dynamic batch and sequence) is imported at
batch 4, sequence 128; then the pipeline (default: the named pipeline
``training`` -- clean-up, autodiff with cross-entropy and Adam, clean-up,
fusion -- with the loss on ``last_hidden_state``) runs on a fresh import,
timed by the ``TimePasses`` instrument, with the IR verified after every
pass as the pass manager does by default.  The import and the ONNX export
are not timed.  Target: ≤ 2 s for the whole pipeline.

Prints the time-passes table of the last run, then a summary: pipeline wall
time (best and median of ``--repeat`` runs), CPU time (on a shared machine the
wall time includes waiting for a core, which the CPU time does not), op
counts per function and the peak number of ops.

The ONNX file is exported once, beforehand, to
``out/bench/bert-base-b1-s128-torchscript.onnx`` (shared with
bench_import.py; its batch and sequence are symbolic, so the importer binds 4
and 128), or pass ``--onnx``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from transcode_ir.defaults import SEQUENCE_LENGTH, training_pipeline

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ONNX = REPO / "out" / "bench" / "bert-base-b1-s128-torchscript.onnx"
TARGET_SECONDS = 2.0
# The named pipeline "training" with the loss put on the encoder's token
# output (the zoo's encoders return last_hidden_state and pooler_output).
DEFAULT_PIPELINE = training_pipeline(output="last_hidden_state")


def ensure_onnx(path: Path) -> Path:
    if path.exists():
        return path
    from frontends.export import export_onnx

    print(f"exporting BERT-Base to {path} (once, not timed) ...", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    export_onnx("bert-base", path, exporter="torchscript", batch=1, seq=SEQUENCE_LENGTH)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, default=DEFAULT_ONNX)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=SEQUENCE_LENGTH)
    parser.add_argument("--pipeline", default=DEFAULT_PIPELINE)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-verify", action="store_true", help="do not verify after each pass")
    args = parser.parse_args(argv)

    from frontends.onnx import import_onnx
    from transcode_ir import PassManager, TimePasses, parse_pipeline

    path = ensure_onnx(args.onnx)
    pipeline = parse_pipeline(args.pipeline)
    walls, cpus = [], []
    timer = TimePasses(print_at_end=False)
    module = None
    for _ in range(args.repeat):
        module = import_onnx(path, {"input_ids": (args.batch, args.seq)})
        timer = TimePasses(print_at_end=False)
        manager = PassManager(pipeline, verify_each=not args.no_verify, instruments=[timer])
        cpu = time.process_time()
        start = time.perf_counter()
        manager.run(module)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    assert module is not None

    print(f"BERT-Base, batch {args.batch}, sequence {args.seq}: pipeline {pipeline}")
    print(f"(verification after every pass: {'off' if args.no_verify else 'on'})")
    print(timer.table())
    print()
    ops = {name: len(func) for name, func in module.functions.items()}
    rows = [
        ("pipeline wall time, best (s)", f"{min(walls):.3f}"),
        ("pipeline wall time, median (s)", f"{statistics.median(walls):.3f}"),
        ("pipeline CPU time, best (s)", f"{min(cpus):.3f}"),
        ("target (s)", f"{TARGET_SECONDS:.1f}"),
        ("meets target (best wall)", "yes" if min(walls) <= TARGET_SECONDS else "NO"),
        ("runs", str(args.repeat)),
    ] + [(f"ops in @{name}", str(count)) for name, count in ops.items()] + [
        ("parameters (incl. optimizer state)", str(len(module.params))),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'metric':<{width}}  value")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
