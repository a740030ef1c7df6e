"""Fixtures of the ``tcc compile`` tests: zoo models exported, imported and
lowered once per session.

Exporting with torch is the slow step (BERT-Base: about a minute on two
loaded cores), so each export is made once per test run, in the run's shared
export folder (``onnx_exports`` in tests/conftest.py: TorchScript, seed 0, a
512-token vocabulary), which tests/passes, tests/backend_onnx,
tests/dynaprop_ir, tests/elector_event and tests/reports read too.

The exported graphs have symbolic batch and sequence; each test imports them
at the size it needs (small for the big models, to stay fast).  Modules are
imported, run through the inference or training pipeline, and turned into
:class:`~backends.elector.tiling.StaticFunction` once per session.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import SMALL_VOCAB, OnnxExports
from transcode_ir import Module

VOCAB, SEED = SMALL_VOCAB, 0
ZOO_MODELS = ("bert-tiny", "bert-mini", "bert-small", "bert-medium", "bert-base",
              "flexibert-mix-a", "flexibert-mix-b", "flexibert-mix-c")
LIBRARY_DESIGNS = ("acceltran-edge", "acceltran-server", "hbm-server", "tiny-test")


class ZooCache:
    """Torch exports of zoo models (the run's shared exports) and their
    lowered IR (cached in memory): ``module(name, batch, seq, train)``."""

    def __init__(self, exports: OnnxExports) -> None:
        self.exports = exports
        self._modules: dict[tuple, Module] = {}
        self._statics: dict[tuple, object] = {}

    def onnx(self, name: str) -> Path:
        return self.exports(name, "torchscript", vocab_size=VOCAB).path

    def module(self, name: str, batch: int, seq: int, train: bool = False,
               optimizer: str = "adam") -> Module:
        """The lowered (not yet mapped) module: ``default`` or the training pipeline."""
        key = (name, batch, seq, train, optimizer)
        if key not in self._modules:
            from backends.elector.compile_pipeline import loss_output, training_pipeline
            from tools.commands.compile import import_onnx_file
            from transcode_ir import run_pipeline

            module = import_onnx_file(self.onnx(name), batch, seq)
            pipeline = (training_pipeline(optimizer, loss_output(module)) if train
                        else "default")
            run_pipeline(module, pipeline, verify_each=False)
            self._modules[key] = module
        return self._modules[key]

    def static(self, name: str, batch: int, seq: int, train: bool = False):  # -> StaticFunction
        key = (name, batch, seq, train)
        if key not in self._statics:
            from backends.elector.tiling import StaticFunction

            module = self.module(name, batch, seq, train)
            self._statics[key] = StaticFunction(module, "train_step" if train else "forward")
        return self._statics[key]


def mapped_pruned_bert_tiny(zoo: ZooCache, accelerator, density: float):
    """BERT-Tiny (batch 2, seq 32) with DynaProp's prune points at an assumed
    ``density`` and tiles fixed at 16x16, mapped onto ``accelerator``."""
    from backends.elector.mapping import map_function
    from backends.elector.tiling import StaticFunction, schedule_function
    from transcode_ir import run_pipeline

    module = zoo.module("bert-tiny", 2, 32).clone()
    run_pipeline(module, f"dynaprop{{tau-i=0.01,density={density}}},tile{{x=16,y=16}}")
    static = StaticFunction(module, "forward")
    assert static.densities.get("assumed", 0) > 0
    mappings, plan = map_function(static, accelerator)
    return schedule_function(static, accelerator, mappings, plan=plan)


@pytest.fixture(scope="session")
def zoo(onnx_exports: OnnxExports) -> ZooCache:
    return ZooCache(onnx_exports)


@pytest.fixture(scope="session")
def design() -> Callable:
    from backends.elector import resolve_design

    cache: dict[str, object] = {}

    def get(name: str):  # -> Accelerator
        if name not in cache:
            cache[name] = resolve_design(name)
        return cache[name]

    return get
