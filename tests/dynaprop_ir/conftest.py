"""Fixtures of the DynaProp IR tests: BERT-Tiny exported by torch and imported once per
session.

The export (``frontends.export.export_onnx("bert-tiny", ..., exporter="torchscript",
batch=1, seq=16)``, with a 512-token vocabulary so that the embedding table stays small)
is the slow step; the ONNX file is kept in pytest's cache directory under a hash of
everything it depends on, so later sessions skip it.  Tests get a fresh copy of the
imported module (:meth:`BertTiny.module`), since passes edit modules in place.
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

BATCH, SEQ, VOCAB, SEED = 1, 16, 512, 0
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


def _export_key(name: str = "bert-tiny") -> str:
    from importlib.metadata import version

    import frontends

    root = Path(frontends.__file__).parent
    digest = hashlib.sha256(f"{name} {BATCH} {SEQ} {VOCAB} {SEED} torch {version('torch')} "
                            f"onnx {version('onnx')}".encode())
    for source in [root / "export.py", *sorted((root / "zoo").glob("*.py"))]:
        digest.update(source.name.encode() + source.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def zoo_onnx(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``zoo_onnx(name) -> Path``: the zoo model exported at the sizes above (cached)."""
    cache = getattr(request.config, "cache", None)     # None with -p no:cacheprovider
    directory = Path(cache.mkdir("dynaprop_ir")) if cache is not None else \
        tmp_path_factory.mktemp("dynaprop_ir")

    def export(name: str) -> Path:
        path = directory / f"{name}-{_export_key(name)}.onnx"
        if not path.exists():
            from frontends.export import export_onnx

            scratch = directory / f"{name}.{os.getpid()}.partial.onnx"  # one per xdist worker
            export_onnx(name, scratch, exporter="torchscript", batch=BATCH, seq=SEQ,
                        seed=SEED, vocab_size=VOCAB)
            scratch.replace(path)
        return path

    return export


@pytest.fixture(scope="session")
def bert_tiny(zoo_onnx) -> BertTiny:  # noqa: ANN001
    from frontends.onnx import import_onnx

    path = zoo_onnx("bert-tiny")
    return BertTiny(path, import_onnx(path, SHAPES, name="bert_tiny", copy_weights=True))
