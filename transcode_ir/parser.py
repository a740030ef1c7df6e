"""The text form of the IR: parsing (Lark, LALR(1)).

:func:`parse_module` reads what :mod:`transcode_ir.printer` writes.  Syntax
errors and references to undefined values raise :class:`ParseError` with
``file:line:col`` and a caret under the place; a parsed module is not verified
here (call :func:`transcode_ir.verifier.verify_module`).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

import numpy as np
from lark import Lark, Token, Transformer, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from transcode_ir.core import Attributes, DenseAttr, Function, Module, Op, Value
from transcode_ir.errors import ParseError, SourceLocation, caret_snippet
from transcode_ir.types import DTYPES, SparsityEncoding, TensorType, numpy_dtype

__all__ = ["parse_module", "parse_type"]


def _unquote(text: str) -> str:
    body = text[1:-1]
    if "\\" not in body:
        return body
    out = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"n": "\n", "t": "\t", '"': '"', "\\": "\\"}.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _symbol(token: str) -> str:
    body = token[1:]
    return _unquote(body) if body.startswith('"') else body


_TYPE_RE = re.compile(r"tensor<((?:\d+x)*)([a-z0-9]+)(?:,\s*#sparse<([^,>]+),\s*([a-z]+)>)?>\Z")


class _TypeError(ValueError):
    pass


# Limits of the text form.  Beyond them a file is refused with a message
# instead of a RecursionError (nested arrays are built recursively) or a
# ValueError from int() (Python refuses to convert more than 4,300 digits).
MAX_NESTING = 64          #: arrays nested in an attribute value
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_MAX_INT_DIGITS = 19      # 2**63 - 1 has 19 digits


def parse_int(text: str, what: str = "integer", low: int = INT64_MIN) -> int:
    """``text`` as an int that fits in 64 bits (sizes, attributes, dims)."""
    digits = text.lstrip("+-")
    if len(digits.lstrip("0")) > _MAX_INT_DIGITS:
        shown = text if len(text) <= 24 else f"{text[:12]}...{text[-6:]} ({len(digits)} digits)"
        raise _TypeError(f"{what} {shown} does not fit in 64 bits; accepted: "
                         f"{low}..{INT64_MAX}")
    value = int(text)
    if not low <= value <= INT64_MAX:
        raise _TypeError(f"{what} {value} is out of range; accepted: {low}..{INT64_MAX}")
    return value


def _dimensions(text: Iterable[str], where: str) -> tuple[int, ...]:
    dims = tuple(parse_int(d, "dimension", 0) for d in text if d)
    if math.prod(dims) > INT64_MAX:
        raise _TypeError(f"{where} has {math.prod(dims):.3g} elements, more than 64-bit sizes "
                         "can count")
    return dims


_NESTING_TOKENS = re.compile(r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"|//[^\n]*|\[|\]')


def _check_nesting(text: str, filename: str) -> None:
    """Refuse arrays nested deeper than :data:`MAX_NESTING` (a linear scan
    that skips strings and comments), before the recursive tree walk."""
    if text.count("[") <= MAX_NESTING:
        return
    depth = 0
    for match in _NESTING_TOKENS.finditer(text):
        token = match.group()
        if token == "[":
            depth += 1
            if depth > MAX_NESTING:
                offset = match.start()
                line = text.count("\n", 0, offset) + 1
                column = offset - (text.rfind("\n", 0, offset) + 1) + 1
                raise ParseError(f"arrays nested more than {MAX_NESTING} deep in IR text; "
                                 f"attribute values may nest at most {MAX_NESTING} levels",
                                 SourceLocation(filename, line, column),
                                 caret_snippet(text, line, column))
        elif token == "]":
            depth = max(0, depth - 1)


@functools.lru_cache(maxsize=4096)
def parse_type(text: str) -> TensorType:
    """Parse ``tensor<4x128xf32>`` (optionally with ``, #sparse<0.5, measured>``)."""
    m = _TYPE_RE.match(text.replace(" ", "").replace(",#", ", #") if " " not in text else text)
    if m is None:
        m = _TYPE_RE.match(text)
    if m is None:
        raise _TypeError(f"malformed tensor type {text!r}; expected e.g. tensor<4x128xf32> or "
                         "tensor<4x128xf32, #sparse<0.5, measured>>")
    dims = _dimensions(m.group(1).split("x"), text if len(text) <= 60 else "a tensor type")
    dtype = m.group(2)
    if dtype not in DTYPES:
        raise _TypeError(f"unknown element type {dtype!r} in {text!r}; accepted: {', '.join(DTYPES)}")
    encoding = None
    if m.group(3) is not None:
        try:
            encoding = SparsityEncoding(float(m.group(3)), m.group(4))
        except ValueError as err:
            raise _TypeError(f"bad sparsity encoding in {text!r}: {err}") from None
    return TensorType(dims, dtype, encoding)


_DENSE_RE = re.compile(r"dense<\s*([a-z0-9]+)\s*,\s*\[([^\]]*)\]\s*,\s*\[([^\]]*)\]\s*>\Z", re.S)


def _parse_dense(text: str) -> DenseAttr:
    m = _DENSE_RE.match(text)
    if m is None:
        raise _TypeError("malformed dense attribute; expected dense<f32, [2, 2], [1.0, 2.0, 3.0, 4.0]>")
    dtype = m.group(1)
    if dtype not in DTYPES:
        raise _TypeError(f"unknown element type {dtype!r} in dense attribute")
    shape = _dimensions([d.strip() for d in m.group(2).split(",")], "dense attribute")
    items = [v.strip() for v in m.group(3).split(",") if v.strip()]
    if dtype == "bool":
        values: list[Any] = [v == "true" for v in items]
    elif dtype.startswith("f"):
        values = [float(v) for v in items]
    else:
        info = np.iinfo(numpy_dtype(dtype))
        values = [parse_int(v, f"{dtype} value") for v in items]
        for value in values:
            if not info.min <= value <= info.max:
                raise _TypeError(f"{dtype} value {value} is out of range; accepted: "
                                 f"{info.min}..{info.max}")
    count = math.prod(shape)
    if len(values) != count:
        raise _TypeError(f"dense attribute of shape {list(shape)} needs {count} values, got {len(values)}")
    arr = np.array(values, dtype=numpy_dtype(dtype)).reshape(shape)
    return DenseAttr.from_array(arr)


class _Node:
    """A parsed item waiting to be built (keeps tokens for error positions)."""

    __slots__ = ("kind", "data")

    def __init__(self, kind: str, **data: Any) -> None:
        self.kind = kind
        self.data = data


@v_args(inline=True)
class _ToNodes(Transformer):
    def __init__(self, filename: str, text: str) -> None:
        super().__init__()
        self.filename = filename
        self.text = text

    def _err(self, token: Token, message: str) -> ParseError:
        line = getattr(token, "line", 0) or 0
        col = getattr(token, "column", 0) or 0
        return ParseError(message, SourceLocation(self.filename, line, col),
                          caret_snippet(self.text, line, col))

    def _type(self, token: Token) -> TensorType:
        try:
            return parse_type(str(token))
        except _TypeError as err:
            raise self._err(token, str(err)) from None

    # values
    def int_value(self, tok: Token) -> int:
        try:
            return parse_int(str(tok))
        except _TypeError as err:
            raise self._err(tok, str(err)) from None

    def float_value(self, tok: Token) -> float:
        return float(tok)

    def string_value(self, tok: Token) -> str:
        return _unquote(str(tok))

    def true_value(self) -> bool:
        return True

    def false_value(self) -> bool:
        return False

    def dense_value(self, tok: Token) -> DenseAttr:
        try:
            return _parse_dense(str(tok))
        except (_TypeError, ValueError) as err:
            raise self._err(tok, str(err)) from None

    def array_value(self, *items: Any) -> tuple:
        return tuple(items)

    def attr_entry(self, key: Token, value: Any) -> tuple[Token, Any]:
        return key, value

    def attr_dict(self, *entries: tuple[Token, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in entries:
            name = _unquote(str(key)) if key.type == "STRING" else str(key)
            if name in out:
                raise self._err(key, f"attribute '{name}' is given twice")
            out[name] = value
        return out

    # ops: list-valued children are tagged so that optional parts cannot be confused
    def result_ids(self, *ids: Token) -> tuple[str, list[Token]]:
        return "results", list(ids)

    def operand_list(self, *ids: Token) -> tuple[str, list[Token]]:
        return "operands", list(ids)

    def type_list(self, *types: Token) -> tuple[str, list[Token]]:
        return "types", list(types)

    def loc(self, tok: Token) -> tuple[str, str]:
        return "loc", _unquote(str(tok))

    def op(self, *items: Any) -> _Node:
        parts: dict[str, Any] = {"results": [], "operands": [], "types": [], "loc": None, "attrs": {}}
        name: Token | None = None
        for item in items:
            if isinstance(item, Token):
                name = item
            elif isinstance(item, dict):
                parts["attrs"] = item
            else:
                parts[item[0]] = item[1]
        return _Node("op", name=name, **parts)

    # functions
    def arg(self, name: Token, type_tok: Token) -> tuple[Token, TensorType]:
        return name, self._type(type_tok)

    def arg_list(self, *args: Any) -> tuple[str, list[Any]]:
        return "args", list(args)

    def result(self, name: Token, type_tok: Token) -> tuple[str, TensorType]:
        text = _unquote(str(name)) if name.type == "STRING" else str(name)
        return text, self._type(type_tok)

    def result_list(self, *results: Any) -> tuple[str, list[Any]]:
        return "results", list(results)

    def func(self, name: Token, *rest: Any) -> _Node:
        parts: dict[str, Any] = {"args": [], "results": []}
        ops: list[_Node] = []
        for item in rest:
            if isinstance(item, _Node):
                ops.append(item)
            else:
                parts[item[0]] = item[1]
        return _Node("func", name=name, ops=ops, **parts)

    def param(self, name: Token, type_tok: Token, attrs: dict[str, Any] | None = None) -> _Node:
        return _Node("param", name=name, type=self._type(type_tok), attrs=attrs or {})

    def module(self, name: Token, *items: Any) -> _Node:
        attrs: dict[str, Any] = {}
        body = []
        for item in items:
            if isinstance(item, dict):
                attrs = item
            else:
                body.append(item)
        return _Node("module", name=name, attrs=attrs, items=body)

    def start(self, module: _Node) -> _Node:
        return module


@functools.lru_cache(maxsize=1)
def _grammar() -> str:
    return resources.files("transcode_ir").joinpath("grammars/tir.lark").read_text()


@functools.lru_cache(maxsize=None)
def _lark() -> Lark:
    return Lark(_grammar(), parser="lalr", lexer="contextual", maybe_placeholders=False, cache=True)


_LOOKS_LIKE_IR = re.compile(r"(?:\s|//[^\n]*)*module\b")


def _syntax_error(err: UnexpectedInput, filename: str, text: str) -> ParseError:
    if not _LOOKS_LIKE_IR.match(text):
        # Not IR text at all (a binary, an ONNX file, /etc/passwd): say so,
        # and do not quote the file's lines.
        return ParseError("not IR text: the file does not begin with `module @NAME {` (after "
                          "comments); expected the text form of a module (.tir)",
                          SourceLocation(filename, 1, 1))
    line, col = getattr(err, "line", 0) or 0, getattr(err, "column", 0) or 0
    if isinstance(err, UnexpectedToken):
        expected = sorted(err.expected)
        got = err.token
        what = f"unexpected {'end of input' if got.type == '$END' else repr(str(got))}"
    elif isinstance(err, UnexpectedCharacters):
        expected = sorted(err.allowed or [])
        position = err.pos_in_stream
        what = (f"unexpected character {text[position]!r}" if position is not None and position < len(text)
                else "unexpected character")
    elif isinstance(err, UnexpectedEOF):
        expected = sorted(err.expected)
        what = "unexpected end of input"
        lines = text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
    else:
        expected, what = [], "syntax error"
    pretty = {
        "VALUE_ID": "a value (%name)", "OP_NAME": "an op name (dialect.op)", "SYMBOL": "a symbol (@name)",
        "TENSOR_TYPE": "a type (tensor<...>)", "RBRACE": "'}'", "LBRACE": "'{'", "LPAR": "'('",
        "RPAR": "')'", "COMMA": "','", "COLON": "':'", "EQUAL": "'='", "ATTR_KEY": "an attribute name",
        "STRING": "a string", "INT": "an integer", "FLOAT": "a float", "LSQB": "'['", "RSQB": "']'",
        "MORETHAN": "'>'", "__ANON_0": "'->'",
    }
    accepted = ", ".join(dict.fromkeys(pretty.get(e, e.lower().strip("_")) for e in expected))
    message = f"{what} in IR text" + (f"; expected {accepted}" if accepted else "")
    return ParseError(message, SourceLocation(filename, line, col), caret_snippet(text, line, col))


def parse_module(text: str, filename: str = "<input>", params: Mapping[str, np.ndarray | None] | None = None) -> Module:
    """Parse IR text into a :class:`Module`.

    ``params`` supplies parameter data by name (as loaded from the ``.npz``
    beside the text); parameters without data keep ``data=None``.
    """
    transformer = _ToNodes(filename, text)
    _check_nesting(text, filename)
    try:
        tree = _lark().parse(text)
        node = transformer.transform(tree)
    except UnexpectedInput as err:
        raise _syntax_error(err, filename, text) from None
    except VisitError as err:
        if isinstance(err.orig_exc, ParseError):
            raise err.orig_exc from None
        raise
    return _Builder(transformer, params or {}).build(node)


class _Builder:
    def __init__(self, t: _ToNodes, params: Mapping[str, np.ndarray | None]) -> None:
        self.t = t
        self.params = params

    def build(self, node: _Node) -> Module:
        module = Module(_symbol(str(node.data["name"])), node.data["attrs"])
        for item in node.data["items"]:
            if item.kind == "param":
                name = _symbol(str(item.data["name"]))
                if name in module.params:
                    raise self.t._err(item.data["name"], f"parameter @{name} is declared twice")
                kind = item.data["attrs"].get("kind", "weight")
                data = self.params.get(name)
                try:
                    module.add_param(name, data, type=item.data["type"], kind=kind)
                except ValueError as err:
                    raise self.t._err(item.data["name"], str(err)) from None
        for item in node.data["items"]:
            if item.kind == "func":
                self._function(module, item)
        return module

    def _function(self, module: Module, node: _Node) -> None:
        name = _symbol(str(node.data["name"]))
        if name in module.functions:
            raise self.t._err(node.data["name"], f"function @{name} is defined twice")
        arg_names = [_symbol(str(tok)) for tok, _ in node.data["args"]]
        func = Function(name, [t for _, t in node.data["args"]], arg_names,
                        [n for n, _ in node.data["results"]])
        module.add_function(func)
        scope: dict[str, Value] = {}
        for tok, value in zip((tok for tok, _ in node.data["args"]), func.args):
            key = str(tok)
            if key in scope:
                raise self.t._err(tok, f"argument {key} is declared twice")
            scope[key] = value
        for op_node in node.data["ops"]:
            d = op_node.data
            operands = []
            for tok in d["operands"]:
                found = scope.get(str(tok))
                if found is None:
                    raise self.t._err(tok, f"use of undefined value {tok} (values must be defined "
                                           "before they are used, in the same function)")
                operands.append(found)
            types = [self.t._type(tok) for tok in d["types"]]
            if len(types) != len(d["results"]):
                raise self.t._err(d["name"], f"{d['name']} names {len(d['results'])} result(s) but "
                                             f"gives {len(types)} type(s)")
            try:
                op = Op(str(d["name"]), operands, types, Attributes(d["attrs"]), d["loc"])
            except ValueError as err:
                raise self.t._err(d["name"], str(err)) from None
            func.append(op)
            for tok, res in zip(d["results"], op.results):
                key = str(tok)
                if key in scope:
                    raise self.t._err(tok, f"value {key} is defined twice")
                scope[key] = res
        declared = node.data["results"]
        outs = func.outputs
        if func.return_op is None:
            raise self.t._err(node.data["name"], f"function @{name} does not end with func.return")
        if len(declared) != len(outs):
            raise self.t._err(node.data["name"], f"function @{name} declares {len(declared)} "
                                                 f"result(s) but returns {len(outs)}")
