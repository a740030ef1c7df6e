"""The text form of the IR (``.tir``): printing.

The syntax is MLIR-like and generic, so one parser reads every op::

    module @bert_tiny {
      param @pooler.dense.weight : tensor<128x128xf32> {kind = "weight"}
      func @forward(%input_ids: tensor<1x128xi64>) -> (pooler_output: tensor<1x128xf32>) {
        %0 = tensor.param() {name = "pooler.dense.weight"} : tensor<128x128xf32>
        %1 = tensor.matmul(%x, %0) : tensor<1x128xf32> loc("pooler.dense")
        func.return(%1)
      }
    }

Function arguments keep their names; op results are numbered ``%0, %1, ...``
in order within each function, so print -> parse -> print is identical.
Parameter data never appears in the text: it is saved beside it as ``.npz``.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from transcode_ir.core import DenseAttr, Function, Module, Op, Value
from transcode_ir.types import SparsityEncoding, TensorType

__all__ = ["format_attribute", "format_type", "print_function", "print_module", "print_op"]

_BARE_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_.$\-]*\Z")
_BARE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(:[A-Za-z_][A-Za-z0-9_\-]*)?\Z")


def _quote(text: str) -> str:
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{out}"'


def format_symbol(name: str, sigil: str = "@") -> str:
    return f"{sigil}{name}" if _BARE_SYMBOL.match(name) else f"{sigil}{_quote(name)}"


def format_float(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = repr(float(value))
    return text


def _format_array_element(value: Any, dtype: str) -> str:
    if dtype == "bool":
        return "true" if value else "false"
    if dtype.startswith("f"):
        v = float(value)
        if math.isnan(v) or math.isinf(v):
            return format_float(v)
        # Shortest text that reads back to the same value in this precision.
        text = str(np.float32(value)) if dtype == "f32" else (
            str(np.float16(value)) if dtype == "f16" else repr(v))
        if "." not in text and "e" not in text and "n" not in text:
            text += ".0"
        return text
    return str(int(value))


def format_dense(attr: DenseAttr) -> str:
    shape = ", ".join(str(d) for d in attr.shape)
    values = ", ".join(_format_array_element(v, attr.dtype) for v in attr.data.reshape(-1).tolist())
    return f"dense<{attr.dtype}, [{shape}], [{values}]>"


def format_attribute(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(format_attribute(v) for v in value) + "]"
    if isinstance(value, DenseAttr):
        return format_dense(value)
    raise TypeError(f"cannot print attribute {value!r}")


def format_attributes(attrs: Any) -> str:
    if not attrs:
        return ""
    parts = []
    for key in sorted(attrs):
        k = key if _BARE_KEY.match(key) else _quote(key)
        parts.append(f"{k} = {format_attribute(attrs[key])}")
    return " {" + ", ".join(parts) + "}"


def format_encoding(enc: SparsityEncoding) -> str:
    return f"#sparse<{format_float(enc.density)}, {enc.source}>"


def format_type(t: TensorType) -> str:
    dims = "".join(f"{d}x" for d in t.shape)
    enc = f", {format_encoding(t.encoding)}" if t.encoding is not None else ""
    return f"tensor<{dims}{t.dtype}{enc}>"


class _Namer:
    def __init__(self, func: Function) -> None:
        self.names: dict[int, str] = {}
        used: set[str] = set()
        for arg in func.args:
            name = arg.name or f"arg{arg.index}"
            base, n = name, 0
            while name in used or name.isdigit():
                n += 1
                name = f"{base}_{n}"
            used.add(name)
            self.names[id(arg)] = format_symbol(name, "%")
        counter = 0
        for op in func:
            for res in op.results:
                self.names[id(res)] = f"%{counter}"
                counter += 1

    def __call__(self, value: Value) -> str:
        try:
            return self.names[id(value)]
        except KeyError:
            return "%<<undefined>>"


def print_op(op: Op, namer: _Namer | None = None) -> str:
    if namer is None:
        if op.parent is None:
            raise ValueError("print_op without a namer needs an op inside a function")
        namer = _Namer(op.parent)
    lhs = ", ".join(namer(r) for r in op.results)
    text = f"{lhs} = " if lhs else ""
    text += f"{op.name}(" + ", ".join(namer(v) for v in op.operands) + ")"
    text += format_attributes(op.attributes)
    if op.results:
        text += " : " + ", ".join(format_type(r.type) for r in op.results)
    if op.loc is not None:
        text += f" loc({_quote(op.loc)})"
    return text


def print_function(func: Function, indent: str = "  ") -> str:
    namer = _Namer(func)
    args = ", ".join(f"{namer(a)}: {format_type(a.type)}" for a in func.args)
    outs = func.outputs
    names = func.result_names if len(func.result_names) == len(outs) else [f"out{i}" for i in range(len(outs))]
    results = ", ".join(f"{format_symbol(n, '')}: {format_type(v.type)}" for n, v in zip(names, outs))
    lines = [f"{indent}func {format_symbol(func.name)}({args}) -> ({results}) {{"]
    for op in func:
        lines.append(f"{indent}  {print_op(op, namer)}")
    lines.append(f"{indent}}}")
    return "\n".join(lines)


def print_module(module: Module) -> str:
    attrs = format_attributes(module.attributes)
    header = f"module {format_symbol(module.name)}" + (f" attributes{attrs}" if attrs else "")
    lines = [header + " {"]
    for param in module.params.values():
        lines.append(f"  param {format_symbol(param.name)} : {format_type(param.type)}"
                     f"{format_attributes({'kind': param.kind})}")
    for func in module.functions.values():
        lines.append(print_function(func))
    lines.append("}")
    return "\n".join(lines) + "\n"
