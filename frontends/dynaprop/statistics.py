"""Counts of elements and zeros at DynaProp prune points (plain Python, no torch).

The torch runtime (:mod:`frontends.dynaprop.runtime`) accumulates counters on
the device and turns them into these frozen records when asked
(:meth:`DynaProp.statistics`); the profile writer, the study and the tests read
them.  *Density* is the fraction of nonzero elements, *sparsity* = 1 − density.
Global figures are element-weighted: total zeros over total elements of all
points, so a large tensor counts for more than a small one, as it does in the
cost of the matrix products that read it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["Density", "DynaPropStatistics", "PointStatistics", "combine"]


@dataclass(frozen=True)
class Density:
    """``zeros`` of ``elements`` counted elements (summed over calls and batches)."""

    elements: int
    zeros: int

    def __post_init__(self) -> None:
        if self.elements < 0 or not 0 <= self.zeros <= self.elements:
            raise ValueError(f"inconsistent counts: {self.zeros} zeros of {self.elements}")

    @property
    def nonzeros(self) -> int:
        return self.elements - self.zeros

    @property
    def density(self) -> float:
        """Fraction of nonzero elements (1.0 when nothing was counted)."""
        return self.nonzeros / self.elements if self.elements else 1.0

    @property
    def sparsity(self) -> float:
        """Fraction of zero elements (0.0 when nothing was counted)."""
        return self.zeros / self.elements if self.elements else 0.0

    def __add__(self, other: Density) -> Density:
        return Density(self.elements + other.elements, self.zeros + other.zeros)

    def to_json(self) -> dict[str, float | int]:
        return {"elements": self.elements, "zeros": self.zeros, "density": self.density}


def combine(densities: Iterable[Density | None]) -> Density:
    """Element-weighted sum of counts (``None`` entries are skipped)."""
    total = Density(0, 0)
    for density in densities:
        if density is not None:
            total = total + density
    return total


@dataclass(frozen=True)
class PointStatistics:
    """What one prune point saw: its thresholds and forward / backward counts.

    ``forward`` counts the activation *after* pruning (what the next matrix
    product reads); ``backward`` counts the gradient with respect to the
    point's output *after* τ_T pruning and after the forward mask (the
    gradient the producing layer's backward matrix products read).  Either is
    ``None`` when that direction never ran since the last reset.
    """

    path: str
    role: str
    layer: int | None
    tau_i: float
    tau_t: float
    forward: Density | None
    backward: Density | None
    label: str = ""          # module path of the op (structural points)


@dataclass(frozen=True)
class DynaPropStatistics:
    """Per-point and per-parameter counts, with element-weighted totals."""

    points: Mapping[str, PointStatistics]
    weight_gradients: Mapping[str, Density] = field(default_factory=dict)

    @property
    def forward(self) -> Density:
        """All forward counts of all points together."""
        return combine(point.forward for point in self.points.values())

    @property
    def backward(self) -> Density:
        """All activation-gradient counts of all points together."""
        return combine(point.backward for point in self.points.values())

    @property
    def weight_gradient(self) -> Density:
        """All weight-gradient counts together."""
        return combine(self.weight_gradients.values())

    @property
    def activation_sparsity(self) -> float:
        return self.forward.sparsity

    @property
    def gradient_sparsity(self) -> float:
        return self.backward.sparsity

    @property
    def weight_gradient_sparsity(self) -> float:
        return self.weight_gradient.sparsity
