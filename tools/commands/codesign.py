"""``tcc codesign``: joint search over model, schedule and hardware.

    tcc codesign --model-space flexibert2-small --hw transcode-space --db cd.sqlite \\
        --accuracy measured --tau-i 0,0.01 --strategy boshcode --budget 200 --plots out/
    tcc codesign --model-space zoo:bert-tiny --hw transcode-space ...   (fixed model)
    tcc codesign --model-space flexibert2-small --hw acceltran-edge ... (fixed hardware)
    tcc codesign --demo [--demo-minutes 30] --db demo.sqlite --plots out/

The work is in :mod:`tools.codesign` (imported inside the handler).  See
docs/codesign.md.
"""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    from tools.codesign.cli import add_common_options

    parser = subparsers.add_parser(
        "codesign", help="co-design: joint search over model, schedule and hardware",
        description="Search models (FlexiBERT 2.0), schedules (tiles, loop orders, DynaProp "
                    "thresholds) and hardware (a .hwdsl design space) together.  A fixed model "
                    "(--model-space zoo:NAME) searches hardware; a single design (--hw NAME) "
                    "searches models.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-space", default="flexibert2-small",
                        help="flexibert2 | flexibert2-small | bert-like | FILE.json | zoo:NAME "
                             "(fixed model); default flexibert2-small")
    parser.add_argument("--hw", default="transcode-space",
                        help="hardware design space or single design (file or library name)")
    parser.add_argument("--accuracy", default="measured",
                        help="measured (train on ListOps; default) | table:FILE | "
                             "surrogate:FILE | none")
    parser.add_argument("--train-steps", type=int,
                        help="measured accuracy: training steps per model (default 200; "
                             "150 in the demo)")
    parser.add_argument("--train-seed", type=int, default=0,
                        help="measured accuracy: trainer seed (default 0)")
    parser.add_argument("--baseline", metavar="MODEL@DESIGN",
                        help="compare the best pair with this pair, e.g. "
                             "bert-tiny@acceltran-edge")
    parser.add_argument("--demo", action="store_true",
                        help="run the joint co-design demo (ListOps, measured accuracy, "
                             "bounded in time; see docs/codesign.md)")
    parser.add_argument("--demo-minutes", type=float, default=30.0,
                        help="demo time bound in minutes (default 30)")
    add_common_options(parser, default_strategy="boshcode", default_budget=200)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tools.codesign.cli import run_codesign

    return run_codesign(args)
