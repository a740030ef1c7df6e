"""Session-wide caches for zoo tests: built models and ONNX exports.

Exports are slow (the dynamo exporter takes several seconds even for a 2-layer
model), so each ``(model, exporter, options)`` is exported once per session
into a temporary directory and shared by every test that needs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: Example sizes used for tracing; tests run the files at other sizes too.
TRACE_BATCH = 2
TRACE_SEQ = 16
FLEXIBERT_MODELS = ("flexibert-mix-a", "flexibert-mix-b", "flexibert-mix-c")
EXPORT_TEST_MODELS = ("bert-tiny",) + FLEXIBERT_MODELS
#: Opsets the dynamo exports of the shared test models use: the default (18) for
#: two of them and 19 and 20 for the others, so that opsets 18-20 are all tested
#: without extra (slow) dynamo exports.
DYNAMO_TEST_OPSETS = {"flexibert-mix-b": 19, "flexibert-mix-c": 20}


@dataclass
class ZooCache:
    directory: Path
    models: dict[tuple[str, int], Any] = field(default_factory=dict)
    exports: dict[tuple[Any, ...], Any] = field(default_factory=dict)

    def model(self, name: str, seed: int = 0) -> Any:
        """``build_model(name, seed)``, built once per session (do not modify it)."""
        key = (name, seed)
        if key not in self.models:
            from frontends.zoo import build_model

            self.models[key] = build_model(name, seed=seed)
        return self.models[key]

    def export(self, name: str, exporter: str, **options: Any) -> Any:
        """``export_onnx`` of the cached seed-0 model; returns the ExportResult.

        Dynamo exports use :data:`DYNAMO_TEST_OPSETS` unless ``opset`` is given.
        """
        options.setdefault("batch", TRACE_BATCH)
        options.setdefault("seq", TRACE_SEQ)
        if exporter == "dynamo":
            options.setdefault("opset", DYNAMO_TEST_OPSETS.get(name))
        key = (name, exporter, tuple(sorted(options.items())))
        if key not in self.exports:
            from frontends.export import export_onnx

            stem = "-".join([name, exporter] + [f"{k}{v}" for k, v in sorted(options.items())])
            path = self.directory / f"{stem}.onnx"
            self.exports[key] = export_onnx(self.model(name), path, exporter=exporter, **options)
        return self.exports[key]


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory: pytest.TempPathFactory) -> ZooCache:
    return ZooCache(tmp_path_factory.mktemp("zoo-exports"))
