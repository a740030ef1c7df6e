"""Saving and loading modules: text beside an ``.npz`` of parameter data."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from transcode_ir.core import Module
from transcode_ir.errors import UserError
from transcode_ir.fileio import (
    FileError,
    check_output_path,
    describe_os_error,
    is_special_file,
    open_output,
    read_text,
    write_text,
)
from transcode_ir.parser import parse_module
from transcode_ir.printer import format_type, print_module
from transcode_ir.types import numpy_dtype

__all__ = ["load_arrays", "load_module", "module_fingerprint", "save_module", "structurally_equal"]


def _npz_path(path: Path) -> Path:
    return path.with_suffix(".npz")


def save_module(module: Module, path: str | Path) -> Path:
    """Write ``path`` (text) and, if any parameter has data, ``path.npz``.

    Both files are written to temporaries first and replace the targets only
    when both are complete (:mod:`transcode_ir.fileio`), so a full disk or a
    missing folder is a :class:`~transcode_ir.fileio.FileError` and never
    leaves a truncated ``.tir`` or ``.npz``.  A stale ``.npz`` beside the
    target is removed when the module has no parameter data (it would
    otherwise be loaded with the new text).
    """
    path = Path(path)
    if path.suffix == ".npz":
        raise UserError(f"{path}: give the .tir path; the parameters are written beside it "
                        "as .npz")
    check_output_path(path)
    text = print_module(module)
    arrays = {name: p.data for name, p in module.params.items() if p.data is not None}
    npz = _npz_path(path)
    if arrays and not is_special_file(path):
        with open_output(npz, "wb") as npz_stream, open_output(path, "w") as text_stream:
            np.savez(npz_stream, **arrays)  # type: ignore[arg-type]  # names, not savez's flags
            npz_stream.flush()       # the big file first: a full disk fails here,
            os.fsync(npz_stream.fileno())  # before either target is replaced
            text_stream.write(text)
    else:
        write_text(path, text)
        if npz != path and npz.is_file() and not is_special_file(path):
            try:
                npz.unlink()
            except OSError as err:
                raise FileError(describe_os_error(err, npz, "remove")) from None
    return path


def load_module(path: str | Path, with_params: bool = True) -> Module:
    """Read a module from ``path`` and, when ``with_params``, its parameter
    data from the ``.npz`` beside it (checked: readable, plain numeric
    arrays, each named like a declared parameter and of its shape and type)."""
    path = Path(path)
    text = read_text(path, "IR file", "IR text (.tir)")
    module = parse_module(text, str(path))
    npz = _npz_path(path)
    if with_params and npz != path and (npz.exists() or npz.is_symlink()):
        _attach_parameters(module, npz)
    return module


def _attach_parameters(module: Module, npz: Path) -> None:
    for name, data in load_arrays(npz, "parameter file").items():
        param = module.params.get(name)
        if param is None:
            continue  # arrays the text no longer declares are ignored
        expected = numpy_dtype(param.type.dtype)
        if data.dtype != expected and data.dtype.newbyteorder("=") == expected:
            data = data.astype(expected)  # the other byte order: same numbers
        if tuple(data.shape) != param.type.shape or data.dtype != expected:
            raise UserError(
                f"parameter file {npz}: array {name!r} is {_describe_array(data)}, but the module declares "
                f"@{name} as {format_type(param.type)} ({_describe_shape(param.type.shape)} "
                f"{np.dtype(expected).name}); re-save the module, or fix the array")
        param.data = data


def load_arrays(npz: str | Path, what: str = "array file") -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file, as plain (non-object) numpy arrays.

    A damaged, empty, truncated, text, pickled or object-array file, or a
    single ``.npy`` renamed ``.npz``, is a :class:`UserError` that names the
    file (and the array) and says what was expected.
    """
    npz = Path(npz)
    expected = ("expected a numpy .npz archive of numeric arrays (as written by numpy.savez: "
                "one .npy per array, no pickled objects)")
    if npz.is_dir():
        raise FileError(f"{what} {npz} is a folder; {expected}")
    try:
        size = npz.stat().st_size
    except OSError as err:
        raise FileError(describe_os_error(err, npz, "read")) from None
    if size == 0:
        raise UserError(f"{what} {npz} is empty; {expected}")
    try:
        with open(npz, "rb") as stream:
            magic = stream.read(6)
    except OSError as err:
        raise FileError(describe_os_error(err, npz, "read")) from None
    if magic == b"\x93NUMPY":
        raise UserError(f"{what} {npz} holds a single .npy array, not an .npz archive; {expected}")
    if not magic.startswith(b"PK"):
        raise UserError(f"{what} {npz} is not a zip archive (it does not start with 'PK'); "
                        f"{expected}")
    try:
        loaded = np.load(npz, allow_pickle=False)
    except OSError as err:
        raise FileError(describe_os_error(err, npz, "read")) from None
    except Exception as err:  # noqa: BLE001 - numpy/zipfile raise many kinds for a bad file
        raise UserError(f"{what} {npz} cannot be read ({_reason(err)}); {expected}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        kind = "a single .npy array" if isinstance(loaded, np.ndarray) else type(loaded).__name__
        raise UserError(f"{what} {npz} holds {kind}, not an .npz archive; {expected}")
    arrays: dict[str, np.ndarray] = {}
    with loaded:
        for name in loaded.files:
            try:
                data = loaded[name]
            except Exception as err:  # noqa: BLE001
                raise UserError(f"{what} {npz}: array {name!r} cannot be read ({_reason(err)}); "
                                f"{expected}") from None
            if not isinstance(data, np.ndarray):
                raise UserError(f"{what} {npz}: array {name!r} cannot be read (the archive "
                                f"member is not in .npy format); {expected}")
            if data.dtype.hasobject or data.dtype.kind not in "biuf":
                raise UserError(f"{what} {npz}: array {name!r} has element type "
                                f"{getattr(data, 'dtype', type(data).__name__)}; expected a "
                                "numeric or boolean array")
            arrays[name] = data
    return arrays


def _reason(err: BaseException) -> str:
    text = str(err).split("\n", 1)[0]
    if "pickled" in text or "allow_pickle" in text:
        return "it holds pickled Python objects, which are never loaded"
    if len(text) > 120:
        text = text[:117] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _describe_shape(shape: tuple[int, ...]) -> str:
    return "shape " + ("x".join(str(d) for d in shape) if shape else "scalar")


def _describe_array(data: np.ndarray) -> str:
    return f"{_describe_shape(tuple(data.shape))} {data.dtype.name}"


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
            if p.data is not None and q.data is not None and not np.array_equal(p.data, q.data):
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
