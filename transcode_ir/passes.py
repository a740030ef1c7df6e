"""Passes: the base class, the registry, and pipeline strings.

A pass is a small frozen dataclass::

    @register_pass
    @dataclass(frozen=True)
    class ScaleWeightsPass(Pass):
        '''Multiply every weight by a factor.

        Requires: nothing.  Guarantees: the IR is unchanged; parameter data scaled.'''

        name: ClassVar[str] = "scale-weights"
        factor: float = option(1.0, "the factor")

        def apply(self, module: Module) -> bool:
            ...
            return True          # whether anything changed

Its options are its dataclass fields.  In a pipeline string an option is
spelled in kebab-case (``arg-1``) and maps to the snake_case field
(``arg_1``); its value is parsed according to the field's annotation:
``int``, ``float``, ``bool`` (``true``/``false``), ``str``, ``Literal[...]``
(one of the listed strings), ``tuple[T, ...]`` (comma-separated values, as in
``my-pass{arg-1=1,2,3}``; ``[]`` for the empty tuple) and ``T | None``
(``none``).  A string value that contains ``,{}=`` or spaces is written in
double quotes.

:meth:`Pass.apply` returns ``True`` when it changed the module and ``False``
when it did not.  A pass that builds a new module instead of editing the one
it is given returns a :class:`PassResult` naming that module.

Pipelines
=========

A pipeline is a comma-separated list of passes, each optionally followed by
options in braces::

    canonicalize,cse,fuse,autodiff{loss=cross-entropy,optimizer=adam}

:func:`parse_pipeline` turns the text into a :class:`Pipeline` (a tuple of
pass objects) and :func:`format_pipeline` prints it back in canonical form:
options in field order, options at their default values omitted.  Parsing a
canonical string and printing it gives the same string.  A name registered
with :func:`register_pipeline` (``cleanup``, ``default``, ``training``) stands
for its passes and is expanded when parsed.

The registry
============

:func:`register_pass` (a class decorator) is the one way a pass class enters
the registry.  Passes from elsewhere arrive through one loader that imports a
module and registers what it brought (its decorated classes, and any named
:class:`Pass` subclass it defines but did not register): the built-in
``passes`` package (imported by name the first time the registry is
consulted, so this module never imports it statically), modules named by
:func:`load_passes`, the entry-point group ``transcode.passes`` (an entry
point names such a module or a :class:`Pass` subclass), and users' Python
files (:func:`load_pass_plugin`, ``tcc --load-pass-plugin``; worker processes
reload them from ``TRANSCODE_PASS_PLUGINS``).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from transcode_ir.core import Module
from transcode_ir.errors import UserError

__all__ = [
    "ENTRY_POINT_GROUP",
    "Pass",
    "PassOption",
    "PassResult",
    "Pipeline",
    "PipelineError",
    "format_pipeline",
    "get_pass",
    "load_pass_plugin",
    "load_passes",
    "named_pipelines",
    "option",
    "parse_pipeline",
    "pass_options",
    "register_pass",
    "register_pipeline",
    "registered_passes",
    "required_option",
]

ENTRY_POINT_GROUP = "transcode.passes"
_KEBAB = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*\Z")


class PipelineError(UserError):
    """A pipeline string, pass name, option or option value that is not accepted."""


# --------------------------------------------------------------------------- the base class


@dataclass(frozen=True)
class PassResult:
    """What a pass may return instead of a bool: whether it changed anything
    and, for a pass that builds a new module, that module."""

    changed: bool
    module: Module | None = None


def option(default: Any, doc: str = "") -> Any:
    """A pass option with a default and a one-line description (for
    ``tcc opt --list-passes``).  Use as a dataclass field default."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("pass options are frozen: use a tuple, not a list/dict/set")
    return dataclasses.field(default=default, metadata={"doc": doc})


def required_option(doc: str = "") -> Any:
    """A pass option without a default: the pipeline must give it."""
    return dataclasses.field(metadata={"doc": doc})


@dataclass(frozen=True)
class Pass:
    """Base class of passes.  Subclasses are frozen dataclasses with a
    kebab-case class variable ``name``, options as fields, and :meth:`apply`.

    The docstring's first line is the pass's one-line description; the rest
    says what it requires of its input and what it guarantees of its output.
    """

    name: ClassVar[str] = ""

    def apply(self, module: Module) -> bool | PassResult:
        """Transform ``module`` in place; return whether anything changed."""
        raise NotImplementedError(f"pass {self.name!r} does not implement apply()")

    def __call__(self, module: Module) -> bool | PassResult:
        return self.apply(module)

    def __str__(self) -> str:
        return format_pass(self)

    @classmethod
    def summary(cls) -> str:
        """The first line of the docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0].strip() if doc else ""


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class PassOption:
    """One option of a pass, as seen from a pipeline string."""

    name: str                 # kebab-case, as written in pipelines
    field: str                # snake_case, the dataclass field
    annotation: Any
    default: Any              # dataclasses.MISSING when required
    doc: str

    @property
    def required(self) -> bool:
        return self.default is dataclasses.MISSING

    def accepted(self) -> str:
        """What values are accepted, for error messages and listings."""
        return _describe_type(self.annotation)

    def parse(self, text: str, pass_name: str) -> Any:
        try:
            return _parse_value(self.annotation, text)
        except ValueError as err:
            why = f" ({err})" if str(err) else ""
            raise PipelineError(
                f"pass '{pass_name}': bad value {text!r} for option '{self.name}'{why}; "
                f"accepted: {self.accepted()}") from None

    def format(self, value: Any) -> str:
        return _format_value(self.annotation, value)


def _is_optional(annotation: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return True, args[0]
    return False, annotation


def _describe_type(annotation: Any) -> str:
    optional, inner = _is_optional(annotation)
    if optional:
        return f"{_describe_type(inner)}, or none"
    origin = typing.get_origin(inner)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(inner))
    if origin is tuple:
        item = typing.get_args(inner)[0]
        if typing.get_origin(item) is Literal:
            what = "values from " + ", ".join(str(a) for a in typing.get_args(item))
        else:
            what = {int: "integers", float: "numbers", bool: "true/false values",
                    str: "strings"}.get(item, str(item))
        return f"a comma-separated list of {what} ([] when empty)"
    return {int: "an integer", float: "a number", bool: "true or false",
            str: "a string"}.get(inner, str(inner))


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return text


def _parse_scalar(annotation: Any, text: str) -> Any:
    text = text.strip()
    origin = typing.get_origin(annotation)
    if origin is Literal:
        choices = typing.get_args(annotation)
        value = _unquote(text)
        for choice in choices:
            if str(choice) == value:
                return choice
        raise ValueError("")
    if annotation is bool:
        if text in ("true", "false"):
            return text == "true"
        raise ValueError("")
    if annotation is int:
        try:
            return int(text, 0)
        except ValueError:
            raise ValueError("") from None
    if annotation is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError("") from None
    if annotation is str:
        return _unquote(text)
    raise ValueError(f"options of type {annotation} are not supported")


def _parse_value(annotation: Any, text: str) -> Any:
    optional, inner = _is_optional(annotation)
    if optional and text.strip() == "none":
        return None
    if typing.get_origin(inner) is tuple:
        args = typing.get_args(inner)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise ValueError("only tuple[T, ...] options are supported")
        body = text.strip()
        if body.startswith("[") and body.endswith("]"):
            body = body[1:-1]
        if not body.strip():
            return ()
        return tuple(_parse_scalar(args[0], item) for item in _split_top(body, ","))
    return _parse_scalar(inner, text)


def _format_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if text == "" or re.search(r'[,{}="\s\[\]]', text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _format_value(annotation: Any, value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(_format_scalar(v) for v in value) if value else "[]"
    return _format_scalar(value)


def pass_options(cls: type[Pass]) -> list[PassOption]:
    """The options of a pass class, in field order."""
    cached = cls.__dict__.get("_pass_options_cache")
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls, include_extras=False)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default: Any = f.default
        if default is dataclasses.MISSING and callable(f.default_factory):
            default = f.default_factory()
        out.append(PassOption(f.name.replace("_", "-"), f.name, hints.get(f.name, str), default,
                              f.metadata.get("doc", "")))
    cls._pass_options_cache = out  # type: ignore[attr-defined]
    return out


# --------------------------------------------------------------------------- the registry


_PASSES: dict[str, type[Pass]] = {}
_PIPELINES: dict[str, tuple[str, str]] = {}     # name -> (pipeline text, doc)
_BUILTINS_LOADED = False


def register_pass(cls: type[Pass]) -> type[Pass]:
    """Class decorator: add a pass class to the registry (under ``cls.name``).

    Registering a different class under a name already taken is an error;
    registering the same class again (a plugin file loaded twice) is not.
    """
    if not (isinstance(cls, type) and issubclass(cls, Pass)):
        raise TypeError(f"register_pass expects a Pass subclass, got {cls!r}")
    name = cls.__dict__.get("name", "")
    if not isinstance(name, str) or not _KEBAB.match(name):
        raise UserError(f"pass class {cls.__qualname__} must set a kebab-case class variable "
                        f"'name' (such as 'my-pass'), got {name!r}")
    if not dataclasses.is_dataclass(cls) or "__dataclass_fields__" not in cls.__dict__ \
            or not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise UserError(f"pass class {cls.__qualname__} ('{name}') must be decorated with "
                        "@dataclass(frozen=True)")
    existing = _PASSES.get(name)
    if existing is not None and existing is not cls and \
            (existing.__module__, existing.__qualname__) != (cls.__module__, cls.__qualname__):
        raise UserError(f"pass '{name}' is registered twice: by {existing.__module__}."
                        f"{existing.__qualname__} and by {cls.__module__}.{cls.__qualname__}")
    if name in _PIPELINES:
        raise UserError(f"pass '{name}' has the name of a named pipeline")
    if "name" in {f.name for f in dataclasses.fields(cls)}:
        raise UserError(f"pass class {cls.__qualname__}: declare 'name' as ClassVar[str], "
                        "not as a dataclass field")
    pass_options(cls)      # resolve annotations now, so a bad one fails at registration
    _PASSES[name] = cls
    return cls


def register_pipeline(name: str, pipeline: str, doc: str = "") -> None:
    """Give a pipeline a name that pipelines can use in place of its passes.

    The text is parsed when the name is used, so it may refer to passes
    registered later (and to other named pipelines)."""
    if not _KEBAB.match(name):
        raise UserError(f"pipeline name must be kebab-case, got {name!r}")
    if name in _PASSES:
        raise UserError(f"named pipeline '{name}' has the name of a pass")
    _PIPELINES[name] = (pipeline, doc)


def _ensure_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    # The built-in passes live one layer up; import them by name, lazily.
    load_passes("passes")
    _load_entry_points()
    # Plugins a parent process loaded (tcc --load-pass-plugin): its worker
    # processes (sweeps, studies) find them here.
    for path in filter(None, os.environ.get(PLUGIN_ENVIRONMENT, "").split(os.pathsep)):
        load_pass_plugin(path)


def _collect(load: Callable[[], object], origin: str,
             failed: str = "failed to import") -> list[type[Pass]]:
    """The one way passes arrive from outside this module: run ``load`` (it imports a
    module or returns a Pass class), then register what it brought.

    A Pass class is registered; for a module, its ``@register_pass`` decorators ran when
    it was imported, and any named :class:`Pass` subclass it defines that is still not
    registered is registered for it.  Returns the classes that ``load`` added or
    replaced (a plugin file loaded again gives its classes again).
    """
    before = dict(_PASSES)
    try:
        obj = load()
    except UserError:
        raise
    except Exception as err:  # a broken plugin is the user's error, not a traceback
        raise UserError(f"{origin} {failed}: {type(err).__name__}: {err}") from err
    if isinstance(obj, type) and issubclass(obj, Pass):
        register_pass(obj)
    elif isinstance(obj, types.ModuleType):
        for value in list(vars(obj).values()):
            if isinstance(value, type) and issubclass(value, Pass) and value is not Pass \
                    and value.__module__ == obj.__name__ and value.__dict__.get("name") \
                    and _PASSES.get(value.__dict__["name"]) is not value:
                register_pass(value)
    else:
        raise UserError(f"{origin} is {type(obj).__name__}, not a module or a Pass subclass")
    return [cls for name, cls in _PASSES.items() if before.get(name) is not cls]


def load_passes(module_name: str) -> list[type[Pass]]:
    """Import the module ``module_name`` (dotted) and register its passes (see
    :func:`_collect`); returns the pass classes it added.  Packages that are not
    installed with an entry point, and the built-in ``passes`` package, come in
    this way."""
    _ensure_builtins()
    return _collect(lambda: importlib.import_module(module_name), f"pass module {module_name!r}")


def _load_entry_points() -> None:
    # one scan of the installed metadata serves op dialects and passes alike
    from transcode_ir.opdefs import installed_entry_points

    for ep in installed_entry_points(ENTRY_POINT_GROUP):
        # a broken plugin must not hide the built-in passes behind a traceback
        _collect(ep.load, f"entry point '{ep.name}' ({ep.value}) in group "
                          f"{ENTRY_POINT_GROUP!r}", "failed to load")


def registered_passes() -> dict[str, type[Pass]]:
    """All registered passes (built-in, entry points, loaded plugins), by name."""
    _ensure_builtins()
    return dict(sorted(_PASSES.items()))


def named_pipelines() -> dict[str, tuple[str, str]]:
    """Named pipelines: name -> (pipeline text, one-line doc)."""
    _ensure_builtins()
    return dict(_PIPELINES)


def get_pass(name: str, **options: Any) -> Pass:
    """Construct a registered pass by name, with options given by field name."""
    _ensure_builtins()
    cls = _PASSES.get(name)
    if cls is None:
        raise PipelineError(_unknown_pass_message(name))
    try:
        return cls(**options)
    except TypeError as err:
        raise PipelineError(f"pass '{name}': {err}") from None


def _unknown_pass_message(name: str) -> str:
    import difflib

    known = sorted(_PASSES) + sorted(_PIPELINES)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return (f"unknown pass '{name}'{hint}; registered passes: {', '.join(sorted(_PASSES))}; "
            f"named pipelines: {', '.join(sorted(_PIPELINES)) or 'none'}")


#: Environment variable listing pass plugin files (``os.pathsep``-separated)
#: that every process loads with the built-in passes.
PLUGIN_ENVIRONMENT = "TRANSCODE_PASS_PLUGINS"


def load_pass_plugin(path: str | Path) -> list[type[Pass]]:
    """Import a user's Python file; the passes it registers become available.

    Returns the pass classes the file registered.  A file that registers
    nothing but defines :class:`Pass` subclasses with names has them
    registered for it (the rule entry points follow too).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such pass plugin file")
    _ensure_builtins()
    module_name = f"transcode_pass_plugin_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"{path}: cannot load as a Python module")

    def load() -> types.ModuleType:
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        return module

    new = _collect(load, f"{path}: the pass plugin")
    if not new:
        raise UserError(f"{path}: the plugin defines no pass (decorate a frozen dataclass "
                        "subclass of transcode_ir.Pass with @register_pass)")
    return new


# --------------------------------------------------------------------------- pipelines


class Pipeline(tuple):  # tuple[Pass, ...]
    """A parsed pipeline: a tuple of pass objects that prints canonically."""

    def __new__(cls, passes: Iterable[Pass] = ()) -> Pipeline:
        return super().__new__(cls, tuple(passes))

    def __str__(self) -> str:
        return format_pipeline(self)

    def __repr__(self) -> str:
        return f"Pipeline({format_pipeline(self)!r})"

    @property
    def names(self) -> list[str]:
        return [p.name for p in self]


def _split_top(text: str, sep: str) -> Iterator[str]:
    """Split at ``sep`` outside braces, brackets and double quotes."""
    depth = 0
    quoted = False
    start = 0
    i = 0
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
        elif c == sep and depth == 0:
            yield text[start:i]
            start = i + 1
        i += 1
    yield text[start:]


_ELEMENT = re.compile(r"\s*([A-Za-z0-9_\-]+)\s*(?:\{(.*)\})?\s*\Z", re.S)


def parse_pipeline(text: str | Sequence[Pass]) -> Pipeline:
    """Parse a pipeline string into pass objects (named pipelines expanded).

    Raises :class:`PipelineError` naming the pass, the option, the bad text
    and what is accepted.
    """
    if not isinstance(text, str):
        return Pipeline(text)
    _ensure_builtins()
    return Pipeline(_parse(text, ()))


def _parse(text: str, expanding: tuple[str, ...]) -> list[Pass]:
    if not text.strip():
        return []
    if text.count("{") != text.count("}"):
        raise PipelineError(f"unbalanced braces in pipeline {text!r}")
    out: list[Pass] = []
    for element in _split_top(text, ","):
        m = _ELEMENT.match(element)
        if m is None:
            raise PipelineError(f"malformed pipeline element {element.strip()!r} in {text!r}; "
                                "expected pass-name or pass-name{option=value,...}")
        name, body = m.group(1), m.group(2)
        if name in _PIPELINES and name not in _PASSES:
            if body is not None and body.strip():
                raise PipelineError(f"named pipeline '{name}' takes no options; write its passes "
                                    f"out instead: {_PIPELINES[name][0]}")
            if name in expanding:
                raise PipelineError(f"named pipeline '{name}' refers to itself")
            out += _parse(_PIPELINES[name][0], expanding + (name,))
            continue
        cls = _PASSES.get(name)
        if cls is None:
            raise PipelineError(_unknown_pass_message(name))
        out.append(_instantiate(cls, body or ""))
    return out


def _instantiate(cls: type[Pass], body: str) -> Pass:
    options = {o.name: o for o in pass_options(cls)}
    values: dict[str, Any] = {}
    current: str | None = None
    raw: dict[str, list[str]] = {}
    for item in _split_top(body, ","):
        if not item.strip() and current is None:
            continue
        key, eq, value = item.partition("=")
        key = key.strip()
        if eq and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", key) and not key.startswith('"'):
            if key not in options:
                accepted = ", ".join(f"{o.name} ({o.accepted()})" for o in options.values())
                snake = key.replace("_", "-")
                hint = (f" (options are written in kebab-case: '{snake}')"
                        if snake in options else "")
                raise PipelineError(f"pass '{cls.name}' has no option '{key}'{hint}; accepted: "
                                    f"{accepted or 'none (this pass takes no options)'}")
            if key in raw:
                raise PipelineError(f"pass '{cls.name}': option '{key}' is given twice")
            current = key
            raw[key] = [value]
        else:
            # A bare item continues the previous option's list: arg-1=1,2,3
            if current is None:
                raise PipelineError(f"pass '{cls.name}': expected option=value, got "
                                    f"{item.strip()!r}; "
                                    "accepted options: "
                                    + (", ".join(options) or "none (this pass takes no options)"))
            raw[current].append(item)
    for key, parts in raw.items():
        opt = options[key]
        _, inner = _is_optional(opt.annotation)
        if len(parts) > 1 and typing.get_origin(inner) is not tuple:
            raise PipelineError(f"pass '{cls.name}': bad value {','.join(parts)!r} for option "
                                f"'{key}'; accepted: {opt.accepted()} (quote strings that "
                                "contain commas)")
        values[opt.field] = opt.parse(",".join(parts), cls.name)
    missing = [o.name for o in options.values() if o.required and o.field not in values]
    if missing:
        raise PipelineError(f"pass '{cls.name}' needs option(s) " + ", ".join(
            f"{m} ({options[m].accepted()})" for m in missing)
                            + f"; for example {cls.name}{{" + ",".join(
            f"{m}={_example(options[m])}" for m in missing) + "}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise PipelineError(f"pass '{cls.name}': {err}") from None


def _example(opt: PassOption) -> str:
    _, inner = _is_optional(opt.annotation)
    if typing.get_origin(inner) is Literal:
        return str(typing.get_args(inner)[0])
    return {int: "1", float: "0.5", bool: "true", str: "text"}.get(inner, "...")


def format_pass(p: Pass) -> str:
    """One pipeline element: ``name`` or ``name{opt=value,...}`` (options in
    field order, options at their defaults omitted)."""
    parts = []
    for opt in pass_options(type(p)):
        value = getattr(p, opt.field)
        if not opt.required and value == opt.default and type(value) is type(opt.default):
            continue
        parts.append(f"{opt.name}={opt.format(value)}")
    return p.name + ("{" + ",".join(parts) + "}" if parts else "")


def format_pipeline(passes: Iterable[Pass]) -> str:
    """The canonical text of a pipeline; :func:`parse_pipeline` reads it back."""
    return ",".join(format_pass(p) for p in passes)
