"""``tcc zoo``: list, describe and export the model zoo.

* ``tcc zoo list [--json]``: name, layers, hidden, heads, FFN, head types and
  parameter count of every zoo model (computed without torch).
* ``tcc zoo describe NAME|DESCRIPTION [--prune-points]``: canonical
  description, a per-layer table and, optionally, the DynaProp prune points.
* ``tcc zoo export NAME|DESCRIPTION -o model.onnx [--exporter torchscript|dynamo]
  [--batch B] [--seq S] [--opset N] [--seed N] [--vocab-size V] [--static] [--verify]``.

A FlexiBERT description (``'l2:h256:sdp*2,dft,conv9:ff1024'`` or JSON; see
frontends/zoo/README.md) is accepted wherever a name is.  torch is imported
only by ``export``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tools.flags import bounded_int
from tools.options import SEQUENCE_LENGTH

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "zoo",
        help="list, describe and export zoo models (BERT family, FlexiBERT encoders)",
        description="The model zoo: BERT-Tiny..BERT-Base and FlexiBERT-2.0-style "
        "heterogeneous encoders. NAME may also be a FlexiBERT description such as "
        "'l2:h256:sdp*2,dft,conv9:ff1024'.",
    )
    parser.set_defaults(func=lambda args: _help(parser))
    actions = parser.add_subparsers(dest="zoo_command", metavar="ACTION")

    listing = actions.add_parser("list", help="list zoo models with sizes and parameter counts")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=_list)

    describe = actions.add_parser("describe", help="show a model's layers (and prune points)")
    describe.add_argument("model", metavar="NAME|DESCRIPTION")
    describe.add_argument("--prune-points", action="store_true",
                          help="list DynaProp prune points with their module paths")
    describe.add_argument("--no-space-check", action="store_true",
                          help="accept descriptions outside the FlexiBERT 2.0 space")
    describe.set_defaults(func=_describe)

    export = actions.add_parser("export", help="export a model to ONNX")
    export.add_argument("model", metavar="NAME|DESCRIPTION")
    export.add_argument("-o", "--output", required=True, help="ONNX file to write")
    export.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript")
    export.add_argument("--batch", type=bounded_int(), default=1,
                        help="example batch size (default 1)")
    export.add_argument("--seq", type=bounded_int(), default=SEQUENCE_LENGTH,
                        help=f"example sequence length (default {SEQUENCE_LENGTH})")
    export.add_argument("--opset", type=bounded_int(1, 1000), default=None,
                        help="ONNX opset (default 17 for torchscript, 18 for dynamo; "
                             "torchscript takes 10-20, dynamo 18 and newer)")
    export.add_argument("--seed", type=bounded_int(0, 2**32 - 1), default=0,
                        help="weight and input seed (default 0)")
    export.add_argument("--vocab-size", type=bounded_int(), default=None,
                        help="vocabulary size (default 30522)")
    export.add_argument("--static", action="store_true",
                        help="fixed batch and sequence instead of symbolic dimensions")
    export.add_argument("--verify", action="store_true",
                        help="run the file in onnxruntime and compare with torch (rtol 1e-4)")
    export.set_defaults(func=_export)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _span(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def _summary(name: str) -> dict[str, Any]:
    from frontends.zoo import ZOO

    config = ZOO[name]
    widths = [w for layer in config.layers for w in layer.ff]
    return {
        "name": name,
        "layers": config.num_layers,
        "hidden": _span([layer.hidden for layer in config.layers]),
        "heads": _span([layer.num_heads for layer in config.layers]),
        "ffn": _span(widths),
        "head_types": ",".join(config.head_type_counts()),
        "parameters": config.parameter_count(),
        "description": config.description,
    }


def _list(args: argparse.Namespace) -> int:
    from frontends.zoo import list_models
    from frontends.zoo.hf import family_rows

    rows = [_summary(name) for name in list_models()] + family_rows()   # + transformers families
    if args.json:
        # numbers as numbers: a size all layers share is an integer, a size that
        # varies across layers (FlexiBERT) is [smallest, largest]
        print(json.dumps([{k: _json_size(v) if k in ("hidden", "heads", "ffn") else v
                           for k, v in r.items()} for r in rows], indent=2))
        return 0
    from transcode_ir.tables import format_table

    header = ("name", "layers", "hidden", "heads", "FFN", "head types", "parameters")
    print(format_table(header, [
        (r["name"], r["layers"], r["hidden"], r["heads"], r["ffn"], r["head_types"],
         f"{r['parameters']:,}" if r["parameters"] is not None else "on build")
        for r in rows], align="lrrrrlr"))
    return 0


def _json_size(text: Any) -> Any:
    """``"128"`` -> 128, ``"128-256"`` -> [128, 256] (other values unchanged)."""
    if isinstance(text, str):
        parts = text.split("-")
        if all(part.isdigit() for part in parts) and len(parts) in (1, 2):
            numbers = [int(part) for part in parts]
            return numbers[0] if len(numbers) == 1 else numbers
    return text


def _describe(args: argparse.Namespace) -> int:
    from frontends.zoo import resolve_config
    from frontends.zoo.hf import describe_family, is_family

    if is_family(args.model):   # transformers family entry
        print(describe_family(args.model))
        return 0

    config = resolve_config(args.model, check_space=not args.no_space_check)
    print(f"name:        {config.name or '(description)'}")
    print(f"description: {config.description}")
    print(f"parameters:  {config.parameter_count():,}")
    print(f"vocabulary:  {config.vocab_size}, positions {config.max_position_embeddings}, "
          f"token types {config.type_vocab_size}")
    print("layer  hidden  heads  head dim  head types                          FFN")
    for index, layer in enumerate(config.layers):
        print(f"{index:>5}  {layer.hidden:>6}  {layer.num_heads:>5}  {layer.head_dim:>8}  "
              f"{layer.heads_text():<34}  {'-'.join(str(w) for w in layer.ff)}")
    if args.prune_points:
        print("prune points (module output; kind):")
        for point in config.prune_points():
            print(f"  {point.path}  ({point.kind}, {point.role})")
    return 0


def _export(args: argparse.Namespace) -> int:
    from frontends.export import check_export_options, export_onnx, verify_export
    from frontends.zoo import build_model, resolve_config
    from transcode_ir.fileio import check_output_path

    if str(args.output) == "-" and sys.stdout.isatty():
        from transcode_ir.errors import UserError

        raise UserError("-o -: an ONNX model is binary; redirect standard output to a file or "
                        "a pipe, or give a file name")
    check_output_path(args.output, "ONNX model")      # before torch is imported
    check_export_options(args.exporter, args.batch, args.seq, args.opset)
    from frontends.zoo.hf import is_family, verify_family_export
    from transcode_ir.progress import stage  # stderr, terminals only

    if is_family(args.model):   # transformers family entry (frontends/hf)
        with stage(f"exporting {args.model} ({args.exporter})"):
            result = export_onnx(args.model, args.output, exporter=args.exporter,
                                 batch=args.batch, seq=args.seq, opset=args.opset,
                                 seed=args.seed, dynamic=not args.static)
        from tools.console import wrote

        wrote(result.path, note=f"{args.model}; {result.exporter}, opset {result.opset}, "
              f"{'symbolic' if result.dynamic else 'static'} shapes; inputs from the plain "
              f"Hugging Face call; {result.seconds:.1f} s, {result.cpu_seconds:.1f} s CPU")
        if args.verify:
            batch, seq = (args.batch, args.seq) if not result.dynamic else (2, min(args.seq, 37))
            error = verify_family_export(args.model, result.path, batch, seq, args.seed)
            from frontends.hf import get_family

            where = (f"batch {batch}" if get_family(args.model).kind == "vision"
                     else f"batch {batch}, seq {seq}")
            print(f"onnxruntime vs torch at {where}: max relative error "
                  f"{error:.2e} ({'ok' if error <= 1e-4 else 'FAILED, above 1e-4'})")
            return 0 if error <= 1e-4 else 1
        return 0
    config = resolve_config(args.model, args.vocab_size)
    with stage(f"exporting {args.model} ({args.exporter})"):
        model = build_model(config, seed=args.seed)
        result = export_onnx(
            model,
            args.output,
            exporter=args.exporter,
            batch=args.batch,
            seq=args.seq,
            opset=args.opset,
            seed=args.seed,
            dynamic=not args.static,
        )
    shape = "symbolic batch/sequence" if result.dynamic else f"static {args.batch}x{args.seq}"
    from tools.console import wrote

    wrote(result.path, note=f"{config.name or config.description}; {result.exporter}, "
          f"opset {result.opset}, {shape}; {config.parameter_count():,} parameters; "
          f"{result.seconds:.1f} s, {result.cpu_seconds:.1f} s CPU")
    if args.verify:
        batch, seq = (args.batch, args.seq) if args.static else (2, min(args.seq, 37))
        error = verify_export(model, result.path, batch=batch, seq=seq, seed=args.seed)
        ok = error <= 1e-4
        print(f"onnxruntime vs torch at batch {batch}, seq {seq}: max relative error "
              f"{error:.2e} ({'ok' if ok else 'FAILED, above 1e-4'})")
        return 0 if ok else 1
    return 0
