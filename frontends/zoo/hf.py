"""Zoo entries for the Hugging Face families of :mod:`frontends.hf` (torch-free until export).

``tcc zoo list`` shows them after the BERT/FlexiBERT models, ``tcc zoo
describe NAME`` prints their configuration, and ``tcc zoo export NAME`` /
``tcc compile zoo:NAME`` export them through
:func:`frontends.export.export_onnx`, which hands family names to
:func:`frontends.hf.export_family` (seeded random weights, no hub).
"""

from __future__ import annotations

from typing import Any

from frontends.hf.families import FAMILIES, Family, get_family

__all__ = ["describe_family", "family_rows", "is_family", "verify_family_export"]


def is_family(name: Any) -> bool:
    """True if ``name`` is a zoo name of a Hugging Face family entry."""
    return isinstance(name, str) and get_family(name) is not None


def _heads(family: Family) -> int:
    for key in ("num_attention_heads", "n_head", "n_heads", "num_heads", "nhead"):
        if key in family.config:
            return int(family.config[key])
    return 0


def _ffn(family: Family) -> int:
    for key in ("intermediate_size", "n_inner", "hidden_dim", "d_ff", "dim_feedforward"):
        if family.config.get(key):
            return int(family.config[key])
    return 4 * family.hidden


def family_rows() -> list[dict[str, Any]]:
    """One ``tcc zoo list`` row per family entry (sizes from the configuration)."""
    return [{
        "name": family.name,
        "layers": family.layers,
        "hidden": str(family.hidden),
        "heads": str(_heads(family)),
        "ffn": str(_ffn(family)),
        "head_types": f"transformers {family.model_class}" if family.config_class
        else f"torch.nn.{family.model_class}",
        "parameters": None,           # known once built (torch + transformers)
        "description": family.summary,
        "family": family.family,
    } for family in FAMILIES.values()]


def describe_family(name: str) -> str:
    family = get_family(name)
    assert family is not None
    lines = [
        f"name:        {family.name}",
        f"family:      {family.family} ({family.summary})",
        f"model:       {'transformers.' if family.config_class else 'torch.nn.'}"
        f"{family.model_class}" + (f" from {family.config_class}" if family.config_class else ""),
        f"inputs:      {', '.join(family.inputs)}",
        "config:      " + ", ".join(f"{k}={v}" for k, v in family.config.items()),
        "weights:     seeded random (torch.manual_seed(seed)); nothing is downloaded",
    ]
    return "\n".join(lines)


def verify_family_export(name: str, path: Any, batch: int, seq: int, seed: int) -> float:
    """Largest relative error of onnxruntime against torch for an exported family model."""
    import numpy as np
    import onnxruntime

    from frontends.hf import build_family_model, example_feeds, run_torch

    family = get_family(name)
    assert family is not None
    model = build_family_model(family, seed)
    feeds = example_feeds(family, batch, seq, seed)
    expected = run_torch(model, feeds)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options,
                                           providers=["CPUExecutionProvider"])
    actual = session.run(None, feeds)
    worst = 0.0
    for want, got in zip(expected, actual, strict=True):
        if want.shape != got.shape:
            raise AssertionError(f"shape mismatch: torch {want.shape}, onnx {got.shape}")
        scale = float(np.max(np.abs(want))) or 1.0
        worst = max(worst, float(np.max(np.abs(want - got))) / scale)
    return worst
