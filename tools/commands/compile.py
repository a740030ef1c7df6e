"""``tcc compile``: a transformer onto an accelerator -- latency, energy, area, utilisation.

    tcc compile model.onnx --hw acceltran-edge
    tcc compile zoo:bert-tiny --hw acceltran-edge                 # exports with torch first
    tcc compile zoo:bert-base --hw acceltran-server --train --optimizer adam
    tcc compile model.onnx --hw my.hwdsl --batch 8 --seq 256 --json report.json --plots plots/
    tcc compile model.onnx --hw tiny-test -p 'default,tile{x=8,y=8,order=bikj}'

Imports the model (ONNX, a ``.tir`` file, or ``zoo:NAME``), runs the pass
pipeline (``default`` or the training pipeline, then ``elector-map{hw=...}``),
maps every op (z3-checked), simulates ``@forward`` (or ``@train_step`` with
``--train``) and prints the report.  See docs/compile.md and
docs/report-schema.md.  Heavy imports happen inside the handler.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compile", help="compile a model onto an accelerator and report latency, energy, area",
        description="Import a model (ONNX file, .tir file or zoo:NAME), run the pass pipeline, "
                    "map it onto an ELECTOR design (z3-checked) and simulate it; prints a "
                    "report of latency, energy, area, utilisation and a per-op table.")
    parser.add_argument("model", help="model.onnx, model.tir, or zoo:NAME (e.g. zoo:bert-tiny)")
    parser.add_argument("--hw", required=True, metavar="NAME|FILE",
                        help="library design (tcc hw list) or .hwdsl file")
    parser.add_argument("--train", action="store_true",
                        help="cost one training step (@train_step: forward, backward, update)")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="adam",
                        help="optimizer of the training step (default adam)")
    parser.add_argument("--batch", type=int, metavar="B",
                        help="batch size (default: the design's mapping batch)")
    parser.add_argument("--seq", type=int, default=128, metavar="S",
                        help="sequence length (default 128)")
    parser.add_argument("--sim", choices=("analytical", "event"), default="analytical",
                        help="simulator: analytical (fast) or event (tile-level)")
    parser.add_argument("-p", "--pipeline", metavar="PIPELINE",
                        help="passes before mapping (default: 'default', or the training "
                             "pipeline); elector-map{hw=...} is appended unless present")
    parser.add_argument("--objective", choices=("latency", "energy", "edp"), default="latency",
                        help="what the mapping search minimises (default latency)")
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="also write the report as JSON (docs/report-schema.md)")
    parser.add_argument("--plots", type=Path, metavar="DIR",
                        help="write energy.png and utilisation.png into DIR")
    parser.add_argument("--emit-ir", type=Path, metavar="FILE",
                        help="write the mapped IR text (.tir; parameters are not written)")
    parser.add_argument("--max-ops", type=int, default=40, metavar="N",
                        help="per-op rows in the text report (the N longest; default 40)")
    parser.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript",
                        help="exporter for zoo: models (default torchscript)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from transcode_ir.errors import UserError

    from backends.elector.compile_pipeline import CompileOptions, compile_model

    if args.optimizer != "adam" and not args.train:
        raise UserError("--optimizer only applies with --train")
    options = CompileOptions(source=args.model, hw=args.hw, train=args.train,
                             optimizer=args.optimizer, batch=args.batch, seq=args.seq,
                             sim=args.sim, pipeline=args.pipeline, objective=args.objective,
                             exporter=args.exporter)
    outcome = compile_model(options)
    report = outcome.report
    sys.stdout.write(report.to_text(max_ops=args.max_ops) + "\n")
    if args.json is not None:
        report.write_json(args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    if args.plots is not None:
        for path in report.write_plots(args.plots):
            print(f"wrote {path}", file=sys.stderr)
    if args.emit_ir is not None:
        from transcode_ir.printer import print_module

        args.emit_ir.write_text(print_module(outcome.module))
        print(f"wrote {args.emit_ir}", file=sys.stderr)
    return 0
