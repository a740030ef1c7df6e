"""torch modules for zoo encoders (imported lazily by :func:`frontends.zoo.build_model`).

One model class covers the BERT family and the FlexiBERT-2.0-style
heterogeneous encoders: a BERT layer is a layer whose heads are all ``sdp``.
Module paths follow Hugging Face BERT (``encoder.layer.0.attention.self.query``)
so that hooks, ONNX node names and IR names are familiar and stable.

Layer ``i`` (``encoder.layer.i``), hidden size ``H``, heads in canonical order::

    x ─ input_projection (Linear, only when H differs from the previous layer)
      ─ attention.self ─ value = Linear(H, H); head groups are column slices of it
      │     sdp/wma heads: query, key = Linear(H, n_att·d); wma heads use Q·W;
      │                    scores = Q·Kᵀ/√d + mask  → PrunePoint `scores`
      │                    probs = softmax(scores)  → PrunePoint `probs`
      │                    probs·V
      │     dft heads:     Re(F_s·X·F_d) = C_s·X·C_d − S_s·X·S_d   (MatMul with constants)
      │     dct heads:     C_s·X·C_dᵀ                            (MatMul with constants)
      │     convK heads:   depthwise Conv1d over the sequence, kernel K, 'same' padding
      │     concatenate groups → PrunePoint `context`  (batch, seq, H)
      ─ attention.output.dense + residual → attention.output.LayerNorm
      ─ intermediate.dense (+ dense_1, dense_2) with exact GELU after each
      ─ output.dense + residual → output.LayerNorm

The token-mixing matrices along the sequence are ``N × N`` with ``N =
max_position_embeddings``, held once in ``encoder.token_mixing`` and cut to
the leading ``seq × seq`` block at run time (two ``Gather`` ops): a sequence of
length ``seq`` is transformed as if zero-padded to ``N`` and truncated back
(FNet pads to a fixed length too).  At ``seq == N`` this is exactly the
(unitary) DFT / orthonormal DCT-II.  Linear transform and convolution heads
see the value slice with padded tokens zeroed (``X * attention_mask``), so
padding never leaks into real tokens.

:class:`PrunePoint` is an identity module; it exists only to be hooked by the
DynaProp runtime and exports to nothing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from frontends.zoo.description import (
    CONV_HEAD_TYPES,
    CONV_KERNELS,
    EncoderConfig,
    LayerSpec,
)

__all__ = [
    "EncoderModel",
    "PrunePoint",
    "SequenceClassifier",
    "dct_matrix",
    "dft_matrices",
    "initialize_weights",
]

#: Additive mask value at padded key positions (as in the original BERT).
MASK_VALUE = -10000.0


class PrunePoint(nn.Module):
    """Identity: marks a tensor that DynaProp may prune (|x| ≤ τ → 0) via a forward hook."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def dft_matrices(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(C, S)`` with ``F = (C − iS)``, the unitary ``n``-point DFT: C, S symmetric, float32."""
    index = torch.arange(n, dtype=torch.float64)
    angle = 2.0 * math.pi * torch.outer(index, index).remainder(n) / n
    scale = 1.0 / math.sqrt(n)
    return (torch.cos(angle) * scale).float(), (torch.sin(angle) * scale).float()


def dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``C`` (``y = C·x``), float32."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    matrix = torch.cos(math.pi / n * (i + 0.5) * k) * math.sqrt(2.0 / n)
    matrix[0] /= math.sqrt(2.0)
    return matrix.float()


class Embeddings(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        size = config.embedding_size
        self.word_embeddings = nn.Embedding(config.vocab_size, size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, size)
        self.LayerNorm = nn.LayerNorm(size, eps=config.layer_norm_eps)
        self.register_buffer(
            "position_ids", torch.zeros(1, config.max_position_embeddings, dtype=torch.long),
            persistent=False,
        )

    def fill_constants(self) -> None:
        self.position_ids.copy_(torch.arange(self.position_ids.shape[1])[None, :])

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        seq = input_ids.shape[1]
        position_ids = self.position_ids[:, :seq]
        embeddings = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(position_ids)
            + self.token_type_embeddings(token_type_ids)
        )
        return self.LayerNorm(embeddings)


class TokenMixing(nn.Module):
    """Fixed ``N × N`` sequence-mixing matrices shared by every dft/dct head."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        n = config.max_position_embeddings
        uses = {h for layer in config.layers for h in layer.heads}
        self.has_dft = "dft" in uses
        self.has_dct = "dct" in uses
        if self.has_dft:
            self.register_buffer("dft_cos", torch.zeros(n, n), persistent=False)
            self.register_buffer("dft_sin", torch.zeros(n, n), persistent=False)
        if self.has_dct:
            self.register_buffer("dct", torch.zeros(n, n), persistent=False)
        self.register_buffer("positions", torch.zeros(n, dtype=torch.long), persistent=False)

    def fill_constants(self) -> None:
        self.positions.copy_(torch.arange(self.positions.shape[0]))
        if self.has_dft:
            cos, sin = dft_matrices(self.dft_cos.shape[0])
            self.dft_cos.copy_(cos)
            self.dft_sin.copy_(sin)
        if self.has_dct:
            self.dct.copy_(dct_matrix(self.dct.shape[0]))

    def forward(self, seq: int) -> dict[str, torch.Tensor]:
        # The leading seq × seq block, taken with two Gathers rather than a 2-D
        # slice: torch.export guards a sliced square's strides on seq != N and
        # would refuse a sequence dimension that may reach N.
        index = self.positions[:seq]

        def block(matrix: torch.Tensor) -> torch.Tensor:
            return matrix.index_select(0, index).index_select(1, index)

        matrices: dict[str, torch.Tensor] = {}
        if self.has_dft:
            matrices["dft_cos"] = block(self.dft_cos)
            matrices["dft_sin"] = block(self.dft_sin)
        if self.has_dct:
            matrices["dct"] = block(self.dct)
        return matrices


class SelfAttention(nn.Module):
    """All heads of one layer (module path ``encoder.layer.i.attention.self``)."""

    def __init__(self, layer: LayerSpec) -> None:
        super().__init__()
        self.spec = layer
        hidden, d = layer.hidden, layer.head_dim
        self.head_dim = d
        self.num_sdp = layer.count("sdp")
        self.num_wma = layer.count("wma")
        self.num_attention = self.num_sdp + self.num_wma
        self.groups = layer.head_groups()
        if self.num_attention:
            self.query = nn.Linear(hidden, self.num_attention * d)
            self.key = nn.Linear(hidden, self.num_attention * d)
        self.value = nn.Linear(hidden, hidden)
        if self.num_wma:
            self.wma_weight = nn.Parameter(torch.zeros(self.num_wma, d, d))
        if self.num_attention:
            self.scores = PrunePoint()
            self.probs = PrunePoint()
        if layer.count("dft"):
            self.register_buffer("dft_hidden_cos", torch.zeros(d, d), persistent=False)
            self.register_buffer("dft_hidden_sin", torch.zeros(d, d), persistent=False)
        if layer.count("dct"):
            self.register_buffer("dct_hidden", torch.zeros(d, d), persistent=False)
        for conv in CONV_HEAD_TYPES:
            channels = layer.count(conv) * d
            if channels:
                kernel = CONV_KERNELS[conv]
                depthwise = nn.Conv1d(
                    channels, channels, kernel, padding=kernel // 2, groups=channels
                )
                self.add_module(conv, depthwise)
        self.context = PrunePoint()

    def fill_constants(self) -> None:
        d = self.head_dim
        if hasattr(self, "dft_hidden_cos"):
            cos, sin = dft_matrices(d)
            self.dft_hidden_cos.copy_(cos)
            self.dft_hidden_sin.copy_(sin)
        if hasattr(self, "dct_hidden"):
            self.dct_hidden.copy_(dct_matrix(d))

    def _split_heads(self, x: torch.Tensor, num_heads: int) -> torch.Tensor:
        """(batch, seq, n·d) → (batch, n, seq, d); ``num_heads`` is a Python int."""
        return x.view(x.shape[0], x.shape[1], num_heads, self.head_dim).transpose(1, 2)

    def _attention(
        self, hidden: torch.Tensor, value: torch.Tensor, additive_mask: torch.Tensor
    ) -> torch.Tensor:
        query = self._split_heads(self.query(hidden), self.num_attention)
        key = self._split_heads(self.key(hidden), self.num_attention)
        value = self._split_heads(value, self.num_attention)
        if self.num_wma:
            weighted = torch.matmul(query[:, self.num_sdp:], self.wma_weight)
            if self.num_sdp:
                query = torch.cat([query[:, : self.num_sdp], weighted], dim=1)
            else:
                query = weighted
        scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(self.head_dim)
        scores = self.scores(scores + additive_mask)
        probs = self.probs(torch.softmax(scores, dim=-1))
        context = torch.matmul(probs, value)
        return context.transpose(1, 2).flatten(-2)

    def forward(
        self,
        hidden: torch.Tensor,
        additive_mask: torch.Tensor,
        token_mask: torch.Tensor,
        mixing: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        value = self.value(hidden)
        single_group = len(self.groups) == 1
        outputs: list[torch.Tensor] = []
        attention_width = self.num_attention * self.head_dim
        if attention_width:
            attention_value = value if single_group else value[..., :attention_width]
            outputs.append(self._attention(hidden, attention_value, additive_mask))
        for head_type, start, width in self.groups:
            if head_type in ("sdp", "wma"):
                continue
            x = value if single_group else value[..., start : start + width]
            x = x * token_mask
            num_heads = width // self.head_dim
            if head_type == "dft":
                x = self._split_heads(x, num_heads)
                cos_mixed = torch.matmul(mixing["dft_cos"], x)
                sin_mixed = torch.matmul(mixing["dft_sin"], x)
                x = torch.matmul(cos_mixed, self.dft_hidden_cos) - torch.matmul(
                    sin_mixed, self.dft_hidden_sin
                )
                outputs.append(x.transpose(1, 2).flatten(-2))
            elif head_type == "dct":
                x = self._split_heads(x, num_heads)
                x = torch.matmul(torch.matmul(mixing["dct"], x), self.dct_hidden.t())
                outputs.append(x.transpose(1, 2).flatten(-2))
            else:
                conv = getattr(self, head_type)
                outputs.append(conv(x.transpose(1, 2)).transpose(1, 2))
        context = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)
        return self.context(context)


class AttentionOutput(nn.Module):
    def __init__(self, hidden: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, context: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(context) + residual)


class Attention(nn.Module):
    def __init__(self, layer: LayerSpec, eps: float) -> None:
        super().__init__()
        self.self = SelfAttention(layer)
        self.output = AttentionOutput(layer.hidden, eps)

    def forward(
        self,
        hidden: torch.Tensor,
        additive_mask: torch.Tensor,
        token_mask: torch.Tensor,
        mixing: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        return self.output(self.self(hidden, additive_mask, token_mask, mixing), hidden)


class Intermediate(nn.Module):
    """Feed-forward stack: ``dense``, ``dense_1``, ``dense_2``, each followed by exact GELU."""

    def __init__(self, hidden: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.num_stacks = len(widths)
        width_in = hidden
        for index, width in enumerate(widths):
            name = "dense" if index == 0 else f"dense_{index}"
            self.add_module(name, nn.Linear(width_in, width))
            width_in = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index in range(self.num_stacks):
            dense = getattr(self, "dense" if index == 0 else f"dense_{index}")
            x = F.gelu(dense(x))
        return x


class Output(nn.Module):
    def __init__(self, width: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(width, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class EncoderLayer(nn.Module):
    def __init__(self, layer: LayerSpec, previous_hidden: int, eps: float) -> None:
        super().__init__()
        self.input_projection = (
            nn.Linear(previous_hidden, layer.hidden) if previous_hidden != layer.hidden else None
        )
        self.attention = Attention(layer, eps)
        self.intermediate = Intermediate(layer.hidden, layer.ff)
        self.output = Output(layer.ff[-1], layer.hidden, eps)

    def forward(
        self,
        hidden: torch.Tensor,
        additive_mask: torch.Tensor,
        token_mask: torch.Tensor,
        mixing: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        if self.input_projection is not None:
            hidden = self.input_projection(hidden)
        attended = self.attention(hidden, additive_mask, token_mask, mixing)
        return self.output(self.intermediate(attended), attended)


class Encoder(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.token_mixing = TokenMixing(config) if config.uses_linear_transforms else None
        previous = config.embedding_size
        layers = []
        for layer in config.layers:
            layers.append(EncoderLayer(layer, previous, config.layer_norm_eps))
            previous = layer.hidden
        self.layer = nn.ModuleList(layers)

    def forward(
        self, hidden: torch.Tensor, additive_mask: torch.Tensor, token_mask: torch.Tensor
    ) -> torch.Tensor:
        mixing = self.token_mixing(hidden.shape[1]) if self.token_mixing is not None else {}
        for layer in self.layer:
            hidden = layer(hidden, additive_mask, token_mask, mixing)
        return hidden


class Pooler(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))


class EncoderModel(nn.Module):
    """BERT-style encoder: ``forward(input_ids, attention_mask=None, token_type_ids=None)``.

    Returns ``(last_hidden_state, pooler_output)`` of shapes ``(batch, seq, H_last)``
    and ``(batch, H_last)``.
    """

    output_names: tuple[str, ...] = ("last_hidden_state", "pooler_output")

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)
        self.pooler = Pooler(config.output_size)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        mask = attention_mask.to(torch.float32)
        additive_mask = (1.0 - mask[:, None, None, :]) * MASK_VALUE
        token_mask = mask[:, :, None]
        hidden = self.embeddings(input_ids, token_type_ids)
        hidden = self.encoder(hidden, additive_mask, token_mask)
        return hidden, self.pooler(hidden)


class SequenceClassifier(nn.Module):
    """Encoder + dropout + Linear on the pooled output; returns logits ``(batch, classes)``.

    The encoder lives at ``bert`` (as in Hugging Face ``BertForSequenceClassification``),
    so prune-point paths gain the prefix ``bert.``.
    """

    output_names: tuple[str, ...] = ("logits",)

    def __init__(self, config: EncoderConfig, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.config = config
        self.num_classes = num_classes
        self.bert = EncoderModel(config)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.output_size, num_classes)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _, pooled = self.bert(input_ids, attention_mask, token_type_ids)
        return self.classifier(self.dropout(pooled))


# ---------------------------------------------------------------------------
# seeded initialisation
# ---------------------------------------------------------------------------

WEIGHT_STD = 0.02
BIAS_STD = 0.02
LAYER_NORM_WEIGHT_STD = 0.1


@torch.no_grad()
def initialize_weights(model: nn.Module, seed: int) -> None:
    """Fill every parameter from ``torch.Generator().manual_seed(seed)`` and every constant.

    BERT-like, but with no exact zeros or ones so that importers are exercised:
    Linear/Embedding weights N(0, 0.02); biases N(0, 0.02); LayerNorm weight
    1 + N(0, 0.1), bias N(0, 0.02); convolution kernels N(0, 1/√K); wma W =
    I + N(0, 0.02).  Parameters are drawn in ``named_parameters()`` order, so
    the weights are a function of the configuration and the seed only.
    """
    generator = torch.Generator().manual_seed(int(seed))
    for name, param in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        owner = name.rsplit(".", 2)[-2] if "." in name else ""
        if owner == "LayerNorm" and leaf == "weight":
            param.normal_(1.0, LAYER_NORM_WEIGHT_STD, generator=generator)
        elif leaf == "bias":
            param.normal_(0.0, BIAS_STD, generator=generator)
        elif leaf == "wma_weight":
            param.normal_(0.0, WEIGHT_STD, generator=generator)
            param.add_(torch.eye(param.shape[-1]))
        elif param.dim() == 3 and owner in CONV_HEAD_TYPES:
            param.normal_(0.0, 1.0 / math.sqrt(param.shape[-1]), generator=generator)
        else:
            param.normal_(0.0, WEIGHT_STD, generator=generator)
    for module in model.modules():
        fill = getattr(module, "fill_constants", None)
        if fill is not None:
            fill()


def _materialize(factory, seed: int) -> nn.Module:  # type: ignore[no-untyped-def]
    """Build on the meta device (no default init, global RNG untouched), then fill."""
    with torch.device("meta"):
        model = factory()
    model = model.to_empty(device="cpu")
    initialize_weights(model, seed)
    return model.eval()


def build_encoder(config: EncoderConfig, seed: int = 0) -> EncoderModel:
    return _materialize(lambda: EncoderModel(config), seed)  # type: ignore[return-value]


def build_sequence_classifier(
    config: EncoderConfig, num_classes: int, seed: int = 0, dropout: float = 0.1
) -> SequenceClassifier:
    return _materialize(  # type: ignore[return-value]
        lambda: SequenceClassifier(config, num_classes, dropout), seed
    )
