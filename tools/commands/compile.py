"""``tcc compile``: a transformer onto an accelerator -- latency, energy, area, utilisation.

    tcc compile model.onnx --hw acceltran-edge
    tcc compile zoo:bert-tiny --hw acceltran-edge                 # exports with torch first
    tcc compile zoo:bert-base --hw acceltran-server --train --optimizer adam
    tcc compile model.onnx --hw my.hwdsl --batch 8 --seq 256 --json report.json --plots plots/
    tcc compile model.onnx --hw tiny-test -p 'default,tile{x=8,y=8,order=bikj}'

Loads the model here (the tools layer may import every layer): an ONNX file
(inputs of rank 2 bound to ``batch x seq``), a ``.tir`` file, or
``zoo:NAME``, exported with :func:`frontends.export.export_onnx` to a
temporary folder first -- the only path that imports torch.  The rest
(passes, ``elector-map``, simulation, report) is
:func:`backends.elector.compile_pipeline.compile_module`.  See
docs/compile.md and docs/report-schema.md.  Heavy imports happen inside the
handler, so ``tcc --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

__all__ = ["compile_model", "load_model", "register", "run"]


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


# --------------------------------------------------------------------------- loading


def load_model(source: str, batch: int, seq: int,
               exporter: str = "torchscript"):  # -> tuple[Module, str]
    """The IR module of ``source`` (ONNX file, ``.tir`` file or ``zoo:NAME``)
    and the model's name."""
    from transcode_ir.errors import UserError

    if source.startswith("zoo:"):
        name = source[4:]
        if not name:
            raise UserError("zoo: needs a model name, e.g. zoo:bert-tiny (see tcc zoo list)")
        from frontends.export import export_onnx   # imports torch

        with tempfile.TemporaryDirectory(prefix="tcc-compile-") as folder:
            path = Path(folder) / f"{name.replace(':', '_')}.onnx"
            export_onnx(name, path, exporter=exporter, batch=batch, seq=seq)
            module = import_onnx_file(path, batch, seq, copy_weights=True)
        module.name = name
        return module, name
    path = Path(source)
    if not path.is_file():
        raise UserError(f"{source}: no such file (give an .onnx or .tir file, or zoo:NAME)")
    if path.suffix == ".tir":
        from transcode_ir.serialization import load_module

        return load_module(path), path.stem
    return import_onnx_file(path, batch, seq, copy_weights=False), path.stem


def import_onnx_file(path: Path, batch: int, seq: int, copy_weights: bool = False):  # -> Module
    """Import an ONNX file with every graph input of rank 2 bound to ``(batch, seq)``."""
    import onnx

    from frontends.onnx import import_onnx
    from transcode_ir.errors import UserError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - any parse failure is the user's file
        raise UserError(f"{path}: not a readable ONNX file ({type(err).__name__}: {err})") from None
    initializers = {init.name for init in model.graph.initializer}
    shapes = {}
    for graph_input in model.graph.input:
        if graph_input.name in initializers:
            continue
        if len(graph_input.type.tensor_type.shape.dim) == 2:
            shapes[graph_input.name] = (batch, seq)
    return import_onnx(path, shapes or None, copy_weights=copy_weights)


def compile_model(source: str, hw: str, *, batch: int | None = None, seq: int = 128,
                  exporter: str = "torchscript", **options):  # -> CompileOutcome
    """``tcc compile`` as a function: load ``source``, then
    :func:`backends.elector.compile_pipeline.compile_module`.  ``options``
    are the other fields of :class:`~backends.elector.compile_pipeline.CompileOptions`."""
    from backends.elector.compile_pipeline import CompileOptions, compile_module
    from backends.elector.design_library import resolve_design
    from tools.version import TOOL_VERSION
    from transcode_ir.errors import UserError

    accelerator = resolve_design(hw)
    batch = batch if batch is not None else accelerator.mapping.batch
    for label, value in (("--batch", batch), ("--seq", seq)):
        if value <= 0:
            raise UserError(f"{label} must be positive, got {value}")
    if options.get("sim", "analytical") == "event":
        from backends.elector.compile_pipeline import simulator

        simulator("event")          # fail before the (slow) import when it is missing
    module, name = load_model(source, batch, seq, exporter)
    compile_options = CompileOptions(hw=hw, batch=batch, seq=seq, model_name=name, source=source,
                                     tool_version=TOOL_VERSION, **options)
    return compile_module(module, compile_options, accelerator)


# --------------------------------------------------------------------------- the command


def run(args: argparse.Namespace) -> int:
    from transcode_ir.errors import UserError

    if args.optimizer != "adam" and not args.train:
        raise UserError("--optimizer only applies with --train")
    outcome = compile_model(args.model, args.hw, batch=args.batch, seq=args.seq,
                            exporter=args.exporter, train=args.train, optimizer=args.optimizer,
                            sim=args.sim, pipeline=args.pipeline, objective=args.objective)
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
