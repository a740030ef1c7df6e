"""``tcc hw``: hardware designs of the ELECTOR backend.

    tcc hw list                 library designs and spaces, one line each
    tcc hw show NAME|FILE       normalised design, its area breakdown and storage hierarchy
                                (a design space: its parameters and size)
    tcc hw check FILE|NAME      validate; prints one OK line or the error
    tcc hw export / import      ZigZag and Timeloop files (tools/commands/_interop.py)

The backend is imported inside the handlers, so ``tcc --help`` stays fast.
"""

from __future__ import annotations

import argparse

from tools.commands._interop import register_interop

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "hw", help="hardware designs: list the library, show or check a design",
        description="Hardware designs (.hwdsl) of the ELECTOR backend.")
    commands = parser.add_subparsers(dest="hw_command", metavar="HW_COMMAND")

    listing = commands.add_parser("list", help="library designs and design spaces")
    listing.add_argument("--json", action="store_true",
                         help="a JSON list of {name, kind, description, path}")
    listing.set_defaults(func=_list)

    show = commands.add_parser("show", help="print a design (normalised) and its area")
    show.add_argument("design", metavar="NAME|FILE", help="library name or .hwdsl file")
    show.add_argument("--training", action="store_true",
                      help="count the stochastic-rounding units training needs")
    show.add_argument("--point", type=int, metavar="INDEX",
                      help="for a design space: show this point instead of the summary")
    show.set_defaults(func=_show)

    check = commands.add_parser("check", help="validate a design or design space")
    check.add_argument("design", metavar="FILE|NAME", help=".hwdsl file or library name")
    check.set_defaults(func=_check)

    register_interop(commands)  # tcc hw export / import (tools/commands/_interop.py)

    parser.set_defaults(func=lambda args: _help(parser))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _list(args: argparse.Namespace) -> int:
    from backends.elector import list_library

    entries = list_library()
    if getattr(args, "json", False):
        import json

        print(json.dumps([{"name": e.name, "kind": e.kind, "description": e.description,
                           "path": str(e.path)} for e in entries], indent=2))
        return 0
    from transcode_ir.tables import format_table

    width = max(len(entry.name) for entry in entries)
    for kind, title in (("design", "designs"), ("space", "design spaces")):
        chosen = [entry for entry in entries if entry.kind == kind]
        if not chosen:
            continue
        print(f"{title}:")
        # one width for both groups, so the descriptions line up
        print(format_table(None, [(e.name.ljust(width), e.description) for e in chosen],
                           align="ll", indent="  "))
    return 0


def _is_space(name_or_path: str) -> bool:
    from pathlib import Path

    from backends.elector import LIBRARY_DIR, is_space_file

    path = Path(name_or_path)
    if not path.is_file():
        path = LIBRARY_DIR / f"{name_or_path}.hwdsl"
        if not path.is_file():
            return False  # resolve_design reports the unknown name
    return is_space_file(path)


def _show(args: argparse.Namespace) -> int:
    from backends.elector import area_breakdown, format_design, resolve_design, resolve_space
    from backends.elector.hierarchy import format_hierarchy

    if _is_space(args.design):
        space = resolve_space(args.design)
        if args.point is not None:
            design = space.point(args.point)
        else:
            _print_space(space, args.training)
            return 0
    else:
        if args.point is not None:
            print(f"note: {args.design} is a single design; --point ignored")
        design = resolve_design(args.design)
    print(format_design(design), end="")
    print()
    print(area_breakdown(design, training=args.training).format_table())
    print()
    print(format_hierarchy(design))
    memory = design.main_memory_costs()
    print(f"peak: {design.peak_macs_per_cycle:,} MACs/cycle at {design.clock_hz / 1e6:g} MHz; "
          f"main memory {memory.bandwidth_bytes_per_s / 1e9:g} GB/s, "
          f"{memory.energy_per_access_nj:g} nJ per {memory.access_bytes}-byte access")
    return 0


def _print_space(space, training: bool) -> None:
    from backends.elector import area_breakdown

    print(space.format(), end="")
    print()
    print(f"design space {space.name!r}: {space.size:,} points, "
          f"{len(space.parameters)} parameters")
    from transcode_ir.tables import format_table

    print(format_table(None, [(p.name, f"{p.count:>3}", ", ".join(p.labels))
                              for p in space.parameters], align="lrl", indent="  "))
    first, last = space.point(0), space.point(space.size - 1)
    print(f"area of point 0: {area_breakdown(first, training).total_mm2:,.2f} mm2; "
          f"of point {space.size - 1}: {area_breakdown(last, training).total_mm2:,.2f} mm2 "
          "(tcc hw show NAME --point INDEX shows one point)")
    import textwrap

    from backends.elector.hierarchy import banking_rule

    print(textwrap.fill("banking assumption (buffers without banks in the file): "
                        + banking_rule(first.technology), width=100, subsequent_indent="  "))


def _check(args: argparse.Namespace) -> int:
    from backends.elector import area_breakdown, resolve_design, resolve_space

    if _is_space(args.design):
        space = resolve_space(args.design)
        print(f"OK: {args.design}: design space {space.name!r}, {space.size:,} points, "
              f"{len(space.parameters)} parameters")
        return 0
    design = resolve_design(args.design)
    print(f"OK: {args.design}: accelerator {design.name!r}, {design.pe_array.pes} PEs, "
          f"{design.peak_macs_per_cycle:,} MACs/cycle, "
          f"{area_breakdown(design).total_mm2:,.2f} mm2")
    return 0
