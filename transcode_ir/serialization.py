"""Saving and loading modules: text beside an ``.npz`` of parameter data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from transcode_ir.core import Module
from transcode_ir.errors import UserError
from transcode_ir.parser import parse_module
from transcode_ir.printer import print_module

__all__ = ["load_module", "module_fingerprint", "save_module", "structurally_equal"]


def _npz_path(path: Path) -> Path:
    return path.with_suffix(".npz")


def save_module(module: Module, path: str | Path) -> Path:
    """Write ``path`` (text) and, if any parameter has data, ``path.npz``."""
    path = Path(path)
    path.write_text(print_module(module))
    arrays = {name: p.data for name, p in module.params.items() if p.data is not None}
    if arrays:
        np.savez(_npz_path(path), **arrays)
    return path


def load_module(path: str | Path, with_params: bool = True) -> Module:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file; expected IR text (.tir)") from None
    params = {}
    npz = _npz_path(path)
    if with_params and npz.exists() and npz != path:
        with np.load(npz) as data:
            params = {k: data[k] for k in data.files}
    return parse_module(text, str(path), params)


def structurally_equal(a: Module, b: Module, check_params: bool = True) -> bool:
    """True when both modules print identically (the printer is canonical)
    and, optionally, their parameter data are equal."""
    if print_module(a) != print_module(b):
        return False
    if check_params:
        for name, p in a.params.items():
            q = b.params[name]
            if (p.data is None) != (q.data is None):
                return False
            if p.data is not None and not np.array_equal(p.data, q.data):
                return False
    return True


def module_fingerprint(module: Module, include_params: bool = False) -> str:
    """A SHA-256 of the module's text (and optionally its parameter data)."""
    h = hashlib.sha256(print_module(module).encode())
    if include_params:
        for name in sorted(module.params):
            data = module.params[name].data
            if data is not None:
                h.update(name.encode())
                h.update(np.ascontiguousarray(data).tobytes())
    return h.hexdigest()
