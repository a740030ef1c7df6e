"""Fixtures of the ONNX backend tests: zoo models exported once per session.

Exporting a zoo model with torch and importing it into the IR are the slow
steps of the round-trip test, so :func:`zoo_models` does each once per model
and session and keeps the results.  The sizes are small on purpose (batch 2
with padding, 8 tokens, a 512-token vocabulary): the encoders keep their real
layer count, hidden size, heads and feed-forward stacks, only the embedding
table is shorter.
"""

from __future__ import annotations

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

    def __call__(self, name: str) -> ZooModel:
        if name not in self._cache:
            from frontends.zoo import example_inputs_numpy

            path = self.directory / f"{name}.onnx"
            self.export_onnx(name, path, "torchscript", BATCH, SEQ, seed=SEED, vocab_size=VOCAB)
            shapes = {"input_ids": (BATCH, SEQ), "attention_mask": (BATCH, SEQ)}
            module = self.import_onnx(path, shapes)
            input_ids, attention_mask = example_inputs_numpy(BATCH, SEQ, VOCAB, SEED)
            self._cache[name] = ZooModel(name, path, module, {"input_ids": input_ids,
                                                              "attention_mask": attention_mask})
        return self._cache[name]


def roundtrip_modules() -> tuple[Callable, Callable]:
    """``(export_onnx, import_onnx)``, or pytest.skip naming what is missing."""
    try:
        from frontends.export import export_onnx
    except ImportError as err:
        pytest.skip(f"the zoo exporter frontends.export.export_onnx is not available yet ({err})")
    try:
        from frontends.onnx import import_onnx
    except ImportError as err:
        pytest.skip(f"the ONNX importer frontends.onnx.import_onnx is not available yet ({err})")
    return export_onnx, import_onnx


@pytest.fixture(scope="session")
def zoo_models(tmp_path_factory: pytest.TempPathFactory) -> ZooModels:
    export_onnx, import_onnx = roundtrip_modules()
    return ZooModels(tmp_path_factory.mktemp("zoo"), export_onnx, import_onnx)
