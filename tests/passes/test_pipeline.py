"""Pipeline strings, pass options and the registry."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Literal

import pytest

from transcode_ir import (
    Module,
    Pass,
    PipelineError,
    UserError,
    format_pipeline,
    get_pass,
    named_pipelines,
    option,
    parse_pipeline,
    register_pass,
    register_pipeline,
    registered_passes,
)


@register_pass
@dataclass(frozen=True)
class OptionsPass(Pass):
    """A pass with one option of every supported kind (for these tests).

    Requires: nothing.  Guarantees: nothing changes.
    """

    name: ClassVar[str] = "test-options"
    arg_1: tuple[int, ...] = option((), "a list of integers")
    ratio: float = option(0.5, "a number")
    count: int = option(3, "an integer")
    flag: bool = option(False, "a flag")
    label: str = option("x", "a string")
    mode: Literal["fast", "exact"] = option("fast", "a choice")
    limit: int | None = option(None, "an optional integer")
    names: tuple[str, ...] = option(("a",), "a list of strings")

    def apply(self, module: Module) -> bool:
        return False


@register_pass
@dataclass(frozen=True)
class MyPass(Pass):
    """The brief's example: my-pass{arg-1=1,2,3}."""

    name: ClassVar[str] = "my-pass"
    arg_1: tuple[int, ...] = option((), "integers")

    def apply(self, module: Module) -> bool:
        return False


CANONICAL = [
    "canonicalize,cse,fuse,autodiff{loss=cross-entropy,optimizer=adam}",
    "my-pass{arg-1=1,2,3}",
    "canonicalize{raise-ops=false},fold-constants{max-inline-elements=16},dce",
    "autodiff{loss=mse,optimizer=sgd,lr=0.05,output=pooler_output}",
    "test-options{arg-1=4,ratio=0.25,count=-2,flag=true,label=\"a,b {c}\",mode=exact,limit=7,"
    "names=p,q}",
    "test-options{names=[]}",
    "test-options{label=\"\"}",
    "fuse{attention=false},cse,fuse{linear=false}",
    "",
]


@pytest.mark.parametrize("text", CANONICAL)
def test_canonical_pipelines_round_trip(text: str) -> None:
    pipeline = parse_pipeline(text)
    assert format_pipeline(pipeline) == text
    assert str(parse_pipeline(str(pipeline))) == text


def test_options_become_typed_fields() -> None:
    (p,) = parse_pipeline("test-options{arg-1=1,2,3,ratio=2,flag=true,mode=exact,limit=none,"
                          "names=x,y,label=hello}")
    assert p == OptionsPass(arg_1=(1, 2, 3), ratio=2.0, flag=True, mode="exact", limit=None,
                            names=("x", "y"), label="hello")
    assert isinstance(p.ratio, float)
    (q,) = parse_pipeline("my-pass{arg-1=1,2,3}")
    assert q.arg_1 == (1, 2, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.arg_1 = ()  # type: ignore[misc]


def test_defaults_are_omitted_and_whitespace_is_forgiven() -> None:
    assert str(parse_pipeline(" cse , test-options{ count = 3 , ratio=0.5 } ,dce ")) == \
        "cse,test-options,dce"
    assert str(parse_pipeline("autodiff{optimizer=adam,loss=mse,lr=0.001}")) == \
        "autodiff{loss=mse,optimizer=adam}"


def test_named_pipelines_expand() -> None:
    names = named_pipelines()
    assert {"cleanup", "default", "training"} <= set(names)
    default = parse_pipeline("default")
    assert default.names == ["canonicalize", "fold-constants", "canonicalize", "cse", "dce",
                             "fuse", "dce"]
    training = str(parse_pipeline("training"))
    assert "autodiff{loss=cross-entropy,optimizer=adam}" in training
    assert str(parse_pipeline("cse,cleanup")) == "cse," + str(parse_pipeline("cleanup"))


def test_register_pipeline_and_self_reference() -> None:
    register_pipeline("test-twice", "cse,cse", "two CSEs")
    assert parse_pipeline("test-twice,dce").names == ["cse", "cse", "dce"]
    register_pipeline("test-loop", "cse,test-loop")
    with pytest.raises(PipelineError, match="refers to itself"):
        parse_pipeline("test-loop")
    with pytest.raises(PipelineError, match="takes no options"):
        parse_pipeline("test-twice{x=1}")


@pytest.mark.parametrize("text, message", [
    ("frobnicate", "unknown pass 'frobnicate'; registered passes: autodiff, "),
    ("canonicalise", "did you mean 'canonicalize'?"),
    ("cse{x=1}", "pass 'cse' has no option 'x'; accepted: none (this pass takes no options)"),
    ("test-options{arg_1=1}", "options are written in kebab-case: 'arg-1'"),
    ("test-options{count=three}",
     "pass 'test-options': bad value 'three' for option 'count'; accepted: an integer"),
    ("test-options{ratio=fast}", "bad value 'fast' for option 'ratio'; accepted: a number"),
    ("test-options{flag=yes}", "bad value 'yes' for option 'flag'; accepted: true or false"),
    ("test-options{mode=slow}", "bad value 'slow' for option 'mode'; accepted: one of fast, exact"),
    ("test-options{arg-1=1,x}", "bad value '1,x' for option 'arg-1'; accepted: a comma-separated "
                                "list of integers"),
    ("test-options{count=1,2}", "bad value '1,2' for option 'count'"),
    ("test-options{count=1,count=2}", "option 'count' is given twice"),
    ("test-options{=1}", "expected option=value, got '=1'"),
    ("cse{", "unbalanced braces"),
    ("cse,,dce", "malformed pipeline element ''"),
    ("autodiff{loss=mse}", "pass 'autodiff' needs option(s) optimizer (one of sgd, adam)"),
])
def test_pipeline_errors_say_what_is_accepted(text: str, message: str) -> None:
    with pytest.raises(PipelineError) as err:
        parse_pipeline(text)
    assert message in str(err.value)
    assert isinstance(err.value, UserError)


def test_registry_lists_builtins_and_rejects_bad_classes() -> None:
    passes = registered_passes()
    for name in ("canonicalize", "raise-ops", "fold-constants", "cse", "dce", "fuse", "autodiff"):
        assert name in passes
        assert passes[name].summary()
        doc = passes[name].__doc__ or ""
        assert "Requires" in doc and "Guarantees" in doc, name

    class NotADataclass(Pass):
        name: ClassVar[str] = "not-a-dataclass"

    with pytest.raises(UserError, match=r"must be decorated with @dataclass\(frozen=True\)"):
        register_pass(NotADataclass)

    @dataclass(frozen=True)
    class BadName(Pass):
        name: ClassVar[str] = "Bad_Name"

    with pytest.raises(UserError, match="kebab-case"):
        register_pass(BadName)

    @dataclass(frozen=True)
    class Clash(Pass):
        name: ClassVar[str] = "cse"

    with pytest.raises(UserError, match="registered twice"):
        register_pass(Clash)


def test_get_pass_by_name() -> None:
    assert get_pass("fuse", attention=False) == parse_pipeline("fuse{attention=false}")[0]
    with pytest.raises(PipelineError, match="unknown pass"):
        get_pass("nope")
