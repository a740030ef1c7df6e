"""``tcc opt``: run a pass pipeline over an IR file (the ``mlir-opt`` of TransCODE).

    tcc opt model.tir -p canonicalize,cse,fuse -o out.tir
    tcc opt model.tir                        # parse, verify, print: the round trip
    tcc opt --list-passes                    # passes, options, named pipelines
    tcc opt model.tir --load-pass-plugin my_pass.py -p my-pass{factor=2}
    tcc opt model.tir -p fuse --emit-graph dot -o forward.dot   # the op graph, for viewers

Parameter data is read from the ``.npz`` beside the input when present and
written beside the output (``-o``).  Without ``-o`` the IR goes to stdout.
Instrument output (``--print-ir-after*``, ``--time-passes``) goes to stderr,
as in MLIR.  ``--split-input-file`` runs each chunk of the input separated by
a line ``// -----`` on its own and reports each chunk's error without
stopping (the form negative FileCheck tests use).  ``--emit-graph dot|graphml``
writes the op dependency graph of one function (``--graph-function``, default
``forward``) after the pipeline instead of the IR, with its critical path by
MACs marked (:mod:`transcode_ir.graph`, docs/graphs.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from transcode_ir.errors import UserError

__all__ = ["register", "run"]

SPLIT_MARKER = "// -----"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "opt", help="run a pass pipeline over an IR file",
        description="Parse an IR file (.tir), run a pass pipeline over it, verifying after "
                    "every pass, and print or write the result.  With no pipeline: parse, "
                    "verify and print.")
    parser.add_argument("module", nargs="?", help="IR text file (.tir), or - for stdin")
    parser.add_argument("-p", "--pipeline", default="",
                        help="pass pipeline, e.g. 'canonicalize,cse,fuse' or "
                             "'autodiff{loss=mse,optimizer=sgd}' or a named pipeline "
                             "(cleanup, default, training)")
    parser.add_argument("-o", "--output", type=Path,
                        help="write the result here (and its parameters to the .npz beside it)")
    parser.add_argument("--no-verify", action="store_true",
                        help="do not verify the input and the IR after each pass")
    parser.add_argument("--print-ir-after-all", action="store_true",
                        help="print the IR after every pass (stderr)")
    parser.add_argument("--print-ir-after", action="append", default=[], metavar="NAME",
                        help="print the IR after each run of pass NAME (repeatable)")
    parser.add_argument("--print-ir-after-change", action="store_true",
                        help="print the IR after every pass that changed it")
    parser.add_argument("--print-ir-after-failure", action="store_true",
                        help="print the IR as a failing pass left it")
    parser.add_argument("--time-passes", action="store_true",
                        help="print a table of pass and verification times (stderr)")
    parser.add_argument("--load-pass-plugin", action="append", default=[], metavar="FILE",
                        help="load passes from a Python file (repeatable)")
    parser.add_argument("--calibration", type=Path, metavar="INPUTS.npz",
                        help="real inputs for the passes that measure densities (dynaprop): "
                             "sets calibration=FILE on each of them")
    parser.add_argument("--list-passes", action="store_true",
                        help="list passes with their options, and the named pipelines")
    parser.add_argument("--json", action="store_true",
                        help="with --list-passes: the listing as JSON")
    parser.add_argument("--split-input-file", action="store_true",
                        help=f"process each chunk between '{SPLIT_MARKER}' lines separately")
    parser.add_argument("--emit-graph", choices=("dot", "graphml"), metavar="FORMAT",
                        help="write the op dependency graph of one function after the pipeline "
                             "(dot or graphml) instead of the IR; the critical path by MACs "
                             "is marked")
    parser.add_argument("--graph-function", default=None, metavar="NAME",
                        help="with --emit-graph: the function to draw (default: forward, "
                             "or the module's only function)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from transcode_ir.passes import load_pass_plugin

    for plugin in args.load_pass_plugin:
        load_pass_plugin(plugin)
    if args.list_passes:
        print(list_passes_json() if args.json else list_passes())
        return 0
    if not args.module:
        raise UserError("tcc opt needs an IR file (or - for stdin), or --list-passes")
    if args.output is not None and str(args.output) == "-":
        args.output = None                  # -o -: stdout, as without -o
    if args.output is not None:
        from transcode_ir.fileio import check_output_path

        check_output_path(args.output)      # before the passes run
    if args.graph_function is not None and args.emit_graph is None:
        raise UserError("--graph-function NAME goes with --emit-graph dot|graphml")
    if args.emit_graph and args.split_input_file:
        raise UserError("--emit-graph draws one module: it does not go with --split-input-file")
    manager = _manager(args)
    if args.split_input_file:
        return _run_split(args, manager)
    module = _load(args.module)
    module = _run_one(manager, module)
    if args.emit_graph:
        _write_graph(module, args.emit_graph, args.graph_function, args.output)
    else:
        _write(module, args.output)
    return 0


def _write_graph(module, fmt: str, name: str | None, output: Path | None) -> None:  # noqa: ANN001
    from transcode_ir.graph import critical_path, dependency_graph, format_graph, write_graph

    functions = [f.name for f in module.functions.values()]
    if name is None:
        name = "forward" if "forward" in functions or len(functions) != 1 else functions[0]
    if name not in functions:
        raise UserError(f"--graph-function {name}: module @{module.name} has no such function; "
                        f"its functions: {', '.join(functions) or '(none)'}")
    graph = dependency_graph(module[name])
    path = critical_path(graph, weight="macs").nodes
    if output is None:
        sys.stdout.write(format_graph(graph, fmt, path))
        sys.stdout.flush()
    else:
        write_graph(graph, output, fmt, path)


def _manager(args: argparse.Namespace):  # -> PassManager
    from transcode_ir.pass_manager import (
        PassManager,
        PrintIRAfterAll,
        PrintIRAfterChange,
        PrintIRAfterFailure,
        PrintIRAfterPass,
        TimePasses,
    )

    instruments = []
    if args.print_ir_after_all:
        instruments.append(PrintIRAfterAll())
    if args.print_ir_after:
        instruments.append(PrintIRAfterPass(args.print_ir_after))
    if args.print_ir_after_change:
        instruments.append(PrintIRAfterChange())
    if args.print_ir_after_failure:
        instruments.append(PrintIRAfterFailure())
    if args.time_passes:
        instruments.append(TimePasses())
    pipeline = _with_calibration(args.pipeline, args.calibration) if args.calibration else args.pipeline
    manager = PassManager(pipeline, verify_each=not args.no_verify, instruments=instruments)
    if args.print_ir_after:
        from transcode_ir.passes import registered_passes

        known = registered_passes()
        for name in args.print_ir_after:
            if name not in known:
                raise UserError(f"--print-ir-after={name}: no such pass; registered passes: "
                                f"{', '.join(known)}")
    return manager


def _with_calibration(pipeline: str, calibration: Path) -> str:
    """The pipeline with ``calibration=FILE`` set on every pass that takes it."""
    from dataclasses import fields, replace

    from transcode_ir.passes import format_pipeline, parse_pipeline

    if not calibration.is_file():
        raise UserError(f"--calibration {calibration}: no such file; give an .npz of real inputs "
                        "named like the arguments of @forward")
    passes = list(parse_pipeline(pipeline))
    hits = [i for i, p in enumerate(passes) if any(f.name == "calibration" for f in fields(p))]
    if not hits:
        raise UserError(f"--calibration: no pass in the pipeline {pipeline!r} measures densities; "
                        "add one, e.g. -p 'dynaprop{tau-i=0.01}'")
    for i in hits:
        passes[i] = replace(passes[i], calibration=str(calibration))
    return format_pipeline(passes)


def _load(source: str):  # -> Module
    from transcode_ir.parser import parse_module
    from transcode_ir.serialization import load_module

    if source == "-":
        return parse_module(sys.stdin.read(), "<stdin>")
    return load_module(source)


def _run_one(manager, module):  # -> Module
    from transcode_ir.verifier import verify_module

    if not manager.pipeline:
        if manager.verify_input:
            verify_module(module)
        return module
    return manager.run(module).module


def _write(module, output: Path | None) -> None:
    from transcode_ir.printer import print_module
    from transcode_ir.serialization import save_module

    if output is None:
        sys.stdout.write(print_module(module))
        sys.stdout.flush()
    else:
        save_module(module, output)


def _run_split(args: argparse.Namespace, manager) -> int:
    from transcode_ir.parser import parse_module
    from transcode_ir.printer import print_module

    text = sys.stdin.read() if args.module == "-" else _read(args.module)
    chunks = _split(text)
    failures = 0
    outputs = []
    for chunk, _first_line in chunks:
        try:
            module = parse_module(chunk, args.module)
            outputs.append(print_module(_run_one(manager, module)))
        except UserError as err:
            failures += 1
            print(f"error: {err}", file=sys.stderr)
            sys.stderr.flush()
    if args.output is not None:
        from transcode_ir.fileio import write_text

        write_text(args.output, f"\n{SPLIT_MARKER}\n".join(outputs))
    else:
        sys.stdout.write(f"{SPLIT_MARKER}\n".join(outputs))
    return 1 if failures else 0


def _read(path: str) -> str:
    from transcode_ir.fileio import read_text

    return read_text(path, "IR file", "IR text (.tir)")


def _split(text: str) -> list[tuple[str, int]]:
    """Chunks between marker lines, each padded with blank lines so that
    line numbers in messages match the whole file."""
    chunks: list[tuple[str, int]] = []
    current: list[str] = []
    start = 0
    lines = text.splitlines(keepends=True)
    for number, line in enumerate(lines):
        if line.strip() == SPLIT_MARKER:
            chunks.append(("\n" * start + "".join(current), start + 1))
            current, start = [], number + 1
        else:
            current.append(line)
    chunks.append(("\n" * start + "".join(current), start + 1))
    return [c for c in chunks if c[0].strip()]


def list_passes_json() -> str:
    """``tcc opt --list-passes --json``: passes (name, summary, options with
    their accepted values, default and whether required) and named pipelines."""
    import json

    from transcode_ir.passes import named_pipelines, pass_options, registered_passes

    def default(opt) -> object:  # noqa: ANN001
        value = opt.default
        if isinstance(value, (bool, int, float, str)) or value is None:
            return value
        if isinstance(value, tuple):
            return list(value)
        return opt.format(value)

    passes = [{"name": name, "summary": cls.summary(),
               "options": [{"name": opt.name, "accepted": opt.accepted(),
                            "required": bool(opt.required),
                            "default": None if opt.required else default(opt),
                            "doc": opt.doc or ""} for opt in pass_options(cls)]}
              for name, cls in registered_passes().items()]
    pipelines = [{"name": name, "pipeline": text, "doc": doc}
                 for name, (text, doc) in named_pipelines().items()]
    return json.dumps({"passes": passes, "pipelines": pipelines}, indent=2, default=str)


def list_passes() -> str:
    """The text of ``tcc opt --list-passes``."""
    from transcode_ir.passes import named_pipelines, pass_options, registered_passes

    lines = ["Passes:"]
    for name, cls in registered_passes().items():
        lines.append(f"  {name:<16} {cls.summary()}")
        for opt in pass_options(cls):
            default = "required" if opt.required else f"default {opt.format(opt.default)}"
            lines.append(f"      {opt.name}: {opt.accepted()} ({default})"
                         + (f" -- {opt.doc}" if opt.doc else ""))
    lines.append("")
    lines.append("Named pipelines:")
    for name, (text, doc) in named_pipelines().items():
        lines.append(f"  {name:<16} {doc}")
        lines.append(f"      = {text}")
    return "\n".join(lines)
