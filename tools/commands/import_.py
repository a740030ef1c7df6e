"""``tcc import``: read an ONNX model into the IR.

    tcc import model.onnx -o model.tir [--input-shape input_ids=4x128 ...] [--summary]

Writes ``model.tir`` and the parameters beside it as ``model.npz``.  With
``--summary``, or without ``-o``, prints ops by kind, parameters and MACs.
``-o -`` prints the IR text on stdout (and writes no parameters).  The module
is verified, and its text parsed back, before anything is written.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tools.options import SEQUENCE_LENGTH
from transcode_ir.errors import UserError

_SHAPE_ARGUMENT = re.compile(r"^(?P<name>[^=]+)=(?P<dims>\d+(x\d+)*)?$")
#: The largest size of one dimension (the same bound as --batch and --seq).
MAX_DIM = 2**31 - 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import", help="import an ONNX model into the IR (.tir + .npz)",
        description="Import an ONNX model (from torch.onnx.export, either exporter; opsets "
                    "10-23) into the TransCODE IR: symbolic dimensions are bound, shape "
                    "computations folded, every op gets its torch module path as loc.")
    parser.add_argument("model", type=Path, help="ONNX file (.onnx)")
    parser.add_argument("-o", "--output", help="IR text file to write (.tir; parameters go to "
                        "the .npz beside it); '-' prints the IR on stdout")
    parser.add_argument("--input-shape", action="append", default=[], metavar="NAME=DIMS",
                        help="bind an input's shape, e.g. input_ids=4x128 (repeatable); "
                             "unbound symbolic dims default to batch 1, sequence "
                             f"{SEQUENCE_LENGTH}")
    parser.add_argument("--name", help="module name (default: the ONNX file name)")
    parser.add_argument("--summary", action="store_true",
                        help="print ops by kind, parameters and MACs")
    parser.add_argument("--no-gelu-recognition", action="store_true",
                        help="keep a decomposed GELU (Erf and friends) as separate ops")
    parser.set_defaults(func=run)


def parse_input_shapes(arguments: list[str]) -> dict[str, tuple[int, ...]]:
    """``["input_ids=4x128"]`` -> ``{"input_ids": (4, 128)}``."""
    shapes: dict[str, tuple[int, ...]] = {}
    for text in arguments:
        match = _SHAPE_ARGUMENT.match(text.strip())
        if match is None:
            raise UserError(f"--input-shape expects NAME=DIMS such as input_ids=4x128 "
                            f"(positive sizes joined by 'x'), got {text!r}")
        name = match.group("name").strip()
        dims = match.group("dims")
        if name in shapes:
            raise UserError(f"--input-shape gives input {name!r} twice")
        sizes = dims.split("x") if dims else []
        for size in sizes:
            if len(size.lstrip("0")) > len(str(MAX_DIM)) or not 1 <= int(size) <= MAX_DIM:
                shown = size if len(size) <= 24 else f"{size[:12]}... ({len(size)} digits)"
                raise UserError(f"--input-shape {name}: dimension {shown} is out of range; "
                                f"accepted: 1..{MAX_DIM} per dimension")
        shapes[name] = tuple(int(d) for d in sizes)
    return shapes


def run(args: argparse.Namespace) -> int:
    from frontends.onnx import import_onnx
    from transcode_ir.fileio import check_output_path
    from transcode_ir.parser import parse_module
    from transcode_ir.printer import print_module
    from transcode_ir.serialization import save_module
    from transcode_ir.verifier import verify_module

    shapes = parse_input_shapes(args.input_shape)
    target = args.output
    if target and target != "-":
        if Path(target).suffix == ".npz":
            raise UserError(f"-o {target}: give the .tir path; the parameters are written "
                            "beside it as .npz")
        check_output_path(target)            # before the (long) import
    source = args.model
    if str(source) == "-":                   # standard input (cli helper, issue 14)
        import onnx

        from transcode_ir.fileio import read_bytes

        try:
            source = onnx.load_from_string(read_bytes("-"))
        except Exception as err:               # noqa: BLE001 -- a message, not a traceback
            raise UserError(f"standard input: not an ONNX model ({type(err).__name__}: "
                            f"{str(err)[:200]})") from None
    from transcode_ir.progress import stage  # stderr, terminals only

    with stage(f"importing {args.model}"):
        module = import_onnx(source, shapes or None,
                             name=args.name or ("stdin" if source is not args.model else None),
                             recognize_gelu=not args.no_gelu_recognition)
    verify_module(module)
    text = print_module(module)
    label = str(target) if target and target != "-" else "<stdout>"
    reparsed = parse_module(text, label)
    verify_module(reparsed)

    if target == "-":
        sys.stdout.write(text)
    elif target:
        path = Path(target)
        save_module(module, path)
        npz = path.with_suffix(".npz")
        from tools.console import wrote

        wrote(path, note=f"{len(module['forward'])} ops")
        if module.params:
            wrote(npz, note=f"{len(module.params)} parameters")
    if args.summary or not target:
        stream = sys.stderr if target == "-" else sys.stdout
        print(summarize(module), file=stream)
    return 0


def summarize(module: Any) -> str:
    """A short text summary: signature, parameters, MACs and ops by kind."""
    from transcode_ir.opdefs import op_cost
    from transcode_ir.printer import format_type

    lines = []
    for function in module.functions.values():
        ops = [op for op in function if op.name != "func.return"]
        lines.append(f"@{function.name}: {len(ops)} ops")
        lines.append("  inputs:  " + ", ".join(
            f"{a.name}: {format_type(a.type)}" for a in function.args))
        lines.append("  outputs: " + ", ".join(
            f"{n}: {format_type(v.type)}" for n, v in zip(function.result_names, function.outputs)))
        macs = other = 0
        for op in ops:
            cost = op_cost(op)
            macs += cost.macs
            other += cost.ops
        lines.append(f"  MACs: {_count(macs)}   other arithmetic: {_count(other)}")
        kinds = Counter(op.name for op in ops)
        lines.append("  ops by kind:")
        width = max((len(k) for k in kinds), default=0)
        for kind, count in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"    {kind:<{width}}  {count}")
    for kind in ("weight", "constant", "state"):
        params = [p for p in module.params.values() if p.kind == kind]
        if params:
            elements = sum(p.type.numel for p in params)
            size = sum(p.type.nbytes for p in params)
            lines.append(f"parameters ({kind}): {len(params)} tensors, {_count(elements)} "
                         f"elements, {_bytes(size)}")
    return "\n".join(lines)


def _count(value: int) -> str:
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.2f} {suffix} ({value:,})"
    return str(value)


def _bytes(value: int) -> str:
    for limit, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if value >= limit:
            return f"{value / limit:.1f} {suffix}"
    return f"{value} B"
