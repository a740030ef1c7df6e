"""Causal language models with a KV cache: a prefill graph and a decode-step graph.

    from frontends.hf.kv_cache import export_decoder
    export = export_decoder("gpt2-tiny", "out/")     # out/gpt2-tiny-prefill.onnx, -decode.onnx

A generating transformer runs two different computations, and a hardware
architect needs both: the *prefill* of the prompt (``L`` tokens at once,
producing the first token -- its latency is the time to first token) and the
*decode step* (one new token attending over a cache of every earlier token's
keys and values -- its latency is the per-token latency, growing with the
cache).  This module builds a ``transformers`` causal LM from a configuration
of :mod:`frontends.hf.families` (seeded random weights, never the hub) and
exports the two graphs with ``torch.onnx.export`` (TorchScript exporter,
opset 17, dynamic batch and sequence axes):

``NAME-prefill.onnx``
    inputs ``input_ids [batch, sequence]``; outputs ``logits [batch, 1, vocab]``
    (only the last position: ``logits_to_keep=1``, as ``generate`` does) and
    ``present.{i}.key`` / ``present.{i}.value`` ``[batch, kv_heads, sequence,
    head_dim]`` for every layer ``i`` -- the cache the prompt leaves.
``NAME-decode.onnx``
    inputs ``input_ids [batch, sequence]`` (one token per step) and
    ``past_key_values.{i}.key`` / ``.value`` ``[batch, kv_heads,
    past_sequence, head_dim]``; outputs ``logits`` and ``present.{i}.key`` /
    ``.value`` ``[batch, kv_heads, past_sequence + sequence, head_dim]``.

How the cache is passed
    ``transformers`` 5 keeps the cache in a :class:`transformers.DynamicCache`
    object (a list of layers holding ``keys`` and ``values``), which
    ``torch.onnx.export`` cannot take as a graph input.  The export therefore
    wraps the model in a small module (:func:`_wrapper`) that takes and
    returns *flat* key/value tensors, builds a ``DynamicCache`` from them
    (``DynamicCache([(k0, v0), (k1, v1), ...])``), calls the model with
    ``past_key_values=cache, use_cache=True`` and returns the cache's layers'
    keys and values.  The wrapper adds no computation; node names (the
    source names in reports) gain its attribute ``model.`` as a prefix.

Choices (the issue is silent on them)
    * ``attn_implementation="eager"``: the default ``sdpa`` decode step
      guards its softmax against fully masked rows (``IsNaN`` + ``Where``),
      which keeps the ``fuse`` pass from forming ``nn.attention`` (the
      accelerator's pipelined attention, scores kept on chip): the step
      would be costed as separate matmul, softmax and select ops.  Eager
      attention computes the same function and fuses.  (Before the importer
      read ``IsNaN`` the sdpa decode step did not import at all.)
    * No ``attention_mask`` input: one unpadded sequence per batch row, the
      causal mask is built by the model from the cache length.
    * ``logits_to_keep=1``: the prefill computes the LM head for the last
      position only, as ``generate`` does; the decode step has one position.

Imports torch and transformers only inside the functions that build or
export a model, so :func:`decoder_names` and :data:`CACHE_INPUT` are cheap.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from transcode_ir.errors import UserError

__all__ = [
    "CACHE_INPUT",
    "CACHE_OUTPUT",
    "DecoderExport",
    "decoder_family",
    "decoder_names",
    "export_decoder",
]

#: Graph input / output names of the cache (``layer``: 0-based; ``kind``: key or value).
CACHE_INPUT = "past_key_values.{layer}.{kind}"
CACHE_OUTPUT = "present.{layer}.{kind}"
OPSET = 17


@dataclass(frozen=True)
class DecoderExport:
    """The two graphs of one decoder and what they were made from."""

    name: str
    prefill: Path
    decode: Path
    layers: int
    kv_heads: int
    head_dim: int
    max_positions: int
    seed: int
    seconds: float


def decoder_names() -> list[str]:
    """Names of the decoder families (:mod:`frontends.hf.families`, kind ``decoder``)."""
    from frontends.hf.families import FAMILIES

    return [name for name, family in FAMILIES.items() if family.kind == "decoder"]


def decoder_family(name: str):  # -> frontends.hf.families.Family
    """The decoder family called ``name``, or a UserError that lists them."""
    try:
        from frontends.hf.families import get_family
    except ImportError:  # pragma: no cover
        raise UserError("the Hugging Face model families (frontends/hf/families.py) are not "
                        "in this tree; decoder exports need them") from None
    family = get_family(name)
    names = ", ".join(decoder_names()) or "none"
    if family is None:
        raise UserError(f"unknown decoder {name!r}; the decoders with a KV cache are {names}")
    if family.kind != "decoder":
        raise UserError(f"{name} is not a causal language model (it is an {family.kind}), so it "
                        f"has no KV cache to decode with; the decoders are {names}")
    return family


def _build(family, seed: int):  # -> transformers.PreTrainedModel
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(seed)
    config = getattr(transformers, family.config_class)(**family.config)
    config.use_cache = True
    config._attn_implementation = "eager"
    model = getattr(transformers, family.model_class)(config)
    model.config._attn_implementation = "eager"
    model.eval()
    return model


def _geometry(model) -> tuple[int, int, int, int]:  # noqa: ANN001
    """``(layers, heads, kv_heads, head_dim)`` of a transformers causal LM."""
    config = model.config.get_text_config(decoder=True)
    layers = int(config.num_hidden_layers)
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    return layers, heads, kv_heads, head_dim


def _wrapper(model, layers: int):  # -> torch.nn.Module
    """The flat-tensor wrapper (see the module docstring)."""
    import torch
    from transformers import DynamicCache

    class KVCacheStep(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, *past):  # noqa: ANN001, ANN202
            if past:
                cache = DynamicCache([(past[2 * i], past[2 * i + 1]) for i in range(layers)])
            else:
                cache = DynamicCache()
            out = self.model(input_ids=input_ids, past_key_values=cache, use_cache=True,
                             logits_to_keep=1)
            flat = []
            for layer in out.past_key_values.layers:
                flat += [layer.keys, layer.values]
            return (out.logits, *flat)

    step = KVCacheStep()
    step.eval()
    return step


def export_decoder(name: str, folder: str | os.PathLike[str], seed: int = 0, *,
                   example_batch: int = 2, example_seq: int = 8,
                   example_past: int = 8) -> DecoderExport:
    """Export ``NAME-prefill.onnx`` and ``NAME-decode.onnx`` into ``folder``
    (see the module docstring).  The example sizes only trace the graphs:
    batch and sequence axes are symbolic."""
    import warnings

    import onnx
    import torch

    family = decoder_family(name)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model = _build(family, seed)
    layers, _, kv_heads, head_dim = _geometry(model)
    vocab = int(model.config.get_text_config(decoder=True).vocab_size)
    generator = torch.Generator().manual_seed(seed)
    cache_out = [CACHE_OUTPUT.format(layer=i, kind=k) for i in range(layers)
                 for k in ("key", "value")]
    cache_in = [CACHE_INPUT.format(layer=i, kind=k) for i in range(layers)
                for k in ("key", "value")]
    outputs = ["logits", *cache_out]
    paths = {}
    for phase in ("prefill", "decode"):
        tokens = example_seq if phase == "prefill" else 1
        ids = torch.randint(0, vocab, (example_batch, tokens), generator=generator)
        past = [] if phase == "prefill" else [
            torch.randn(example_batch, kv_heads, example_past, head_dim, generator=generator)
            for _ in cache_in]
        total = "sequence" if phase == "prefill" else "total_sequence"
        axes: dict[str, dict[int, str]] = {"input_ids": {0: "batch", 1: "sequence"},
                                           "logits": {0: "batch"}}
        axes.update({n: {0: "batch", 2: "past_sequence"} for n in cache_in if past})
        axes.update({n: {0: "batch", 2: total} for n in cache_out})
        path = folder / f"{family.name}-{phase}.onnx"
        partial = path.with_suffix(f".{os.getpid()}.partial")
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(_wrapper(model, layers), (ids, *past),
                              str(partial), input_names=["input_ids", *cache_in[:len(past)]],
                              output_names=outputs, dynamic_axes=axes, opset_version=OPSET,
                              dynamo=False)
        proto = onnx.load(str(partial))
        for key, value in (("transcode.model", family.name), ("transcode.seed", str(seed)),
                           ("transcode.phase", phase),
                           ("transcode.max_positions", str(family.max_positions)),
                           ("transcode.kv_cache", "flat past_key_values.{i}.key/value "
                                                  "(frontends/hf/kv_cache.py)")):
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(partial))
        partial.replace(path)
        paths[phase] = path
    return DecoderExport(family.name, paths["prefill"], paths["decode"], layers, kv_heads,
                         head_dim, family.max_positions, seed, time.perf_counter() - start)
