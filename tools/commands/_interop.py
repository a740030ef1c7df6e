"""``tcc hw export`` and ``tcc hw import``: designs in ZigZag and Timeloop form.

    tcc hw export NAME|FILE --format zigzag|timeloop [-o FILE]
    tcc hw import FILE [--format zigzag|timeloop] [-o OUT.hwdsl]

Registered under ``tcc hw`` by :func:`register_interop` (one line in
``tools/commands/hw.py``).  The converters live in
``backends.elector.interop``; docs/interop.md says what maps to what.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["register_interop"]

_FORMATS = ("zigzag", "timeloop")


def register_interop(commands: argparse._SubParsersAction) -> None:
    """Add ``export`` and ``import`` to the ``tcc hw`` subcommands."""
    export = commands.add_parser(
        "export", help="write a design as a ZigZag or Timeloop/Accelergy hardware file",
        description="Write a library design or .hwdsl file as a ZigZag accelerator YAML or a "
        "Timeloop/Accelergy v0.4 architecture. What those tools do not model (softmax, "
        "layer-norm and sparsity units, the mask buffer, mapping defaults) is carried in a "
        "comment block that `tcc hw import` reads back.")
    export.add_argument("design", metavar="NAME|FILE", help="library name or .hwdsl file "
                        "(SPACE#INDEX for a point of a design space)")
    export.add_argument("--format", required=True, choices=_FORMATS)
    export.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    export.set_defaults(func=_export)

    imported = commands.add_parser(
        "import", help="read a ZigZag or Timeloop/Accelergy hardware file into .hwdsl",
        description="Read the subset of a ZigZag or Timeloop/Accelergy v0.4 hardware file that "
        "the TransCODE model represents and write it as .hwdsl. Notes on standard error name "
        "what was dropped or assumed.")
    imported.add_argument("file", metavar="FILE", help="a .yaml file ('-': standard input)")
    imported.add_argument("--format", choices=_FORMATS,
                          help="the file's format (default: found from its top-level keys)")
    imported.add_argument("-o", "--output", metavar="FILE",
                          help="write the .hwdsl here (default: stdout)")
    imported.set_defaults(func=_import)


def _write(text: str, output: str | None) -> None:
    if output is None or output == "-":
        sys.stdout.write(text)
        return
    from transcode_ir.fileio import write_text

    write_text(output, text)


def _export(args: argparse.Namespace) -> int:
    from backends.elector import resolve_design
    from backends.elector.interop import export_design

    design = resolve_design(args.design)
    _write(export_design(design, args.format), args.output)
    if args.output not in (None, "-"):
        print(f"wrote {args.output}: {design.name!r} as {args.format}", file=sys.stderr)
    return 0


def _import(args: argparse.Namespace) -> int:
    from backends.elector import area_breakdown, format_design
    from backends.elector.interop import import_design
    from backends.elector.interop.common import read_file

    if args.file == "-":
        text, name = sys.stdin.read(), "<stdin>"
    else:
        text, name = read_file(args.file), args.file
    result = import_design(text, name, args.format)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    source = "the embedded TransCODE design" if result.embedded else "the file's keys and " \
        "the defaults noted"
    design = result.accelerator
    _write(format_design(design), args.output)
    print(f"imported {name}: accelerator {design.name!r} from {source}, "
          f"{design.peak_macs_per_cycle:,} MACs/cycle, {area_breakdown(design).total_mm2:,.2f} "
          f"mm2{f'; wrote {args.output}' if args.output not in (None, '-') else ''}",
          file=sys.stderr)
    return 0
