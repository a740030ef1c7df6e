"""``tcc compile`` end to end: the README's demo, training, JSON, plots, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backends.elector.report import SCHEMA_VERSION
from tools.cli import main

REPO = Path(__file__).resolve().parents[2]
TOP_LEVEL_KEYS = {"schema_version", "tool", "model", "pipeline", "design", "simulator", "summary",
                  "energy", "area", "utilisation", "bytes", "densities", "layers", "ops", "stalls",
                  "notes"}
OP_KEYS = {"index", "kind", "loc", "layer", "unit", "tile", "order", "weights", "start_cycle",
           "end_cycle", "cycles", "compute_cycles", "memory_cycles", "fill_cycles",
           "roofline_cycles", "bound", "macs", "effective_macs", "padded_macs", "ops", "density",
           "tiles", "waves", "lane_cycles_per_tile", "reloads", "density_sources", "bytes",
           "dynamic_nj", "stalls", "bounding_level", "level_utilisation"}


def test_readme_demo_command_prints_the_report() -> None:
    """``make demo`` runs exactly this (a fresh process: torch export of zoo:bert-tiny)."""
    tcc = Path(sys.executable).with_name("tcc")
    command = [str(tcc), "compile", "zoo:bert-tiny", "--hw", "acceltran-edge"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("tcc compile: bert-tiny (forward, inference, batch 4 x seq 128)")
    for needle in ("design     acceltran-edge @ ", "pipeline   canonicalize,",
                   "elector-map{hw=acceltran-edge}",
                   "latency ", "roofline ", "energy class", "area class", "utilisation",
                   "bytes moved", "layer (source name)", "encoder.layer.1", "nn.attention",
                   "no power gating", "not characterised"):
        assert needle in out, needle


def test_training_json_plots_and_ir(zoo, tmp_path, capsys) -> None:
    onnx_path = zoo.onnx("bert-tiny")
    report_path, plots, ir = tmp_path / "r.json", tmp_path / "plots", tmp_path / "mapped.tir"
    code = main(["compile", str(onnx_path), "--hw", "acceltran-edge", "--train", "--optimizer",
                 "sgd", "--batch", "2", "--seq", "32", "--json", str(report_path), "--plots",
                 str(plots), "--emit-ir", str(ir)])
    out = capsys.readouterr().out
    assert code == 0
    assert "(train_step, training, sgd, batch 2 x seq 32)" in out
    assert "stochastic-rounding units" in out
    data = json.loads(report_path.read_text())
    assert TOP_LEVEL_KEYS <= set(data)
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["model"]["mode"] == "training" and data["model"]["function"] == "train_step"
    assert "autodiff{loss=cross-entropy,optimizer=sgd" in data["pipeline"]
    assert data["pipeline"].endswith("elector-map{hw=acceltran-edge}")
    assert data["design"]["name"] == "acceltran-edge" and len(data["design"]["hash"]) == 12
    assert data["tool"]["version"]
    assert set(data["ops"][0]) == OP_KEYS
    levels = set(data["bytes"])
    for op in data["ops"]:
        assert op["bounding_level"] in levels | {"compute"}, op
        assert set(op["level_utilisation"]) <= levels
        assert all(0.0 <= v <= 1.0 for v in op["level_utilisation"].values()), op
        # The level that set the op's duration is the busiest one when it is not compute.
        if op["bounding_level"] != "compute" and op["cycles"] > 0:
            busiest = max(op["level_utilisation"].values())
            assert op["level_utilisation"][op["bounding_level"]] == busiest, op
    assert "limit" in out and "level busy" in out
    kinds = {op["kind"] for op in data["ops"]}
    assert {"optim.sgd", "loss.cross_entropy", "nn.linear"} <= kinds
    # The update writes the new parameters through; an assign moves nothing (issue 12).
    assert "tensor.assign" not in kinds
    energy = data["energy"]
    assert sum(c["total_nj"] for c in energy["classes"]) == pytest.approx(energy["total_nj"])
    assert energy["not_characterised"] == ["main_memory.leakage"]
    area = data["area"]
    assert sum(c["area_um2"] for c in area["classes"] if c["area_um2"] is not None) \
        == pytest.approx(area["total_um2"])
    assert area["not_characterised"] == ["main_memory"]
    summary = data["summary"]
    assert summary["cycles"] >= summary["roofline_cycles"]
    assert all(op["cycles"] >= op["roofline_cycles"] * (1 - 1e-9) for op in data["ops"])
    for name in ("energy.png", "utilisation.png"):
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from transcode_ir import parse_module

    text = ir.read_text()
    assert 'tile:order = "' in text and 'map:design = "acceltran-edge@' in text
    parse_module(text)


def test_forced_mapping_that_overflows_is_a_clean_error(tmp_path, capsys) -> None:
    from transcode_ir import Builder, Function, Module, TensorType, print_module

    module = Module("big")
    func = module.add_function(Function("forward", [TensorType((1, 64, 64)),
                                                    TensorType((1, 64, 64))], ["a", "b"]))
    builder = Builder(func)
    func.set_outputs([builder.op("tensor.matmul", *func.args, loc="proj")], ["out"])
    path = tmp_path / "big.tir"
    path.write_text(print_module(module))
    code = main(["compile", str(path), "--hw", "tiny-test", "-p", "tile{x=64,y=64}"])
    err = capsys.readouterr().err
    assert code == 1
    assert "activation-staging-fits" in err and "tiny-test has 8 KiB" in err
    assert "Traceback" not in err


def test_bad_hw_name_is_a_clean_error(capsys) -> None:
    code = main(["compile", "zoo:bert-tiny", "--hw", "no-such-design"])
    err = capsys.readouterr().err
    assert code == 1
    assert "unknown design 'no-such-design'" in err and "acceltran-edge" in err


def test_missing_model_file_is_a_clean_error(capsys) -> None:
    code = main(["compile", "nowhere.onnx", "--hw", "tiny-test"])
    assert code == 1
    assert "nowhere.onnx: no such file" in capsys.readouterr().err


def test_event_simulator_from_the_command_line(zoo, capsys) -> None:
    code = main(["compile", str(zoo.onnx("bert-tiny")), "--hw", "tiny-test", "--batch", "1",
                 "--seq", "8", "--sim", "event"])
    assert code == 0 and "simulator  event" in capsys.readouterr().out


def test_tcc_opt_finds_both_passes(tmp_path, capsys) -> None:
    from transcode_ir import Builder, Function, Module, TensorType, print_module

    module = Module("m")
    func = module.add_function(Function("forward", [TensorType((1, 16, 16)),
                                                    TensorType((1, 16, 16))], ["a", "b"]))
    builder = Builder(func)
    func.set_outputs([builder.op("tensor.matmul", *func.args)], ["out"])
    path = tmp_path / "m.tir"
    path.write_text(print_module(module))
    code = main(["opt", str(path), "-p", "tile{x=8,y=8,order=ikjb},elector-map{hw=tiny-test}"])
    out = capsys.readouterr().out
    assert code == 0
    assert 'tile:order = "ikjb"' in out and 'map:unit = "mac"' in out
