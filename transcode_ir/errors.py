"""Errors a user can act on.

Every error raised for a user mistake (bad IR text, bad ONNX file, bad hardware
description, bad pipeline string, ...) derives from :class:`UserError`.  The
``tcc`` driver prints such an error as one paragraph and exits non-zero; any
other exception is a bug in the toolkit and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class UserError(Exception):
    """A mistake in the user's input, reported without a traceback."""

    exit_code = 1


@dataclass(frozen=True)
class SourceLocation:
    """A place in a text file: 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


def caret_snippet(text: str, line: int, column: int) -> str:
    """Return the source line and a caret under ``column`` (both 1-based)."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return ""
    src = lines[line - 1]
    column = max(column, 1)
    if len(src) > _SNIPPET_WIDTH:  # long (generated, minified) lines: a window around the place
        start = max(0, column - 1 - _SNIPPET_WIDTH // 2)
        src = src[start:start + _SNIPPET_WIDTH]
        column -= start
    return f"  {src}\n  {' ' * (column - 1)}^"


_SNIPPET_WIDTH = 160


class ParseError(UserError):
    """A text input (IR, DSL, pipeline) that does not parse."""

    def __init__(self, message: str, location: SourceLocation | None = None,
                 snippet: str = "") -> None:
        self.location = location
        self.bare_message = message
        where = f"{location}: " if location else ""
        full = f"{where}{message}"
        if snippet:
            full += "\n" + snippet
        super().__init__(full)


class VerifyError(UserError):
    """IR that parses but breaks a rule of the IR or of an op definition."""
