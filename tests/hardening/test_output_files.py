"""Output files (issue 13, point 3): one error path for file-system failures.

Every command that writes goes through :mod:`transcode_ir.fileio`: a missing
folder, a folder given as a file, a file given as a folder, a full device,
no permission or a read-only file system give one error paragraph naming
the path, exit 1, no traceback, and never a truncated or lost file.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.hardening.conftest import assert_user_error, run_tcc, small_module
from transcode_ir import fileio
from transcode_ir.fileio import FileError, describe_os_error, open_output, write_text
from transcode_ir.serialization import load_module, save_module


@pytest.fixture()
def onnx_file(tmp_path: Path) -> Path:
    from tests.frontend.golden_cases import CASES
    from tests.frontend.test_golden import build_model

    case = next(c for c in CASES if c.name == "position_ids")
    path = tmp_path / "embed.onnx"
    onnx.save(build_model(case), str(path))
    return path


def _commands(tmp_path: Path, module: Path, model: Path, output: Path) -> dict[str, list]:
    return {
        "opt": ["opt", module, "-o", output],
        "opt-split": ["opt", module, "--split-input-file", "-o", output],
        "import": ["import", model, "-o", output],
        "export": ["export", module, "-o", output],
        "zoo-export": ["zoo", "export", "bert-tiny", "-o", output],  # refused before torch
    }


BAD_OUTPUTS = {
    "folder as output": (lambda tmp: tmp, "is a folder"),
    "file as folder": (lambda tmp: tmp / "gemm.tir" / "out.tir", "is a file, not a folder"),
}


@pytest.mark.parametrize("command", ["opt", "opt-split", "import", "export", "zoo-export"])
@pytest.mark.parametrize("case", sorted(BAD_OUTPUTS))
def test_bad_output_paths(tmp_path: Path, module_file: Path, onnx_file: Path, command: str,
                          case: str, capsys: pytest.CaptureFixture[str]) -> None:
    make, fragment = BAD_OUTPUTS[case]
    output = make(tmp_path)
    argv = _commands(tmp_path, module_file, onnx_file, output)[command]
    err = assert_user_error(run_tcc(argv, capsys), fragment)
    assert str(output) in err or str(output.parent) in err


def test_missing_folders_are_made(tmp_path: Path, module_file: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """One rule for every output of tcc: missing folders above it are made
    (as ``--plots DIR`` and the reports always did); a file in the way is an error."""
    output = tmp_path / "a" / "b" / "out.tir"
    assert run_tcc(["opt", module_file, "-o", output], capsys).code == 0
    assert output.is_file() and (tmp_path / "a" / "b" / "out.npz").is_file()
    assert sorted(p.name for p in output.parent.iterdir()) == ["out.npz", "out.tir"]


# --------------------------------------------------------------------------- full device


def _fail_with(code: int):
    def fsync(descriptor: int) -> None:
        raise OSError(code, os.strerror(code))
    return fsync


@pytest.mark.parametrize("code, fragment", [
    (errno.ENOSPC, "no space left on the device"),
    (errno.EDQUOT, "disk quota exceeded"),
    (errno.EROFS, "read-only"),
    (errno.EIO, "Input/output error"),
])
def test_write_failure_keeps_the_previous_file(tmp_path: Path, module_file: Path, code: int,
                                               fragment: str, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Simulated by a failing fsync (the last step before the rename)."""
    output = tmp_path / "out.tir"
    output.write_text("previous work\n")
    (tmp_path / "out.npz").write_bytes(b"previous arrays")
    monkeypatch.setattr(fileio.os, "fsync", _fail_with(code))
    err = assert_user_error(run_tcc(["opt", module_file, "-o", output], capsys), fragment)
    assert "out.npz" in err or "out.tir" in err
    assert output.read_text() == "previous work\n"
    assert (tmp_path / "out.npz").read_bytes() == b"previous arrays"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gemm.npz", "gemm.tir", "out.npz",
                                                          "out.tir"]  # no temporaries left


def test_full_tmpfs(tiny_tmpfs: Path, module_file: Path, onnx_file: Path,
                    capsys: pytest.CaptureFixture[str]) -> None:
    """A real full device: a 64 KiB tmpfs with 15 of its 16 pages used."""
    (tiny_tmpfs / "kept.tir").write_bytes(b"x" * 15 * 4096)
    big = np.zeros((128, 128), np.float32)     # 64 KiB of parameters: does not fit
    module = load_module(module_file)
    module.add_param("big", big)
    with pytest.raises(FileError, match="no space left on the device"):
        save_module(module, tiny_tmpfs / "big.tir")
    assert sorted(p.name for p in tiny_tmpfs.iterdir()) == ["kept.tir"]
    err = assert_user_error(run_tcc(["import", onnx_file, "-o", tiny_tmpfs / "m.tir"], capsys))
    assert "no space left" in err    # a .tir and an .npz need two pages
    assert sorted(p.name for p in tiny_tmpfs.iterdir()) == ["kept.tir"]


def test_permission_denied(tmp_path: Path, module_file: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    """Root ignores file modes, so the refusal is simulated at the open."""
    def mkstemp(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "x"))
    monkeypatch.setattr(fileio.tempfile, "mkstemp", mkstemp)
    assert_user_error(run_tcc(["opt", module_file, "-o", tmp_path / "o.tir"], capsys),
                      f"cannot write {tmp_path / 'o.npz'}: permission denied")


def test_an_exception_while_writing_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with open_output(target) as stream:
            stream.write("half of the new")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_new_files_get_the_usual_mode(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_overwritten_files_keep_their_mode(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("x")
    target.chmod(0o600)
    write_text(target, "y")
    assert target.stat().st_mode & 0o777 == 0o600 and target.read_text() == "y"


@pytest.mark.parametrize("code, fragment", [
    (errno.ENOENT, "does not exist"), (errno.ENOTDIR, "is a file, not a folder"),
    (errno.EISDIR, "is a folder"), (errno.EACCES, "permission denied"),
    (errno.EPERM, "permission denied"), (errno.ENOSPC, "no space left"),
    (errno.EROFS, "read-only"), (errno.ENAMETOOLONG, "too long"),
])
def test_describe_os_error(tmp_path: Path, code: int, fragment: str) -> None:
    message = describe_os_error(OSError(code, os.strerror(code)), tmp_path / "x" / "out.tir")
    assert fragment in message and str(tmp_path / "x") in message


def test_stray_os_error_reaches_the_driver_as_one_line(tmp_path: Path, module_file: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The driver's backstop: an OSError no command mapped names its file."""
    import tools.commands.opt as opt

    def explode(module, output):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "elsewhere"))
    monkeypatch.setattr(opt, "_write", explode)
    assert_user_error(run_tcc(["opt", module_file, "-o", tmp_path / "o.tir"], capsys),
                      f"{tmp_path / 'elsewhere'}", "no space left")


def test_save_module_removes_a_stale_npz(tmp_path: Path) -> None:
    module = load_module(small_module(tmp_path), with_params=False)
    (tmp_path / "out.npz").write_bytes(b"stale arrays of an older module")
    save_module(module, tmp_path / "out.tir")
    assert not (tmp_path / "out.npz").exists()
    assert load_module(tmp_path / "out.tir").params["proj"].data is None


def test_a_device_is_written_into_never_replaced(tmp_path: Path, module_file: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """``-o /dev/null`` once replaced /dev/null by a regular file (the rename
    of an atomic write); a device node made here stands in for it."""
    import stat

    device = tmp_path / "null"
    try:
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError) as err:
        pytest.skip(f"cannot make a device node here: {err}")
    assert run_tcc(["opt", module_file, "-o", device], capsys).code == 0
    assert stat.S_ISCHR(os.stat(device).st_mode)
    assert not (tmp_path / "null.npz").exists()
    write_text(device, "x")
    assert stat.S_ISCHR(os.stat(device).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gemm.npz", "gemm.tir", "null"]


def test_a_symlink_keeps_pointing_at_its_file(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
