"""Session-wide caches for zoo tests: built models and ONNX exports.

Exports are slow (the dynamo exporter takes 10-20 s of CPU even for a 2-layer
model), so each ``(model, exporter, options)`` is exported once per run into
the run's shared export folder (``onnx_exports`` in tests/conftest.py), which
tests/frontend reads too: the dynamic-shape exports the two folders need are
the same files, made once.

The slow exports (BERT-Base with TorchScript, the dynamo exports of the shared
test models) are also *prefetched*: when the session starts and such tests are
selected, one background process (``spawn``, one torch thread) exports them
into the shared folder (under its per-export lock, so nothing is exported
twice) while the other tests run in the main process, and the tests that need
dynamo exports are moved to the end of the run.  On two cores this roughly
halves the wall time of ``pytest tests/zoo``.  The background process builds
the same seed-0 models (builds are deterministic, which ``test_models``
checks).  Set ``TRANSCODE_ZOO_TEST_PREFETCH=0`` to export everything inline
instead.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import SHARED_TRACE_BATCH, SHARED_TRACE_SEQ

#: Example sizes used for tracing (the shared exports' sizes, which
#: tests/frontend reads too); tests run the files at other sizes too.
TRACE_BATCH = SHARED_TRACE_BATCH
TRACE_SEQ = SHARED_TRACE_SEQ
FLEXIBERT_MODELS = ("flexibert-mix-a", "flexibert-mix-b", "flexibert-mix-c")
EXPORT_TEST_MODELS = ("bert-tiny",) + FLEXIBERT_MODELS
#: Opsets the dynamo exports of the shared test models use: the default (18) for
#: two of them and 19 and 20 for the others, so that opsets 18-20 are all tested
#: without extra (slow) dynamo exports.
DYNAMO_TEST_OPSETS = {"flexibert-mix-b": 19, "flexibert-mix-c": 20}


def _export_in_worker(directory: str, name: str, exporter: str, options: dict[str, Any]) -> Any:
    """Runs in the background process: export into the shared folder (once)."""
    import torch

    from tests.conftest import export_once

    torch.set_num_threads(1)
    return export_once(directory, name, exporter, **options)


@dataclass
class ZooCache:
    directory: Path
    models: dict[tuple[str, int], Any] = field(default_factory=dict)
    exports: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    pending: dict[tuple[Any, ...], Future] = field(default_factory=dict)
    pool: ProcessPoolExecutor | None = None

    def model(self, name: str, seed: int = 0) -> Any:
        """``build_model(name, seed)``, built once per session (do not modify it)."""
        key = (name, seed)
        if key not in self.models:
            from frontends.zoo import build_model

            self.models[key] = build_model(name, seed=seed)
        return self.models[key]

    @staticmethod
    def _options(name: str, exporter: str, options: dict[str, Any]) -> dict[str, Any]:
        options = dict(options)
        options.setdefault("batch", TRACE_BATCH)
        options.setdefault("seq", TRACE_SEQ)
        if exporter == "dynamo":
            options.setdefault("opset", DYNAMO_TEST_OPSETS.get(name))
        return options

    @staticmethod
    def _key(name: str, exporter: str, options: dict[str, Any]) -> tuple[Any, ...]:
        return (name, exporter, tuple(sorted(options.items())))

    def prefetch(self, name: str, exporter: str, **options: Any) -> None:
        """Start exporting in the background process (no-op without a pool)."""
        options = self._options(name, exporter, options)
        key = self._key(name, exporter, options)
        if self.pool is not None and key not in self.exports and key not in self.pending:
            self.pending[key] = self.pool.submit(_export_in_worker, str(self.directory), name,
                                                 exporter, options)

    def export(self, name: str, exporter: str, **options: Any) -> Any:
        """``export_onnx`` of the seed-0 model; returns the ExportResult.

        Dynamo exports use :data:`DYNAMO_TEST_OPSETS` unless ``opset`` is given.
        """
        from tests.conftest import export_once

        options = self._options(name, exporter, options)
        key = self._key(name, exporter, options)
        if key not in self.exports:
            if key in self.pending:
                self.exports[key] = self.pending.pop(key).result()
            else:
                self.exports[key] = export_once(self.directory, name, exporter, **options)
        return self.exports[key]


@pytest.fixture(scope="session")
def zoo_cache(onnx_exports: Any) -> Iterator[ZooCache]:
    cache = ZooCache(onnx_exports.directory)
    yield cache
    if cache.pool is not None:
        cache.pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session", autouse=True)
def _prefetch_slow_exports(request: pytest.FixtureRequest) -> None:
    """Start the slow exports in the background as soon as the zoo tests begin."""
    if os.environ.get("TRANSCODE_ZOO_TEST_PREFETCH", "1") == "0":
        return
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return  # under pytest-xdist each worker collects every test: export inline
    selected = [item.nodeid for item in request.session.items if "tests/zoo/" in item.nodeid]
    jobs = []  # in the order in which the tests will ask for them
    if any(nodeid.endswith("::test_bert_base_torchscript") for nodeid in selected):
        jobs.append(("bert-base", "torchscript"))
    for name in EXPORT_TEST_MODELS:
        if any(nodeid.endswith(f"[{name}-dynamo]") for nodeid in selected):
            jobs.append((name, "dynamo"))
    if not jobs:
        return
    cache: ZooCache = request.getfixturevalue("zoo_cache")
    cache.pool = ProcessPoolExecutor(max_workers=1,
                                     mp_context=multiprocessing.get_context("spawn"))
    for name, exporter in jobs:
        cache.prefetch(name, exporter)


def _uses_dynamo_export(item: pytest.Item) -> bool:
    return "tests/zoo/" in item.nodeid and "dynamo]" in item.nodeid


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the zoo tests that need dynamo exports last, to overlap with the prefetch."""
    items[:] = [i for i in items if not _uses_dynamo_export(i)] + [
        i for i in items if _uses_dynamo_export(i)
    ]
