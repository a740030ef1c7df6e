"""The design library: accelerators and design spaces that ship with the package.

Library files live in ``backends/elector/library/<name>.hwdsl``.  A design is
named on the command line or in Python by that name (``acceltran-edge``) or
by a file path; :func:`resolve_design` and :func:`resolve_space` accept
either, and an unknown name is an error that lists the library.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from backends.elector.design import Accelerator
from backends.elector.hwdsl import SyntaxFile, _unquote, load_design, parse_syntax, read_text
from backends.elector.space import DesignSpace, load_space
from transcode_ir.errors import UserError

__all__ = ["LIBRARY_DIR", "LibraryEntry", "is_space_file", "list_library", "resolve_design",
           "resolve_space"]

#: Where the library's ``.hwdsl`` files live.
LIBRARY_DIR = Path(__file__).with_name("library")


@dataclass(frozen=True)
class LibraryEntry:
    """One library file: ``kind`` is ``"design"`` or ``"space"``."""

    name: str
    kind: str
    description: str
    path: Path


def list_library() -> list[LibraryEntry]:
    """Every library design and space, designs first, each sorted by name."""
    entries = [_entry(path) for path in sorted(LIBRARY_DIR.glob("*.hwdsl"))]
    return sorted(entries, key=lambda entry: (entry.kind != "design", entry.name))


@functools.lru_cache(maxsize=64)
def _entry_cached(path: Path, mtime_ns: int) -> LibraryEntry:
    syntax = parse_syntax(read_text(path), str(path))
    description = ""
    for entry in syntax.entries:
        if entry.key == "description" and entry.form == "assign" and entry.value is not None \
                and entry.value.kind == "string":
            description = _unquote(entry.value.text)
    return LibraryEntry(path.stem, _kind_of(syntax), description, path)


def _kind_of(syntax: SyntaxFile) -> str:
    if syntax.header == "design_space":
        return "space"
    has_choices = any(entry.form == "choice"
                      or any(inner.form == "choice" for inner in entry.entries)
                      for entry in syntax.entries)
    return "space" if has_choices else "design"


def _entry(path: Path) -> LibraryEntry:
    return _entry_cached(path, path.stat().st_mtime_ns)


def _looks_like_path(name_or_path: str | Path) -> bool:
    text = str(name_or_path)
    return isinstance(name_or_path, Path) or "/" in text or "\\" in text \
        or text.endswith(".hwdsl")


def _library_listing() -> str:
    entries = list_library()
    designs = ", ".join(entry.name for entry in entries if entry.kind == "design")
    spaces = ", ".join(entry.name for entry in entries if entry.kind == "space")
    return f"library designs: {designs}; library spaces: {spaces}"


def _find(name_or_path: str | Path, wanted: str) -> tuple[Path, str]:
    """The file for a name or path, and its kind ("design" or "space")."""
    if _looks_like_path(name_or_path) or Path(name_or_path).is_file():
        path = Path(name_or_path)
        if not path.is_file():
            raise UserError(f"{path}: no such file (and not a library {wanted}: "
                            f"{_library_listing()})")
        return path, wanted
    name = str(name_or_path)
    path = LIBRARY_DIR / f"{name}.hwdsl"
    if not name or not path.is_file():
        raise UserError(f"unknown {wanted} {name!r}: not a file and not in the library; "
                        f"{_library_listing()}")
    return path, _entry(path).kind


def resolve_design(name_or_path: str | Path) -> Accelerator:
    """A library design by name (``"acceltran-edge"``) or a ``.hwdsl`` file;
    ``SPACE#INDEX`` is point INDEX of a design space (library name or file),
    as sweeps name their designs."""
    text = str(name_or_path)
    base, hash_sign, index = text.rpartition("#")
    if hash_sign and base and index.isdigit():
        return resolve_space(base).point(int(index))
    path, kind = _find(name_or_path, "design")
    if kind == "space":
        raise UserError(f"{name_or_path!r} is a design space in the library, not one design; "
                        f"use resolve_space (or pick a point of it); {_library_listing()}")
    return load_design(path)


def resolve_space(name_or_path: str | Path) -> DesignSpace:
    """A library design space by name (``"transcode-space"``) or a file.
    A single design resolves to a space of one point."""
    path, _ = _find(name_or_path, "space")
    return load_space(path)


def is_space_file(path: str | Path) -> bool:
    """Whether a ``.hwdsl`` file holds a design space (header or choice sets)."""
    path = Path(path)
    return _kind_of(parse_syntax(read_text(path), str(path))) == "space"
