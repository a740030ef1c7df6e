"""Fixtures of the ONNX backend tests: zoo models exported once per session.

Exporting a zoo model with torch is the slow step of the round-trip test
(BERT-Base: tens of seconds on two cores), so :func:`zoo_models` keeps each
torch export in pytest's cache directory (``.pytest_cache/d/backend_onnx_zoo``)
under a key that hashes everything the export depends on: the sources of
``frontends/export.py`` and ``frontends/zoo/``, the torch version and the
export settings.  Changing any of them exports afresh; ``pytest
--cache-clear`` does too.  Importing into the IR is done once per session.

The sizes are small on purpose (batch 2 with padding, 8 tokens, a 512-token
vocabulary): the encoders keep their real layer count, hidden size, heads and
feed-forward stacks; only the embedding table is shorter.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from transcode_ir import Module

BATCH, SEQ, VOCAB, SEED = 2, 8, 512, 0


@dataclass
class ZooModel:
    """A zoo model exported by torch and imported into the IR."""

    name: str
    torch_onnx: Path
    module: Module
    inputs: dict[str, np.ndarray]


class ZooModels:
    """Lazy, cached torch export + IR import of zoo models."""

    def __init__(self, directory: Path, export_onnx: Callable, import_onnx: Callable) -> None:
        self.directory = directory
        self.export_onnx = export_onnx
        self.import_onnx = import_onnx
        self._cache: dict[str, ZooModel] = {}

    def torch_export(self, name: str) -> Path:
        """The torch export of a zoo model, from the cache when up to date."""
        path = self.directory / f"{name}-{_export_key(name)}.onnx"
        if not path.exists():
            partial = path.with_suffix(f".{os.getpid()}.partial")  # one per xdist worker
            self.export_onnx(name, partial, "torchscript", BATCH, SEQ, seed=SEED,
                             vocab_size=VOCAB)
            partial.replace(path)  # never leave a half-written file under the final name
            for stale in self.directory.glob(f"{name}-{'?' * 16}.onnx"):
                if stale != path:
                    stale.unlink()  # exports of older sources
        return path

    def __call__(self, name: str) -> ZooModel:
        if name not in self._cache:
            from frontends.zoo import example_inputs_numpy

            path = self.torch_export(name)
            shapes = {"input_ids": (BATCH, SEQ), "attention_mask": (BATCH, SEQ)}
            module = self.import_onnx(path, shapes)
            input_ids, attention_mask = example_inputs_numpy(BATCH, SEQ, VOCAB, SEED)
            self._cache[name] = ZooModel(name, path, module, {"input_ids": input_ids,
                                                              "attention_mask": attention_mask})
        return self._cache[name]


def roundtrip_modules() -> tuple[Callable, Callable]:
    """``(export_onnx, import_onnx)``."""
    from frontends.export import export_onnx
    from frontends.onnx import import_onnx

    return export_onnx, import_onnx


def _export_key(name: str) -> str:
    """A hash of everything a zoo model's torch export depends on."""
    from importlib.metadata import version

    import frontends

    root = Path(frontends.__file__).parent
    digest = hashlib.sha256(f"{name} {BATCH} {SEQ} {VOCAB} {SEED} torch {version('torch')} "
                            f"onnx {version('onnx')}".encode())
    for source in [root / "export.py", *sorted((root / "zoo").glob("*.py"))]:
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def zoo_models(request: pytest.FixtureRequest) -> ZooModels:
    export_onnx, import_onnx = roundtrip_modules()
    directory = Path(request.config.cache.mkdir("backend_onnx_zoo"))
    return ZooModels(directory, export_onnx, import_onnx)
