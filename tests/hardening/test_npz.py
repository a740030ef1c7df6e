"""Damaged ``.npz`` files beside a ``.tir`` (issue 13: 20 tracebacks over 7
kinds): each is one error that names the file, the array where there is
one, and what was expected."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.hardening.conftest import assert_user_error, run_tcc
from transcode_ir.errors import UserError
from transcode_ir.serialization import load_arrays, load_module

GOOD = {"pooler.dense.weight_transposed": np.ones((6, 4), np.float32),
        "pooler.dense.bias": np.ones(4, np.float32), "proj": np.ones((5, 3), np.float32)}


def _savez(path: Path, **arrays) -> None:
    np.savez(path, **arrays)


def _npy_renamed(path: Path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.ones(3))
    path.write_bytes(buffer.getvalue())


def _zip_of_text(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("proj.npy", "this is not an array")


def _truncated(path: Path) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **GOOD)
    path.write_bytes(buffer.getvalue()[:300])


def _object_array(path: Path) -> None:
    np.savez(path, proj=np.array([{"a": 1}, None], dtype=object))


CASES = {
    "empty": (lambda p: p.write_bytes(b""), ["is empty"]),
    "text": (lambda p: p.write_text("proj = [[1, 2, 3]]\n"), ["is not a zip archive"]),
    "truncated": (_truncated, ["cannot be read"]),
    "npy renamed": (_npy_renamed, ["a single .npy array"]),
    "object array": (_object_array, ["'proj'", "pickled Python objects"]),
    "zip of text": (_zip_of_text, ["'proj'", "cannot be read"]),
    "string array": (lambda p: _savez(p, proj=np.array(["a", "b"])), ["'proj'", "element type"]),
    "wrong shape": (lambda p: _savez(p, proj=np.ones((5, 4), np.float32)),
                    ["'proj'", "shape 5x4 float32", "tensor<5x3xf32>"]),
    "wrong dtype": (lambda p: _savez(p, proj=np.ones((5, 3), np.int64)),
                    ["'proj'", "shape 5x3 int64", "float32"]),
    "complex": (lambda p: _savez(p, proj=np.ones((5, 3), np.complex64)),
                ["'proj'", "element type complex64"]),
    "folder": (lambda p: p.mkdir(), ["is a folder"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_damaged_npz_is_one_error(case: str, module_file: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    make, fragments = CASES[case]
    npz = module_file.with_suffix(".npz")
    npz.unlink()
    make(npz)
    with pytest.raises(UserError) as caught:
        load_module(module_file)
    message = str(caught.value)
    assert str(npz) in message
    for fragment in fragments:
        assert fragment in message
    if not fragments[0].startswith("'"):   # file-level problems say what is expected
        assert "expected" in message
    for command in (["opt", module_file], ["export", module_file, "-o", module_file.parent / "m.onnx"],
                    ["compile", module_file, "--hw", "tiny-test"]):
        assert_user_error(run_tcc(command, capsys), str(npz))


def test_other_byte_order_is_accepted(module_file: Path) -> None:
    data = np.arange(15, dtype=">f4").reshape(5, 3)
    np.savez(module_file.with_suffix(".npz"), proj=data)
    module = load_module(module_file)
    assert module.params["proj"].data.dtype == np.float32
    assert np.array_equal(module.params["proj"].data, data)


def test_extra_arrays_are_ignored_and_absent_ones_stay_empty(module_file: Path) -> None:
    np.savez(module_file.with_suffix(".npz"), proj=np.ones((5, 3), np.float32),
             unrelated=np.zeros(2))
    module = load_module(module_file)
    assert module.params["proj"].data is not None
    assert module.params["pooler.dense.bias"].data is None


def test_load_arrays_on_a_good_file(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", **GOOD)
    arrays = load_arrays(tmp_path / "a.npz")
    assert sorted(arrays) == sorted(GOOD)
