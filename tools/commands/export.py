"""``tcc export``: write one function of an IR module as an ONNX model.

    tcc export model.tir -o model.onnx [--function forward] [--opset 18]

Parameter data is read from the ``.npz`` beside the ``.tir`` file; ONNX keeps
weights inside the model, so a module without its ``.npz`` is an error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.flags import bounded_int
from transcode_ir.errors import UserError

DEFAULT_OPSET = 18


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="write a function of an IR module as an ONNX model",
        description="Emit one function of an IR module (.tir, with its parameters from the "
                    ".npz beside it) as an ONNX model that onnxruntime runs.")
    parser.add_argument("module", type=Path, help="IR text file (.tir)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="ONNX file to write")
    parser.add_argument("--function", default="forward",
                        help="function of the module to export (default: forward)")
    parser.add_argument("--opset", type=bounded_int(1, 1000), default=DEFAULT_OPSET,
                        help=f"ONNX opset of the default domain (default: {DEFAULT_OPSET})")
    parser.add_argument("--no-check", action="store_true",
                        help="skip onnx.checker (full check with strict shape inference)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from transcode_ir.fileio import check_output_path
    from transcode_ir.serialization import load_module

    if str(args.output) == "" or (str(args.output) == "-" and sys.stdout.isatty()):
        raise UserError(f"-o {str(args.output)!r}: give the ONNX file to write, or - with "
                        "standard output redirected (an ONNX model is binary; it is not "
                        "printed on a terminal)")
    check_output_path(args.output, "ONNX model")
    module = load_module(args.module)
    func = _function(module, args.function, args.module)
    read = _parameters_read(func)
    missing = sorted(name for name in read
                     if name in module.params and module.params[name].data is None)
    if missing:
        npz = args.module.with_suffix(".npz")
        raise UserError(
            f"{args.module}: @{args.function} reads parameter(s) without data "
            f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); ONNX models "
            f"carry their weights, so {npz} must sit beside the .tir file "
            f"({'it is missing' if not npz.exists() else 'it lacks these arrays'})")
    path = _save(module, args.output, args.function, args.opset, check=not args.no_check)
    from tools.console import wrote

    wrote(path, note=f"@{args.function}, opset {args.opset}")
    return 0


def _save(module, path: Path, function: str, opset: int, check: bool) -> Path:
    """:func:`backends.onnx.save_onnx`, written atomically (a temporary file
    renamed into place): the model is built first, then written."""
    import onnx

    from backends.onnx.exporter import export_function, initializer_bytes
    from transcode_ir.fileio import output_path

    model = export_function(module, function, opset, check=check)
    with output_path(path) as temporary:           # '-': the bytes go to standard output
        if initializer_bytes(model) >= _PROTOBUF_LIMIT and str(path) == "-":
            raise UserError("-o -: a model of 2 GiB or more keeps its weights in a .data file "
                            "beside the .onnx; give a file name")
        if initializer_bytes(model) >= _PROTOBUF_LIMIT:
            # External data is named after the final file (its folder is the
            # temporary's); only the .onnx itself is replaced atomically.
            onnx.save_model(model, str(temporary), save_as_external_data=True,
                            all_tensors_to_one_file=True, location=path.name + ".data")
        else:
            onnx.save_model(model, str(temporary))
    return path


#: As in backends/onnx/exporter.py: protobuf cannot serialise 2 GiB or more.
_PROTOBUF_LIMIT = 2**31 - 2**20


def _function(module, name: str, path: Path):  # -> Function
    try:
        return module.function(name)
    except KeyError as err:
        raise UserError(f"{path}: {err.args[0]}") from None


def _parameters_read(func) -> set[str]:
    return {op.attributes["name"] for op in func if op.name == "tensor.param"}
