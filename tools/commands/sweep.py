"""``tcc sweep``: hardware design-space sweeps of one model, resumable.

    tcc sweep SPACE.hwdsl|SPACE-NAME --model zoo:bert-base --db results.sqlite \\
        [--strategy random|evolution|boshcode|tpe|nsga2] [--budget N] [--seed S] \\
        [--executor local|ray|ray://ADDR] [--workers N] [--plots DIR]
    tcc sweep status DB
    tcc sweep export DB --csv FILE | --json FILE | --parquet FILE | --html FILE

Every evaluated point goes into the SQLite database keyed by a hash of what
determined it; running the same command again resumes (nothing is evaluated
twice).  The work is in :mod:`tools.codesign` (imported inside the handler,
so ``tcc --help`` stays fast).  See docs/codesign.md.
"""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    from tools.codesign.cli import add_common_options

    parser = subparsers.add_parser(
        "sweep", help="sweep a hardware design space for one model (resumable; status, export)",
        description="Search a hardware design space (.hwdsl with choice sets, or a library "
                    "space such as transcode-space) for one model, costing every design with "
                    "the ELECTOR simulator.  'tcc sweep status DB' summarises a results "
                    "database; 'tcc sweep export DB --csv F | --json F | --html F' writes it out.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("space", metavar="SPACE|status|export",
                        help="design space (file or library name), or 'status' / 'export'")
    parser.add_argument("database", nargs="?", metavar="DB",
                        help="results database (for status and export)")
    parser.add_argument("--model", default="zoo:bert-base",
                        help="zoo:NAME or a FlexiBERT description (default zoo:bert-base)")
    parser.add_argument("--accuracy", default="none",
                        help="none (default) | measured | table:FILE | surrogate:FILE")
    parser.add_argument("--csv", help="export: CSV file to write (- for standard output): one "
                        "row per result and sweep, every hardware parameter a typed hw_* "
                        "column in base units")
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE",
                        help="export: JSON file to write (- or no FILE: standard output); "
                             "status: print the summary as JSON")
    parser.add_argument("--parquet", help="export: Parquet file to write (typed columns; "
                        "needs pyarrow)")
    add_common_options(parser, default_strategy="random", default_budget=200)
    for action in parser._actions:
        if action.dest == "db":
            action.required = False
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tools.codesign import cli
    from transcode_ir.errors import UserError

    if args.space in ("status", "export"):
        database = args.database or args.db
        if not database:
            raise UserError(f"tcc sweep {args.space} needs the results database: "
                            f"tcc sweep {args.space} DB")
        if args.space == "status":
            return cli.run_sweep_status(database, as_json=args.json is not None)
        if args.space == "export" and args.html:
            from backends.elector.html_report import write_sweep_html
            from tools.console import wrote

            for path in write_sweep_html(database, args.html):
                wrote(path)
            if not args.csv and not args.json and not args.parquet:
                return 0
        return cli.run_sweep_export(database, args.csv, args.json, args.parquet)
    if args.database:
        raise UserError(f"unexpected argument {args.database!r}; give the database with --db")
    if not args.db:
        raise UserError("tcc sweep SPACE needs --db FILE (the results database)")
    return cli.run_sweep_command(args)
