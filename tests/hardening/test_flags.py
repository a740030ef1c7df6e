"""Integer flags and exporter failures (issue 13): sizes that would overflow
64-bit arithmetic are usage errors; ``zoo export`` refuses opsets its
exporter cannot take before torch is imported."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.hardening.conftest import assert_user_error, run_tcc
from tools.commands.import_ import parse_input_shapes
from tools.flags import MAX_SIZE
from transcode_ir.errors import UserError

HUGE = "99999999999999999999"


@pytest.mark.parametrize("shape, fragment", [
    (f"input_ids={HUGE}x128", f"dimension {HUGE} is out of range"),
    ("input_ids=4x" + "9" * 5000, "(5000 digits) is out of range"),
    ("input_ids=0x128", "dimension 0 is out of range"),
    (f"input_ids={MAX_SIZE + 1}x1", "out of range"),
])
def test_input_shape_overflow(shape: str, fragment: str) -> None:
    with pytest.raises(UserError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        parse_input_shapes([shape])


def test_input_shape_at_the_bound() -> None:
    assert parse_input_shapes([f"x={MAX_SIZE}x1"]) == {"x": (MAX_SIZE, 1)}


def test_import_refuses_before_reading_the_model(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert_user_error(run_tcc(["import", tmp_path / "absent.onnx", "--input-shape",
                               f"input_ids={HUGE}x128"], capsys), "out of range")


@pytest.mark.parametrize("flag, value, fragment", [
    ("--batch", HUGE, "out of range; accepted: 1..2147483647"),
    ("--seq", "9" * 5000, "(5000 digits) is out of range"),
    ("--batch", "0", "out of range"),
    ("--batch", "-3", "out of range"),
    ("--batch", "four", "expected a whole number"),
    ("--opset", HUGE, "out of range"),
    ("--seed", "-1", "out of range"),
    ("--vocab-size", HUGE, "out of range"),
])
def test_zoo_export_integer_flags(tmp_path: Path, flag: str, value: str, fragment: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    outcome = run_tcc(["zoo", "export", "bert-tiny", "-o", tmp_path / "m.onnx", flag, value],
                      capsys)
    err = assert_user_error(outcome, fragment, code=2)
    assert len(err) < 400


@pytest.mark.parametrize("exporter, opset", [("torchscript", 5), ("torchscript", 21),
                                             ("dynamo", 17), ("dynamo", 99)])
def test_zoo_export_opset_out_of_range(tmp_path: Path, exporter: str, opset: int,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    torch_loaded = "torch" in sys.modules
    outcome = run_tcc(["zoo", "export", "bert-tiny", "-o", tmp_path / "m.onnx", "--exporter",
                       exporter, "--opset", str(opset)], capsys)
    assert_user_error(outcome, f"opset {opset}", f"the {exporter} exporter takes opsets")
    assert not (tmp_path / "m.onnx").exists()
    if not torch_loaded:
        assert "torch" not in sys.modules     # refused before the slow import


def test_zoo_export_example_too_big(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_user_error(run_tcc(["zoo", "export", "bert-tiny", "-o", tmp_path / "m.onnx",
                               "--batch", "100000"], capsys), "example tokens")


def test_export_opset(tmp_path: Path, module_file: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    assert_user_error(run_tcc(["export", module_file, "-o", tmp_path / "m.onnx", "--opset", "5"],
                              capsys), "opset 5")
    assert_user_error(run_tcc(["export", module_file, "-o", tmp_path / "m.onnx", "--opset", HUGE],
                              capsys), "out of range", code=2)


def test_exporter_failure_is_one_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure inside torch's exporter (opset 5 in issue 13) becomes a
    UserError naming the model, exporter and opset."""
    pytest.importorskip("torch")
    import frontends.export as export

    def broken(*args, **kwargs):
        raise RuntimeError("Exporting the operator 'aten::layer_norm' to ONNX opset version 5 "
                           "is not supported.\n  (long torch traceback text)")
    monkeypatch.setattr(export, "_export_torchscript", broken)
    with pytest.raises(UserError) as caught:
        export.export_onnx("bert-tiny", tmp_path / "m.onnx", batch=1, seq=8)
    message = str(caught.value)
    assert "bert-tiny: the torchscript exporter failed at opset 17" in message
    assert "RuntimeError: Exporting the operator" in message and "long torch" not in message
    assert not (tmp_path / "m.onnx").exists()
