"""Deterministic example inputs for zoo models (numpy; torch only on request).

Every row of the batch is padded: row ``i`` has ``length[i]`` real tokens,
drawn from ``[max(1, seq // 2), seq - 1]``, followed by padding (token id 0,
attention-mask 0), so that attention masking is always exercised when
``seq >= 2``.  Real token ids are drawn uniformly from ``[1, vocab_size)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from transcode_ir.defaults import SEQUENCE_LENGTH
from transcode_ir.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["example_inputs", "example_inputs_numpy"]


def example_inputs_numpy(
    batch: int = 1, seq: int = SEQUENCE_LENGTH, vocab_size: int = 30522, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(input_ids, attention_mask)``, both int64 of shape ``(batch, seq)``."""
    for label, value in (("batch", batch), ("seq", seq), ("vocab_size", vocab_size)):
        if not isinstance(value, int) or value <= 0:
            raise UserError(f"{label}: expected a positive integer, got {value!r}")
    if vocab_size < 2:
        raise UserError("vocab_size: need at least 2 tokens (id 0 is padding)")
    rng = np.random.default_rng(seed)
    low = max(1, seq // 2)
    high = max(low, seq - 1)
    lengths = rng.integers(low, high + 1, size=batch)
    positions = np.arange(seq)[None, :]
    attention_mask = (positions < lengths[:, None]).astype(np.int64)
    input_ids = rng.integers(1, vocab_size, size=(batch, seq), dtype=np.int64)
    input_ids = input_ids * attention_mask
    return input_ids, attention_mask


def example_inputs(
    batch: int = 1, seq: int = SEQUENCE_LENGTH, vocab_size: int = 30522, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same values as :func:`example_inputs_numpy`, as torch int64 tensors."""
    import torch

    input_ids, attention_mask = example_inputs_numpy(batch, seq, vocab_size, seed)
    return torch.from_numpy(input_ids), torch.from_numpy(attention_mask)
