"""Types of the IR: element types, tensor types and the sparsity encoding.

Types are frozen, hashable dataclasses that check themselves on construction.
A :class:`TensorType` has a static shape (every dimension known: the ONNX
frontend binds symbolic dimensions before building IR), an element type and an
optional :class:`SparsityEncoding` that records the density of a value after
DynaProp pruning and where that density came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DTYPES",
    "SparsityEncoding",
    "TensorType",
    "dtype_size",
    "numpy_dtype",
    "dtype_of_numpy",
]

# Element types and their numpy counterparts.  The accelerator's own data width
# (20-bit fixed point in AccelTran) is a property of the hardware description,
# not of the IR: the IR keeps the exporter's types.
DTYPES: dict[str, np.dtype] = {
    "f16": np.dtype(np.float16),
    "f32": np.dtype(np.float32),
    "f64": np.dtype(np.float64),
    "i8": np.dtype(np.int8),
    "i32": np.dtype(np.int32),
    "i64": np.dtype(np.int64),
    "bool": np.dtype(np.bool_),
}
_NUMPY_TO_NAME = {v: k for k, v in DTYPES.items()}

# Where a density figure came from.  Reports print it beside the figure.
DENSITY_SOURCES = ("measured", "profile", "assumed")


def numpy_dtype(name: str) -> np.dtype:
    return DTYPES[name]


def dtype_of_numpy(dtype: np.dtype) -> str:
    try:
        return _NUMPY_TO_NAME[np.dtype(dtype)]
    except KeyError:
        raise ValueError(f"numpy dtype {dtype} has no IR element type; "
                         f"accepted: {', '.join(DTYPES)}") from None


def dtype_size(name: str) -> int:
    """Bytes per element of an IR element type."""
    return DTYPES[name].itemsize


@dataclass(frozen=True)
class SparsityEncoding:
    """The fraction of nonzero elements of a value, and its provenance.

    ``density`` is in [0, 1].  ``source`` is ``measured`` (a calibration run of
    the interpreter on real inputs), ``profile`` (read from a DynaProp density
    profile written by the torch runtime) or ``assumed`` (given by hand; reports
    mark such figures as assumed).
    """

    density: float
    source: str = "assumed"

    def __post_init__(self) -> None:
        if not isinstance(self.density, float):
            object.__setattr__(self, "density", float(self.density))
        if not (0.0 <= self.density <= 1.0) or math.isnan(self.density):
            raise ValueError(f"density must lie in [0, 1], got {self.density}")
        if self.source not in DENSITY_SOURCES:
            raise ValueError(f"density source must be one of {DENSITY_SOURCES}, "
                             f"got {self.source!r}")


@dataclass(frozen=True)
class TensorType:
    """A statically shaped tensor: ``tensor<4x128xf32>``."""

    shape: tuple[int, ...]
    dtype: str = "f32"
    encoding: SparsityEncoding | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.shape, tuple):
            object.__setattr__(self, "shape", tuple(self.shape))
        for dim in self.shape:
            if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or dim < 0:
                raise ValueError(f"tensor dimensions must be non-negative integers, "
                                 f"got shape {self.shape}")
        if any(not isinstance(d, int) for d in self.shape):
            object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown element type {self.dtype!r}; "
                             f"accepted: {', '.join(DTYPES)}")

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * dtype_size(self.dtype)

    @property
    def density(self) -> float:
        """Density of nonzeros: 1.0 unless a sparsity encoding says otherwise."""
        return self.encoding.density if self.encoding is not None else 1.0

    def with_shape(self, shape: tuple[int, ...]) -> TensorType:
        return TensorType(tuple(shape), self.dtype)

    def with_dtype(self, dtype: str) -> TensorType:
        return TensorType(self.shape, dtype)

    def with_encoding(self, encoding: SparsityEncoding | None) -> TensorType:
        return TensorType(self.shape, self.dtype, encoding)

    def dense(self) -> TensorType:
        """The same type without a sparsity encoding."""
        return TensorType(self.shape, self.dtype) if self.encoding else self

    def __str__(self) -> str:
        from transcode_ir.printer import format_type

        return format_type(self)
