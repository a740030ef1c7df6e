"""``tcc compile``: a transformer onto an accelerator -- latency, energy, area, utilisation.

    tcc compile model.onnx --hw acceltran-edge
    tcc compile zoo:bert-tiny --hw acceltran-edge                 # exports with torch first
    tcc compile zoo:bert-base --hw acceltran-server --train --optimizer adam
    tcc compile model.onnx --hw my.hwdsl --batch 8 --seq 256 --json report.json --plots plots/
    tcc compile model.onnx --hw tiny-test -p 'default,tile{x=8,y=8,order=bikj}'

Loads the model here (the tools layer may import every layer): an ONNX file
(symbolic axes bound to the batch and sequence by their role; fixed axes are
the model's and win), a ``.tir`` file (its bound shapes are the truth), or
``zoo:NAME``, exported with :func:`frontends.export.export_onnx` to a
temporary folder first -- the only path that imports torch.  The rest
(passes, ``elector-map``, simulation, report) is
:func:`backends.elector.compile_pipeline.compile_module`.  See
docs/compile.md ("Batch and sequence") and docs/report-schema.md.  Heavy imports happen inside the
handler, so ``tcc --help`` stays fast.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tools.options import MAPPER_OBJECTIVE, MAPPER_OBJECTIVES, SEQUENCE_LENGTH

__all__ = ["MAX_BATCH", "MAX_SEQ", "ShapeChoice", "bound_shapes", "choose_onnx_shapes",
           "compile_decoder", "compile_model", "import_onnx_file", "load_model", "register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compile", help="compile a model onto an accelerator and report latency, energy, area",
        description="Import a model (ONNX file, .tir file or zoo:NAME), run the pass pipeline, "
                    "map it onto an ELECTOR design (z3-checked) and simulate it; prints a "
                    "report of latency, energy, area, utilisation and a per-op table.")
    parser.add_argument("model", help="model.onnx, model.tir, or zoo:NAME (e.g. zoo:bert-tiny)")
    parser.add_argument("--hw", required=True, metavar="NAME|FILE",
                        help="library design (tcc hw list) or .hwdsl file")
    parser.add_argument("--train", action="store_true",
                        help="cost one training step (@train_step: forward, backward, update)")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="adam",
                        help="optimizer of the training step (default adam)")
    parser.add_argument("--batch", type=int, metavar="B",
                        help="batch size (default: the model's fixed batch; for a .tir the "
                             "batch it is bound to; else the design's mapping batch)")
    parser.add_argument("--seq", type=int, metavar="S",
                        help="sequence length (default: the model's fixed sequence; for a .tir "
                             f"the one it is bound to; else {SEQUENCE_LENGTH})")
    parser.add_argument("--sim", choices=("analytical", "event"), default="analytical",
                        help="simulator: analytical (fast) or event (tile-level)")
    parser.add_argument("-p", "--pipeline", metavar="PIPELINE",
                        help="passes before mapping (default: 'default', or the training "
                             "pipeline); elector-map{hw=...} is appended unless present")
    parser.add_argument("--mapper-objective", dest="objective",
                        choices=MAPPER_OBJECTIVES, default=MAPPER_OBJECTIVE,
                        help=f"what the mapping search minimises (default {MAPPER_OBJECTIVE})")
    from tools.console import deprecated_alias  # one meaning per flag (cli helper)

    parser.add_argument("--objective", dest="objective", choices=MAPPER_OBJECTIVES,
                        action=deprecated_alias("--mapper-objective"), help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="also write the report as JSON (docs/report-schema.md)")
    parser.add_argument("--plots", type=Path, metavar="DIR",
                        help="write energy.png and utilisation.png into DIR")
    parser.add_argument("--html", type=Path, metavar="FILE",
                        help="also write an interactive HTML report (one self-contained file)")
    parser.add_argument("--trace", type=Path, metavar="FILE",
                        help="also write a Chrome trace event file (opens in Perfetto, "
                             "chrome://tracing)")
    parser.add_argument("--emit-ir", type=Path, metavar="FILE",
                        help="write the mapped IR text (.tir; parameters are not written)")
    parser.add_argument("--graph", type=Path, metavar="FILE",
                        help="also write the mapped schedule's dependency graph with simulated "
                             "cycles and its critical path marked (FILE.dot or FILE.graphml; "
                             "docs/graphs.md)")
    parser.add_argument("--max-ops", type=int, default=40, metavar="N",
                        help="per-op rows in the text report (the N longest; default 40)")
    parser.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript",
                        help="exporter for zoo: models (default torchscript)")
    decoder = parser.add_argument_group(
        "decoders with a KV cache", "time to first token and per-token latency/energy of a "
        "causal LM (zoo:NAME of a decoder, or a decode-step .onnx with past key/value inputs)")
    decoder.add_argument("--context", type=int, metavar="L",
                         help="prompt length: prefill of L tokens, then decode steps over a "
                              f"cache of L, L+1, ... tokens (default {SEQUENCE_LENGTH})")
    decoder.add_argument("--decode-steps", type=int, metavar="N",
                         help="decode steps after the prefill (default 1)")
    decoder.add_argument("--decode-samples", metavar="K|all", default=None,
                         help=f"decode steps simulated, evenly spaced in cache length including "
                              f"the first and last; the rest are interpolated "
                              f"(default {DEFAULT_DECODE_SAMPLES}; 'all': every step)")
    decoder.add_argument("--kv-cache", choices=("auto", "main-memory", "on-chip"), default=None,
                         help="where the cache lives between decode steps: auto (default: the "
                              "activation buffer while it fits, else main memory), main-memory, "
                              "on-chip")
    decoder.add_argument("--decode-weights", choices=("auto", "main-memory"), default=None,
                         help="where the weights are at the start of a decode step: auto "
                              "(default: the weight buffer when they all fit, else main memory), "
                              "main-memory (loaded every step)")
    decoder.add_argument("--prefill", metavar="FILE",
                         help="the prefill ONNX graph of a decode-step .onnx MODEL (without it "
                              "no time to first token is reported)")
    parser.set_defaults(func=run)


# --------------------------------------------------------------------------- shapes

#: Largest batch and sequence ``tcc compile`` accepts.  Stated bounds, not
#: limits of the cost model: they make a typo or a design's absurd mapping
#: batch (``batch = 1e30``) fail before any import instead of producing
#: meaningless throughput figures.
MAX_BATCH = 65_536
MAX_SEQ = 1 << 20
DEFAULT_SEQ = SEQUENCE_LENGTH
_SEQUENCE_WORDS = ("seq", "len", "token", "position", "time")

_POSITION_TABLE = re.compile(r"(^|[._])(position_embeddings?|pos_embed(ding)?s?|wpe|"
                             r"embed_positions)(\.weight)?$")


@dataclass
class ShapeChoice:
    """The batch and sequence a model is compiled at and where each came from.

    ``batch``/``seq`` are None when the model's inputs have no such axis (a
    scalar model).  ``sources`` are sentences for the report ("batch 1 taken
    from the model's fixed input shape 'ids' [1, 128]")."""

    batch: int | None
    seq: int | None
    sources: list[str] = field(default_factory=list)


def _axis_role(dim: int | str | None, axis: int, rank: int) -> str | None:
    """``batch``, ``seq`` or None (a fixed axis that is neither: hidden
    size, heads, channels): the role of one axis of a graph input.  A
    symbolic axis is read as the importer's defaults read it
    (frontends/onnx/shapes.py): a name with ``batch`` is the batch, a name
    that says sequence is the sequence, else axis 0 of an input of rank >= 2
    is the batch and any other axis a sequence.  A fixed axis: axis 0 of rank
    >= 2 is the batch, axis 1 of rank 2 or 3 (``[batch, seq(, hidden)]``)
    the sequence."""
    if isinstance(dim, str):
        name = dim.lower()
        if "batch" in name:
            return "batch"
        if any(word in name for word in _SEQUENCE_WORDS):
            return "seq"
    if dim is None or isinstance(dim, str):
        return "batch" if axis == 0 and rank >= 2 else "seq"
    if rank >= 2 and axis == 0:
        return "batch"
    if rank in (2, 3) and axis == 1:
        return "seq"
    return None


def _describe_dims(dims) -> str:  # noqa: ANN001
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _check_bounds(batch: int | None, seq: int | None, batch_origin: str, seq_origin: str) -> None:
    from transcode_ir.errors import UserError

    for label, value, origin, bound in (("batch", batch, batch_origin, MAX_BATCH),
                                        ("sequence", seq, seq_origin, MAX_SEQ)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise UserError(f"{origin} must be a positive integer, got {value!r}")
        if value > bound:
            raise UserError(f"{origin}: {label} {value:,} is past the bound tcc compile accepts "
                            f"for a {label} ({bound:,}, stated in docs/compile.md); give a "
                            f"{label} of at most {bound:,}")


def choose_onnx_shapes(signatures, batch: int | None, seq: int | None,  # noqa: ANN001
                       design_batch: int, design_name: str, label: str,
                       max_positions: tuple[int, str] | None = None
                       ) -> tuple[dict[str, tuple[int, ...]], ShapeChoice]:
    """The input shapes to import an ONNX model with, and the choice made.

    ``signatures`` are :class:`frontends.onnx.shapes.InputSignature` s.
    ``--batch``/``--seq`` (``batch``/``seq``, None when not given) must agree
    with the axes the model fixes; when not given they default to the
    model's fixed sizes, else the design's mapping batch and
    :data:`DEFAULT_SEQ`.  Every symbolic axis is bound to the batch or the
    sequence by its role (:func:`_axis_role`).  Raises a UserError naming
    the input and both shapes on a mismatch, and refuses sizes past
    :data:`MAX_BATCH`/:data:`MAX_SEQ` or past the model's positions."""
    from transcode_ir.errors import UserError

    fixed: dict[str, tuple[int, object]] = {}      # role -> (size, signature)
    has_role = {"batch": False, "seq": False}
    for sig in signatures:
        for axis, dim in enumerate(sig.dims):
            role = _axis_role(dim, axis, len(sig.dims))
            if role is None:
                continue
            has_role[role] = True
            if isinstance(dim, int) and role not in fixed:
                fixed[role] = (dim, sig, axis)
    sources: list[str] = []
    chosen: dict[str, int | None] = {}
    for role, asked, flag in (("batch", batch, "--batch"), ("seq", seq, "--seq")):
        word = "batch" if role == "batch" else "sequence"
        if role in fixed:
            size, sig, axis = fixed[role]
            if asked is not None and asked != size:
                requested = list(sig.dims)
                requested[axis] = asked
                raise UserError(
                    f"{flag} {asked}: {label} fixes the {word} at {size}: its input "
                    f"{sig.name!r} has the static shape {_describe_dims(sig.dims)}, and "
                    f"{flag} {asked} would make it {_describe_dims(requested)}; omit {flag} "
                    f"(the model's {size} is used), or re-export the model with a dynamic "
                    f"{word} axis")
            chosen[role] = size
            if asked is None:
                sources.append(f"{word} {size} taken from the model's fixed input shape "
                               f"{sig.name!r} {_describe_dims(sig.dims)}")
            else:
                sources.append(f"{word} {size} from {flag} (the model fixes it too)")
        elif not has_role[role]:
            if asked is not None:
                inputs = ", ".join(f"{s.name} {_describe_dims(s.dims)}" for s in signatures)
                raise UserError(f"{flag} {asked}: {label} has no {word} axis to bind (its "
                                f"inputs are {inputs or 'none'}); omit {flag}")
            chosen[role] = None
        elif asked is not None:
            chosen[role] = asked
            sources.append(f"{word} {asked} from {flag}")
        elif role == "batch":
            chosen[role] = design_batch
            sources.append(f"batch {design_batch} taken from the design's mapping batch "
                           f"({design_name}); the model's batch axis is symbolic")
        else:
            chosen[role] = DEFAULT_SEQ
            sources.append(f"sequence {DEFAULT_SEQ} is tcc's default; the model's sequence axis "
                           "is symbolic")
    b, s = chosen["batch"], chosen["seq"]
    if ("batch" in fixed and "seq" in fixed and batch is None and seq is None
            and fixed["batch"][1] is fixed["seq"][1]):
        sig = fixed["batch"][1]
        sources = [f"batch {b} x sequence {s} taken from the model's fixed input shape "
                   f"{sig.name!r} {_describe_dims(sig.dims)}"]
    _check_bounds(b, s, "--batch" if batch is not None else
                  ("the model's fixed batch" if "batch" in fixed else
                   f"the design's mapping batch ({design_name})"),
                  "--seq" if seq is not None else "the sequence")
    if s is not None and max_positions is not None and s > max_positions[0]:
        rows, table = max_positions
        raise UserError(f"--seq {s}: {label} has {rows} positions (its position table "
                        f"{table!r} has {rows} rows), so a sequence of {s} tokens cannot be "
                        f"encoded; give --seq {rows} or less")
    shapes: dict[str, tuple[int, ...]] = {}
    for sig in signatures:
        sizes = []
        for axis, dim in enumerate(sig.dims):
            if isinstance(dim, int):
                sizes.append(dim)
            else:
                role = _axis_role(dim, axis, len(sig.dims))
                value = chosen.get(role or "seq")
                sizes.append(value if value is not None else DEFAULT_SEQ)
        shapes[sig.name] = tuple(sizes)
    return shapes, ShapeChoice(b, s, sources)


def onnx_signatures(model):  # noqa: ANN001 - onnx.ModelProto -> list[InputSignature]
    """The graph inputs that are not initializers, with their dims."""
    from frontends.onnx.shapes import InputSignature, onnx_dims

    initializers = {init.name for init in model.graph.initializer}
    return [InputSignature(graph_input.name, onnx_dims(graph_input.type.tensor_type.shape))
            for graph_input in model.graph.input if graph_input.name not in initializers]


def onnx_max_positions(model) -> tuple[int, str] | None:  # noqa: ANN001
    """``(rows, name)`` of the model's learned position table (an initializer
    named like ``embeddings.position_embeddings.weight`` or ``wpe.weight``),
    or None (rotary or no positions: no limit is known)."""
    for init in model.graph.initializer:
        if len(init.dims) == 2 and _POSITION_TABLE.search(init.name):
            return int(init.dims[0]), init.name
    return None


def bound_shapes(module, function: str = "forward") -> tuple[ShapeChoice, str | None]:  # noqa: ANN001
    """Batch and sequence of an IR module from its function's argument
    shapes, and the argument they were read from: the first integer argument
    of rank 2 (token ids ``[batch, seq]``), else the first argument of rank 2
    or 3 (``[batch, seq(, hidden)]``), else the first of rank >= 2 (batch
    only).  None/None when no argument has a batch axis."""
    args = module.function(function).args
    picks = ([a for a in args if a.type.rank == 2 and a.type.dtype.startswith(("i", "u"))]
             or [a for a in args if a.type.rank in (2, 3)]
             or [a for a in args if a.type.rank >= 2])
    if not picks:
        return ShapeChoice(None, None, []), None
    arg = picks[0]
    shape = arg.type.shape
    seq = shape[1] if arg.type.rank in (2, 3) else None
    where = f"its input {arg.name!r} {_describe_dims(shape)}"
    return ShapeChoice(shape[0], seq, []), where


# --------------------------------------------------------------------------- loading


def load_model(source: str, batch: int | None, seq: int | None,
               exporter: str = "torchscript", design_batch: int = 1,
               design_name: str = "the design"):  # -> tuple[Module, str, ShapeChoice]
    """The IR module of ``source`` (ONNX file, ``.tir`` file or ``zoo:NAME``),
    the model's name, and the :class:`ShapeChoice` it was bound at.

    ``batch``/``seq`` are ``--batch``/``--seq`` (None: not given).  An ONNX
    file's fixed input sizes win over defaults and must agree with the flags;
    a ``.tir`` keeps the shapes it is bound to (flags that disagree are an
    error: its shapes are static and cannot be rebound); a zoo model is
    exported at the flags, or the design's mapping batch and
    :data:`DEFAULT_SEQ`."""
    from transcode_ir.errors import UserError

    if source.startswith("zoo:"):
        name = source[4:]
        if not name:
            raise UserError("zoo: needs a model name, e.g. zoo:bert-tiny (see tcc zoo list)")
        choice = _zoo_shapes(name, batch, seq, design_batch, design_name)
        from frontends.export import export_onnx  # imports torch

        with tempfile.TemporaryDirectory(prefix="tcc-compile-") as folder:
            path = Path(folder) / f"{name.replace(':', '_')}.onnx"
            export_onnx(name, path, exporter=exporter, batch=choice.batch, seq=choice.seq)
            # Bind what the export has: a model without a sequence axis (ViT)
            # takes no sequence, whatever default the export was traced with.
            model = _read_onnx(path)
            shapes, bound = choose_onnx_shapes(onnx_signatures(model), choice.batch, seq,
                                               choice.batch, design_name, source)
            del model
            from frontends.onnx import import_onnx

            module = import_onnx(path, shapes or None, copy_weights=True)
        module.name = name
        sources = [text for text in choice.sources
                   if bound.seq is not None or not text.startswith("sequence")]
        if bound.seq is None and seq is None:
            sources.append("the model has no sequence axis")
        return module, name, ShapeChoice(bound.batch, bound.seq, sources)
    path = Path(source)
    if not path.is_file():
        raise UserError(f"{source}: no such file (give an .onnx or .tir file, or zoo:NAME)")
    if path.suffix == ".tir":
        from transcode_ir.serialization import load_module

        module = load_module(path)
        return module, path.stem, _tir_shapes(module, source, batch, seq)
    model = _read_onnx(path)
    signatures = onnx_signatures(model)
    shapes, choice = choose_onnx_shapes(signatures, batch, seq, design_batch,
                                        design_name, str(path), onnx_max_positions(model))
    cache = cache_signatures(signatures)
    if cache:
        choice.sources.append(
            f"the model takes a KV cache ({cache[0].name} {_describe_dims(cache[0].dims)}, ...): "
            "its past axis is bound like any sequence axis, so this simulates "
            f"{choice.seq} new tokens over {choice.seq} cached ones; --context L "
            "--decode-steps N reports time to first token and per-token figures")
    from frontends.onnx import import_onnx

    _require_outputs(len(model.graph.output), str(path))
    del model
    return import_onnx(path, shapes or None, copy_weights=False), path.stem, choice


def _read_onnx(path: Path):  # -> onnx.ModelProto (weights not loaded)
    """The model's graph without its weights, for the signatures and the
    position table: the importer's skeleton reader (a few hundred kB parsed,
    the weights left in the file), else ``onnx.load`` for what it cannot walk."""
    import onnx

    from frontends.onnx.reader import read_onnx_file
    from transcode_ir.errors import UserError

    try:
        return read_onnx_file(path).model
    except Exception:  # noqa: BLE001 - anything the walk does not understand
        pass
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - any parse failure is the user's file
        raise UserError(f"{path}: not a readable ONNX file ({type(err).__name__}: {err})") from None


def _require_outputs(count: int, label: str) -> None:
    from transcode_ir.errors import UserError

    if count == 0:
        raise UserError(f"{label}: the model has no graph outputs, so there is nothing to "
                        "compute (every op would be removed as dead); re-export it with its "
                        "outputs (torch.onnx.export output_names=...)")


def _zoo_shapes(name: str, batch: int | None, seq: int | None, design_batch: int,
                design_name: str) -> ShapeChoice:
    """Zoo exports have symbolic batch and sequence: the flags, else the
    design's batch and :data:`DEFAULT_SEQ`; checked against the model's
    positions before torch is imported."""
    from transcode_ir.errors import UserError

    sources = []
    batch_origin = "--batch"
    if batch is None:
        batch = design_batch
        batch_origin = f"the design's mapping batch ({design_name})"
        sources.append(f"batch {batch} taken from the design's mapping batch ({design_name})")
    else:
        sources.append(f"batch {batch} from --batch")
    if seq is None:
        seq = DEFAULT_SEQ
        sources.append(f"sequence {seq} is tcc's default")
    else:
        sources.append(f"sequence {seq} from --seq")
    _check_bounds(batch, seq, batch_origin, "--seq")
    positions = None
    try:
        from frontends.hf.families import get_family

        family = get_family(name)
        if family is not None and family.kind != "vision":
            positions = family.max_positions or None
        else:
            from frontends.zoo.registry import resolve_config

            positions = getattr(resolve_config(name), "max_position_embeddings", None)
    except Exception:  # noqa: BLE001 - an unknown name is reported by the export itself
        positions = None
    if isinstance(positions, int) and seq > positions:
        raise UserError(f"--seq {seq}: zoo:{name} has {positions} positions "
                        f"(max_position_embeddings), so a sequence of {seq} tokens cannot be "
                        f"encoded; give --seq {positions} or less")
    return ShapeChoice(batch, seq, sources)


def _tir_shapes(module, source: str, batch: int | None, seq: int | None) -> ShapeChoice:  # noqa: ANN001
    """A ``.tir`` is bound: its shapes are the truth; flags must agree."""
    from transcode_ir.errors import UserError

    if "forward" not in module.functions:
        return ShapeChoice(None, None, [])
    bound, where = bound_shapes(module)
    for flag, asked, have, word in (("--batch", batch, bound.batch, "batch"),
                                    ("--seq", seq, bound.seq, "sequence")):
        if asked is None or asked == have:
            continue
        if have is None:
            raise UserError(f"{flag} {asked}: {source} has no {word} axis (its inputs have "
                            f"no axis tcc reads as the {word}); omit {flag}")
        raise UserError(
            f"{flag} {asked}: {source} is IR bound to {word} {have} ({where}); a .tir file has "
            f"static shapes and tcc compile does not rebind them.  Omit {flag} to compile it "
            f"at {word} {have}, or compile the ONNX model at the size you want (tcc compile "
            f"model.onnx {flag} {asked}, or tcc import model.onnx --input-shape NAME=DIMS)")
    sizes = " x ".join(f"{word} {have}" for word, have in (("batch", bound.batch),
                                                            ("sequence", bound.seq))
                       if have is not None)
    if sizes:
        bound.sources.append(f"{sizes} read from the IR's bound shapes ({where})")
    return bound


def import_onnx_file(path: Path, batch: int, seq: int, copy_weights: bool = False):  # -> Module
    """Import an ONNX file with its symbolic batch axes bound to ``batch`` and
    its symbolic sequence axes to ``seq`` (fixed axes must agree; see
    :func:`choose_onnx_shapes`)."""
    from frontends.onnx import import_onnx

    model = _read_onnx(Path(path))
    shapes, _ = choose_onnx_shapes(onnx_signatures(model), batch, seq, batch, "", str(path))
    del model
    return import_onnx(path, shapes or None, copy_weights=copy_weights)


def compile_model(source: str, hw: str, *, batch: int | None = None, seq: int | None = None,
                  exporter: str = "torchscript", **options):  # -> CompileOutcome
    """``tcc compile`` as a function: load ``source`` (shapes as
    :func:`load_model` chooses them), then
    :func:`backends.elector.compile_pipeline.compile_module`.  ``options``
    are the other fields of :class:`~backends.elector.compile_pipeline.CompileOptions`."""
    from backends.elector.compile_pipeline import CompileOptions, compile_module
    from backends.elector.design_library import resolve_design
    from tools.version import TOOL_VERSION

    accelerator = resolve_design(hw)
    _check_bounds(batch, seq, "--batch", "--seq")
    if options.get("sim", "analytical") == "event":
        from backends.elector.compile_pipeline import simulator

        simulator("event")          # fail before the (slow) import when it is missing
    from transcode_ir.progress import stage  # stderr, terminals only (cli helper)

    with stage(f"loading {source}"):
        module, name, choice = load_model(source, batch, seq, exporter,
                                          design_batch=accelerator.mapping.batch,
                                          design_name=accelerator.name)
    compile_options = CompileOptions(hw=hw, batch=choice.batch, seq=choice.seq, model_name=name,
                                     source=source, tool_version=TOOL_VERSION,
                                     shape_sources=list(choice.sources), **options)
    return compile_module(module, compile_options, accelerator)


# --------------------------------------------------------------------------- decoders

DEFAULT_DECODE_SAMPLES = 3


def cache_signatures(signatures) -> list:  # noqa: ANN001
    """The graph inputs that hold a KV cache: rank 4 with ``past`` in the name
    (``past_key_values.0.key``, ``past_key_0``), in graph order."""
    return [sig for sig in signatures if len(sig.dims) == 4 and "past" in sig.name.lower()]


def _decoder_shapes(signatures, label: str, batch: int, tokens: int, past: int
                    ) -> dict[str, tuple[int, ...]]:
    """Input shapes of a prefill (``past == 0``) or decode-step graph: cache
    inputs ``[batch, kv_heads, past, head_dim]``, a mask ``[batch, past +
    tokens]``, token-like inputs (ids, positions) ``[batch, tokens]``."""
    from transcode_ir.errors import UserError

    shapes: dict[str, tuple[int, ...]] = {}
    cache = {sig.name for sig in cache_signatures(signatures)}
    for sig in signatures:
        if sig.name in cache:
            want = (batch, sig.dims[1], past, sig.dims[3])
        elif len(sig.dims) == 2:
            want = (batch, past + tokens if "mask" in sig.name.lower() else tokens)
        else:
            raise UserError(f"{label}: input {sig.name!r} {_describe_dims(sig.dims)} is neither "
                            "token ids [batch, sequence], a mask [batch, sequence] nor a cache "
                            "tensor [batch, kv_heads, past_sequence, head_dim]; tcc does not "
                            "know how to bind it for a prefill or decode step")
        for axis, (dim, size) in enumerate(zip(sig.dims, want)):
            if isinstance(dim, int) and dim != size:
                raise UserError(f"{label}: input {sig.name!r} has the static shape "
                                f"{_describe_dims(sig.dims)}, but this step needs "
                                f"{_describe_dims(want)} (axis {axis}); export the decoder "
                                "with dynamic batch and sequence axes")
        shapes[sig.name] = want
    return shapes


def _max_positions_of(model) -> int | None:  # noqa: ANN001
    for prop in model.metadata_props:
        if prop.key == "transcode.max_positions" and prop.value.isdigit() and int(prop.value):
            return int(prop.value)
    found = onnx_max_positions(model)
    return found[0] if found else None


def compile_decoder(source: str, hw: str, *, batch: int | None = None,
                    context: int | None = None, steps: int | None = None,
                    samples: int | None = DEFAULT_DECODE_SAMPLES, prefill: str | None = None,
                    kv_cache: str = "auto", weights: str = "auto", seed: int = 0,
                    **options):  # -> DecodeOutcome
    """``tcc compile --context L --decode-steps N``: a causal LM's prefill
    of ``L`` prompt tokens (time to first token) and ``N`` decode steps over
    a cache growing from ``L`` (see docs/compile.md, "Decoders with a KV
    cache").  ``source``: ``zoo:NAME`` of a decoder family (exported with
    :func:`frontends.hf.kv_cache.export_decoder`), or a decode-step ONNX
    file with ``past`` cache inputs (``prefill``: its prefill graph, else no
    time to first token).  ``samples``: decode steps simulated (None: all)."""
    from backends.elector.compile_pipeline import DecodePlan, compile_decode, decode_cache_lengths
    from backends.elector.design_library import resolve_design
    from tools.version import TOOL_VERSION
    from transcode_ir.errors import UserError

    accelerator = resolve_design(hw)
    sources: list[str] = []
    if context is None:
        context = DEFAULT_SEQ
        sources.append(f"context {context} is tcc's default (--context)")
    if steps is None:
        steps = 1
        sources.append("1 decode step is the default (--decode-steps)")
    for flag, value in (("--context", context), ("--decode-steps", steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise UserError(f"{flag} must be a positive integer, got {value!r}")
    _check_bounds(batch, context + steps, "--batch", "--context + --decode-steps")
    if samples is not None and samples <= 0:
        raise UserError(f"--decode-samples must be a positive integer or 'all', got {samples}")
    lengths = decode_cache_lengths(context, steps, samples)
    if source.endswith(".tir"):
        raise UserError(f"{source}: a .tir file is bound to one step's shapes; --context and "
                        "--decode-steps need the decoder's ONNX graphs (zoo:NAME of a decoder, "
                        "or a decode-step .onnx file with past key/value inputs)")
    with tempfile.TemporaryDirectory(prefix="tcc-decode-") as folder:
        if source.startswith("zoo:"):
            name = source[4:]
            from frontends.hf.kv_cache import decoder_family

            try:
                family = decoder_family(name)
            except UserError as err:
                raise UserError(f"--context/--decode-steps need a causal language model with a "
                                f"KV cache: {err}") from None
            if family.max_positions and context + steps > family.max_positions:
                raise UserError(_positions_message(source, context, steps, family.max_positions))
            from frontends.hf.kv_cache import export_decoder  # imports torch

            exported = export_decoder(name, folder, seed)
            decode_path, prefill_path = exported.decode, exported.prefill
        else:
            decode_path = Path(source)
            if not decode_path.is_file():
                raise UserError(f"{source}: no such file (give a decode-step .onnx file or "
                                "zoo:NAME of a decoder)")
            prefill_path = Path(prefill) if prefill else None
            if prefill_path is not None and not prefill_path.is_file():
                raise UserError(f"--prefill {prefill}: no such file")
            name = decode_path.stem.removesuffix("-decode")
        decode_model = _read_onnx(decode_path)
        decode_sigs = onnx_signatures(decode_model)
        cache = cache_signatures(decode_sigs)
        if not cache:
            inputs = ", ".join(f"{s.name} {_describe_dims(s.dims)}" for s in decode_sigs)
            raise UserError(f"--context/--decode-steps: {source} is not a decoder with a KV "
                            f"cache: none of its inputs ({inputs or 'none'}) is a past key/value "
                            "tensor [batch, kv_heads, past_sequence, head_dim]; give a decode-step "
                            "graph (frontends/hf/kv_cache.py exports one) or zoo:NAME of a decoder")
        if len(cache) % 2 or not all(isinstance(s.dims[1], int) and isinstance(s.dims[3], int)
                                     for s in cache):
            raise UserError(f"{source}: its {len(cache)} past key/value inputs must come in "
                            "key/value pairs with fixed KV-head and head-dim axes, e.g. "
                            "past_key_values.0.key [batch, 4, past_sequence, 16]")
        positions = _max_positions_of(decode_model)
        if positions and context + steps > positions:
            raise UserError(_positions_message(source, context, steps, positions))
        batch_dim = cache[0].dims[0]
        if isinstance(batch_dim, int):
            if batch is not None and batch != batch_dim:
                raise UserError(f"--batch {batch}: {source} fixes the batch at {batch_dim} (its "
                                f"input {cache[0].name!r} {_describe_dims(cache[0].dims)})")
            batch = batch_dim
            sources.insert(0, f"batch {batch} taken from the model's fixed input shape "
                              f"{cache[0].name!r} {_describe_dims(cache[0].dims)}")
        elif batch is None:
            batch = accelerator.mapping.batch
            sources.insert(0, f"batch {batch} taken from the design's mapping batch "
                              f"({accelerator.name}); the model's batch axis is symbolic")
        else:
            sources.insert(0, f"batch {batch} from --batch")
        _check_bounds(batch, None, "the batch", "")
        prefill_sigs = None
        if prefill_path is not None:
            prefill_model = _read_onnx(prefill_path)
            prefill_sigs = onnx_signatures(prefill_model)
            if cache_signatures(prefill_sigs):
                raise UserError(f"{prefill_path}: a prefill graph takes no past key/value "
                                "inputs; give the graph that starts from an empty cache")
            del prefill_model
        del decode_model
        from frontends.onnx import import_onnx

        def build(tokens: int, past: int):  # noqa: ANN202 - -> Module
            if past == 0:
                shapes = _decoder_shapes(prefill_sigs, str(prefill_path), batch, tokens, 0)
                return import_onnx(prefill_path, shapes, name=f"{name}-prefill")
            shapes = _decoder_shapes(decode_sigs, str(decode_path), batch, tokens, past)
            return import_onnx(decode_path, shapes, name=f"{name}-decode")

        from backends.elector.compile_pipeline import CompileOptions

        plan = DecodePlan(context=context, steps=steps, cache_lengths=lengths,
                          cache_inputs=tuple(s.name for s in cache), layers=len(cache) // 2,
                          kv_heads=int(cache[0].dims[1]), head_dim=int(cache[0].dims[3]),
                          prefill=prefill_path is not None, kv_cache=kv_cache,
                          weights=weights)
        compile_options = CompileOptions(hw=hw, batch=batch, seq=context, model_name=name,
                                         source=source, tool_version=TOOL_VERSION,
                                         shape_sources=sources, **options)
        return compile_decode(build, compile_options, plan, accelerator)


def _positions_message(source: str, context: int, steps: int, positions: int) -> str:
    return (f"--context {context} with --decode-steps {steps}: {source} has {positions} "
            f"positions, and the last decode step would put token {context + steps} at "
            f"position {context + steps - 1}; give --context + --decode-steps of at most "
            f"{positions}")


# --------------------------------------------------------------------------- the command


def _decode_samples(text: str | None) -> int | None:
    from transcode_ir.errors import UserError

    if text is None:
        return DEFAULT_DECODE_SAMPLES
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise UserError(f"--decode-samples expects a positive integer or 'all', got {text!r}"
                        ) from None


def run_decoder(args: argparse.Namespace) -> int:
    from transcode_ir.errors import UserError

    if args.seq is not None:
        raise UserError("--seq does not apply with --context/--decode-steps: the prompt length "
                        "is --context (the decode steps process one token each)")
    if args.train:
        raise UserError("--train does not apply with --context/--decode-steps (a decoder's "
                        "prefill and decode steps are inference)")
    if args.exporter != "torchscript":
        raise UserError("--exporter: decoder graphs with a KV cache are exported with the "
                        "TorchScript exporter (frontends/hf/kv_cache.py); drop --exporter")
    outcome = compile_decoder(args.model, args.hw, batch=args.batch, context=args.context,
                              steps=args.decode_steps, samples=_decode_samples(args.decode_samples),
                              prefill=args.prefill, kv_cache=args.kv_cache or "auto",
                              weights=args.decode_weights or "auto",
                              sim=args.sim, pipeline=args.pipeline,
                              objective=args.objective)
    report = outcome.report
    _text_stream(args).write(report.to_text(max_ops=args.max_ops) + "\n")
    if args.json is not None:
        report.write_json(args.json)
        _wrote(args.json)
    if args.plots is not None:
        step = report.steps[report.plan.context]
        for path in step.write_plots(args.plots):
            print(f"wrote {path} (the decode step at context {report.plan.context})",
                  file=sys.stderr)
    if args.html is not None:
        from backends.elector.html_report import design_text, write_html

        written = write_html(report.steps[report.plan.context], args.html, design_text(args.hw))
        print(f"wrote {written} (the decode step at context {report.plan.context})",
              file=sys.stderr)
    if args.trace is not None:
        from backends.elector.trace import write_trace

        written = write_trace(report.steps[report.plan.context], args.trace)
        print(f"wrote {written} (the decode step at context {report.plan.context})",
              file=sys.stderr)
    if args.emit_ir is not None:
        from transcode_ir.fileio import write_text
        from transcode_ir.printer import print_module

        write_text(args.emit_ir, print_module(outcome.steps[report.plan.context].module))
        print(f"wrote {args.emit_ir} (the decode step at context {report.plan.context})",
              file=sys.stderr)
    return 0


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse an output path that cannot be written before the compile runs
    (issue 13; inputs helper's hook, transcode_ir/fileio.py)."""
    from transcode_ir.errors import UserError
    from transcode_ir.fileio import check_output_path, is_stdio

    to_stdout = [flag for flag in ("json", "html", "trace", "emit_ir", "graph")
                 if is_stdio(getattr(args, flag, None))]
    if len(to_stdout) > 1:
        raise UserError("only one output can be - (standard output); got "
                        + ", ".join(f"--{f.replace('_', '-')} -" for f in to_stdout))
    for flag in ("json", "html", "trace", "emit_ir", "graph"):
        path = getattr(args, flag, None)
        if path is not None:
            check_output_path(path, f"--{flag.replace('_', '-')}")
    if getattr(args, "graph", None) is not None:
        _graph_format(args.graph)


def _wrote(path) -> None:  # noqa: ANN001
    from tools.console import wrote

    wrote(path)


def _text_stream(args: argparse.Namespace):  # -> TextIO
    """Where the text report goes: stdout, unless an output file is ``-``
    (then stdout carries that file alone and the text goes to stderr)."""
    from transcode_ir.fileio import is_stdio

    if any(is_stdio(getattr(args, f, None)) for f in ("json", "html", "trace", "emit_ir", "graph")):
        return sys.stderr
    return sys.stdout


def run(args: argparse.Namespace) -> int:
    from transcode_ir.errors import UserError

    _check_outputs(args)

    if args.optimizer != "adam" and not args.train:
        raise UserError("--optimizer only applies with --train")
    if (args.context is not None or args.decode_steps is not None
            or args.decode_samples is not None or args.prefill is not None
            or args.kv_cache is not None or args.decode_weights is not None):
        return run_decoder(args)
    outcome = compile_model(args.model, args.hw, batch=args.batch, seq=args.seq,
                            exporter=args.exporter, train=args.train, optimizer=args.optimizer,
                            sim=args.sim, pipeline=args.pipeline, objective=args.objective)
    report = outcome.report
    _text_stream(args).write(report.to_text(max_ops=args.max_ops) + "\n")
    if args.json is not None:
        report.write_json(args.json)
        _wrote(args.json)
    if args.plots is not None:
        for path in report.write_plots(args.plots):
            _wrote(path)
    if args.html is not None:
        from backends.elector.html_report import design_text, write_html

        _wrote(write_html(report, args.html, design_text(args.hw)))
    if args.trace is not None:
        from backends.elector.trace import write_trace

        _wrote(write_trace(report, args.trace))
    if args.emit_ir is not None:
        from transcode_ir.fileio import write_text
        from transcode_ir.printer import print_module

        write_text(args.emit_ir, print_module(outcome.module))
        _wrote(args.emit_ir)
    if args.graph is not None:
        _write_graph(report, args.graph)
    return 0


def _graph_format(path: Path) -> str:
    """``dot`` or ``graphml`` from ``--graph``'s file name (``-``: DOT)."""
    from transcode_ir.errors import UserError
    from transcode_ir.fileio import is_stdio

    if is_stdio(path):
        return "dot"
    fmt = {".dot": "dot", ".gv": "dot", ".graphml": "graphml"}.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"--graph {path}: cannot tell the graph format from the file name; "
                        "name it *.dot, *.gv or *.graphml")
    return fmt


def _write_graph(report, path: Path) -> None:  # noqa: ANN001 - report: backends.elector Report
    """The mapped schedule as a graph (backends/elector/graph.py), its critical
    path by simulated cycles marked."""
    from backends.elector.graph import schedule_graph
    from transcode_ir.fileio import is_stdio
    from transcode_ir.graph import critical_path, format_graph, write_graph

    graph = schedule_graph(report.mapped, report.result)
    chain = critical_path(graph).nodes
    if is_stdio(path):
        sys.stdout.write(format_graph(graph, "dot", chain))
        sys.stdout.flush()
        return
    write_graph(graph, path, _graph_format(path), chain)
    _wrote(path)
