"""Cells of the family matrix that fail today, and why (xfail strict: when a fix
lands the cell passes, the xfail turns into an error, and the entry goes).

Keys are ``(family, exporter)``; values map a cell (or ``"*"``: every cell
from ``import`` on, since they all need the import) to the reason.
"""

from __future__ import annotations

KNOWN: dict[tuple[str, str], dict[str, str]] = {}


def _add(names: tuple[str, ...], exporters: tuple[str, ...], cell: str, reason: str) -> None:
    for name in names:
        for exporter in exporters:
            KNOWN.setdefault((name, exporter), {}).setdefault(cell, reason)


_BOTH = ("torchscript", "dynamo")


def reason(name: str, exporter: str, cell: str) -> str | None:
    """Why the cell is expected to fail, or None."""
    if cell == "export":
        return KNOWN.get((name, exporter), {}).get("export")
    entry = KNOWN.get((name, exporter), {})
    return entry.get(cell) or entry.get("*")
