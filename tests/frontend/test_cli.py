"""``tcc import`` through ``tools.cli.main``: exit codes, files, messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.frontend.golden_cases import CASES, make_inputs
from tests.frontend.test_golden import build_model
from tools.cli import main
from tools.commands.import_ import parse_input_shapes
from transcode_ir import load_module, run_function


@pytest.fixture()
def model_path(tmp_path: Path) -> Path:
    case = next(c for c in CASES if c.name == "position_ids")
    path = tmp_path / "embed.onnx"
    onnx.save(build_model(case), str(path))
    return path


def test_import_writes_tir_and_npz(model_path: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "embed.tir"
    out.parent.mkdir()
    code = main(["import", str(model_path), "-o", str(out), "--input-shape", "input_ids=3x5"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    # 'wrote' lines go to stderr (tools/console.py), stdout carries results only
    assert f"wrote {out} (" in captured.err and "embed.npz (3 parameters)" in captured.err
    assert "MACs" not in captured.out  # no summary unless asked
    module = load_module(out)
    assert module["forward"].args[0].type.shape == (3, 5)
    ids = np.arange(15).reshape(3, 5) % 10
    (result,) = run_function(module, "forward", {"input_ids": ids})
    assert result.shape == (3, 5, 4)


def test_summary(model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["import", str(model_path), "-o", str(tmp_path / "m.tir"), "--summary"])
    out = capsys.readouterr().out
    assert code == 0
    assert "@forward: 11 ops" in out  # token types: a one-element constant and a tensor.expand
    assert "input_ids: tensor<1x128xi64>" in out  # defaults: batch 1, sequence 128
    assert "ops by kind:" in out and "tensor.gather" in out
    assert "MACs: 0" in out
    assert "parameters (weight): 3 tensors, 112 elements, 448 B" in out


def test_without_output_prints_summary_only(model_path: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["import", str(model_path)])
    out = capsys.readouterr().out
    assert code == 0 and "ops by kind:" in out and "wrote" not in out
    assert not list(model_path.parent.glob("*.tir"))


def test_output_dash_prints_ir(model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["import", str(model_path), "-o", "-", "--name", "embeddings"])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.startswith("module @embeddings attributes")
    assert 'loc("embeddings.word_embeddings")' in captured.out


def test_summary_shows_macs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = next(c for c in CASES if c.name == "matmul_add")
    path = tmp_path / "dense.onnx"
    onnx.save(build_model(case), str(path))
    assert main(["import", str(path), "--input-shape", "x=5x4"]) == 0
    assert "MACs: 60" in capsys.readouterr().out  # 5 x 4 x 3


@pytest.mark.parametrize("arguments,expected", [
    (["--input-shape", "input_ids=4by128"],
     "--input-shape expects NAME=DIMS such as input_ids=4x128"),
    (["--input-shape", "tokens=4x128"], "input shape given for 'tokens', which is not an input"),
    (["--input-shape", "input_ids=4x128x2"],
     "has rank 3, but the model's input 'input_ids' has rank 2"),
    (["--input-shape", "input_ids=1x8", "--input-shape", "input_ids=1x9"],
     "--input-shape gives input 'input_ids' twice"),
    (["-o", "x.npz"], "give the .tir path"),
])
def test_bad_arguments(model_path: Path, arguments: list[str], expected: str,
                       capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["import", str(model_path), *arguments])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: ") and expected in err
    assert "Traceback" not in err


@pytest.mark.parametrize("content,expected", [
    (None, "no such file"),
    (b"not a model at all", "not an ONNX model"),
])
def test_bad_files(tmp_path: Path, content: bytes | None, expected: str,
                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.onnx"
    if content is not None:
        path.write_bytes(content)
    code = main(["import", str(path), "-o", str(tmp_path / "bad.tir")])
    err = capsys.readouterr().err
    assert code == 1 and expected in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad.tir").exists()


def test_unsupported_operator_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import onnx.parser

    model = onnx.parser.parse_model("""
<ir_version: 8, opset_import: ["" : 17]>
main (float[2, 3] x) => (float[2, 3] y) { ["/act/HardSwish"] y = HardSwish(x) }
""")
    path = tmp_path / "act.onnx"
    onnx.save(model, str(path))
    code = main(["import", str(path), "-o", str(tmp_path / "act.tir")])
    err = capsys.readouterr().err
    assert code == 1 and "unsupported ONNX operator 'HardSwish'" in err
    assert "Traceback" not in err


def test_parse_input_shapes() -> None:
    assert parse_input_shapes(["input_ids=4x128", " mask=2 ", "scalar="]) == {
        "input_ids": (4, 128), "mask": (2,), "scalar": ()}


def test_help_lists_import(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["--help"])
    assert excinfo.value.code == 0
    assert "import" in capsys.readouterr().out


def test_interpreter_agrees_after_the_file_round_trip(model_path: Path, tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == "position_ids")
    out = tmp_path / "embed.tir"
    assert main(["import", str(model_path), "-o", str(out), "--input-shape",
                 "input_ids=2x6"]) == 0
    module = load_module(out)
    from tests.frontend.conftest import relative_error, run_onnxruntime

    inputs = make_inputs(case, module["forward"])
    (expected,) = run_onnxruntime(model_path, inputs)
    (actual,) = run_function(module, "forward", inputs)
    assert relative_error(actual, expected) <= 1e-6


def test_neither_help_nor_import_loads_torch(model_path: Path) -> None:
    """``tcc --help`` imports nothing heavy; ``tcc import`` never needs torch."""
    import subprocess
    import sys

    script = (
        "import sys, tools.cli\n"
        "tools.cli.build_parser()\n"
        "help_loaded = [m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules]\n"
        f"code = tools.cli.main(['import', {str(model_path)!r}])\n"
        "print(help_loaded, code, 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.strip().splitlines()[-1] == "[] 0 False"
