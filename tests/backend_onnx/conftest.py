"""Fixtures of the ONNX backend tests: zoo models exported once per run.

Exporting a zoo model with torch is the slow step of the round-trip test
(BERT-Base: tens of seconds on two cores), so :func:`zoo_models` takes each
torch export from the run's shared export folder (``onnx_exports`` in
tests/conftest.py: TorchScript, seed 0, a 512-token vocabulary, made once per
run and read by tests/passes and tests/elector_compile too).  Importing into
the IR is done once per session.

The sizes are small on purpose (batch 2 with padding, 8 tokens, a 512-token
vocabulary): the encoders keep their real layer count, hidden size, heads and
feed-forward stacks; only the embedding table is shorter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SMALL_VOCAB, OnnxExports
from transcode_ir import Module

BATCH, SEQ, VOCAB, SEED = 2, 8, SMALL_VOCAB, 0


@dataclass
class ZooModel:
    """A zoo model exported by torch and imported into the IR."""

    name: str
    torch_onnx: Path
    module: Module
    inputs: dict[str, np.ndarray]


class ZooModels:
    """Lazy, cached torch export + IR import of zoo models."""

    def __init__(self, exports: OnnxExports, import_onnx: Callable) -> None:
        self.exports = exports
        self.import_onnx = import_onnx
        self._cache: dict[str, ZooModel] = {}

    def torch_export(self, name: str) -> Path:
        """The torch export of a zoo model (the run's shared file)."""
        return self.exports(name, "torchscript", vocab_size=VOCAB).path

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


@pytest.fixture(scope="session")
def zoo_models(onnx_exports: OnnxExports) -> ZooModels:
    from frontends.onnx import import_onnx

    return ZooModels(onnx_exports, import_onnx)
