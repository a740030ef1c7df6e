"""Export zoo models (or any encoder-shaped ``nn.Module``) to ONNX.

:func:`export_onnx` wraps ``torch.onnx.export`` for the two exporters of torch
2.13 and gives both the same interface: graph inputs ``input_ids`` and
``attention_mask`` (int64, ``(batch, sequence)``), outputs ``last_hidden_state``
and ``pooler_output`` (or the model's ``output_names``, e.g. ``logits`` for a
classifier), and symbolic dimensions named ``batch`` and ``sequence`` so that an
importer has to bind them.  ``batch`` and ``seq`` are the sizes of the example
inputs used for tracing (and the fixed sizes when ``dynamic=False``).

* ``exporter="torchscript"``: ``torch.onnx.export(..., dynamo=False)``, opset 17
  by default, ``dynamic_axes`` for batch and sequence, constant folding on.
* ``exporter="dynamo"``: ``torch.onnx.export(..., dynamo=True, optimize=True)``,
  opset 18 by default (18–20 tested), ``dynamic_shapes`` with
  ``Dim("batch")`` and ``Dim("sequence", max=max_position_embeddings)``.  If
  ``torch.export`` cannot keep a dimension symbolic the export is retried with
  static shapes; the result says so (``ExportResult.dynamic``) and the model
  carries ``transcode.dynamic = "false"``.  With torch 2.13 every zoo model
  exports with dynamic shapes, so the fallback has not been needed.

Where the module path lives (verified with torch 2.13.0, onnxscript 0.7.2)
===========================================================================

TorchScript exporter
    The node *name* is the module scope: ``/encoder/layer.0/attention/self/query/MatMul``,
    ``/encoder/layer.0/intermediate/dense/Add``; ops of a module's own forward
    that belong to no child (the attention ``MatMul``/``Softmax``/``Div``, GELU's
    ``Erf``) are named after the module that ran them
    (``/encoder/layer.0/attention/self/Softmax``).  Module path = the name
    without its leading ``/`` and last component, ``/`` → ``.``.  Top-level ops
    (mask arithmetic) are ``/Mul``, ``/Sub`` (path ``""``); a few folded
    constants carry no scope (``Constant_90``).  Nodes have no metadata_props.
    Parameters keep their state-dict names as initializers, except that
    constant folding transposes Linear weights into fresh initializers
    (``onnx::MatMul_273``); :func:`export_onnx` renames each such initializer
    to ``<module path>.weight_transposed`` after checking that it equals the
    transposed ``<module path>.weight``.

Dynamo exporter
    Node names are generic (``node_MatMul_32``, ``node_linear``).  Each node's
    ``metadata_props`` carries ``pkg.torch.onnx.name_scopes``, the Python repr
    of a list of *cumulative module paths* ending with the FX node name, e.g.
    ``['', 'encoder', 'encoder.layer.0', 'encoder.layer.0.attention',
    'encoder.layer.0.attention.self', 'encoder.layer.0.attention.self.query',
    'linear']``; the deepest module path is the element before last.  Also
    present: ``namespace`` (``": EncoderModel/encoder: Encoder/encoder.layer.0:
    EncoderLayer/.../linear: aten.linear.default"``),
    ``pkg.torch.onnx.class_hierarchy`` (module classes), ``pkg.torch.onnx.fx_node``,
    ``pkg.torch.onnx.stack_trace``; nodes produced by the onnxscript optimizer
    also carry ``pkg.onnxscript.rewriter.rule_name``.  Shape helpers that
    ``torch.export`` inserts have the scope ``_empty_nn_module_stack_from_metadata_hook``
    (treated as path ``""``).  Parameters keep their state-dict names; folded
    transposed Linear weights (``val_33``) are renamed like the TorchScript ones.

:func:`module_path_of` reads the path from a node of either exporter.

Both exporters add ``metadata_props`` to the *model*: ``transcode.model`` (zoo
name or description), ``transcode.description``, ``transcode.seed``,
``transcode.vocab_size``, ``transcode.exporter``, ``transcode.opset``,
``transcode.example_batch``, ``transcode.example_seq``, ``transcode.dynamic``.

Ops seen per model type are listed in frontends/zoo/README.md.
"""

from __future__ import annotations

import ast
import io
import logging
import os
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from transcode_ir.defaults import SEQUENCE_LENGTH
from transcode_ir.errors import UserError
from transcode_ir.fileio import FileError, describe_os_error, output_path

if TYPE_CHECKING:  # pragma: no cover
    import onnx
    import torch

__all__ = [
    "DEFAULT_OPSET",
    "EXPORTERS",
    "OPSETS",
    "check_export_options",
    "ExportResult",
    "export_onnx",
    "module_path_of",
    "run_onnxruntime",
    "verify_export",
]

EXPORTERS: tuple[str, ...] = ("torchscript", "dynamo")
DEFAULT_OPSET: dict[str, int] = {"torchscript": 17, "dynamo": 18}
#: Opsets each exporter is asked for (torch 2.13: the TorchScript exporter
#: stops at 20, ``torch.onnx._constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET``;
#: the dynamo exporter starts at 18; the importer reads 10 and newer).
OPSETS: dict[str, tuple[int, int]] = {"torchscript": (10, 20), "dynamo": (18, 23)}
#: Batch x sequence of the example inputs that the exporter traces: the
#: forward pass runs on them, so they are bounded (a symbolic export runs at
#: any size afterwards).
MAX_EXAMPLE_TOKENS = 2**20
INPUT_NAMES: tuple[str, str] = ("input_ids", "attention_mask")
_EMPTY_SCOPE = "_empty_nn_module_stack_from_metadata_hook"
#: Exporters mark the second and later calls of one module with ``@N``.
_CALL_SUFFIX = re.compile(r"@\d+$")


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote; usable as a path (``os.fspath(result)``)."""

    path: Path
    exporter: str
    opset: int
    dynamic: bool
    seconds: float
    output_names: tuple[str, ...]
    #: CPU time of this process during the export (all threads); on a busy
    #: machine it says more about the exporter's cost than ``seconds`` does.
    cpu_seconds: float = 0.0

    def __fspath__(self) -> str:
        return str(self.path)


def export_onnx(
    model_or_name: Any,
    path: str | os.PathLike[str],
    exporter: str = "torchscript",
    batch: int = 1,
    seq: int = SEQUENCE_LENGTH,
    opset: int | None = None,
    seed: int = 0,
    *,
    vocab_size: int | None = None,
    dynamic: bool = True,
    output_names: Sequence[str] | None = None,
    check: bool = True,
) -> ExportResult:
    """Export a zoo model (name, description, config) or an ``nn.Module`` to ``path``.

    ``seed`` and ``vocab_size`` pick the weights of a zoo model and the example
    inputs; an ``nn.Module`` is exported with the weights it has.  The result
    passes ``onnx.checker`` (when ``check``).  See the module docstring for
    names and metadata.
    """
    from frontends.zoo.hf import is_family

    if is_family(model_or_name):   # a transformers family entry (hf-matrix hook)
        from frontends.hf import export_family

        return export_family(model_or_name, path, exporter, batch=batch, seq=seq, opset=opset,
                             seed=seed, dynamic=dynamic, check=check)
    import onnx
    import torch

    from frontends.zoo import build_model, example_inputs, resolve_config

    check_export_options(exporter, batch, seq, opset)
    opset = DEFAULT_OPSET[exporter] if opset is None else int(opset)

    if isinstance(model_or_name, torch.nn.Module):
        model = model_or_name
        config = getattr(model, "config", None)
        model_label = getattr(config, "name", None) or type(model).__name__
    else:
        config = resolve_config(model_or_name, vocab_size)
        model = build_model(config, seed=seed)
        model_label = config.name or config.description
    if config is not None and seq > config.max_position_embeddings:
        raise UserError(
            f"seq: {seq} exceeds max_position_embeddings {config.max_position_embeddings}"
        )
    outputs = tuple(output_names or getattr(model, "output_names", ("output",)))
    vocab = config.vocab_size if config is not None else (vocab_size or 30522)
    max_seq = config.max_position_embeddings if config is not None else None
    inputs = example_inputs(batch, seq, vocab, seed)

    was_training = model.training
    model.eval()
    start = time.perf_counter()
    cpu_start = time.process_time()
    try:
        proto, used_dynamic = _run_exporter(model, model_label, exporter, inputs, outputs, opset,
                                            dynamic, batch, seq, vocab, seed, max_seq)
    finally:
        model.train(was_training)
    _rename_transposed_weights(proto, model)
    metadata = {
        "transcode.model": str(model_label),
        "transcode.seed": str(seed),
        "transcode.vocab_size": str(vocab),
        "transcode.exporter": exporter,
        "transcode.opset": str(opset),
        "transcode.example_batch": str(batch),
        "transcode.example_seq": str(seq),
        "transcode.dynamic": "true" if used_dynamic else "false",
    }
    if config is not None:
        metadata["transcode.description"] = config.description
    _set_model_metadata(proto, metadata)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FileError(describe_os_error(err, path)) from None
    # Written to a temporary beside the target, checked there, then renamed:
    # a failed write or check leaves no half-written model behind.
    with output_path(path) as temporary:
        onnx.save(proto, str(temporary))
        if check:
            # Checking the file (C++ reads it) avoids serialising a large proto twice.
            try:
                onnx.checker.check_model(str(temporary))
            except onnx.checker.ValidationError as err:
                raise UserError(f"{model_label}: the {exporter} exporter wrote a model that "
                                f"onnx.checker rejects at opset {opset} "
                                f"({_first_line(err)}); try the default opset "
                                f"{DEFAULT_OPSET[exporter]}") from None
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    return ExportResult(path, exporter, opset, used_dynamic, seconds, outputs, cpu_seconds)


def check_export_options(exporter: str, batch: int, seq: int, opset: int | None) -> None:
    """Refuse options the exporters cannot take, before torch is imported."""
    if exporter not in EXPORTERS:
        raise UserError(f"unknown exporter {exporter!r}; expected one of {', '.join(EXPORTERS)}")
    for label, value in (("batch", batch), ("seq", seq)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise UserError(f"{label}: expected a positive integer, got {value!r}")
    if batch * seq > MAX_EXAMPLE_TOKENS:
        raise UserError(f"batch x seq = {batch} x {seq} = {batch * seq:,} example tokens; the "
                        f"exporter runs the model on them, and accepts at most "
                        f"{MAX_EXAMPLE_TOKENS:,} (a symbolic export -- the default -- runs at "
                        "any batch and sequence afterwards)")
    if opset is not None:
        low, high = OPSETS[exporter]
        if isinstance(opset, bool) or not isinstance(opset, int) or not low <= opset <= high:
            raise UserError(f"opset {opset!r}: the {exporter} exporter takes opsets {low} to "
                            f"{high} (default {DEFAULT_OPSET[exporter]})")


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _run_exporter(model: Any, label: str, exporter: str, inputs: Any, outputs: Sequence[str],
                  opset: int, dynamic: bool, batch: int, seq: int, vocab: int, seed: int,
                  max_seq: int | None) -> tuple[Any, bool]:
    """Run the chosen torch exporter; its failures become a :class:`UserError`
    naming the model, exporter and opset (torch's traceback says nothing a
    user can act on)."""
    try:
        if exporter == "torchscript":
            return _export_torchscript(model, inputs, outputs, opset, dynamic), dynamic
        # torch.export specialises a dimension whose example size is 1, so the
        # dynamic export traces with at least 2 rows and 2 tokens.
        from frontends.zoo import example_inputs

        trace_inputs = (
            example_inputs(max(batch, 2), max(seq, 2), vocab, seed) if dynamic else inputs
        )
        return _export_dynamo(model, trace_inputs, outputs, opset, dynamic, max_seq)
    except (UserError, KeyboardInterrupt):
        raise
    except MemoryError:
        raise UserError(f"{label}: out of memory while the {exporter} exporter traced the model "
                        f"at batch {batch} x seq {seq}; use smaller example sizes") from None
    except Exception as err:  # noqa: BLE001 - any exporter failure is reported, not traced
        raise UserError(f"{label}: the {exporter} exporter failed at opset {opset} "
                        f"({_first_line(err)}); the default opset {DEFAULT_OPSET[exporter]} "
                        f"works for every zoo model") from None


def _dynamic_axes(outputs: Sequence[str]) -> dict[str, dict[int, str]]:
    axes: dict[str, dict[int, str]] = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    for name in outputs:
        # last_hidden_state is (batch, sequence, hidden); pooled / logits are (batch, n).
        axes[name] = {0: "batch", 1: "sequence"} if name == "last_hidden_state" else {0: "batch"}
    return axes


def _export_torchscript(
    model: torch.nn.Module,
    inputs: tuple[torch.Tensor, torch.Tensor],
    outputs: Sequence[str],
    opset: int,
    dynamic: bool,
) -> onnx.ModelProto:
    import onnx
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo; it is still
        # the most widely deployed path, and exporting with it is the point here.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        torch.onnx.export(
            model,
            inputs,
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=list(INPUT_NAMES),
            output_names=list(outputs),
            dynamic_axes=_dynamic_axes(outputs) if dynamic else None,
            do_constant_folding=True,
        )
    return onnx.load_from_string(buffer.getvalue())


def _export_dynamo(
    model: torch.nn.Module,
    inputs: tuple[torch.Tensor, torch.Tensor],
    outputs: Sequence[str],
    opset: int,
    dynamic: bool,
    max_seq: int | None,
) -> tuple[onnx.ModelProto, bool]:
    import torch
    from torch.export import Dim

    def run(dynamic_shapes: dict[str, Any] | None) -> onnx.ModelProto:
        registration_log = logging.getLogger("torch.onnx._internal.exporter._registration")
        level = registration_log.level
        registration_log.setLevel(logging.ERROR)  # "torchvision is not installed" notices
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=DeprecationWarning)
            warnings.simplefilter("ignore", category=FutureWarning)
            # Both inputs share the Dim objects; torch notes that it keeps one name per Dim.
            warnings.filterwarnings("ignore", message=r".*axis name.*will not be used")
            program = torch.onnx.export(
                model,
                inputs,
                dynamo=True,
                opset_version=opset,
                input_names=list(INPUT_NAMES),
                output_names=list(outputs),
                dynamic_shapes=dynamic_shapes,
                optimize=True,
                verbose=False,
                report=False,
                verify=False,
            )
        registration_log.setLevel(level)
        return program.model_proto

    if not dynamic:
        return run(None), False
    batch_dim = Dim("batch")
    seq_dim = Dim("sequence", max=max_seq) if max_seq else Dim("sequence")
    shapes = {name: {0: batch_dim, 1: seq_dim} for name in INPUT_NAMES}
    try:
        proto = run(shapes)
    except Exception as err:  # noqa: BLE001 - documented static fallback
        warnings.warn(
            f"dynamo export with dynamic batch/sequence failed ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); exporting with static shapes",
            stacklevel=3,
        )
        return run(None), False
    return proto, _inputs_are_symbolic(proto)


def _inputs_are_symbolic(proto: onnx.ModelProto) -> bool:
    """True if both graph inputs kept symbolic batch and sequence dimensions."""
    for graph_input in proto.graph.input:
        if graph_input.name not in INPUT_NAMES:
            continue
        dims = graph_input.type.tensor_type.shape.dim
        if len(dims) != 2 or not all(dim.dim_param for dim in dims):
            return False
    return True


def _set_model_metadata(proto: onnx.ModelProto, metadata: dict[str, str]) -> None:
    existing = {entry.key: entry for entry in proto.metadata_props}
    for key, value in metadata.items():
        if key in existing:
            existing[key].value = value
        else:
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value


def module_path_of(node: onnx.NodeProto) -> str | None:
    """The dotted module path that produced ``node``, for either exporter.

    ``""`` is the top-level model; ``None`` means the node carries no scope.
    A ``@N`` call suffix (a module called more than once) is dropped.
    """
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return None
            if not isinstance(scopes, list) or len(scopes) < 2:
                return ""
            path = str(scopes[-2])
            return "" if path == _EMPTY_SCOPE else _CALL_SUFFIX.sub("", path)
    name = node.name
    if not name.startswith("/"):
        return None
    parts = name[1:].split("/")
    return ".".join(_CALL_SUFFIX.sub("", part) for part in parts[:-1])


def _rename_transposed_weights(proto: onnx.ModelProto, model: torch.nn.Module) -> None:
    """Give folded, transposed Linear weights the name ``<module path>.weight_transposed``."""
    from onnx import numpy_helper

    parameters = dict(model.named_parameters())
    initializers = {init.name: init for init in proto.graph.initializer}
    uses: dict[str, int] = {}
    for node in proto.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    renames: dict[str, str] = {}
    for node in proto.graph.node:
        if node.op_type not in ("MatMul", "Gemm") or len(node.input) < 2:
            continue
        weight_name = node.input[1]
        if weight_name in parameters or weight_name not in initializers or uses[weight_name] != 1:
            continue
        path = module_path_of(node)
        parameter = parameters.get(f"{path}.weight") if path else None
        if parameter is None or parameter.dim() != 2:
            continue
        value = numpy_helper.to_array(initializers[weight_name])
        expected = parameter.detach().numpy().T
        if value.shape != expected.shape or not np.array_equal(value, expected):
            continue
        new_name = f"{path}.weight_transposed"
        if new_name in initializers or new_name in renames.values():
            continue
        renames[weight_name] = new_name
    if not renames:
        return
    for init in proto.graph.initializer:
        if init.name in renames:
            init.name = renames[init.name]
    for node in proto.graph.node:
        for index, name in enumerate(node.input):
            if name in renames:
                node.input[index] = renames[name]
    for info in proto.graph.value_info:
        if info.name in renames:
            info.name = renames[info.name]


def run_onnxruntime(
    path: str | os.PathLike[str], input_ids: np.ndarray, attention_mask: np.ndarray
) -> list[np.ndarray]:
    """Run an exported model on CPU with onnxruntime; outputs in graph order."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(
        os.fspath(path), options, providers=["CPUExecutionProvider"]
    )
    feeds = {"input_ids": np.asarray(input_ids, np.int64),
             "attention_mask": np.asarray(attention_mask, np.int64)}
    return [np.asarray(out) for out in session.run(None, feeds)]


def verify_export(
    model: torch.nn.Module,
    path: str | os.PathLike[str],
    batch: int = 2,
    seq: int = 16,
    seed: int = 0,
) -> float:
    """Largest relative error ``max|ort − torch| / max|torch|`` over all outputs.

    Runs the ONNX file at ``(batch, seq)`` (which may differ from the export
    sizes when the export is dynamic) and the torch model on the same inputs.
    """
    import torch

    from frontends.zoo import example_inputs_numpy

    config = getattr(model, "config", None)
    vocab = config.vocab_size if config is not None else 30522
    input_ids, attention_mask = example_inputs_numpy(batch, seq, vocab, seed)
    with torch.no_grad():
        expected = model(torch.from_numpy(input_ids), torch.from_numpy(attention_mask))
    if isinstance(expected, torch.Tensor):
        expected = (expected,)
    actual = run_onnxruntime(path, input_ids, attention_mask)
    worst = 0.0
    for want, got in zip(expected, actual, strict=True):
        want_np = want.numpy()
        if want_np.shape != got.shape:
            raise AssertionError(f"shape mismatch: torch {want_np.shape}, onnx {got.shape}")
        scale = float(np.max(np.abs(want_np))) or 1.0
        worst = max(worst, float(np.max(np.abs(want_np - got))) / scale)
    return worst
