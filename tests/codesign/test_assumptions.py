"""Say what was assumed: GELU work on a ReLU-only design is flagged, and a
sweep's report prints a pipeline that re-runs as printed."""

from __future__ import annotations

import re

from tools.cli import main


def _gelu_module(tmp_path):
    from transcode_ir import Builder, Function, Module, TensorType, print_module

    module = Module("g")
    func = module.add_function(Function("forward", [TensorType((1, 8, 8)), TensorType((1, 8, 8))],
                                        ["a", "b"]))
    builder = Builder(func)
    product = builder.op("tensor.matmul", *func.args, loc="proj")
    func.set_outputs([builder.op("nn.gelu", product, loc="act")], ["out"])
    path = tmp_path / "g.tir"
    path.write_text(print_module(module))
    return path


def test_gelu_on_a_relu_design_is_a_warning(tmp_path, capsys) -> None:
    path = _gelu_module(tmp_path)
    assert main(["compile", str(path), "--hw", "tiny-test", "-p", "cleanup"]) == 0  # relu lanes
    captured = capsys.readouterr()
    assert "ReLU-only MAC lanes" in captured.err and "1 GELU op (64 elements" in captured.err
    assert "note: design 'tiny-test' has ReLU-only" in captured.out            # in the report
    assert main(["compile", str(path), "--hw", "acceltran-edge", "-p", "cleanup"]) == 0
    captured = capsys.readouterr()
    assert "ReLU-only" not in captured.err + captured.out                     # GELU lanes


def test_sweep_report_pipeline_reruns_as_printed(tmp_path, capsys, small_space_file,
                                                 model_cache_dir) -> None:
    from backends.elector.tiling import design_hash
    from transcode_ir.passes import parse_pipeline

    assert main(["sweep", str(small_space_file), "--model", "zoo:bert-tiny", "--db",
                 str(tmp_path / "r.sqlite"), "--budget", "2", "--executor", "inline", "--seq",
                 "32", "--cache", str(model_cache_dir), "--quiet",
                 "--final-sim", "analytical"]) == 0
    out = capsys.readouterr().out
    pipeline = re.search(r"^pipeline +(\S.*)$", out, re.M).group(1)
    assert "elector-map{hw=" in pipeline and "objective=" in pipeline
    mapping = [p for p in parse_pipeline(pipeline) if p.name == "elector-map"][0]
    from backends.elector.design_library import resolve_design

    design = resolve_design(mapping.hw)                                 # SPACE#INDEX resolves
    assert design_hash(design)[:8] in out                              # the reported design


def test_sweep_over_relu_designs_warns_once(tmp_path, capsys) -> None:
    assert main(["sweep", "tiny-test", "--synthetic", "--db", str(tmp_path / "t.sqlite"),
                 "--budget", "1", "--executor", "inline", "--quiet", "--no-report"]) == 0
    assert capsys.readouterr().err.count("ReLU-only MAC lanes") == 1
    assert main(["sweep", "transcode-space", "--synthetic", "--db", str(tmp_path / "g.sqlite"),
                 "--budget", "1", "--executor", "inline", "--quiet", "--no-report"]) == 0
    assert "ReLU-only" not in capsys.readouterr().err                  # GELU lanes only
