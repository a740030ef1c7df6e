"""One plain-text table formatter for every ``tcc`` listing and report.

    >>> print(format_table(("item", "count"), [("PE", "4"), ("buffer", "12")],
    ...                    total=("total", "16")))
    item    count
    ------  -----
    PE          4
    buffer     12
    ------  -----
    total      16

Cells are strings (callers format numbers their own way: units, separators,
percentages); other values are passed through ``str``.  ``align`` is one
letter per column, ``l`` or ``r`` (default: the first column left, the others
right).  Columns are separated by ``gap`` spaces, lines are right-stripped,
and ``rule=False`` leaves out the dashes under the header.

It lives in the core (standard library only, imports nothing above it) so the
IR's own timing report, the backends' reports and the command line share it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["format_table"]


def format_table(header: Sequence[Any] | None, rows: Iterable[Sequence[Any]], *,
                 total: Sequence[Any] | None = None, align: str | None = None,
                 gap: int = 2, rule: bool = True, indent: str = "") -> str:
    """The table as text (see the module docstring)."""
    body = [[_cell(c) for c in row] for row in rows]
    head = [_cell(c) for c in header] if header is not None else None
    tail = [_cell(c) for c in total] if total is not None else None
    lines_in = ([head] if head else []) + body + ([tail] if tail else [])
    columns = max((len(line) for line in lines_in), default=0)
    if columns == 0:
        return ""
    for line in lines_in:
        line.extend([""] * (columns - len(line)))
    widths = [max(len(line[c]) for line in lines_in) for c in range(columns)]
    align = (align or "l" + "r" * (columns - 1)).ljust(columns, "r")
    separator = " " * gap

    def render(line: Sequence[str]) -> str:
        cells = [cell.ljust(w) if a == "l" else cell.rjust(w)
                 for cell, w, a in zip(line, widths, align)]
        return (indent + separator.join(cells)).rstrip()

    dashes = indent + separator.join("-" * w for w in widths)
    out = []
    if head is not None:
        out.append(render(head))
        if rule:
            out.append(dashes)
    out.extend(render(line) for line in body)
    if tail is not None:
        if rule:
            out.append(dashes)
        out.append(render(tail))
    return "\n".join(out)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)
