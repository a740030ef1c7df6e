"""The ``tcc`` command-line driver.

Subcommands live one per file in :mod:`tools.commands`; each file defines
``register(subparsers)`` which adds its parser and sets ``func`` to a handler
taking the parsed arguments and returning an exit code.  Command modules must
be cheap to import: torch, onnx and onnxruntime are imported inside handlers,
so ``tcc --help`` starts fast.

User mistakes raise :class:`transcode_ir.errors.UserError`; the driver prints
them as one paragraph on stderr and exits non-zero, without a traceback.  An
:class:`OSError` that reaches the driver (a full disk, a permission, a folder
given as a file, in a path no command checked) is a problem of the user's
files too: it is printed the same way, naming the path
(:func:`transcode_ir.fileio.describe_os_error`).  Set ``TCC_TRACEBACK=1`` to
get the traceback of either instead.

Integer flags use :func:`tools.flags.bounded_int` so that a size too big for the
toolkit's 64-bit arithmetic is a usage error, not an overflow later.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from transcode_ir.errors import UserError

__all__ = ["build_parser", "main"]

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tcc",
        description="TransCODE: compile transformers onto accelerators, cost them, "
        "and co-design both.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import tools.commands as commands_pkg

    for info in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"tools.commands.{info.name}")
        module.register(sub)
    from tools.options import add_shared

    add_shared(parser)          # -v on every command, --load-pass-plugin where passes run
    return parser


def _version() -> str:
    from tools.version import TOOL_VERSION

    return f"tcc {TOOL_VERSION}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from tools.console import configure_logging

    configure_logging(getattr(args, "verbose", 0) or 0)
    saved_plugins = os.environ.get("TRANSCODE_PASS_PLUGINS")
    try:
        plugins = list(getattr(args, "load_pass_plugin", None) or ())
        if plugins:
            from transcode_ir.passes import PLUGIN_ENVIRONMENT, load_pass_plugin

            for plugin in plugins:
                load_pass_plugin(plugin)
            args.load_pass_plugin = []          # loaded once, here, for every command
            os.environ[PLUGIN_ENVIRONMENT] = os.pathsep.join(
                [str(os.path.abspath(p)) for p in plugins]
                + ([saved_plugins] if saved_plugins else []))
        code = args.func(args)
    except UserError as err:
        if os.environ.get("TCC_TRACEBACK"):
            raise
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:
        return 0
    except OSError as err:
        if os.environ.get("TCC_TRACEBACK"):
            raise
        from transcode_ir.fileio import describe_os_error

        action = "write"
        if isinstance(err, FileNotFoundError) and err.filename is not None:
            # A missing folder on the way to the file is a failed write; a
            # missing file in an existing folder, a failed read.
            parent = os.path.dirname(os.fspath(err.filename)) or "."
            action = "read" if os.path.isdir(parent) else "write"
        print(f"error: {describe_os_error(err, err.filename, action)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if saved_plugins is None:
            os.environ.pop("TRANSCODE_PASS_PLUGINS", None)
        else:
            os.environ["TRANSCODE_PASS_PLUGINS"] = saved_plugins
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
