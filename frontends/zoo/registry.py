"""The model zoo: named encoder configurations (torch-free).

BERT family (Turc et al., "Well-Read Students Learn Better"; BERT-Base from
Devlin et al.), as post-LN encoders with exact GELU:

=============  ======  ======  =====  =====
name           layers  hidden  heads  FFN
=============  ======  ======  =====  =====
bert-tiny      2       128     2      512
bert-mini      4       256     4      1024
bert-small     4       512     8      2048
bert-medium    8       512     8      2048
bert-base      12      768     12     3072
=============  ======  ======  =====  =====

FlexiBERT-2.0-style heterogeneous encoders (small, hidden ≤ 256; together they
use every head type):

* ``flexibert-mix-a``: attention heads and linear-transform heads, one layer of
  each (sdp, wma | dft, dct); the second layer has no attention at all.
* ``flexibert-mix-b``: convolution heads of every kernel, hidden size changing
  128 → 256 → 256 → 128 (so two input projections), a pure-convolution layer
  and feed-forward stacks of 1, 2 and 3 dense layers.
* ``flexibert-mix-c``: all seven head types in one 8-head layer, 3-deep
  feed-forward stack, then a wma/dct layer.

Names are matched case-insensitively; anything containing ``:`` (or starting
with ``{``) is read as a description instead (see
:mod:`frontends.zoo.description`).
"""

from __future__ import annotations

from dataclasses import replace

from frontends.zoo.description import (
    EncoderConfig,
    LayerSpec,
    looks_like_description,
    parse_description,
)
from transcode_ir.errors import UserError

__all__ = ["ZOO", "get_config", "list_models", "resolve_config"]


def _bert(name: str, layers: int, hidden: int, heads: int, ffn: int) -> EncoderConfig:
    layer = LayerSpec(hidden, ("sdp",) * heads, (ffn,))
    return EncoderConfig((layer,) * layers, name=name)


def _flexi(name: str, description: str) -> EncoderConfig:
    return replace(parse_description(description), name=name)


#: Zoo name → configuration (vocabulary 30522, 512 positions, 2 token types).
ZOO: dict[str, EncoderConfig] = {
    config.name: config  # type: ignore[misc]
    for config in (
        _bert("bert-tiny", 2, 128, 2, 512),
        _bert("bert-mini", 4, 256, 4, 1024),
        _bert("bert-small", 4, 512, 8, 2048),
        _bert("bert-medium", 8, 512, 8, 2048),
        _bert("bert-base", 12, 768, 12, 3072),
        _flexi(
            "flexibert-mix-a",
            "h128:sdp*2,wma*2:ff512|h128:dft*2,dct*2:ff512",
        ),
        _flexi(
            "flexibert-mix-b",
            "h128:sdp*2,conv5*2:ff512|h256:sdp*2,conv9*2:ff1024-512"
            "|h256:conv13*4:ff1024|h128:sdp,wma:ff256-256-256",
        ),
        _flexi(
            "flexibert-mix-c",
            "h256:sdp*2,wma,dft,dct,conv5,conv9,conv13:ff1024-2048-512|h256:wma*2,dct*2:ff2048",
        ),
    )
}


def list_models() -> list[str]:
    """Zoo names in listing order."""
    return list(ZOO)


def get_config(name: str) -> EncoderConfig:
    """The zoo configuration called ``name`` (case-insensitive)."""
    key = name.strip().lower()
    if key not in ZOO:
        raise UserError(
            f"unknown model {name!r}; the zoo has {', '.join(ZOO)} "
            "(or pass a FlexiBERT description such as 'l2:h128:sdp,dft:ff512')"
        )
    return ZOO[key]


def resolve_config(
    name_or_description: str | EncoderConfig,
    vocab_size: int | None = None,
    *,
    check_space: bool = True,
) -> EncoderConfig:
    """A zoo name, a description (text or JSON) or a config → :class:`EncoderConfig`.

    Zoo configs and configs passed in are used as they are; descriptions are
    checked against the FlexiBERT 2.0 space unless ``check_space`` is false.
    """
    if isinstance(name_or_description, EncoderConfig):
        config = name_or_description
    elif isinstance(name_or_description, str):
        if looks_like_description(name_or_description):
            config = parse_description(name_or_description, check_space=check_space)
        else:
            config = get_config(name_or_description)
    else:
        raise UserError(
            f"expected a zoo name, a description or an EncoderConfig, "
            f"got {type(name_or_description).__name__}"
        )
    if vocab_size is not None and (not isinstance(vocab_size, int) or vocab_size <= 0):
        raise UserError(f"vocab_size: expected a positive integer, got {vocab_size!r}")
    return config.with_vocab_size(vocab_size)
