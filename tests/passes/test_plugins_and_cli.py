"""User passes (plugin files, entry points) and ``tcc opt`` end to end."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from tools.cli import main as tcc
from transcode_ir import (
    Builder,
    Function,
    Interpreter,
    Module,
    Pass,
    PassManager,
    TensorType,
    UserError,
    load_module,
    load_pass_plugin,
    opdefs,
    parse_pipeline,
    register_pass,
    registered_passes,
    save_module,
)
from transcode_ir import passes as registry

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "examples" / "my_pass.py"


def power_module() -> Module:
    m = Module("m")
    m.add_param("w", np.array([1.5, -2.0, 0.5], np.float32))
    f = m.add_function(Function("forward", [TensorType((3,))], ["x"], ["y"]))
    f.set_outputs([f.args[0]], ["y"])
    b = Builder(f)
    y = b.op("arith.mul", f.args[0], b.param("w"))
    y = b.op("arith.pow", y, b.constant(np.float32(3.0)))
    f.set_outputs([y], ["y"])
    return m


def test_tutorial_example_plugin_loads_and_works() -> None:
    classes = load_pass_plugin(EXAMPLE)
    assert [c.name for c in classes] == ["expand-powers"]
    assert "expand-powers" in registered_passes()
    pipeline = parse_pipeline("canonicalize,expand-powers{exponents=2,3}")
    assert str(pipeline) == "canonicalize,expand-powers{exponents=2,3}"
    m = power_module()
    x = np.array([1.0, 2.0, -3.0], np.float32)
    (before,) = Interpreter(m).run("forward", {"x": x})
    run = PassManager(pipeline).run(m)
    assert run.changed
    assert "arith.pow" not in [op.name for op in m["forward"]]
    (after,) = Interpreter(m).run("forward", {"x": x})
    np.testing.assert_allclose(after, before, rtol=1e-6)
    # Loading the same file again is harmless.
    load_pass_plugin(EXAMPLE)


def test_plugin_errors_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such pass plugin file"):
        load_pass_plugin(tmp_path / "missing.py")
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(UserError, match="defines no pass"):
        load_pass_plugin(empty)
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('oops')\n")
    with pytest.raises(UserError, match="failed to import: RuntimeError: oops"):
        load_pass_plugin(broken)


def test_unregistered_pass_classes_in_a_plugin_are_registered(tmp_path: Path) -> None:
    plugin = tmp_path / "plain.py"
    plugin.write_text(
        "from dataclasses import dataclass\n"
        "from typing import ClassVar\n"
        "from transcode_ir import Pass\n\n"
        "@dataclass(frozen=True)\n"
        "class Nothing(Pass):\n"
        "    '''Do nothing.\n\n    Requires: nothing.  Guarantees: nothing changes.'''\n"
        "    name: ClassVar[str] = 'test-plain-nothing'\n"
        "    def apply(self, module):\n"
        "        return False\n")
    assert [c.name for c in load_pass_plugin(plugin)] == ["test-plain-nothing"]


@register_pass
@dataclass(frozen=True)
class EntryPointPass(Pass):
    """Registered through a (simulated) package entry point.

    Requires: nothing.  Guarantees: nothing changes.
    """

    name: ClassVar[str] = "test-entry-point"

    def apply(self, module: Module) -> bool:
        return False


def test_entry_points_register_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A package's ``transcode.passes`` entry point may name a Pass class or a
    module that registers passes when imported."""
    registry._PASSES.pop("test-entry-point", None)

    class FakeEntryPoint:
        name, value = "test-entry-point", "tests.passes.test_plugins_and_cli:EntryPointPass"

        def load(self) -> type[Pass]:
            return EntryPointPass

    def entry_points(group: str) -> list[FakeEntryPoint]:   # opdefs' one metadata scan
        assert group == "transcode.passes"
        return [FakeEntryPoint()]

    monkeypatch.setattr(opdefs, "installed_entry_points", entry_points)
    registry._load_entry_points()
    assert registered_passes()["test-entry-point"] is EntryPointPass

    class Broken(FakeEntryPoint):
        def load(self) -> type[Pass]:
            raise ImportError("missing dependency")

    monkeypatch.setattr(opdefs, "installed_entry_points", lambda group: [Broken()])
    with pytest.raises(UserError, match="entry point 'test-entry-point' .* failed to load"):
        registry._load_entry_points()


def test_tcc_opt_reads_and_writes_parameters(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = save_module(power_module(), tmp_path / "in.tir")
    assert source.with_suffix(".npz").exists()
    out = tmp_path / "out.tir"
    code = tcc(["opt", str(source), "-p", "autodiff{loss=mse,optimizer=adam,lr=0.01}",
                "-o", str(out)])
    assert code == 0
    trained = load_module(out)
    assert set(trained.functions) == {"forward", "backward", "train_step"}
    assert trained.params["w.adam_m"].kind == "state"
    np.testing.assert_array_equal(trained.params["w"].data, power_module().params["w"].data)
    np.testing.assert_array_equal(trained.params["w.adam_v"].data, np.zeros(3, np.float32))
    x, t = np.ones(3, np.float32), np.zeros(3, np.float32)
    interpreter = Interpreter(trained)
    first = interpreter.run("train_step", {"x": x, "target": t}, update_params=True)[0]
    second = interpreter.run("train_step", {"x": x, "target": t}, update_params=True)[0]
    assert second < first                      # Adam is descending
    # No pipeline: parse, verify, print.
    assert tcc(["opt", str(out)]) == 0
    assert capsys.readouterr().out == out.read_text()


def test_tcc_opt_lists_passes(capsys: pytest.CaptureFixture) -> None:
    assert tcc(["opt", "--list-passes"]) == 0
    text = capsys.readouterr().out
    for line in ("  autodiff         Build @backward",
                 "      loss: one of cross-entropy, mse (required)",
                 "      max-inline-elements: an integer (default 256)",
                 "  training         clean-up, autodiff with cross-entropy and Adam"):
        assert line in text, line


def test_tcc_opt_reports_errors_without_traceback(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    source = save_module(power_module(), tmp_path / "in.tir")
    assert tcc(["opt", str(source), "-p", "autodiff{loss=mse}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: pass 'autodiff' needs option(s) optimizer")
    assert "Traceback" not in err
    assert tcc(["opt", str(tmp_path / "missing.tir")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert tcc(["opt"]) == 1
    assert "needs an IR file" in capsys.readouterr().err


def test_opt_command_module_is_cheap_to_import() -> None:
    import subprocess

    code = ("import sys, tools.commands.opt\n"
            "print(' '.join(m for m in ('torch', 'onnx', 'numpy', 'passes') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO).stdout.split()
    assert out == []


def test_entry_points_and_modules_follow_the_plugin_rule(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Entry points and modules named to load_passes go through the plugin files' loader:
    a named Pass subclass left undecorated is registered too; other objects are refused."""
    (tmp_path / "undecorated_passes.py").write_text(
        "from dataclasses import dataclass\n"
        "from typing import ClassVar\n"
        "from transcode_ir import Pass\n\n"
        "@dataclass(frozen=True)\n"
        "class Quiet(Pass):\n"
        "    '''Do nothing.\n\n    Requires: nothing.  Guarantees: nothing changes.'''\n"
        "    name: ClassVar[str] = 'test-undecorated-module'\n"
        "    def apply(self, module):\n"
        "        return False\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert [c.name for c in registry.load_passes("undecorated_passes")] == \
        ["test-undecorated-module"]
    assert registry.load_passes("undecorated_passes") == []          # already there

    class NotAPass:
        name, value = "test-not-a-pass", "somewhere:thing"

        def load(self) -> object:
            return 42

    monkeypatch.setattr(opdefs, "installed_entry_points", lambda group: [NotAPass()])
    with pytest.raises(UserError, match="'test-not-a-pass' .* is int, not a module or a Pass"):
        registry._load_entry_points()
    with pytest.raises(UserError, match="pass module 'no_such_pass_module' failed to import"):
        registry.load_passes("no_such_pass_module")
