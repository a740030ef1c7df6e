"""Build (seeded random weights, no hub) and export the families of :mod:`frontends.hf.families`.

Imports torch and transformers; :mod:`frontends.hf` imports this lazily.
Export goes through the plain Hugging Face call: the model itself is handed
to ``torch.onnx.export`` with keyword inputs ``input_ids`` / ``attention_mask``
(``pixel_values`` for ViT), so the ONNX graph inputs carry the names a
Hugging Face user gets; no wrapper module is put around the model.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from frontends.hf.families import Family, get_family
from transcode_ir.errors import UserError

# Never the hub: models are built from configs.  Forced (not defaulted) so that an
# environment saying otherwise cannot make a build reach the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

__all__ = ["build_family_model", "example_feeds", "export_family", "output_names_of"]


def _family(name_or_family: str | Family) -> Family:
    if isinstance(name_or_family, Family):
        return name_or_family
    family = get_family(name_or_family)
    if family is None:
        from frontends.hf.families import family_names

        raise UserError(f"unknown model family {name_or_family!r}; known: "
                        f"{', '.join(family_names())}")
    return family


class TorchTransformerEncoder(torch.nn.Module):
    """``torch.nn.TransformerEncoder`` over token + learned position embeddings.

    ``forward(input_ids, attention_mask)`` returns the last hidden state; the
    mask becomes the encoder's ``src_key_padding_mask``.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        d_model = config["d_model"]
        self.embeddings = torch.nn.Embedding(config["vocab_size"], d_model)
        self.positions = torch.nn.Embedding(config["max_position_embeddings"], d_model)
        layer = torch.nn.TransformerEncoderLayer(
            d_model, config["nhead"], config["dim_feedforward"], dropout=0.0,
            activation="gelu", batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(
            layer, config["num_layers"], enable_nested_tensor=False)
        # TransformerEncoder deep-copies one layer: every layer starts equal.
        # Re-draw the later ones so that the layers differ, as trained ones do.
        for copy in self.encoder.layers[1:]:
            for module in copy.modules():
                if hasattr(module, "_reset_parameters"):
                    module._reset_parameters()
                elif isinstance(module, torch.nn.Linear):
                    module.reset_parameters()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        hidden = self.embeddings(input_ids) + self.positions(positions)[None]
        return self.encoder(hidden, src_key_padding_mask=attention_mask == 0)


def build_family_model(name_or_family: str | Family, seed: int = 0) -> torch.nn.Module:
    """An eval-mode model of the family with weights a deterministic function of ``seed``."""
    family = _family(name_or_family)
    torch.manual_seed(seed)
    if not family.config_class:
        model = TorchTransformerEncoder(family.config)
    else:
        import transformers

        transformers.logging.set_verbosity_error()
        config = getattr(transformers, family.config_class)(**family.config)
        model = getattr(transformers, family.model_class)(config)
    _spread_constant_parameters(model, seed)
    model.eval()
    return model


def _spread_constant_parameters(model: torch.nn.Module, seed: int) -> None:
    """Give every parameter that its initialiser left constant (zero biases,
    unit norm scales) small seeded random values around that constant.

    Checks then see each bias and scale (a transposed or dropped bias would
    go unnoticed at zero), and no two distinct parameters are equal, so an
    exporter or importer that merges equal initializers cannot hide behind
    identical values.  Tied parameters stay one tensor (they are visited once).
    """
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for parameter in model.parameters():
            flat = parameter.detach().reshape(-1)
            if flat.numel() and bool(torch.all(flat == flat[0])):
                noise = torch.randn(parameter.shape, generator=generator) * 0.02
                parameter.add_(noise.to(parameter.dtype))


def example_feeds(family: Family, batch: int = 2, seq: int = 16,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Graph inputs by name: padded ``input_ids``/``attention_mask``, or ``pixel_values``."""
    from frontends.hf import example_feeds as feeds

    return feeds(family, batch, seq, seed)


def _torch_feeds(feeds: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(value) for name, value in feeds.items()}


def _flatten_outputs(result: Any) -> list[tuple[str, torch.Tensor]]:
    if isinstance(result, torch.Tensor):
        return [("last_hidden_state", result)]
    if hasattr(result, "items"):
        return [(name, value) for name, value in result.items()
                if isinstance(value, torch.Tensor)]
    return [(f"output_{i}", value) for i, value in enumerate(result)]


def output_names_of(model: torch.nn.Module, feeds: dict[str, np.ndarray]) -> tuple[str, ...]:
    with torch.no_grad():
        return tuple(name for name, _ in _flatten_outputs(model(**_torch_feeds(feeds))))


def run_torch(model: torch.nn.Module, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The model's outputs (plain HF call, no grad) as numpy arrays, in output order."""
    with torch.no_grad():
        return [value.numpy() for _, value in _flatten_outputs(model(**_torch_feeds(feeds)))]


def export_family(
    name_or_model: str | Family | torch.nn.Module,
    path: str | os.PathLike[str],
    exporter: str = "torchscript",
    batch: int = 2,
    seq: int = 16,
    opset: int | None = None,
    seed: int = 0,
    *,
    family: Family | None = None,
    dynamic: bool = True,
    check: bool = True,
):  # -> frontends.export.ExportResult
    """Export a family model through the plain HF call; returns an ``ExportResult``."""
    import onnx

    from frontends.export import (
        DEFAULT_OPSET,
        ExportResult,
        _first_line,
        _set_model_metadata,
        check_export_options,
    )
    from transcode_ir.fileio import FileError, describe_os_error, output_path

    check_export_options(exporter, batch, seq, opset)
    if isinstance(name_or_model, torch.nn.Module):
        if family is None:
            raise UserError("export_family: pass family= with a model")
        model = name_or_model
    else:
        family = _family(name_or_model)
        model = build_family_model(family, seed)
    assert family is not None
    for label, value in (("batch", batch), ("seq", seq)):
        if not isinstance(value, int) or value <= 0:
            raise UserError(f"{label}: expected a positive integer, got {value!r}")
    if family.kind != "vision" and family.max_positions and seq > family.max_positions:
        raise UserError(f"seq: {seq} exceeds {family.name}'s {family.max_positions} positions")
    opset = DEFAULT_OPSET[exporter] if opset is None else int(opset)
    if exporter == "torchscript" and family.static_torchscript:
        dynamic = False
    feeds = example_feeds(family, batch, seq, seed)
    if exporter == "dynamo" and dynamic:
        # torch.export specialises a dimension whose example size is 1.
        feeds = example_feeds(family, max(batch, 2), max(seq, 2), seed)
    outputs = output_names_of(model, feeds)
    start = time.perf_counter()
    cpu_start = time.process_time()
    try:
        if exporter == "torchscript":
            proto = _export_torchscript(model, family, feeds, outputs, opset, dynamic)
            used_dynamic = dynamic
        else:
            proto, used_dynamic = _export_dynamo(model, family, feeds, outputs, opset, dynamic)
    except (UserError, KeyboardInterrupt):
        raise
    except Exception as err:  # noqa: BLE001 - any exporter failure is reported, not traced
        raise UserError(f"{family.name}: the {exporter} exporter failed at opset {opset} "
                        f"({_first_line(err)}); the default opset {DEFAULT_OPSET[exporter]} "
                        f"exports every family with both exporters") from None
    _set_model_metadata(proto, {
        "transcode.model": family.name,
        "transcode.family": family.family,
        "transcode.seed": str(seed),
        "transcode.vocab_size": str(family.vocab_size),
        "transcode.exporter": exporter,
        "transcode.opset": str(opset),
        "transcode.example_batch": str(batch),
        "transcode.example_seq": str(seq),
        "transcode.dynamic": "true" if used_dynamic else "false",
    })
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FileError(describe_os_error(err, path)) from None
    with output_path(path) as temporary:     # atomic: no half-written file on failure
        onnx.save(proto, str(temporary))
        if check:
            try:
                onnx.checker.check_model(str(temporary))
            except onnx.checker.ValidationError as err:
                raise UserError(f"{family.name}: the {exporter} exporter wrote a model that "
                                f"onnx.checker rejects at opset {opset} ({_first_line(err)}); "
                                f"try the default opset {DEFAULT_OPSET[exporter]}") from None
    return ExportResult(path, exporter, opset, used_dynamic, time.perf_counter() - start,
                        outputs, time.process_time() - cpu_start)


def _dynamic_axes(family: Family, outputs: tuple[str, ...]) -> dict[str, dict[int, str]]:
    if family.kind == "vision":
        axes = {"pixel_values": {0: "batch"}}
        axes.update({name: {0: "batch"} for name in outputs})
        return axes
    axes = {name: {0: "batch", 1: "sequence"} for name in family.inputs}
    for name in outputs:
        axes[name] = {0: "batch"} if name == "pooler_output" else {0: "batch", 1: "sequence"}
    return axes


@contextlib.contextmanager
def _plain_call(model: torch.nn.Module, names: list[str]):
    """Make ``model(*tensors)`` mean the plain HF call ``model(input_ids=..., attention_mask=...)``.

    Both exporters bind example inputs to ``model.forward``'s signature; the
    TorchScript one also fills every other argument with its default, which
    turns ``GPT2LMHeadModel``'s ``logits_to_keep`` into a graph input and
    clashes with the ``use_cache`` that transformers' output wrappers pass.
    An instance attribute ``forward`` taking exactly the graph inputs (by
    name) avoids both without wrapping the model, so parameters keep their
    Hugging Face state-dict names.
    """
    original = model.forward
    parameters = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                  for name in names]

    def forward(*args: torch.Tensor, **kwargs: torch.Tensor) -> Any:
        bound = dict(zip(names, args), **kwargs)
        return original(**bound)

    forward.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    model.forward = forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        del model.forward


def _quiet():
    warnings.simplefilter("ignore", category=DeprecationWarning)
    warnings.simplefilter("ignore", category=FutureWarning)
    warnings.simplefilter("ignore", category=UserWarning)
    try:
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
    except AttributeError:  # pragma: no cover
        pass


def _export_torchscript(model, family, feeds, outputs, opset, dynamic):
    import onnx

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        _quiet()
        with _plain_call(model, list(feeds)):
          torch.onnx.export(
            model, tuple(_torch_feeds(feeds).values()), buffer, dynamo=False,
            opset_version=opset, input_names=list(feeds), output_names=list(outputs),
            dynamic_axes=_dynamic_axes(family, outputs) if dynamic else None,
            do_constant_folding=True)
    return onnx.load_from_string(buffer.getvalue())


def _export_dynamo(model, family, feeds, outputs, opset, dynamic):
    from torch.export import Dim

    def run(dynamic_shapes):
        registration_log = logging.getLogger("torch.onnx._internal.exporter._registration")
        level = registration_log.level
        registration_log.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                _quiet()
                with _plain_call(model, list(feeds)):
                  program = torch.onnx.export(
                    model, tuple(_torch_feeds(feeds).values()), dynamo=True, opset_version=opset,
                    input_names=list(feeds), output_names=list(outputs),
                    dynamic_shapes=dynamic_shapes, optimize=True, verbose=False,
                    report=False, verify=False)
        finally:
            registration_log.setLevel(level)
        return program.model_proto

    if not dynamic:
        return run(None), False
    batch_dim = Dim("batch")
    if family.kind == "vision":
        shapes = {"pixel_values": {0: batch_dim}}
    else:
        seq_dim = Dim("sequence", max=family.max_positions or None)
        shapes = {name: {0: batch_dim, 1: seq_dim} for name in feeds}
    try:
        return run(shapes), True
    except Exception as err:  # noqa: BLE001 - documented static fallback
        warnings.warn(f"dynamo export of {family.name} with dynamic shapes failed "
                      f"({type(err).__name__}); exporting with static shapes", stacklevel=3)
        return run(None), False
