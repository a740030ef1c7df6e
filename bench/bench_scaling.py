"""Hardware scaling under the cost model: BERT-Base (batch 4, sequence 128) on the
library designs, analytical simulator.

    .venv/bin/python bench/bench_scaling.py [--onnx PATH] [--designs a,b,...]

Prints per design: cycles and milliseconds, the roofline bound and what sets
it, the fraction of the roofline reached (roofline cycles / cycles), MAC
utilisation (busy lane-cycles / (lanes x cycles)), each buffer's banks and
bandwidth, the ops bound by compute and by each level; then the edge -> server
speedup (issue 12: 2.43x with the single-port buffers, 3.9% MAC utilisation on
acceltran-server).  The cost model is docs/cost-model.md.

The ONNX file is bench_compile.py's (exported once if missing).
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

BATCH, SEQ = 4, 128
DESIGNS = ("acceltran-edge", "acceltran-server", "hbm-server")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, default=None)
    parser.add_argument("--designs", default=",".join(DESIGNS))
    args = parser.parse_args()

    from bench_compile import DEFAULT_ONNX, ensure_onnx

    from backends.elector import resolve_design
    from backends.elector.analytical import simulate_analytical
    from backends.elector.mapping import map_function
    from backends.elector.tiling import StaticFunction, hardware_consts, schedule_function
    from tools.commands.compile import import_onnx_file
    from transcode_ir import run_pipeline

    path = ensure_onnx(args.onnx or DEFAULT_ONNX)
    module = import_onnx_file(path, BATCH, SEQ)
    run_pipeline(module, "default", verify_each=False)
    static = StaticFunction(module, "forward")
    results = {}
    print(f"bench_scaling: BERT-Base batch {BATCH} x seq {SEQ}, analytical")
    header = (f"{'design':<18} {'cycles':>11} {'ms':>8} {'roofline':>10} {'bound by':<18} "
              f"{'of roof':>8} {'MAC util':>9} {'banks a/w/m':>12} {'eval s':>7}  ops bound by")
    print(header)
    print("-" * len(header))
    for name in args.designs.split(","):
        accelerator = resolve_design(name)
        start = time.perf_counter()
        mappings, plan = map_function(static, accelerator)
        mapped = schedule_function(static, accelerator, mappings, plan=plan)
        result = simulate_analytical(mapped, accelerator, timeline=False)
        elapsed = time.perf_counter() - start
        hw = hardware_consts(accelerator)
        banks = "/".join(str(hw.banks[f"{k}_buffer"]) for k in ("activation", "weight", "mask"))
        bound = collections.Counter(r.bounding_level for r in result.ops)
        results[name] = result
        print(f"{name:<18} {result.cycles:>11,.0f} {result.seconds * 1e3:>8.3f} "
              f"{result.roofline_cycles:>10,.0f} {result.roofline_bound:<18} "
              f"{result.achieved_fraction:>8.1%} {result.utilisation.get('mac_lane', 0.0):>9.2%} "
              f"{banks:>12} {elapsed:>7.2f}  "
              + ", ".join(f"{k} {v}" for k, v in bound.most_common()))
    if "acceltran-edge" in results and "acceltran-server" in results:
        speedup = results["acceltran-edge"].seconds / results["acceltran-server"].seconds
        print(f"edge -> server speedup: {speedup:.2f}x "
              "(single-port buffers before issue 12: 2.43x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
