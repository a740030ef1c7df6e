"""Hugging Face ``transformers`` model families: small configs, seeded random weights, export.

Importing this package imports neither torch nor transformers (``tcc
compile`` and ``tcc zoo list`` read :data:`FAMILIES`); building or exporting a
model does.  Models are always built from a configuration with weights drawn
from ``torch.manual_seed(seed)``: nothing is downloaded (``HF_HUB_OFFLINE=1``
is set before transformers is imported).

>>> from frontends.hf import export_family
>>> export_family("gpt2-tiny", "gpt2.onnx", exporter="dynamo")   # doctest: +SKIP

See :mod:`frontends.hf.families` for the configurations and
:mod:`frontends.hf.build` for how the plain Hugging Face call is exported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from frontends.hf.families import FAMILIES, MATRIX, Family, family_names, get_family

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

__all__ = [
    "FAMILIES",
    "MATRIX",
    "Family",
    "build_family_model",
    "example_feeds",
    "export_family",
    "family_names",
    "get_family",
    "run_torch",
]


def build_family_model(name: str | Family, seed: int = 0) -> torch.nn.Module:
    """An eval-mode model of the family, weights from ``torch.manual_seed(seed)``."""
    from frontends.hf.build import build_family_model as build

    return build(name, seed)


def export_family(name_or_model: Any, path: Any, exporter: str = "torchscript",
                  **options: Any) -> Any:
    """Export through the plain HF call; see :func:`frontends.hf.build.export_family`."""
    from frontends.hf.build import export_family as export

    return export(name_or_model, path, exporter, **options)


def example_feeds(name: str | Family, batch: int = 2, seq: int = 16,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Graph inputs by name (numpy; no torch)."""
    family = name if isinstance(name, Family) else get_family(name)
    if family is None:
        from transcode_ir.errors import UserError

        raise UserError(f"unknown model family {name!r}; known: {', '.join(family_names())}")
    if family.kind == "vision":
        import numpy as np

        rng = np.random.default_rng(seed)
        side = family.image_size
        return {"pixel_values": rng.standard_normal(
            (batch, family.channels, side, side)).astype(np.float32)}
    from frontends.zoo.inputs import example_inputs_numpy

    input_ids, attention_mask = example_inputs_numpy(batch, seq, family.vocab_size, seed)
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def run_torch(model: torch.nn.Module, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The model's outputs for ``feeds`` (plain HF call, no grad), in graph-output order."""
    from frontends.hf.build import run_torch as run

    return run(model, feeds)
