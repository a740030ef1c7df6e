"""Reading inputs and writing outputs, with errors a user can act on.

Every command that writes a file goes through :func:`open_output` (or
:func:`write_text` / :func:`write_bytes`): the data goes to a temporary file
in the target's folder, which replaces the target only once it is complete,
so a failure half-way (a full disk, an interrupt, an exception while
producing the data) never leaves a truncated file nor destroys the previous
one.  File-system failures -- a missing folder, a folder given as a file, a
file given as a folder, no permission, a full or read-only device -- become a
:class:`FileError` naming the path and what to do, instead of a traceback.

``-`` means standard output for every output (and standard input for
inputs read through :func:`read_bytes` / :func:`read_text`): :func:`open_output`
then writes to ``sys.stdout`` (its binary buffer for ``"wb"``), and
:func:`output_path` gives the library a temporary file whose bytes are copied
to standard output when the block ends.  :func:`is_stdio` tells a command that
a path is ``-`` (to put its own messages on stderr, or to refuse a second
output that would go there too).

It lives in the core (and imports nothing above it) because the core writes
``.tir`` + ``.npz`` itself (:func:`transcode_ir.serialization.save_module`);
the ``tcc`` commands use it for every other output.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import IO, Iterator

from transcode_ir.errors import UserError

__all__ = [
    "FileError",
    "check_input_file",
    "check_output_path",
    "describe_os_error",
    "is_special_file",
    "is_stdio",
    "make_parents",
    "open_output",
    "output_path",
    "read_bytes",
    "read_text",
    "write_bytes",
    "write_text",
]


class FileError(UserError):
    """A file or folder that cannot be read or written."""


def _first_missing_or_file(path: Path) -> tuple[str, Path] | None:
    """Walk up ``path``'s folders: ("missing", folder) for the deepest folder
    that does not exist, ("file", p) for a component that is a file."""
    parents = list(reversed(path.parents))[1:] if path.is_absolute() else list(reversed(path.parents))
    for parent in parents:
        if str(parent) in ("", "."):
            continue
        if not parent.exists():
            return "missing", parent
        if not parent.is_dir():
            return "file", parent
    return None


def describe_os_error(err: OSError, path: str | Path | None = None, action: str = "write") -> str:
    """One sentence for an :class:`OSError` met while doing ``action`` on ``path``."""
    if path is None and err.filename is None:
        return f"cannot {action} a file: {err.strerror or type(err).__name__}"
    shown = Path(path) if path is not None else Path(err.filename)
    code = err.errno
    if code == errno.ENOENT:
        if action == "read":
            return f"{shown}: no such file"
        found = _first_missing_or_file(shown)
        folder = found[1] if found else shown.parent
        return (f"cannot {action} {shown}: folder {folder} does not exist "
                "(create it first, or give a path in an existing folder)")
    if code == errno.ENOTDIR:
        found = _first_missing_or_file(shown)
        culprit = found[1] if found and found[0] == "file" else shown.parent
        return (f"cannot {action} {shown}: {culprit} is a file, not a folder "
                "(give a path whose folders exist)")
    if code == errno.EISDIR:
        what = "a file name inside it" if action == "write" else "a file"
        return f"cannot {action} {shown}: it is a folder; give {what}"
    if code in (errno.EACCES, errno.EPERM):
        return f"cannot {action} {shown}: permission denied"
    if code == errno.ENOSPC:
        kept = " (the previous file, if any, is unchanged)" if action == "write" else ""
        return f"cannot {action} {shown}: no space left on the device{kept}; free some space " \
               "or write elsewhere"
    if code == getattr(errno, "EDQUOT", -1):
        return f"cannot {action} {shown}: disk quota exceeded; free some space or write elsewhere"
    if code == errno.EROFS:
        return f"cannot {action} {shown}: the file system is read-only; write elsewhere"
    if code == errno.ENAMETOOLONG:
        return f"cannot {action} {shown}: the file name is too long"
    if code == errno.EMFILE or code == errno.ENFILE:
        return f"cannot {action} {shown}: too many open files"
    reason = err.strerror or type(err).__name__
    return f"cannot {action} {shown}: {reason}"


def is_stdio(path: str | Path | None) -> bool:
    """True when ``path`` is ``-`` (standard output or input)."""
    return path is not None and str(path) == "-"


def _stdout_binary() -> IO[bytes]:
    import sys

    sys.stdout.flush()
    return getattr(sys.stdout, "buffer", None) or sys.stdout  # type: ignore[return-value]


def check_output_path(path: str | Path, what: str = "output") -> Path:
    """Fail early, before long work, when ``path`` cannot be an output file:
    its folder is missing or is a file, or ``path`` is a folder.  ``-``
    (standard output) always can."""
    if is_stdio(path):
        return Path("-")
    path = Path(path)
    if path.is_dir():
        raise FileError(f"cannot write {what} {path}: it is a folder; give a file name inside it")
    found = _first_missing_or_file(path)
    if found is not None and found[0] == "file":
        raise FileError(f"cannot write {what} {path}: {found[1]} is a file, not a folder "
                        "(give a path whose folders exist)")
    # Missing folders are made when the output is written (make_parents).
    return path


def make_parents(path: Path) -> None:
    """Create the missing folders above ``path`` (every output of tcc does,
    like ``--plots DIR``); a component that is a file is a :class:`FileError`."""
    found = _first_missing_or_file(path)
    if found is None:
        return
    if found[0] == "file":
        raise FileError(f"cannot write {path}: {found[1]} is a file, not a folder "
                        "(give a path whose folders exist)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FileError(describe_os_error(err, path.parent, action="create folder")) from None


def check_input_file(path: str | Path, what: str = "input") -> Path:
    """``path`` as a :class:`Path` when it is a readable regular file (or ``-``)."""
    if is_stdio(path):
        return Path("-")
    path = Path(path)
    if path.is_dir():
        raise FileError(f"{what} {path} is a folder; give a file")
    if not path.exists():
        found = _first_missing_or_file(path)
        if found is not None and found[0] == "file":
            raise FileError(f"{what} {path}: {found[1]} is a file, not a folder")
        raise FileError(f"{path}: no such file")
    return path


def _mode_for_new_file() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def is_special_file(path: str | Path) -> bool:
    """True for an existing path that is neither a regular file nor a folder
    (a device such as /dev/null, a FIFO, a socket)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


@contextlib.contextmanager
def output_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for a library that writes by file
    name (onnx.save, savefig, ...); on a clean exit it replaces ``path``
    atomically, on an exception it is removed and ``path`` is left as it
    was.  An :class:`OSError` inside the block becomes a :class:`FileError`
    naming ``path``.  ``-``: the temporary file's bytes go to standard output."""
    if is_stdio(path):
        descriptor, temporary = tempfile.mkstemp(prefix=".tcc-stdout.", suffix=".tmp")
        os.close(descriptor)
        try:
            yield Path(temporary)
            stream = _stdout_binary()
            with open(temporary, "rb") as written:
                while chunk := written.read(1 << 20):
                    stream.write(chunk)
            stream.flush()
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        return
    path = Path(path)
    if path.is_dir():
        raise FileError(f"cannot write {path}: it is a folder; give a file name inside it")
    if is_special_file(path):
        # /dev/null, a FIFO, /dev/stdout: written into, never replaced by a
        # rename (that would put a regular file in place of the device).
        descriptor, temporary = tempfile.mkstemp(prefix=".tcc-output.", suffix=".tmp")
        os.close(descriptor)
        try:
            yield Path(temporary)
            with open(temporary, "rb") as source, open(path, "wb") as target:
                shutil.copyfileobj(source, target, 1 << 20)
        except OSError as err:
            raise FileError(describe_os_error(err, path)) from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        return
    if path.is_symlink():
        path = Path(os.path.realpath(path))   # replace the file the link names, keep the link
    folder = path.parent
    make_parents(path)
    try:
        descriptor, temporary_name = tempfile.mkstemp(prefix=f".{path.name[:100]}.", suffix=".tmp",
                                                      dir=folder if str(folder) else ".")
    except OSError as err:
        raise FileError(describe_os_error(err, path)) from None
    temp_path = Path(temporary_name)
    committed = False
    try:
        try:
            mode_bits = path.stat().st_mode & 0o7777 if path.exists() else _mode_for_new_file()
            os.chmod(descriptor, mode_bits)
        except OSError as err:
            raise FileError(describe_os_error(err, path)) from None
        finally:
            os.close(descriptor)
        try:
            yield temp_path
            with open(temp_path, "rb+") as written:  # on the disk before the rename
                os.fsync(written.fileno())
            os.replace(temp_path, path)
            committed = True
        except OSError as err:
            raise FileError(describe_os_error(err, path)) from None
    finally:
        if not committed:
            with contextlib.suppress(OSError):
                temp_path.unlink()


@contextlib.contextmanager
def open_output(path: str | Path, mode: str = "w", *, encoding: str = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it
    replaces ``path`` atomically, on an exception it is removed and ``path``
    is left as it was.  ``mode`` is ``"w"`` (text) or ``"wb"``."""
    if mode not in ("w", "wb"):
        raise ValueError(f"open_output mode must be 'w' or 'wb', got {mode!r}")
    if is_stdio(path):                       # standard output, left open
        import sys

        stream = _stdout_binary() if mode == "wb" else sys.stdout
        yield stream
        stream.flush()
        return
    with output_path(path) as temporary:
        try:
            stream = (open(temporary, "wb") if mode == "wb"
                      else open(temporary, "w", encoding=encoding, newline=""))
        except OSError as err:
            raise FileError(describe_os_error(err, path)) from None
        with stream:
            yield stream
            stream.flush()


def write_text(path: str | Path, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`open_output`)."""
    with open_output(path, "w", encoding=encoding) as stream:
        stream.write(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`open_output`)."""
    with open_output(path, "wb") as stream:
        stream.write(data)
    return Path(path)


def read_bytes(path: str | Path, what: str = "input") -> bytes:
    """The bytes of ``path`` (``-``: standard input), or a :class:`FileError` naming it."""
    if is_stdio(path):
        import sys

        stream = getattr(sys.stdin, "buffer", sys.stdin)
        data = stream.read()
        return data.encode() if isinstance(data, str) else data
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise FileError(_read_error(err, path, what)) from None


def read_text(path: str | Path, what: str = "input", expected: str = "a text file") -> str:
    """The text (UTF-8) of ``path``; a binary or unreadable file is a
    :class:`FileError` that does not quote the file's content."""
    data = read_bytes(path, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FileError(f"{path}: not UTF-8 text (byte {err.start} cannot be decoded); "
                        f"expected {expected}") from None


def _read_error(err: OSError, path: str | Path, what: str) -> str:
    path = Path(path)
    if err.errno == errno.EISDIR:
        return f"{what} {path} is a folder; give a file"
    if err.errno == errno.ENOENT:
        return f"{path}: no such file"
    if err.errno == errno.ENOTDIR:
        found = _first_missing_or_file(path)
        where = found[1] if found else path.parent
        return f"{path}: no such file ({where} is a file, not a folder)"
    return describe_os_error(err, path, "read")
