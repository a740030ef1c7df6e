"""Shared fixtures of the frontend tests.

* :func:`relative_error` is the comparison used everywhere here:
  ``max |actual - expected| / max |expected|`` over a whole output (1 when the
  reference is all zeros and the result is not), the metric the zoo tests bound
  by 1e-4.
* :func:`run_onnxruntime` runs a model (path or proto) on CPU.
* ``zoo_onnx`` (session-scoped) exports zoo models with
  ``frontends.export.export_onnx`` once per test session, at batch 1 and
  sequence 16, and caches the files across sessions in pytest's cache
  directory (``.pytest_cache/d/transcode-zoo-onnx``), keyed by the torch, onnx
  and onnxscript versions and the source of the zoo and the exporter, so a
  change to either re-exports.  ``pytest --cache-clear`` drops the cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ZOO_BATCH = 1
ZOO_SEQUENCE = 16
REPO = Path(__file__).resolve().parents[2]


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


def _cache_key(name: str, exporter: str, opset: int | None, dynamic: bool) -> str:
    import onnx
    import onnxscript
    import torch

    digest = hashlib.sha256()
    for part in (name, exporter, str(opset), str(dynamic), str(ZOO_BATCH), str(ZOO_SEQUENCE),
                 torch.__version__, onnx.__version__, onnxscript.__version__):
        digest.update(part.encode() + b"\0")
    sources = [REPO / "frontends" / "export.py", *sorted((REPO / "frontends" / "zoo").glob("*.py"))]
    for source in sources:
        digest.update(source.read_bytes())
    return digest.hexdigest()[:20]


@pytest.fixture(scope="session")
def zoo_onnx(request: pytest.FixtureRequest) -> Callable[..., Path]:
    """``zoo_onnx(name, exporter, opset=None, dynamic=True) -> path`` of the export."""
    from frontends.export import export_onnx

    directory = Path(request.config.cache.mkdir("transcode-zoo-onnx"))
    made: dict[tuple[Any, ...], Path] = {}

    def export(name: str, exporter: str, opset: int | None = None, dynamic: bool = True) -> Path:
        key = (name, exporter, opset, dynamic)
        if key in made:
            return made[key]
        stem = f"{name}-{exporter}{opset or ''}-{_cache_key(name, exporter, opset, dynamic)}"
        final = directory / stem
        if not (final / "model.onnx").exists():
            # Export into a private directory and rename it into place, so that
            # concurrent sessions (pytest-xdist workers) never see half a file.
            staging = Path(tempfile.mkdtemp(prefix=f"{stem}.", dir=directory))
            export_onnx(name, staging / "model.onnx", exporter=exporter, batch=ZOO_BATCH,
                        seq=ZOO_SEQUENCE, opset=opset, dynamic=dynamic)
            try:
                os.rename(staging, final)
            except OSError:  # another session finished first
                shutil.rmtree(staging, ignore_errors=True)
            prefix = f"{name}-{exporter}{opset or ''}-"
            for old in directory.glob(prefix + "*"):
                stale_key = old.name[len(prefix):]
                if old != final and "." not in old.name and len(stale_key) == 20:
                    shutil.rmtree(old, ignore_errors=True)  # made from older sources
        made[key] = final / "model.onnx"
        return made[key]

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
