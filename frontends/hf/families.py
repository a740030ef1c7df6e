"""Model families built from Hugging Face ``transformers`` configurations (torch-free).

Each :class:`Family` says which ``transformers`` config and model class to use,
the small configuration used by the test matrix and the zoo (2 layers, hidden
64, small vocabulary, at least 128 positions), and the graph inputs a Hugging
Face user gets from the plain call ``model(input_ids=..., attention_mask=...)``
(``pixel_values`` for ViT).  Nothing here imports torch or transformers; the
builder in :mod:`frontends.hf.build` does, and never touches the hub.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FAMILIES", "Family", "family_names", "get_family"]

#: Sizes shared by the small text configurations.
_SMALL = dict(vocab_size=1000, hidden=64, layers=2, heads=4, ffn=128, positions=128)


@dataclass(frozen=True)
class Family:
    """One model family and one configuration of it."""

    name: str                      #: zoo name, e.g. ``gpt2-tiny``
    family: str                    #: family label in the matrix, e.g. ``GPT-2``
    config_class: str              #: ``transformers`` config class (``""``: plain torch)
    model_class: str               #: ``transformers`` model class (or the torch builder)
    config: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ("input_ids", "attention_mask")
    kind: str = "encoder"          #: encoder | decoder | vision
    summary: str = ""              #: what is special about the family
    image_size: int = 0            #: vision: square image side
    channels: int = 3
    #: The TorchScript trace of this model bakes the example sizes into reshapes
    #: (``nn.MultiheadAttention``), so that exporter is used with static shapes.
    static_torchscript: bool = False

    @property
    def vocab_size(self) -> int:
        return int(self.config.get("vocab_size", 0))

    @property
    def max_positions(self) -> int:
        for key in ("max_position_embeddings", "n_positions"):
            if key in self.config:
                return int(self.config[key])
        return 0

    @property
    def layers(self) -> int:
        for key in ("num_hidden_layers", "n_layer", "n_layers", "num_layers"):
            if key in self.config:
                return int(self.config[key])
        return 0

    @property
    def hidden(self) -> int:
        for key in ("hidden_size", "n_embd", "dim", "d_model"):
            if key in self.config:
                return int(self.config[key])
        return 0


def _bert_like(**extra: Any) -> dict[str, Any]:
    base = dict(
        vocab_size=_SMALL["vocab_size"], hidden_size=_SMALL["hidden"],
        num_hidden_layers=_SMALL["layers"], num_attention_heads=_SMALL["heads"],
        intermediate_size=_SMALL["ffn"], max_position_embeddings=_SMALL["positions"],
    )
    base.update(extra)
    return base


_ATTN: dict[str, Any] = {}  # the default attention implementation, as a user gets it

_FAMILIES: tuple[Family, ...] = (
    Family("bert-hf-tiny", "BERT", "BertConfig", "BertModel", _bert_like(),
           summary="post-LN encoder, exact GELU, pooler"),
    Family("distilbert-tiny", "DistilBERT", "DistilBertConfig", "DistilBertModel",
           dict(vocab_size=_SMALL["vocab_size"], dim=_SMALL["hidden"], n_layers=_SMALL["layers"],
                n_heads=_SMALL["heads"], hidden_dim=_SMALL["ffn"],
                max_position_embeddings=_SMALL["positions"]),
           summary="no token types, no pooler"),
    Family("roberta-tiny", "RoBERTa", "RobertaConfig", "RobertaModel",
           _bert_like(max_position_embeddings=_SMALL["positions"] + 2, pad_token_id=1),
           summary="position ids from a cumulative sum over non-padding tokens"),
    Family("albert-tiny", "ALBERT", "AlbertConfig", "AlbertModel",
           _bert_like(embedding_size=32),
           summary="factorised embeddings, one layer's weights shared by every layer"),
    Family("electra-tiny", "ELECTRA", "ElectraConfig", "ElectraModel",
           _bert_like(embedding_size=32),
           summary="discriminator with an embedding projection"),
    Family("deberta-v2-tiny", "DeBERTa-v2", "DebertaV2Config", "DebertaV2Model",
           _bert_like(relative_attention=True, position_buckets=32, max_relative_positions=-1,
                      pos_att_type=["p2c", "c2p"], position_biased_input=False,
                      norm_rel_ebd="layer_norm", share_att_key=True),
           summary="disentangled relative attention (c2p, p2c) with log buckets"),
    Family("gpt2-tiny", "GPT-2", "GPT2Config", "GPT2LMHeadModel",
           dict(vocab_size=_SMALL["vocab_size"], n_embd=_SMALL["hidden"], n_layer=_SMALL["layers"],
                n_head=_SMALL["heads"], n_positions=_SMALL["positions"], n_inner=_SMALL["ffn"],
                use_cache=False, **_ATTN),
           kind="decoder", summary="pre-LN decoder, causal mask, tanh GELU, tied LM head"),
    Family("t5-encoder-tiny", "T5 encoder", "T5Config", "T5EncoderModel",
           dict(vocab_size=_SMALL["vocab_size"], d_model=_SMALL["hidden"], d_kv=16,
                d_ff=_SMALL["ffn"], num_layers=_SMALL["layers"], num_heads=_SMALL["heads"],
                relative_attention_num_buckets=32, use_cache=False,
                # T5's default (sdpa) path views a transposed tensor, which the
                # dynamo exporter rejects; eager attention exports with both.
                attn_implementation="eager"),
           summary="RMSNorm, relative position buckets, no biases (eager attention)"),
    Family("vit-tiny", "ViT", "ViTConfig", "ViTModel",
           dict(hidden_size=_SMALL["hidden"], num_hidden_layers=_SMALL["layers"],
                num_attention_heads=_SMALL["heads"], intermediate_size=_SMALL["ffn"],
                image_size=32, patch_size=8, num_channels=3, **_ATTN),
           inputs=("pixel_values",), kind="vision", image_size=32,
           summary="patch embedding (strided 2-D convolution), class token"),
    Family("llama-tiny", "Llama", "LlamaConfig", "LlamaForCausalLM",
           dict(vocab_size=_SMALL["vocab_size"], hidden_size=_SMALL["hidden"],
                num_hidden_layers=_SMALL["layers"], num_attention_heads=_SMALL["heads"],
                num_key_value_heads=_SMALL["heads"], intermediate_size=_SMALL["ffn"],
                max_position_embeddings=_SMALL["positions"], use_cache=False,
                tie_word_embeddings=False, **_ATTN),
           kind="decoder", summary="RMSNorm, rotary embeddings, SwiGLU"),
    Family("qwen2-tiny", "Qwen2", "Qwen2Config", "Qwen2ForCausalLM",
           dict(vocab_size=_SMALL["vocab_size"], hidden_size=_SMALL["hidden"],
                num_hidden_layers=_SMALL["layers"], num_attention_heads=_SMALL["heads"],
                num_key_value_heads=2, intermediate_size=_SMALL["ffn"],
                max_position_embeddings=_SMALL["positions"], use_cache=False,
                tie_word_embeddings=True, **_ATTN),
           kind="decoder",
           summary="RMSNorm, rotary, SwiGLU, grouped-query attention (4 heads, 2 KV), QKV bias"),
    Family("torch-encoder-tiny", "nn.TransformerEncoder", "", "TransformerEncoder",
           dict(vocab_size=_SMALL["vocab_size"], d_model=_SMALL["hidden"],
                num_layers=_SMALL["layers"], nhead=_SMALL["heads"],
                dim_feedforward=_SMALL["ffn"], max_position_embeddings=_SMALL["positions"]),
           summary="torch.nn.TransformerEncoder (batch_first, key padding mask) "
                   "over an embedding", static_torchscript=True),
    # A realistically sized entry: the shape of GPT-2 small (124M parameters).
    Family("gpt2-small", "GPT-2", "GPT2Config", "GPT2LMHeadModel",
           dict(vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_positions=1024,
                use_cache=False, **_ATTN),
           kind="decoder", summary="GPT-2 small's shape (12 layers, hidden 768), random weights"),
)

#: Zoo name → family configuration.
FAMILIES: dict[str, Family] = {family.name: family for family in _FAMILIES}

#: The names in the test matrix / benchmark (one small configuration per family).
MATRIX: tuple[str, ...] = tuple(f.name for f in _FAMILIES if f.name != "gpt2-small")


def family_names() -> list[str]:
    return list(FAMILIES)


def get_family(name: str) -> Family | None:
    return FAMILIES.get(name.strip().lower())
