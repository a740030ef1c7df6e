"""Fixtures of the DynaProp IR tests: BERT-Tiny exported by torch and imported once per
session.

The export (TorchScript, seed 0, a 512-token vocabulary so that the embedding table stays
small) is the slow step; it is the run's shared file (``onnx_exports`` in
tests/conftest.py, made once per run and read by tests/passes and tests/elector_compile
too), imported here at batch 1, sequence 16.  Tests get a fresh copy of the imported
module (:meth:`BertTiny.module`), since passes edit modules in place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SMALL_VOCAB, OnnxExports
from transcode_ir import Module

BATCH, SEQ, VOCAB, SEED = 1, 16, SMALL_VOCAB, 0
SHAPES = {"input_ids": (BATCH, SEQ), "attention_mask": (BATCH, SEQ)}


@dataclass
class BertTiny:
    """BERT-Tiny as an ONNX file and as IR, with example inputs (padded)."""

    onnx_path: Path
    imported: Module

    def module(self) -> Module:
        return self.imported.clone()

    def inputs(self, seed: int = SEED) -> dict[str, np.ndarray]:
        from frontends.zoo import example_inputs_numpy

        input_ids, attention_mask = example_inputs_numpy(BATCH, SEQ, VOCAB, seed)
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def calibration(self, path: Path, samples: int = 2, target: bool = False) -> Path:
        """An .npz of ``samples`` stacked inputs (and an MSE target for training graphs)."""
        batches = [self.inputs(SEED + 1 + i) for i in range(samples)]
        arrays = {name: np.stack([b[name] for b in batches]) for name in SHAPES}
        if target:
            rng = np.random.default_rng(7)
            arrays["target"] = rng.normal(size=(samples, BATCH, 128)).astype(np.float32)
        np.savez(path, **arrays)
        return path


@pytest.fixture(scope="session")
def zoo_onnx(onnx_exports: OnnxExports) -> Callable[[str], Path]:
    """``zoo_onnx(name) -> Path``: the zoo model's shared export (a 512-token vocabulary)."""

    def export(name: str) -> Path:
        return onnx_exports(name, "torchscript", vocab_size=VOCAB).path

    return export


@pytest.fixture(scope="session")
def bert_tiny(zoo_onnx) -> BertTiny:  # noqa: ANN001
    from frontends.onnx import import_onnx

    path = zoo_onnx("bert-tiny")
    return BertTiny(path, import_onnx(path, SHAPES, name="bert_tiny", copy_weights=True))
