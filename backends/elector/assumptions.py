"""What a cost rests on that the design does not provide: said, not hidden.

:func:`nonlinearity_notes` -- a design whose MAC lanes have ReLU units only
(``pe_array { nonlinearity = relu }``) cannot compute GELU; the cost model
costs a model's GELU ops (``nn.gelu``, its gradient, and linear / fused ops
with a ``gelu`` activation) as lane arithmetic all the same, exactly as on a
GELU design.  The note says so, how many ops and elements it concerns, and
what to do, so a ReLU design's numbers for BERT are not read as real.
"""

from __future__ import annotations

from typing import Any

__all__ = ["gelu_usage", "nonlinearity_notes"]

_GELU_OPS = ("nn.gelu", "grad.gelu")
_GELU_ACTIVATIONS = ("gelu", "gelu_tanh")


def gelu_usage(function: Any) -> tuple[int, int]:
    """``(ops, elements)`` of GELU work in an IR function."""
    ops = elements = 0
    for op in function:
        activation = op.attributes.get("activation") if hasattr(op, "attributes") else None
        if op.name in _GELU_OPS or activation in _GELU_ACTIVATIONS:
            ops += 1
            result = op.results[0] if op.results else None
            numel = getattr(getattr(result, "type", None), "numel", 0) or 0
            elements += int(numel) if isinstance(numel, int) else 0
    return ops, elements


def nonlinearity_notes(function: Any, accelerator: Any) -> list[str]:
    """Notes (one sentence each) when the function needs a non-linearity the
    design's lanes lack; empty otherwise."""
    lanes = getattr(accelerator.pe_array, "nonlinearity", "gelu")
    if lanes != "relu":
        return []
    ops, elements = gelu_usage(function)
    if not ops:
        return []
    return [f"design {accelerator.name!r} has ReLU-only MAC lanes (pe_array.nonlinearity = relu) "
            f"but the model has {ops} GELU op{'s' if ops != 1 else ''} ({elements:,} elements "
            "per run): they were costed as lane arithmetic, exactly as on a GELU design, "
            "although these lanes cannot compute GELU -- read the numbers as those of the same "
            "design with GELU lanes (set nonlinearity = gelu), or give a model with ReLU"]
