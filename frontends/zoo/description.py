"""Encoder descriptions: plain dataclasses, the text form, and the FlexiBERT 2.0 space.

This module is torch-free.  It defines what a zoo model *is* (an
:class:`EncoderConfig`, a tuple of per-layer :class:`LayerSpec`), how such a
configuration is written as text and read back, how it is checked against the
FlexiBERT 2.0 model design space, how many parameters it has and where its
DynaProp prune points live.  The torch modules that realise a configuration are
in :mod:`frontends.zoo.modeling`.

Text form
=========

A description is a ``|``-separated list of *segments*; each segment is one
layer, or several identical layers::

    description := segment ("|" segment)*
    segment     := ["l" COUNT ":"] "h" HIDDEN ":" heads ":" "ff" WIDTH ("-" WIDTH)*
    heads       := head ("," head)*
    head        := TYPE ["*" COUNT]
    TYPE        := sdp | wma | dft | dct | conv5 | conv9 | conv13

``l3:h256:sdp*2,dft,conv9:ff1024-512`` is three identical layers of hidden size
256 with four heads (two scaled dot-product heads, one DFT head, one
convolution head of kernel 9; head dimension 256/4 = 64) and a feed-forward
stack of two dense layers (256→1024→512, then the output dense 512→256).
Whitespace around separators is ignored.  BERT-Base is ``l12:h768:sdp*12:ff3072``.

The same description as JSON (accepted wherever a description is)::

    {"layers": [{"hidden": 256, "heads": ["sdp", "sdp", "dft", "conv9"],
                 "ff": [1024, 512], "count": 3}]}

``heads`` may also be a mapping ``{"sdp": 2, "dft": 1, "conv9": 1}`` and
``count`` defaults to 1.

Heads of one layer are permutation-symmetric (their outputs are concatenated and
then projected by a learned dense layer), so a layer stores its heads in the
canonical order ``sdp, wma, dft, dct, conv5, conv9, conv13`` whatever order the
text used; :func:`format_description` prints that canonical form, with equal
consecutive layers merged into one ``lN:`` segment.

The design space (FlexiBERT 2.0, see docs/sources.md, "Model design space")
===========================================================================

layers 2, 4, 6, 8, 10, 12; hidden size per layer 128, 256, 512, 768; heads per
layer 2, 4, 8, 12, dividing the hidden size; head types as above, mixable;
feed-forward stacks 1–3 with widths from 256, 512, 1024, 2048, 3072, 4096.
:meth:`EncoderConfig.check_design_space` raises :class:`UserError` naming the
layer and field that falls outside it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

from transcode_ir.errors import UserError

__all__ = [
    "ATTENTION_HEAD_TYPES",
    "CONV_HEAD_TYPES",
    "CONV_KERNELS",
    "DESIGN_SPACE",
    "EncoderConfig",
    "HEAD_TYPES",
    "LayerSpec",
    "LINEAR_TRANSFORM_HEAD_TYPES",
    "PrunePointSpec",
    "format_description",
    "looks_like_description",
    "parse_description",
]

#: Every head type, in the canonical order used inside a layer.
HEAD_TYPES: tuple[str, ...] = ("sdp", "wma", "dft", "dct", "conv5", "conv9", "conv13")
#: Head types that compute attention probabilities (query/key/score/softmax).
ATTENTION_HEAD_TYPES: tuple[str, ...] = ("sdp", "wma")
#: Fixed linear token-mixing heads (FNet-style).
LINEAR_TRANSFORM_HEAD_TYPES: tuple[str, ...] = ("dft", "dct")
#: Depthwise convolution heads and their kernel sizes.
CONV_HEAD_TYPES: tuple[str, ...] = ("conv5", "conv9", "conv13")
CONV_KERNELS: dict[str, int] = {"conv5": 5, "conv9": 9, "conv13": 13}

HEAD_TYPE_DESCRIPTIONS: dict[str, str] = {
    "sdp": "scaled dot-product self-attention softmax(Q·Kᵀ/√d)·V",
    "wma": "weighted multiplicative attention softmax(Q·W·Kᵀ/√d)·V, learned d×d W per head",
    "dft": "FNet-style DFT token mixing Re(F_seq·X·F_d), fixed real matrices",
    "dct": "DCT-II token mixing C_seq·X·C_dᵀ, fixed orthonormal matrices",
    "conv5": "depthwise Conv1d over the sequence, kernel 5",
    "conv9": "depthwise Conv1d over the sequence, kernel 9",
    "conv13": "depthwise Conv1d over the sequence, kernel 13",
}

#: The FlexiBERT 2.0 model design space.
DESIGN_SPACE: dict[str, tuple[int, ...]] = {
    "layers": (2, 4, 6, 8, 10, 12),
    "hidden": (128, 256, 512, 768),
    "heads": (2, 4, 8, 12),
    "ff_stacks": (1, 2, 3),
    "ff_width": (256, 512, 1024, 2048, 3072, 4096),
}

_HEAD_RANK = {name: rank for rank, name in enumerate(HEAD_TYPES)}


def _fmt_choices(values: Iterable[object]) -> str:
    return ", ".join(str(v) for v in values)


@dataclass(frozen=True)
class LayerSpec:
    """One encoder layer: hidden size, one head type per head, feed-forward widths.

    ``heads`` is stored in canonical order (see module docstring); the number of
    heads is ``len(heads)`` and every head gets ``hidden // len(heads)`` dims.
    """

    hidden: int
    heads: tuple[str, ...]
    ff: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.hidden, int) or isinstance(self.hidden, bool) or self.hidden <= 0:
            raise UserError(f"hidden: expected a positive integer, got {self.hidden!r}")
        heads = tuple(self.heads)
        if not heads:
            raise UserError("heads: a layer needs at least one head")
        for head in heads:
            if head not in _HEAD_RANK:
                raise UserError(
                    f"heads: unknown head type {head!r}; expected one of {_fmt_choices(HEAD_TYPES)}"
                )
        if self.hidden % len(heads):
            raise UserError(
                f"heads: {len(heads)} heads do not divide hidden size {self.hidden}"
            )
        ff = tuple(self.ff)
        if not ff:
            raise UserError("ff: a layer needs at least one feed-forward width")
        for width in ff:
            if not isinstance(width, int) or isinstance(width, bool) or width <= 0:
                raise UserError(f"ff: expected positive integer widths, got {width!r}")
        object.__setattr__(self, "heads", tuple(sorted(heads, key=_HEAD_RANK.__getitem__)))
        object.__setattr__(self, "ff", ff)

    # -- derived sizes ---------------------------------------------------
    @property
    def num_heads(self) -> int:
        return len(self.heads)

    @property
    def head_dim(self) -> int:
        return self.hidden // len(self.heads)

    def count(self, head_type: str) -> int:
        """Number of heads of ``head_type`` in this layer."""
        return sum(1 for head in self.heads if head == head_type)

    @property
    def num_attention_heads(self) -> int:
        """Heads with query/key/softmax (``sdp`` and ``wma``)."""
        return sum(1 for head in self.heads if head in ATTENTION_HEAD_TYPES)

    def head_groups(self) -> list[tuple[str, int, int]]:
        """``(head_type, first_column, width)`` of each head-type group in the value/context.

        Groups follow the canonical head order, so they are contiguous slices
        of the value projection and of the concatenated context.
        """
        groups: list[tuple[str, int, int]] = []
        start = 0
        for head_type in HEAD_TYPES:
            width = self.count(head_type) * self.head_dim
            if width:
                groups.append((head_type, start, width))
                start += width
        return groups

    def heads_text(self) -> str:
        counts = Counter(self.heads)
        parts = []
        for head_type in HEAD_TYPES:
            n = counts.get(head_type, 0)
            if n == 1:
                parts.append(head_type)
            elif n > 1:
                parts.append(f"{head_type}*{n}")
        return ",".join(parts)

    def text(self) -> str:
        """This layer as one segment of the text form (without ``lN:``)."""
        return f"h{self.hidden}:{self.heads_text()}:ff{'-'.join(str(w) for w in self.ff)}"


@dataclass(frozen=True)
class PrunePointSpec:
    """A DynaProp prune point: the output of the module at ``path``.

    ``kind`` is ``"linear"`` (the output of an ``nn.Linear``: Q, K, V and the
    dense layers) or ``"prune_point"`` (an identity ``PrunePoint`` module placed
    at an attention internal: ``scores``, ``probs``, ``context``).
    """

    path: str
    kind: str
    layer: int | None
    role: str


@dataclass(frozen=True)
class EncoderConfig:
    """A whole encoder: layers plus the embedding table sizes.

    ``name`` is the zoo name when the config came from the zoo, else ``None``.
    """

    layers: tuple[LayerSpec, ...]
    vocab_size: int = 30522
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        if not layers:
            raise UserError("layers: an encoder needs at least one layer")
        object.__setattr__(self, "layers", layers)
        for label, value in (
            ("vocab_size", self.vocab_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise UserError(f"{label}: expected a positive integer, got {value!r}")

    # -- convenience -----------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def embedding_size(self) -> int:
        return self.layers[0].hidden

    @property
    def output_size(self) -> int:
        return self.layers[-1].hidden

    @property
    def description(self) -> str:
        return format_description(self)

    @property
    def uses_linear_transforms(self) -> bool:
        return any(h in LINEAR_TRANSFORM_HEAD_TYPES for layer in self.layers for h in layer.heads)

    def head_type_counts(self) -> dict[str, int]:
        counts: Counter[str] = Counter(h for layer in self.layers for h in layer.heads)
        return {t: counts[t] for t in HEAD_TYPES if counts[t]}

    def with_vocab_size(self, vocab_size: int | None) -> EncoderConfig:
        return self if vocab_size is None else replace(self, vocab_size=vocab_size)

    def check_design_space(self) -> None:
        """Raise :class:`UserError` naming the field outside the FlexiBERT 2.0 space.

        Per-layer fields are checked first (in layer order), then the layer count.
        """
        for index, layer in enumerate(self.layers):
            where = f"layer {index}"
            if layer.hidden not in DESIGN_SPACE["hidden"]:
                raise UserError(
                    f"{where}: hidden: {layer.hidden} is outside the FlexiBERT 2.0 space; "
                    f"expected one of {_fmt_choices(DESIGN_SPACE['hidden'])}"
                )
            if layer.num_heads not in DESIGN_SPACE["heads"]:
                raise UserError(
                    f"{where}: heads: {layer.num_heads} heads is outside the FlexiBERT 2.0 "
                    f"space; expected one of {_fmt_choices(DESIGN_SPACE['heads'])}"
                )
            if len(layer.ff) not in DESIGN_SPACE["ff_stacks"]:
                raise UserError(
                    f"{where}: ff: {len(layer.ff)} feed-forward stacks is outside the "
                    f"FlexiBERT 2.0 space; expected one of "
                    f"{_fmt_choices(DESIGN_SPACE['ff_stacks'])}"
                )
            for width in layer.ff:
                if width not in DESIGN_SPACE["ff_width"]:
                    raise UserError(
                        f"{where}: ff: width {width} is outside the FlexiBERT 2.0 space; "
                        f"expected one of {_fmt_choices(DESIGN_SPACE['ff_width'])}"
                    )
        if self.num_layers not in DESIGN_SPACE["layers"]:
            raise UserError(
                f"layers: {self.num_layers} layers is outside the FlexiBERT 2.0 space; "
                f"expected one of {_fmt_choices(DESIGN_SPACE['layers'])}"
            )

    # -- sizes computed without torch --------------------------------------
    def parameter_count(self) -> int:
        """Number of trainable parameters of :func:`frontends.zoo.build_model` (no torch)."""
        e = self.embedding_size
        total = (self.vocab_size + self.max_position_embeddings + self.type_vocab_size) * e
        total += 2 * e  # embeddings.LayerNorm
        previous = e
        for layer in self.layers:
            h, d = layer.hidden, layer.head_dim
            if h != previous:
                total += previous * h + h  # input_projection
            attention_width = layer.num_attention_heads * d
            if attention_width:
                total += 2 * (h * attention_width + attention_width)  # query, key
            total += h * h + h  # value
            total += layer.count("wma") * d * d  # W per wma head
            for conv in CONV_HEAD_TYPES:
                channels = layer.count(conv) * d
                total += channels * CONV_KERNELS[conv] + channels  # depthwise weight, bias
            total += h * h + h + 2 * h  # attention.output.dense + LayerNorm
            width_in = h
            for width in layer.ff:
                total += width_in * width + width
                width_in = width
            total += width_in * h + h + 2 * h  # output.dense + LayerNorm
            previous = h
        total += previous * previous + previous  # pooler.dense
        return total

    def prune_points(self, prefix: str = "") -> list[PrunePointSpec]:
        """DynaProp inference prune points in execution order (see frontends/zoo/README.md).

        ``prefix`` is prepended to each path (``"bert."`` for the classifier).
        """
        points: list[PrunePointSpec] = []
        previous = self.embedding_size
        for index, layer in enumerate(self.layers):
            base = f"{prefix}encoder.layer.{index}"

            def add(path: str, kind: str, role: str, index: int = index, base: str = base) -> None:
                points.append(PrunePointSpec(f"{base}.{path}", kind, index, role))

            if layer.hidden != previous:
                add("input_projection", "linear", "input_projection")
            if layer.num_attention_heads:
                add("attention.self.query", "linear", "query")
                add("attention.self.key", "linear", "key")
            add("attention.self.value", "linear", "value")
            if layer.num_attention_heads:
                add("attention.self.scores", "prune_point", "scores")
                add("attention.self.probs", "prune_point", "probs")
            add("attention.self.context", "prune_point", "context")
            add("attention.output.dense", "linear", "attention_output")
            for stack in range(len(layer.ff)):
                suffix = "" if stack == 0 else f"_{stack}"
                add(f"intermediate.dense{suffix}", "linear", "intermediate")
            add("output.dense", "linear", "output")
            previous = layer.hidden
        points.append(PrunePointSpec(f"{prefix}pooler.dense", "linear", None, "pooler"))
        return points


# ---------------------------------------------------------------------------
# text form
# ---------------------------------------------------------------------------

def looks_like_description(text: str) -> bool:
    """True if ``text`` is a description rather than a zoo name (names have no ``:``)."""
    stripped = text.strip()
    return stripped.startswith("{") or ":" in stripped


def _parse_int(token: str, what: str, where: str) -> int:
    token = token.strip()
    if not token.isdigit():
        raise UserError(f"{where}: {what}: expected a positive integer, got {token!r}")
    if len(token) > 7 or int(token) > _MAX_COUNT:
        # Bounded: a head count of 99999999999 built a list of that many
        # heads (MemoryError; found by tests/hardening's CLI fuzzer).
        shown = token if len(token) <= 24 else f"{token[:12]}... ({len(token)} digits)"
        raise UserError(f"{where}: {what}: {shown} is too large; expected a positive integer "
                        f"of at most {_MAX_COUNT:,}")
    value = int(token)
    if value <= 0:
        raise UserError(f"{where}: {what}: expected a positive integer, got {token!r}")
    return value


#: The largest count a description may give (layers, sizes, heads).
_MAX_COUNT = 1_000_000


def _parse_heads(text: str, where: str) -> list[str]:
    heads: list[str] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise UserError(f"{where}: heads: empty head entry in {text!r}")
        head_type, star, count_text = item.partition("*")
        head_type = head_type.strip().lower()
        if head_type not in _HEAD_RANK:
            raise UserError(
                f"{where}: heads: unknown head type {head_type!r}; expected one of "
                f"{_fmt_choices(HEAD_TYPES)} (optionally TYPE*COUNT)"
            )
        count = _parse_int(count_text, "heads", where) if star else 1
        heads.extend([head_type] * count)
    return heads


def _parse_segment(text: str, where: str) -> list[LayerSpec]:
    fields = [f.strip() for f in text.split(":")]
    count = 1
    if fields and fields[0].lower().startswith("l"):
        count = _parse_int(fields[0][1:], "layer count (lN)", where)
        fields = fields[1:]
    if len(fields) != 3:
        raise UserError(
            f"{where}: expected '[lN:]hHIDDEN:HEADS:ffW[-W...]', e.g. "
            f"'h256:sdp*2,dft,conv9:ff1024', got {text.strip()!r}"
        )
    hidden_text, heads_text, ff_text = fields
    if not hidden_text.lower().startswith("h"):
        raise UserError(f"{where}: hidden: expected 'hN' (e.g. h256), got {hidden_text!r}")
    hidden = _parse_int(hidden_text[1:], "hidden", where)
    heads = _parse_heads(heads_text, where)
    if not ff_text.lower().startswith("ff"):
        raise UserError(f"{where}: ff: expected 'ffW[-W...]' (e.g. ff1024-512), got {ff_text!r}")
    ff = [_parse_int(w, "ff", where) for w in ff_text[2:].split("-")]
    try:
        layer = LayerSpec(hidden, tuple(heads), tuple(ff))
    except UserError as err:
        raise UserError(f"{where}: {err}") from None
    return [layer] * count


def _layer_from_json(entry: Any, where: str) -> list[LayerSpec]:
    if not isinstance(entry, Mapping):
        raise UserError(f"{where}: expected an object with hidden, heads, ff")
    unknown = set(entry) - {"hidden", "heads", "ff", "count"}
    if unknown:
        raise UserError(
            f"{where}: unknown field(s) {', '.join(sorted(unknown))}; "
            "expected hidden, heads, ff, count"
        )
    for key in ("hidden", "heads", "ff"):
        if key not in entry:
            raise UserError(f"{where}: {key}: missing")
    heads_value = entry["heads"]
    if isinstance(heads_value, Mapping):
        heads: list[str] = []
        for head_type, n in heads_value.items():
            if not isinstance(n, int) or n <= 0:
                raise UserError(
                    f"{where}: heads: count of {head_type!r} must be a positive integer"
                )
            heads.extend([str(head_type)] * n)
    elif isinstance(heads_value, str):
        heads = _parse_heads(heads_value, where)
    elif isinstance(heads_value, list):
        heads = [str(h).lower() for h in heads_value]
    else:
        raise UserError(f"{where}: heads: expected a list, a mapping or a string")
    ff_value = entry["ff"]
    ff = [ff_value] if isinstance(ff_value, int) else list(ff_value)
    count = entry.get("count", 1)
    if not isinstance(count, int) or count <= 0:
        raise UserError(f"{where}: count: expected a positive integer, got {count!r}")
    try:
        layer = LayerSpec(entry["hidden"], tuple(heads), tuple(ff))
    except UserError as err:
        raise UserError(f"{where}: {err}") from None
    return [layer] * count


def parse_description(
    text: str, *, check_space: bool = True, **config_fields: Any
) -> EncoderConfig:
    """Parse the text or JSON form into an :class:`EncoderConfig`.

    With ``check_space`` (the default) the result must lie in the FlexiBERT 2.0
    design space.  Extra keyword arguments (``vocab_size``, ...) go to the config.
    Errors are :class:`UserError` naming the segment and field at fault.
    """
    if not isinstance(text, str) or not text.strip():
        raise UserError("model description: empty description")
    try:
        layers = _parse_layers(text)
        config = EncoderConfig(tuple(layers), **config_fields)
        if check_space:
            config.check_design_space()
    except UserError as err:
        raise UserError(f"bad model description {text.strip()!r}: {err}") from None
    return config


def _parse_layers(text: str) -> list[LayerSpec]:
    stripped = text.strip()
    layers: list[LayerSpec] = []
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise UserError(f"invalid JSON: {err}") from None
        if not isinstance(document, Mapping) or not isinstance(document.get("layers"), list):
            raise UserError("layers: the JSON form needs a 'layers' list")
        unknown = set(document) - {"layers"}
        if unknown:
            raise UserError(f"unknown top-level field(s) {', '.join(sorted(unknown))}")
        for index, entry in enumerate(document["layers"]):
            layers.extend(_layer_from_json(entry, f"layers[{index}]"))
        return layers
    for index, segment in enumerate(stripped.split("|")):
        if not segment.strip():
            raise UserError(f"segment {index + 1}: empty segment (stray '|')")
        layers.extend(_parse_segment(segment, f"segment {index + 1} {segment.strip()!r}"))
    return layers


def format_description(config: EncoderConfig | Iterable[LayerSpec]) -> str:
    """The canonical text form; ``parse_description(format_description(c))`` equals ``c``."""
    layers = list(config.layers if isinstance(config, EncoderConfig) else config)
    segments: list[str] = []
    index = 0
    while index < len(layers):
        run = 1
        while index + run < len(layers) and layers[index + run] == layers[index]:
            run += 1
        prefix = f"l{run}:" if run > 1 else ""
        segments.append(prefix + layers[index].text())
        index += run
    return "|".join(segments)
