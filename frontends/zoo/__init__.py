"""The model zoo: BERT family and FlexiBERT-2.0-style heterogeneous encoders.

Importing this package does not import torch: names, configurations,
descriptions, parameter counts and prune-point paths are plain Python
(:mod:`frontends.zoo.description`, :mod:`frontends.zoo.registry`).  torch is
imported by :func:`build_model` / :func:`build_classifier` /
:func:`example_inputs`, which load :mod:`frontends.zoo.modeling`.

>>> from frontends.zoo import build_model, example_inputs
>>> model = build_model("bert-tiny", seed=0)                  # doctest: +SKIP
>>> hidden, pooled = model(*example_inputs(2, 16))           # doctest: +SKIP
>>> build_model("l2:h128:sdp,dft:ff512", seed=1)             # doctest: +SKIP

See frontends/zoo/README.md for the description format and the prune points.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from frontends.zoo.description import (
    ATTENTION_HEAD_TYPES,
    CONV_HEAD_TYPES,
    DESIGN_SPACE,
    HEAD_TYPES,
    LINEAR_TRANSFORM_HEAD_TYPES,
    EncoderConfig,
    LayerSpec,
    PrunePointSpec,
    format_description,
    looks_like_description,
    parse_description,
)
from frontends.zoo.inputs import example_inputs, example_inputs_numpy
from frontends.zoo.registry import ZOO, get_config, list_models, resolve_config

if TYPE_CHECKING:  # pragma: no cover
    from frontends.zoo.modeling import EncoderModel, SequenceClassifier

__all__ = [
    "ATTENTION_HEAD_TYPES",
    "CONV_HEAD_TYPES",
    "DESIGN_SPACE",
    "HEAD_TYPES",
    "LINEAR_TRANSFORM_HEAD_TYPES",
    "ZOO",
    "EncoderConfig",
    "LayerSpec",
    "PrunePointSpec",
    "build_classifier",
    "build_model",
    "example_inputs",
    "example_inputs_numpy",
    "format_description",
    "get_config",
    "list_models",
    "looks_like_description",
    "parse_description",
    "prune_points",
    "resolve_config",
]


def build_model(
    name_or_description: str | EncoderConfig,
    seed: int = 0,
    vocab_size: int | None = None,
) -> EncoderModel:
    """An eval-mode encoder whose weights are a deterministic function of ``seed``.

    ``name_or_description`` is a zoo name (``"bert-tiny"``), a description
    (``"l2:h128:sdp,dft:ff512"`` or JSON, checked against the FlexiBERT 2.0
    space) or an :class:`EncoderConfig`.  ``forward(input_ids,
    attention_mask=None, token_type_ids=None)`` returns ``(last_hidden_state,
    pooler_output)``.
    """
    config = resolve_config(name_or_description, vocab_size)
    from frontends.zoo.modeling import build_encoder

    return build_encoder(config, seed)


def build_classifier(
    name_or_description: str | EncoderConfig,
    num_classes: int,
    seed: int = 0,
    vocab_size: int | None = None,
    dropout: float = 0.1,
) -> SequenceClassifier:
    """Encoder (at ``.bert``) + dropout + Linear (``.classifier``) returning logits.

    Returned in eval mode; call ``.train()`` to train.  Its encoder weights
    equal ``build_model(name_or_description, seed)``'s.
    """
    from transcode_ir.errors import UserError

    if not isinstance(num_classes, int) or num_classes <= 0:
        raise UserError(f"num_classes: expected a positive integer, got {num_classes!r}")
    config = resolve_config(name_or_description, vocab_size)
    from frontends.zoo.modeling import build_sequence_classifier

    return build_sequence_classifier(config, num_classes, seed, dropout)


def prune_points(
    name_or_description: str | EncoderConfig, *, classifier: bool = False
) -> list[PrunePointSpec]:
    """DynaProp prune points of a model, in execution order (module paths; no torch).

    With ``classifier=True`` the paths are those of :func:`build_classifier`
    (prefixed ``bert.``).
    """
    config = resolve_config(name_or_description)
    return config.prune_points(prefix="bert." if classifier else "")
