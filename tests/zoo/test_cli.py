"""``tcc zoo`` through :func:`tools.cli.main`, and import hygiene (no torch at import)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import onnx
import pytest

from frontends.zoo import ZOO
from tools.cli import main


def test_zoo_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["name", "layers", "hidden", "heads", "FFN"]
    assert set(lines[1]) == {"-", " "}                       # the table helper's rule
    for name in ZOO:
        assert any(line.startswith(name + " ") for line in lines), name
    base = next(line for line in lines if line.startswith("bert-base "))
    assert base.split()[1:5] == ["12", "768", "12", "3072"]
    assert "109,482,240" in base
    mix_b = next(line for line in lines if line.startswith("flexibert-mix-b "))
    assert "128-256" in mix_b and "conv13" in mix_b


def test_zoo_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    from frontends.hf import family_names

    # The BERT/FlexiBERT zoo, then the transformers family entries (frontends/hf).
    assert [row["name"] for row in rows] == list(ZOO) + family_names()
    tiny = rows[0]
    assert tiny["layers"] == 2 and tiny["hidden"] == 128 and tiny["heads"] == 2  # numbers
    mixed = next(row for row in rows if row["name"] == "flexibert-mix-b")
    assert mixed["hidden"] == [128, 256]                                          # a range
    assert tiny["parameters"] == ZOO["bert-tiny"].parameter_count()
    assert tiny["description"] == "l2:h128:sdp*2:ff512"


def test_zoo_describe(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "describe", "flexibert-mix-a", "--prune-points"]) == 0
    out = capsys.readouterr().out
    assert ZOO["flexibert-mix-a"].description in out
    assert "encoder.layer.0.attention.self.scores  (prune_point, scores)" in out
    assert "pooler.dense  (linear, pooler)" in out
    assert main(["zoo", "describe", "l2:h128:sdp,dft:ff512"]) == 0
    assert "(description)" in capsys.readouterr().out
    assert main(["zoo", "describe", "h64:sdp:ff100", "--no-space-check"]) == 0


def test_unknown_name_lists_the_zoo(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["zoo", "export", "bert-colossal", "-o", str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err
    assert "unknown model 'bert-colossal'" in err
    for name in ZOO:
        assert name in err
    assert not (tmp_path / "x.onnx").exists()
    assert main(["zoo", "describe", "bert-colossal"]) == 1


def test_bad_description_names_the_field(capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    assert main(["zoo", "export", "l2:h128:sdp,attn:ff512", "-o", str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err
    assert "heads" in err and "'attn'" in err
    assert main(["zoo", "describe", "l2:h128:sdp*2:ff100"]) == 1
    assert "ff" in capsys.readouterr().err


def test_zoo_export_torchscript_with_verify(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    path = tmp_path / "out" / "model.onnx"
    code = main(["zoo", "export", "l2:h128:sdp,wma,dct,conv9:ff256", "-o", str(path),
                 "--batch", "2", "--seq", "16", "--seed", "4", "--vocab-size", "500", "--verify"])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, out
    assert "wrote" in captured.err and "torchscript, opset 17, symbolic batch/sequence" \
        in captured.err
    assert "max relative error" in out and "(ok)" in out
    proto = onnx.load(path)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["transcode.seed"] == "4" and meta["transcode.vocab_size"] == "500"
    assert meta["transcode.description"] == "l2:h128:sdp,wma,dct,conv9:ff256"


def test_zoo_export_passes_every_option(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    """Option wiring, without paying for a real dynamo export."""
    import frontends.export as export_module
    from frontends.export import ExportResult

    calls: list[dict[str, Any]] = []

    def fake_export(model: Any, path: Any, **kwargs: Any) -> ExportResult:
        calls.append({"model": model, "path": path, **kwargs})
        return ExportResult(Path(path), kwargs["exporter"], kwargs["opset"] or 18, False, 0.0,
                            ("last_hidden_state", "pooler_output"))

    monkeypatch.setattr(export_module, "export_onnx", fake_export)
    code = main(["zoo", "export", "bert-tiny", "-o", str(tmp_path / "m.onnx"), "--exporter",
                 "dynamo", "--batch", "4", "--seq", "64", "--opset", "20", "--seed", "9",
                 "--static"])
    assert code == 0
    (call,) = calls
    assert call["exporter"] == "dynamo" and call["opset"] == 20
    assert call["batch"] == 4 and call["seq"] == 64 and call["seed"] == 9
    assert call["dynamic"] is False
    assert call["model"].config.name == "bert-tiny"
    assert "static 4x64" in capsys.readouterr().err           # the 'wrote' line, on stderr


def test_zoo_without_action_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo"]) == 2
    assert "list" in capsys.readouterr().out


def test_importing_the_zoo_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import frontends.zoo, frontends.zoo.description, frontends.zoo.registry\n"
        "import frontends.zoo.inputs, frontends.export, tools.commands.zoo\n"
        "from frontends.zoo import ZOO, prune_points, example_inputs_numpy\n"
        "assert ZOO['bert-base'].parameter_count() == 109482240\n"
        "prune_points('flexibert-mix-c'); example_inputs_numpy(2, 8)\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print('torch modules:', bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
