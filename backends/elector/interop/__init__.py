"""Hardware descriptions of other tools (ZigZag, Timeloop/Accelergy) to and
from TransCODE designs: ``tcc hw export`` and ``tcc hw import``.

    from backends.elector.interop import export_design, import_design
    text = export_design(resolve_design("acceltran-edge"), "zigzag")
    result = import_design(text, "edge.yaml")    # format found from the keys
    result.accelerator, result.notes

See docs/interop.md for the versions targeted, what maps to what, and what
an import drops or assumes.
"""

from __future__ import annotations

from typing import Any

from backends.elector.design import Accelerator
from backends.elector.interop.common import ImportResult, InteropError, load_yaml
from backends.elector.interop.timeloop import (
    TIMELOOP_VERSION,
    export_timeloop,
    import_timeloop,
    looks_like_timeloop,
)
from backends.elector.interop.zigzag import (
    ZIGZAG_VERSION,
    export_zigzag,
    import_zigzag,
    looks_like_zigzag,
)

__all__ = [
    "FORMATS",
    "TIMELOOP_VERSION",
    "ZIGZAG_VERSION",
    "ImportResult",
    "InteropError",
    "detect_format",
    "export_design",
    "import_design",
]

#: Format name -> (exporter, importer).
FORMATS = {
    "zigzag": (export_zigzag, import_zigzag),
    "timeloop": (export_timeloop, import_timeloop),
}


def export_design(accelerator: Accelerator, format: str) -> str:
    """``accelerator`` in ``format`` (``zigzag`` or ``timeloop``)."""
    if format not in FORMATS:
        raise InteropError(f"unknown format {format!r}; accepted: {', '.join(FORMATS)}")
    return FORMATS[format][0](accelerator)


def detect_format(tree: Any, filename: str) -> str:
    """``zigzag`` or ``timeloop`` from a parsed file's top-level keys."""
    if looks_like_timeloop(tree):
        return "timeloop"
    if looks_like_zigzag(tree):
        return "zigzag"
    keys = ", ".join(map(str, tree)) if isinstance(tree, dict) else type(tree).__name__
    raise InteropError(f"{filename}: neither a ZigZag accelerator (top-level keys memories and "
                       f"operational_array) nor a Timeloop architecture (top-level key "
                       f"architecture with version {TIMELOOP_VERSION}); found: {keys or 'nothing'}"
                       "; accepted: one of those two, see docs/interop.md")


def import_design(text: str, filename: str, format: str | None = None) -> ImportResult:
    """A foreign file's text as a TransCODE design (``format`` None: detected)."""
    if format is not None and format not in FORMATS:
        raise InteropError(f"unknown format {format!r}; accepted: {', '.join(FORMATS)}")
    tree = load_yaml(text, filename)
    if format is None:
        format = detect_format(tree, filename)
    return FORMATS[format][1](text, filename, tree)
