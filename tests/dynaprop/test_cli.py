"""``tcc dynaprop study`` and ``tcc dynaprop profile`` end to end on a tiny budget; CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from frontends.dynaprop import PROFILE_VERSION, read_profile, validate_profile
from frontends.dynaprop.profile import profile_densities
from tools.cli import main
from tools.commands.dynaprop import parse_threshold_list
from transcode_ir.errors import UserError

TINY_DATA = ["--train-size", "48", "--eval-size", "16", "--max-length", "32"]


def test_study_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "study"
    code = main(["dynaprop", "study", "--model", "bert-tiny", "--task", "listops",
                 "--tau-i", "0,0.05", "--tau-t", "0,1e-3", "--steps", "3", "--batch-size", "16",
                 "--seed", "1", "--workers", "1", "--out", str(out), *TINY_DATA])
    assert code == 0
    printed = capsys.readouterr().out
    table = (out / "study.txt").read_text()
    assert "tau_i" in table and table.strip() in printed
    assert len([line for line in table.splitlines()
                if line.split()[:1] in (["0"], ["0.05"])]) == 4
    document = json.loads((out / "study.json").read_text())
    assert document["format"] == "transcode.dynaprop-study" and document["version"] == 1
    assert document["model"] == "bert-tiny" and document["seed"] == 1
    assert document["train_config"]["steps"] == 3
    assert document["command"].startswith("tcc dynaprop study --model bert-tiny")
    rows = document["rows"]
    assert [(r["tau_i"], r["tau_t"]) for r in rows] == [(0, 0), (0, 1e-3), (0.05, 0), (0.05, 1e-3)]
    for row in rows:
        for key in ("test_accuracy", "activation_sparsity", "gradient_sparsity",
                    "weight_gradient_sparsity"):
            assert 0.0 <= row[key] <= 1.0
    # pruning more gives more zeros
    assert rows[2]["activation_sparsity"] > rows[0]["activation_sparsity"]
    assert rows[1]["gradient_sparsity"] > rows[0]["gradient_sparsity"]
    assert rows[1]["weight_gradient_sparsity"] > rows[0]["weight_gradient_sparsity"]
    png = (out / "study.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_profile_inference_written_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    assert main(["dynaprop", "profile", "--model", "bert-tiny", "--tau-i", "0.02",
                 "--batches", "2", "--batch-size", "8", "-o", str(path), *TINY_DATA]) == 0
    profile = read_profile(path)
    assert profile["version"] == PROFILE_VERSION and profile["mode"] == "inference"
    assert profile["model"] == "bert-tiny" and profile["seed"] == 0
    assert profile["module_prefix"] == ""  # structural names have no module prefix
    assert profile["thresholds"] == {"tau_i": 0.02, "tau_t": 0.0, "per_point": False}
    assert profile["data"]["task"] == "listops" and profile["data"]["batches"] == 2
    assert profile["data"]["sequence_length"] == 32
    # keys are the structural names (the IR pass's), labels the module paths
    assert sorted(profile["points"]) == sorted(
        f"layer.{i}.{role}" for i in range(2) for role in (
            "query", "key", "value", "scores", "probs", "context", "attention_output",
            "intermediate", "output"))
    assert profile["points"]["layer.1.key"]["label"] == "bert.encoder.layer.1.attention.self.key"
    forward = profile_densities(profile)
    assert all(0.0 < d < 1.0 for d in forward.values())
    assert profile_densities(profile, "backward") == {}
    assert profile["weight_gradients"] == {}


def test_profile_training_with_calibration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "train.json"
    assert main(["dynaprop", "profile", "--model", "bert-tiny", "--mode", "training",
                 "--target-sparsity", "0.4", "--tau-t", "1e-4", "--batches", "2",
                 "--batch-size", "8", "-o", str(path), *TINY_DATA]) == 0
    assert "target sparsity 0.4000" in capsys.readouterr().err          # the wrote line, on stderr
    profile = read_profile(path)
    assert profile["mode"] == "training"
    calibration = profile["calibration"]
    assert calibration["target_sparsity"] == 0.4 and calibration["per_point"] is False
    assert profile["thresholds"]["tau_i"] > 0
    backward = profile_densities(profile, "backward")
    assert set(backward) == set(profile["points"])
    assert "bert.encoder.layer.0.attention.self.query.weight" in profile["weight_gradients"]
    assert "classifier.weight" in profile["weight_gradients"]  # outside the encoder: kept
    assert profile["totals"]["backward"]["density"] < 1.0


def test_profile_validation_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    assert main(["dynaprop", "profile", "--batches", "1", "--batch-size", "4",
                 "-o", str(path), *TINY_DATA]) == 0
    good = json.loads(path.read_text())
    bad = json.loads(path.read_text())
    bad["version"] = 99
    with pytest.raises(UserError, match="version.*reads version 1, the file is version 99"):
        validate_profile(bad, "p.json")
    bad = json.loads(path.read_text())
    first = next(iter(bad["points"]))
    bad["points"][first]["forward"]["density"] = 0.123
    with pytest.raises(UserError, match=rf"points\['{first}'\]"
                                        r".forward.density"):
        validate_profile(bad, "p.json")
    del bad["points"][first]["forward"]["density"]
    with pytest.raises(UserError, match="missing"):
        validate_profile(bad, "p.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(UserError, match="broken.json:1:2: not JSON"):
        read_profile(tmp_path / "broken.json")
    assert validate_profile(good) is good


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dynaprop", "study", "--model", "bert-huge"], "unknown model 'bert-huge'"),
        (["dynaprop", "profile", "--model", "gpt2", "-o", "x.json"], "unknown model 'gpt2'"),
        (["dynaprop", "study", "--tau-i", "0,abc"], "--tau-i: 'abc' is not a number"),
        (["dynaprop", "study", "--tau-t", "0,-1e-4"], "--tau-t: '-1e-4' is not a finite number"),
        (["dynaprop", "study", "--tau-i", "0,,0.1"], "--tau-i: empty entry"),
        (["dynaprop", "study", "--tau-i", "0.1,0.1"], "appears twice"),
        (["dynaprop", "study", "--tau-i", "nan"], "not a finite number"),
        (["dynaprop", "study", "--task", "imdb"], "unknown task 'imdb'"),
        (["dynaprop", "study", "--steps", "0"], "--steps: expected an integer >= 1"),
        (["dynaprop", "profile", "--tau-i", "0.1,0.2", "-o", "x.json"], "expected one number"),
        (["dynaprop", "profile", "--target-sparsity", "2", "-o", "x.json"], "fraction in [0, 1]"),
        (["dynaprop", "profile", "--per-point", "-o", "x.json"], "--per-point needs"),
    ],
)
def test_cli_errors_are_user_errors(argv: list[str], message: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error
    assert "Traceback" not in error


def test_threshold_list_parser() -> None:
    assert parse_threshold_list("0, 0.01,2e-2", "--tau-i") == [0.0, 0.01, 0.02]
    with pytest.raises(UserError, match="comma-separated list"):
        parse_threshold_list("x", "--tau-i")
