"""What the ``tcc`` commands say besides their results: one place for it.

* :func:`wrote` -- the "wrote FILE" line of every command, always on
  **stderr**, so that standard output carries only a command's result (a
  table, JSON, or a file written to ``-``).
* :func:`warn` -- a warning on stderr (``warning: ...``), through the
  ``logging`` module's ``tcc`` logger so ``-q``/``-v`` apply.
* :func:`configure_logging` -- ``-v`` (INFO), ``-vv`` (DEBUG) for the
  standard :mod:`logging` module; the default shows warnings.
* :func:`deprecated_alias` -- an argparse action for an old flag spelling
  that still works but says which one replaces it.

Cheap to import (``tcc --help`` imports it): the standard library only.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

__all__ = ["configure_logging", "deprecated_alias", "logger", "warn", "wrote"]

logger = logging.getLogger("tcc")


def wrote(path: str | Path, detail: str = "", note: str = "") -> None:
    """``wrote [DETAIL to ]PATH[ (NOTE)]`` on stderr (``-``: standard output)."""
    shown = "standard output" if str(path) == "-" else str(path)
    print(f"wrote {detail + ' to ' if detail else ''}{shown}{f' ({note})' if note else ''}",
          file=sys.stderr, flush=True)


def warn(message: str) -> None:
    """``warning: message`` on stderr."""
    _ensure_handler()
    logger.warning(message)


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {text}"
        if record.levelno <= logging.DEBUG:
            return f"debug [{record.name}]: {text}"
        return text


class _Stderr(logging.Handler):
    """Writes to whatever ``sys.stderr`` is when a record arrives (tests
    capture it; a StreamHandler would keep the stream of its creation)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:                                  # noqa: BLE001 (logging's rule)
            self.handleError(record)


_handler: logging.Handler | None = None


def _ensure_handler() -> None:
    global _handler
    if _handler is None:
        _handler = _Stderr()
        _handler.setFormatter(_Format())
        root = logging.getLogger()
        root.addHandler(_handler)
        if root.level == logging.WARNING or root.level == logging.NOTSET:
            root.setLevel(logging.WARNING)


def configure_logging(verbosity: int = 0, quiet: bool = False) -> None:
    """0: warnings; 1 (``-v``): info; 2+ (``-vv``): debug; ``quiet``: errors only.
    Logs go to stderr, through the standard :mod:`logging` module (loggers
    named after the modules, ``tcc`` for the commands)."""
    _ensure_handler()
    level = (logging.ERROR if quiet else logging.WARNING if verbosity <= 0
             else logging.INFO if verbosity == 1 else logging.DEBUG)
    logging.getLogger().setLevel(level)
    logging.captureWarnings(True)


def deprecated_alias(new: str) -> type[argparse.Action]:
    """An argparse action for an old spelling of ``new``: stores the value
    under ``new``'s dest and warns once that the old spelling is deprecated."""

    class _Alias(argparse.Action):
        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                      values: Any, option_string: str | None = None) -> None:
            print(f"warning: {option_string} is deprecated; use {new} (same meaning)",
                  file=sys.stderr)
            setattr(namespace, self.dest, values)

    return _Alias
