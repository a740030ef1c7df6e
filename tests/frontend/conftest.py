"""Shared fixtures of the frontend tests.

* :func:`relative_error` is the comparison used everywhere here:
  ``max |actual - expected| / max |expected|`` over a whole output (1 when the
  reference is all zeros and the result is not), the metric the zoo tests bound
  by 1e-4.
* :func:`run_onnxruntime` runs a model (path or proto) on CPU.
* ``zoo_onnx`` (session-scoped) exports zoo models with
  ``frontends.export.export_onnx`` once per test run through the run's shared
  export folder (``onnx_exports`` in tests/conftest.py), so the exports
  tests/zoo makes are not made again here: dynamic-shape exports are traced at
  the shared sizes (batch 2, sequence 16) and imported here at batch 1,
  sequence 16; fixed-shape exports are traced at batch 1, sequence 16.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ZOO_BATCH = 1
ZOO_SEQUENCE = 16


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """``max |actual - expected| / max |expected|`` (exact comparison for bools)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    if expected.dtype == bool or actual.dtype == bool:
        return 0.0 if np.array_equal(actual, expected) else 1.0
    difference = float(np.max(np.abs(actual.astype(np.float64) - expected.astype(np.float64)),
                              initial=0.0))
    scale = float(np.max(np.abs(expected.astype(np.float64)), initial=0.0))
    if scale == 0.0:
        return 0.0 if difference == 0.0 else 1.0
    return difference / scale


def run_onnxruntime(model: Any, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    source = model if isinstance(model, (str, os.PathLike)) else model.SerializeToString()
    session = onnxruntime.InferenceSession(
        os.fspath(source) if isinstance(source, os.PathLike) else source, options,
        providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    return [np.asarray(o) for o in session.run(None, {k: v for k, v in feeds.items() if k in names})]


@pytest.fixture(scope="session")
def zoo_onnx(onnx_exports: Any) -> Callable[..., Path]:
    """``zoo_onnx(name, exporter, opset=None, dynamic=True) -> path`` of the export."""

    def export(name: str, exporter: str, opset: int | None = None, dynamic: bool = True) -> Path:
        if dynamic:     # the shared trace sizes: the same file tests/zoo checks
            return onnx_exports(name, exporter, opset=opset).path
        return onnx_exports(name, exporter, batch=ZOO_BATCH, seq=ZOO_SEQUENCE, opset=opset,
                            dynamic=False).path

    return export


@pytest.fixture(scope="session")
def zoo_import(zoo_onnx: Callable[..., Path]) -> Callable[..., tuple[Path, Any]]:
    """``zoo_import(name, exporter, opset=None, dynamic=True) -> (onnx path, module)``,
    imported at batch 1, sequence 16 (once per session)."""
    from frontends.onnx import import_onnx

    imported: dict[tuple[Any, ...], tuple[Path, Any]] = {}

    def load(name: str, exporter: str, opset: int | None = None,
             dynamic: bool = True) -> tuple[Path, Any]:
        key = (name, exporter, opset, dynamic)
        if key not in imported:
            path = zoo_onnx(name, exporter, opset, dynamic)
            shapes = {"input_ids": (ZOO_BATCH, ZOO_SEQUENCE)} if dynamic else None
            imported[key] = (path, import_onnx(path, shapes, name=name))
        return imported[key]

    return load
