"""Options every ``tcc`` command shares, added in one place (:func:`add_shared`).

* ``-v/--verbose`` (repeatable) on every command: the standard :mod:`logging`
  module at INFO (``-v``) or DEBUG (``-vv``) on stderr (:mod:`tools.console`).
* ``--load-pass-plugin FILE`` (repeatable) on every command that runs passes
  (:data:`PASS_COMMANDS`): the driver loads the file before the command, and
  worker processes (sweeps) load it too (``TRANSCODE_PASS_PLUGINS``).

The defaults several commands share (sequence length, mapper objective,
pipelines) are defined once in :mod:`transcode_ir.defaults` (the backend and
frontends read them too) and re-exported here for the commands.

Cheap to import: argparse only.
"""

from __future__ import annotations

import argparse

from transcode_ir.defaults import (
    INFERENCE_PIPELINE,
    MAPPER_OBJECTIVE,
    MAPPER_OBJECTIVES,
    SEQUENCE_LENGTH,
    training_pipeline,
)

__all__ = ["INFERENCE_PIPELINE", "MAPPER_OBJECTIVE", "MAPPER_OBJECTIVES", "PASS_COMMANDS",
           "SEQUENCE_LENGTH", "add_shared", "leaf_parsers", "training_pipeline"]

#: Commands whose work runs passes (a user's pass must reach them all).
PASS_COMMANDS = ("compile", "opt", "sweep", "codesign", "dynaprop", "export")


def leaf_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """``(path, parser)`` of every parser that runs something (no subcommands)."""
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    yield path, parser
    for action in subcommands:
        for name, child in action.choices.items():
            yield from leaf_parsers(child, (*path, name))


def add_shared(root: argparse.ArgumentParser) -> None:
    """Add the shared options to every (sub)command parser under ``root``."""
    for path, parser in leaf_parsers(root):
        if not path:
            continue
        taken = parser._option_string_actions
        if "-v" not in taken and "--verbose" not in taken:
            parser.add_argument("-v", "--verbose", action="count", default=0,
                                help="more detail on stderr (-v info, -vv debug)")
        if path[0] in PASS_COMMANDS and "--load-pass-plugin" not in taken:
            parser.add_argument("--load-pass-plugin", action="append", default=[],
                                metavar="FILE",
                                help="load passes from a Python file (repeatable)")
