"""The pass manager: verification after each pass, instruments, failures."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from transcode_ir import (
    Builder,
    Function,
    Module,
    Pass,
    PassFailure,
    PassInstrument,
    PassManager,
    PassResult,
    PrintIRAfterAll,
    PrintIRAfterChange,
    PrintIRAfterFailure,
    PrintIRAfterPass,
    TensorType,
    TimePasses,
    UserError,
    parse_module,
    print_module,
    register_pass,
    run_pipeline,
)
from transcode_ir.types import TensorType as _TT


def small() -> Module:
    m = Module("m")
    m.add_param("w", np.ones((4, 4), np.float32))
    f = m.add_function(Function("forward", [TensorType((2, 4))], ["x"], ["y"]))
    f.set_outputs([f.args[0]], ["y"])
    b = Builder(f)
    y = b.op("arith.mul", f.args[0], b.constant(np.float32(1.0)))
    y = b.op("tensor.matmul", y, b.param("w"), loc="dense")
    b.op("arith.exp", y)                       # dead
    f.set_outputs([y], ["y"])
    return m


@register_pass
@dataclass(frozen=True)
class CorruptPass(Pass):
    """Break the declared type of the first matmul (test helper).

    Requires: nothing.  Guarantees: invalid IR.
    """

    name: ClassVar[str] = "test-corrupt"

    def apply(self, module: Module) -> bool:
        for op in module["forward"]:
            if op.name == "tensor.matmul":
                op.results[0].type = _TT((9,), "f32")
                return True
        return False


@register_pass
@dataclass(frozen=True)
class RaisePass(Pass):
    """Raise ValueError (test helper).

    Requires: nothing.  Guarantees: an exception.
    """

    name: ClassVar[str] = "test-raise"

    def apply(self, module: Module) -> bool:
        raise ValueError("boom")


@register_pass
@dataclass(frozen=True)
class ReplaceModulePass(Pass):
    """Return a new module through PassResult (test helper).

    Requires: nothing.  Guarantees: a renamed clone.
    """

    name: ClassVar[str] = "test-replace"

    def apply(self, module: Module) -> PassResult:
        clone = module.clone()
        clone.name = "replaced"
        return PassResult(True, clone)


@register_pass
@dataclass(frozen=True)
class WrongReturnPass(Pass):
    """Return something that is not a bool (test helper).

    Requires: nothing.  Guarantees: a type error.
    """

    name: ClassVar[str] = "test-wrong-return"

    def apply(self, module: Module) -> bool:
        return None  # type: ignore[return-value]


def test_run_records_changes_per_pass() -> None:
    run = PassManager("cse,canonicalize,dce").run(small())
    assert [(r.pass_text, r.changed) for r in run.records] == [
        ("cse", False), ("canonicalize", True), ("dce", False)]
    assert run.changed and run.pipeline == "cse,canonicalize,dce"
    assert [op.name for op in run.module["forward"]] == ["tensor.param", "tensor.matmul",
                                                         "func.return"]


def test_instruments_print_after_all_named_and_change() -> None:
    streams = {k: io.StringIO() for k in ("all", "named", "change")}
    PassManager("cse,canonicalize,dce", instruments=[
        PrintIRAfterAll(streams["all"]), PrintIRAfterPass(["dce"], streams["named"]),
        PrintIRAfterChange(streams["change"])]).run(small())
    text = streams["all"].getvalue()
    assert text.count("// -----// IR Dump After") == 3
    assert "// -----// IR Dump After cse (1/3) //----- //\nmodule @m {" in text
    assert streams["named"].getvalue().startswith("// -----// IR Dump After dce (3/3)")
    assert streams["named"].getvalue().count("IR Dump") == 1
    change = streams["change"].getvalue()
    assert change.count("IR Dump") == 1 and "After canonicalize (2/3)" in change
    # A dump is the module's text form, so it parses back.
    body = text.split("//----- //\n")[-1]
    assert print_module(parse_module(body)) == body


def test_time_passes_table() -> None:
    out = io.StringIO()
    timer = TimePasses(out)
    PassManager("canonicalize,cse", instruments=[timer]).run(small())
    table = out.getvalue()
    assert "Pass execution timing report" in table
    lines = [line.split() for line in table.splitlines()]
    assert ["canonicalize", "yes"] == lines[4][:2] and ["cse", "no"] == lines[5][:2]
    assert lines[6][0] == "total"
    assert [r.pass_text for r in timer.records] == ["canonicalize", "cse"]
    assert timer.table() in table


def test_verifier_names_the_pass_that_broke_the_ir() -> None:
    dump = io.StringIO()
    with pytest.raises(PassFailure) as err:
        PassManager("canonicalize,cse,test-corrupt,dce",
                    instruments=[PrintIRAfterFailure(dump)]).run(small())
    failure = err.value
    assert failure.pass_name == "test-corrupt" and failure.index == 2
    assert failure.ran_before == ["canonicalize", "cse"]
    message = str(failure)
    assert "pass 'test-corrupt' (3 of 4) produced IR that does not verify" in message
    assert "op #1 'tensor.matmul' (loc \"dense\")" in message
    assert "passes that ran before it: canonicalize, cse" in message
    assert "After Failure of test-corrupt (3/4)" in dump.getvalue()
    assert "tensor<9xf32>" in dump.getvalue()


def test_verification_can_be_disabled() -> None:
    run = PassManager("test-corrupt", verify_each=False).run(small())
    assert run.changed


def test_exception_in_pass_is_reported_with_location() -> None:
    with pytest.raises(PassFailure) as err:
        run_pipeline(small(), "cse,test-raise")
    message = str(err.value)
    assert "pass 'test-raise' (2 of 2) failed: ValueError: boom (raised at " in message
    assert "test_pass_manager.py:" in message
    assert "passes that ran before it: cse" in message
    assert isinstance(err.value.cause, ValueError)
    assert isinstance(err.value.__cause__, ValueError)


def test_first_pass_failure_says_none_ran_before() -> None:
    with pytest.raises(PassFailure, match="passes that ran before it: none"):
        run_pipeline(small(), "test-raise")


def test_wrong_return_type_is_a_failure() -> None:
    with pytest.raises(PassFailure, match="returned NoneType; a pass returns a bool"):
        run_pipeline(small(), "test-wrong-return")


def test_pass_result_can_replace_the_module() -> None:
    run = run_pipeline(small(), "test-replace,cse")
    assert run.module.name == "replaced"


def test_invalid_input_is_reported_before_any_pass() -> None:
    m = small()
    next(op for op in m["forward"] if op.name == "tensor.matmul").results[0].type = _TT((3,), "f32")
    with pytest.raises(UserError, match=r"input IR does not verify \(before any pass"):
        run_pipeline(m, "cse")


def test_custom_instrument_sees_every_hook() -> None:
    seen: list[str] = []

    class Recorder(PassInstrument):
        def before_pipeline(self, pipeline, module):  # noqa: ANN001
            seen.append(f"start {pipeline}")

        def before_pass(self, pass_, index, module):  # noqa: ANN001
            seen.append(f"before {pass_.name}")

        def after_pass(self, pass_, index, module, record):  # noqa: ANN001
            seen.append(f"after {pass_.name} {record.changed}")

        def after_pipeline(self, module, run):  # noqa: ANN001
            seen.append("end")

    PassManager("cse,canonicalize", instruments=[Recorder()]).run(small())
    assert seen == ["start cse,canonicalize", "before cse", "after cse False",
                    "before canonicalize", "after canonicalize True", "end"]


@register_pass
@dataclass(frozen=True)
class DropParamPass(Pass):
    """Delete the parameter 'w' although @forward reads it (test helper).

    Requires: nothing.  Guarantees: invalid IR.
    """

    name: ClassVar[str] = "test-drop-param"

    def apply(self, module: Module) -> bool:
        del module.params["w"]
        return True


@register_pass
@dataclass(frozen=True)
class BadAttributePass(Pass):
    """Set an attribute the op kind does not have, in place (test helper).

    Requires: nothing.  Guarantees: invalid IR.
    """

    name: ClassVar[str] = "test-bad-attribute"

    def apply(self, module: Module) -> bool:
        for op in module["forward"]:
            if op.name == "tensor.matmul":
                op.set_attr("transpose", True)
        return False          # and it does not even admit the change


@pytest.mark.parametrize("pipeline, message", [
    ("cse,dce,test-drop-param", "refers to parameter 'w', which the module does not declare"),
    ("cse,test-bad-attribute", "unknown attribute 'transpose'"),
])
def test_incremental_verification_still_sees_every_change(pipeline: str, message: str) -> None:
    """Functions a pass did not touch are not verified again, but a change
    to a parameter, or an in-place edit by a pass that reports no change, is
    still caught after that very pass."""
    with pytest.raises(PassFailure, match=message) as err:
        run_pipeline(small(), pipeline)
    assert err.value.pass_name == pipeline.split(",")[-1]
