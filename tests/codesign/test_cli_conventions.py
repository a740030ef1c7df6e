"""CLI conventions of issue 14 item 4: `-` is standard output, listings take
--json, `--load-pass-plugin` reaches every command that runs passes, -v,
'wrote' on stderr, deprecated flag spellings still work with a warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tools.cli import main

PLUGIN = '''
from dataclasses import dataclass
from typing import ClassVar
from transcode_ir import Module, Pass, register_pass

@register_pass
@dataclass(frozen=True)
class UserMarker(Pass):
    """Marks the module (an attribute) so a test can see the pass ran."""
    name: ClassVar[str] = "user-marker"

    def apply(self, module: Module) -> bool:
        module.attributes = module.attributes.with_(**{"user:marked": "yes"})
        return True
'''


def _tir(tmp_path):
    from transcode_ir import Builder, Function, Module, TensorType, print_module

    module = Module("m")
    func = module.add_function(Function("forward", [TensorType((1, 8, 8)), TensorType((1, 8, 8))],
                                        ["a", "b"]))
    builder = Builder(func)
    func.set_outputs([builder.op("tensor.matmul", *func.args, loc="proj")], ["out"])
    path = tmp_path / "m.tir"
    path.write_text(print_module(module))
    return path


def test_load_pass_plugin_reaches_compile_and_workers(tmp_path, capsys) -> None:
    plugin = tmp_path / "user_pass.py"
    plugin.write_text(PLUGIN)
    ir = tmp_path / "out.tir"
    assert main(["compile", str(_tir(tmp_path)), "--hw", "acceltran-edge", "--load-pass-plugin",
                 str(plugin), "-p", "cleanup,user-marker", "--emit-ir", str(ir)]) == 0
    assert '"user:marked"' in ir.read_text() or "user:marked" in ir.read_text()
    assert "user-marker" in capsys.readouterr().out                   # the pipeline line
    assert "TRANSCODE_PASS_PLUGINS" not in os.environ                   # restored after
    # a worker process (as a sweep's) finds the plugin through the environment
    code = ("from transcode_ir.passes import get_pass; print(get_pass('user-marker').name)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "TRANSCODE_PASS_PLUGINS": str(plugin)}, timeout=120)
    assert done.stdout.strip() == "user-marker", done.stderr
    for command in (["sweep", "x"], ["codesign", "--db", str(tmp_path / "c.sqlite")],
                    ["compile", "x", "--hw", "y"]):
        assert main([*command, "--load-pass-plugin", str(tmp_path / "missing.py")]) != 0
        assert "no such pass plugin file" in capsys.readouterr().err


def test_opt_dash_output_is_stdout_and_no_file(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["opt", str(_tir(tmp_path)), "-o", "-"]) == 0
    captured = capsys.readouterr()
    assert "tensor.matmul" in captured.out
    assert not (tmp_path / "-").exists() and not (tmp_path / "-.npz").exists()


def test_listings_take_json_with_numbers(capsys) -> None:
    assert main(["hw", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)
    assert main(["zoo", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert all(isinstance(r["layers"], int) for r in rows)


def test_verbose_is_accepted_everywhere(tmp_path, capsys) -> None:
    assert main(["hw", "list", "-v"]) == 0
    assert main(["zoo", "list", "-vv"]) == 0


def test_deprecated_spellings_warn_and_still_work(tmp_path, capsys) -> None:
    from tools.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["sweep", "transcode-space", "--db", "x", "--batch", "3"])
    assert args.batch == 3 and "--batch is deprecated; use --round-size" in capsys.readouterr().err
    args = parser.parse_args(["sweep", "transcode-space", "--db", "x", "--round-size", "5"])
    assert args.batch == 5 and capsys.readouterr().err == ""
    args = parser.parse_args(["compile", "m.onnx", "--hw", "h", "--objective", "energy"])
    assert args.objective == "energy"
    assert "--objective is deprecated; use --mapper-objective" in capsys.readouterr().err
    args = parser.parse_args(["dynaprop", "study", "--jobs", "2"])
    assert args.jobs == 2 and "use --workers" in capsys.readouterr().err
    # compile --batch is the model's batch everywhere; the sweep's round is --round-size
    help_text = parser._subparsers._group_actions[0].choices["sweep"].format_help()
    assert "--round-size" in help_text and "--batch" not in help_text


def test_compile_json_dash_is_stdout_alone(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["compile", str(_tir(tmp_path)), "--hw", "acceltran-edge", "--json", "-"]) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)                    # stdout is the JSON alone
    assert document["schema_version"] == 1
    assert "tcc compile:" in captured.err and "wrote standard output" in captured.err
    assert not (tmp_path / "-").exists()
    assert main(["compile", str(_tir(tmp_path)), "--hw", "acceltran-edge", "--json", "-",
                 "--trace", "-"]) != 0
    assert "only one output can be -" in capsys.readouterr().err


def test_export_dash_writes_onnx_bytes_to_a_pipe(tmp_path) -> None:
    import onnx

    done = subprocess.run([sys.executable, "-m", "tools.cli", "export", str(_tir(tmp_path)), "-o",
                           "-"], capture_output=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    model = onnx.load_from_string(done.stdout)                 # stdout is the model alone
    assert model.graph.node[0].op_type == "MatMul"
    assert b"wrote standard output" in done.stderr and not (tmp_path / "-").exists()


def test_every_listing_takes_json(tmp_path, capsys) -> None:
    assert main(["opt", "--list-passes", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {"canonicalize", "elector-map"} <= {p["name"] for p in listing["passes"]}
    assert any(p["name"] == "default" for p in listing["pipelines"])
    db = tmp_path / "s.sqlite"
    assert main(["sweep", "transcode-space", "--synthetic", "--db", str(db), "--budget", "4",
                 "--executor", "inline", "--quiet", "--no-report"]) == 0
    capsys.readouterr()
    assert main(["sweep", "status", str(db), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["results"] == 4 and isinstance(status["sweeps"][0]["trials"], int)
    assert status["sweeps"][0]["state"] == "done"
    assert main(["sweep", "export", str(db), "--json"]) == 0          # no FILE: stdout
    assert len(json.loads(capsys.readouterr().out)["results"]) == 4


def test_import_reads_onnx_from_standard_input(tmp_path) -> None:
    model = subprocess.run([sys.executable, "-m", "tools.cli", "export", str(_tir(tmp_path)), "-o",
                            "-"], capture_output=True, timeout=300).stdout
    done = subprocess.run([sys.executable, "-m", "tools.cli", "import", "-", "-o", "-"],
                          input=model, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert b"module @stdin" in done.stdout and b"tensor.matmul" in done.stdout


def test_sweep_html_dash_is_the_page_alone(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "transcode-space", "--synthetic", "--db", str(tmp_path / "h.sqlite"),
                 "--budget", "4", "--executor", "inline", "--quiet", "--html", "-"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("<!DOCTYPE html>") and "sweep " in captured.err
    assert [p.name for p in tmp_path.iterdir()] == ["h.sqlite"] or \
        not any(p.name.startswith("-") for p in tmp_path.iterdir())
