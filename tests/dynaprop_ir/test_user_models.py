"""``tcc dynaprop profile|study`` on a user's own model (an ONNX file, a Hugging Face model
folder) and own inputs (a token file); the profiles drive the IR pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import passes.dynaprop  # noqa: F401  (registers the pass)
from passes.dynaprop import prune_records
from tests.dynaprop_ir.conftest import SEQ, BertTiny
from tools.cli import main
from transcode_ir import run_pipeline

TOKENS = "5 17 33 2 9 11 4\n# a comment line\n101, 7, 8, 9\n" + " ".join(["3"] * 40) + "\n"


def _tokens(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.txt"
    path.write_text(TOKENS)
    return path


def test_profile_of_an_onnx_file_drives_the_pass(bert_tiny: BertTiny, tmp_path: Path) -> None:
    from frontends.dynaprop.user_models import read_sequences

    profile = tmp_path / "profile.json"
    assert main(["dynaprop", "profile", "--model", str(bert_tiny.onnx_path), "--tokens",
                 str(_tokens(tmp_path)), "--tau-i", "0.02", "--max-length", str(SEQ),
                 "--batch-size", "1", "-o", str(profile)]) == 0
    document = json.loads(profile.read_text())
    assert document["data"]["examples"] == 3 and document["thresholds"]["tau_i"] == 0.02
    # the same sequences as a calibration file: the pass measures exactly the profile
    ids, mask = read_sequences(str(tmp_path / "tokens.txt"), None, SEQ)
    assert mask[2].all() and mask[1].sum() == 4          # cut to SEQ, padded
    npz = tmp_path / "inputs.npz"
    np.savez(npz, input_ids=ids[:, None], attention_mask=mask[:, None])
    measured = {r.point: r.density for r in prune_records(run_pipeline(
        bert_tiny.module(), f"cleanup,dynaprop{{tau-i=0.02,calibration={npz}}}").module)}
    from_profile = run_pipeline(bert_tiny.module(), f"default,dynaprop{{profile={profile}}}").module
    records = prune_records(from_profile)
    assert {r.source for r in records} == {"profile"} and len(records) == 18
    for record in records:
        assert record.density == pytest.approx(measured[record.point], abs=1e-9), record.point


def test_profile_of_a_model_folder_drives_the_pass(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from frontends.hf import build_family_model, export_family
    from frontends.onnx import import_onnx

    folder = tmp_path / "distilbert"
    build_family_model("distilbert-tiny", 0).save_pretrained(folder)
    onnx_path = tmp_path / "distilbert.onnx"
    export_family("distilbert-tiny", onnx_path, "torchscript", batch=1, seq=SEQ, check=False)
    profile = tmp_path / "profile.json"
    assert main(["dynaprop", "profile", "--model", str(folder), "--tokens",
                 str(_tokens(tmp_path)), "--tau-i", "0.02", "--max-length", str(SEQ),
                 "--batch-size", "1", "-o", str(profile)]) == 0
    points = json.loads(profile.read_text())["points"]
    assert points["layer.1.query"]["label"].endswith("layer.1.attention.q_lin")
    module = import_onnx(onnx_path, {"input_ids": (1, SEQ), "attention_mask": (1, SEQ)})
    pruned = run_pipeline(module, f"default,dynaprop{{profile={profile}}}").module
    records = prune_records(pruned)
    assert sorted(r.point for r in records) == sorted(points)
    for record in records:
        assert record.density == points[record.point]["forward"]["density"]


def test_study_of_an_onnx_file(bert_tiny: BertTiny, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "study"
    assert main(["dynaprop", "study", "--model", str(bert_tiny.onnx_path), "--tokens",
                 str(_tokens(tmp_path)), "--tau-i", "0,0.05", "--max-length", str(SEQ),
                 "--batch-size", "1", "--out", str(out)]) == 0
    rows = json.loads((out / "study.json").read_text())["rows"]
    assert [r["tau_i"] for r in rows] == [0.0, 0.05]
    assert rows[0]["relative_error"] == 0.0 and rows[0]["argmax_agreement"] == 1.0
    assert rows[1]["activation_sparsity"] > rows[0]["activation_sparsity"]
    assert 0.0 < rows[1]["relative_error"]
    assert "argmax agree" in capsys.readouterr().out


def test_user_input_errors(bert_tiny: BertTiny, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    onnx_path = str(bert_tiny.onnx_path)
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3\nhello world\n")
    text = tmp_path / "text.txt"
    text.write_text("some words\n")
    empty_folder = tmp_path / "folder"
    empty_folder.mkdir()
    cases = [
        (["--model", onnx_path], "give --tokens FILE or --text FILE"),
        (["--model", onnx_path, "--tokens", str(bad)], "bad.txt:2: expected integer token ids"),
        (["--model", onnx_path, "--text", str(text)], "--text needs a tokenizer"),
        (["--model", str(empty_folder), "--tokens", str(bad)], "has no config.json"),
        (["--model", str(tmp_path / "missing.onnx"), "--tokens", str(bad)], "no such ONNX file"),
        (["--model", onnx_path, "--tokens", str(_tokens(tmp_path)), "--mode", "training"],
         "inference profiles"),
    ]
    for extra, message in cases:
        assert main(["dynaprop", "profile", *extra, "-o", str(tmp_path / "p.json")]) != 0
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (extra, err)
