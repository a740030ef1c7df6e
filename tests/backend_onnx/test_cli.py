"""``tcc export`` through ``tools.cli.main``."""

from __future__ import annotations

import onnx
import pytest

from tests.backend_onnx.checks import check_against_interpreter
from tests.backend_onnx.test_export import encoder_block, hidden_input
from tools.cli import main
from transcode_ir import load_module, save_module


@pytest.fixture
def tir_file(tmp_path):
    path = tmp_path / "block.tir"
    save_module(encoder_block(), path)
    assert path.with_suffix(".npz").exists()
    return path


def test_export_writes_a_runnable_model(tir_file, tmp_path, capsys):
    out = tmp_path / "block.onnx"
    assert main(["export", str(tir_file), "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().err          # status lines on stderr
    model = onnx.load(str(out))
    assert model.opset_import[0].version == 18
    check_against_interpreter(load_module(tir_file), str(out), hidden_input())


def test_export_function_and_opset_options(tir_file, tmp_path):
    out = tmp_path / "block13.onnx"
    assert main(["export", str(tir_file), "-o", str(out), "--function", "forward",
                 "--opset", "13"]) == 0
    assert onnx.load(str(out)).opset_import[0].version == 13
    check_against_interpreter(load_module(tir_file), str(out), hidden_input())


def test_export_without_parameter_data_is_a_clear_error(tir_file, tmp_path, capsys):
    tir_file.with_suffix(".npz").unlink()
    out = tmp_path / "block.onnx"
    assert main(["export", str(tir_file), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "parameter(s) without data" in err and "block.npz" in err and "it is missing" in err
    assert "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("argv_tail, message", [
    (["--function", "backward"], "no function @backward; it has @forward"),
    (["--opset", "9"], "opset 9: supported opsets are 13 to"),
])
def test_export_bad_options(tir_file, tmp_path, capsys, argv_tail, message):
    assert main(["export", str(tir_file), "-o", str(tmp_path / "x.onnx"), *argv_tail]) == 1
    assert message in capsys.readouterr().err


def test_export_missing_input_file(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope.tir"), "-o", str(tmp_path / "x.onnx")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_export_requires_output(tir_file):
    with pytest.raises(SystemExit):
        main(["export", str(tir_file)])
