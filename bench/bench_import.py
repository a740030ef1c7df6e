"""Benchmark: importing BERT-Base from ONNX, and ``tcc --help``.

    .venv/bin/python bench/bench_import.py [--onnx PATH] [--repeat 3] [--no-hf]

Prints a table of wall times:

* **import + verify + print** of BERT-Base (batch 1, sequence 128, TorchScript
  export, 440 MB): ``import_onnx`` → ``verify_module`` → ``print_module``.
  Each run is a fresh Python process that has already imported
  ``transcode_ir`` and ``frontends.onnx`` (interpreter start and those imports
  are excluded, as the target says); the time includes importing ``onnx``,
  which the importer does lazily.  The same process then repeats the work
  ("warm").  Target: ≤ 1.5 s (cold) on the 2-core machine.
  CPU time is printed too: on a shared machine the wall time includes waiting
  for the cores, which the CPU time does not.
* **tcc --help**: a fresh ``python -m tools.cli --help``, interpreter start
  included.  Target: ≤ 0.5 s, and torch must not be imported (checked).

* **Hugging Face BERT-Base** (issue 11): ``transformers.BertModel`` with
  the default ``BertConfig`` (12 layers, hidden 768; seeded random weights,
  built from the config), exported through the plain call
  ``model(input_ids, attention_mask)`` at a fixed batch 1 and sequence 128
  with each torch exporter.  Same measurement (import + verify + print in a
  fresh process); target: <= 1 s of CPU for the import.

The ONNX files are exported once, beforehand and outside the timing, to
``out/bench/`` (``--onnx`` names the zoo file).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ONNX = REPO / "out" / "bench" / "bert-base-b1-s128-torchscript.onnx"

_IMPORT_RUN = r"""
import json, sys, time
import frontends.onnx, transcode_ir
from frontends.onnx import import_onnx
from transcode_ir import print_module, verify_module
path = sys.argv[1]
results = []
for _ in range(2):
    cpu = time.process_time()
    start = time.perf_counter()
    module = import_onnx(path)
    imported = time.perf_counter()
    verify_module(module)
    verified = time.perf_counter()
    text = print_module(module)
    printed = time.perf_counter()
    results.append({"import": imported - start, "verify": verified - imported,
                    "print": printed - verified, "total": printed - start,
                    "cpu": time.process_time() - cpu,
                    "ops": len(module["forward"]), "params": len(module.params),
                    "weights": sum(p.kind == "weight" for p in module.params.values()),
                    "chars": len(text)})
    del module
print(json.dumps(results))
"""

_MODULES_RUN = r"""
import sys, tools.cli
tools.cli.build_parser()
print(" ".join(m for m in ("torch", "onnx", "onnxruntime", "numpy", "lark") if m in sys.modules))
"""


HF_FILES = {exporter: REPO / "out" / "bench" / f"bert-base-hf-b1-s128-{exporter}.onnx"
            for exporter in ("torchscript", "dynamo")}


def ensure_hf_onnx(exporter: str) -> Path:
    """The Hugging Face BERT-Base export (built from BertConfig(), fixed batch 1 x 128)."""
    path = HF_FILES[exporter]
    if path.exists():
        return path
    import torch
    import transformers

    from frontends.hf import export_family, get_family

    print(f"exporting Hugging Face BERT-Base ({exporter}) to {path} (once, not timed) ...",
          file=sys.stderr)
    torch.manual_seed(0)
    model = transformers.BertModel(transformers.BertConfig()).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    export_family(model, path, exporter, batch=1, seq=128, family=get_family("bert-hf-tiny"),
                  dynamic=False, check=False)
    return path


def ensure_onnx(path: Path) -> Path:
    if path.exists():
        return path
    from frontends.export import export_onnx

    print(f"exporting BERT-Base to {path} (once, not timed) ...", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    export_onnx("bert-base", path, exporter="torchscript", batch=1, seq=128)
    return path


def time_import(path: Path, repeat: int) -> tuple[list[dict], list[dict]]:
    cold, warm = [], []
    for _ in range(repeat):
        output = subprocess.run([sys.executable, "-c", _IMPORT_RUN, str(path)], cwd=REPO,
                                check=True, capture_output=True, text=True).stdout
        first, second = json.loads(output.strip().splitlines()[-1])
        cold.append(first)
        warm.append(second)
    return cold, warm


def time_help(repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tools.cli", "--help"], cwd=REPO, check=True,
                       capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, default=DEFAULT_ONNX,
                        help="BERT-Base ONNX file (exported if missing)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement")
    parser.add_argument("--no-hf", action="store_true",
                        help="skip the Hugging Face BERT-Base exports")
    args = parser.parse_args()

    path = ensure_onnx(args.onnx)
    hf = {} if args.no_hf else {exporter: ensure_hf_onnx(exporter) for exporter in HF_FILES}
    cold, warm = time_import(path, args.repeat)
    help_times = time_help(max(args.repeat, 5))
    loaded = subprocess.run([sys.executable, "-c", _MODULES_RUN], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.split()

    def best(runs: list[dict], key: str) -> float:
        return min(r[key] for r in runs)

    size_mb = os.path.getsize(path) / 1e6
    rows = [
        ("BERT-Base import+verify+print, cold", best(cold, "total"),
         statistics.median(r["total"] for r in cold), 1.5),
        ("  of which import_onnx", best(cold, "import"),
         statistics.median(r["import"] for r in cold), None),
        ("  of which verify_module", best(cold, "verify"),
         statistics.median(r["verify"] for r in cold), None),
        ("  of which print_module", best(cold, "print"),
         statistics.median(r["print"] for r in cold), None),
        ("  CPU time of the process (cold)", best(cold, "cpu"),
         statistics.median(r["cpu"] for r in cold), None),
        ("BERT-Base import+verify+print, warm", best(warm, "total"),
         statistics.median(r["total"] for r in warm), None),
        ("  CPU time of the process (warm)", best(warm, "cpu"),
         statistics.median(r["cpu"] for r in warm), None),
        ("tcc --help (process wall time)", min(help_times), statistics.median(help_times), 0.5),
    ]
    print(f"BERT-Base: {path.name}, {size_mb:.0f} MB, {cold[0]['ops']} ops, "
          f"{cold[0]['params']} parameters, {cold[0]['chars']:,} characters of IR text")
    print(f"machine: {os.cpu_count()} cores, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'measurement':<40} {'best s':>8} {'median s':>9} {'target s':>9}")
    for label, best_time, median, target in rows:
        mark = "" if target is None else (" ok" if best_time <= target else " OVER")
        target_text = "" if target is None else f"{target:.2f}"
        print(f"{label:<40} {best_time:>8.3f} {median:>9.3f} {target_text:>9}{mark}")
    print(f"modules imported by tcc --help: {', '.join(loaded) or 'none'}"
          f"{'  (torch imported!)' if 'torch' in loaded else ''}")
    if hf:
        print()
        print("Hugging Face BERT-Base (BertConfig(), plain call, fixed batch 1 x 128), fresh process "
              "each, best / median of", args.repeat)
        print(f"{'exporter':<12} {'MB':>5} {'ops':>5} {'weights':>7} {'import s':>9} {'cold s':>7} "
              f"{'cold CPU s':>10} {'median':>7} {'warm CPU s':>10} {'target':>7}")
        for exporter, hf_path in hf.items():
            hf_cold, hf_warm = time_import(hf_path, args.repeat)
            cpu = best(hf_cold, "cpu")
            print(f"{exporter:<12} {os.path.getsize(hf_path) / 1e6:>5.0f} {hf_cold[0]['ops']:>5} "
                  f"{hf_cold[0]['weights']:>7} {best(hf_cold, 'import'):>9.3f} "
                  f"{best(hf_cold, 'total'):>7.3f} {cpu:>10.3f} "
                  f"{statistics.median(r['cpu'] for r in hf_cold):>7.3f} {best(hf_warm, 'cpu'):>10.3f} "
                  f"{'1.00':>7}{' ok' if cpu <= 1.0 else ' OVER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
