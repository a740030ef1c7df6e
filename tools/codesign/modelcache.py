"""Build, import and prepare each distinct model once; cost it on many designs.

A *prepared model* is the :class:`~backends.elector.tiling.StaticFunction` of
one model at one batch size, sequence length and pass pipeline: everything
the ELECTOR cost path needs that does not depend on the design.  Getting one
goes through three caches, cheapest first:

1. **memory** (per process, LRU of ``memory_items``);
2. **disk**: ``<cache>/modules/<sha>.tir`` -- the IR text after the pipeline,
   parameters left out (costing needs types, not weights); parsing it back
   takes a fraction of a second even for BERT-Base;
3. **build**: the zoo model is exported to ONNX once per (description,
   vocabulary, exporter) -- ``<cache>/onnx/<sha>.onnx``, with symbolic batch
   and sequence, so every batch size reuses it -- then imported with the
   shapes bound, the pipeline run, and the text written to (2).

The file names are hashes of everything that determines their content
(:meth:`ModelKey.digest`: the key's fields, the tool version and a hash of
the sources of the zoo, exporter, importer, passes and IR core).  Files are
written to a temporary name and renamed, under an exclusive ``fcntl`` lock
per key, so that workers building the same model at the same time build it
once and never read half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import fields as fields_of
from pathlib import Path
from typing import Any

from transcode_ir.defaults import INFERENCE_PIPELINE, SEQUENCE_LENGTH

__all__ = ["ModelCache", "ModelKey", "default_cache_dir"]

CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``$TRANSCODE_CACHE`` or ``~/.cache/transcode``."""
    root = os.environ.get("TRANSCODE_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "transcode"


@dataclass(frozen=True)
class ModelKey:
    """What determines a prepared model.  ``pipeline``: the pass objects run
    after import (pipeline text is accepted and parsed once, here); the key
    hashes and compares them as objects, and names its files by their printed
    form (:attr:`pipeline_text`, exact: floats print as ``repr``)."""

    description: str
    batch: int
    seq: int = SEQUENCE_LENGTH
    pipeline: Any = INFERENCE_PIPELINE          # tuple of pass objects after __post_init__
    function: str = "forward"
    vocab_size: int | None = None
    exporter: str = "torchscript"

    def __post_init__(self) -> None:
        from transcode_ir.passes import parse_pipeline

        object.__setattr__(self, "pipeline", tuple(parse_pipeline(self.pipeline)))

    @property
    def pipeline_text(self) -> str:
        from transcode_ir.passes import format_pipeline

        return format_pipeline(self.pipeline)

    def digest(self) -> str:
        from tools.version import TOOL_VERSION

        fields = {**{f.name: getattr(self, f.name) for f in fields_of(self)},
                  "pipeline": self.pipeline_text}
        text = json.dumps({**fields, "format": CACHE_FORMAT, "tool": TOOL_VERSION,
                           "code": code_fingerprint()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def onnx_digest(self) -> str:
        text = json.dumps({"description": self.description, "vocab": self.vocab_size,
                           "exporter": self.exporter, "format": CACHE_FORMAT,
                           "code": code_fingerprint(("frontends",))}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]


_FINGERPRINTS: dict[tuple[str, ...], str] = {}


def code_fingerprint(packages: tuple[str, ...] = ("frontends", "passes", "transcode_ir")
                     ) -> str:
    """A hash of the Python sources that turn a description into prepared IR
    (zoo, exporter, importer, passes, IR core), so a cached file made by
    other code is never reused."""
    cached = _FINGERPRINTS.get(packages)
    if cached is not None:
        return cached
    import importlib

    digest = hashlib.sha256()
    for package in packages:
        root = Path(importlib.import_module(package).__file__).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root.parent)).encode())
            digest.update(path.read_bytes())
    _FINGERPRINTS[packages] = digest.hexdigest()[:16]
    return _FINGERPRINTS[packages]


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


class ModelCache:
    """Prepared models by :class:`ModelKey` (see the module docstring).

    ``stats`` counts where each request was served from (``memory``,
    ``disk``, ``built``), so tests and benchmarks can check that a model is
    exported and imported once.
    """

    def __init__(self, directory: str | Path | None = None, memory_items: int = 8) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.memory_items = memory_items
        self._memory: OrderedDict[ModelKey, Any] = OrderedDict()
        self.stats = {"memory": 0, "disk": 0, "built": 0, "exported": 0}

    def __getstate__(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "memory_items": self.memory_items}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["directory"], state["memory_items"])  # type: ignore[misc]

    def module_path(self, key: ModelKey) -> Path:
        return self.directory / "modules" / f"{key.digest()}.tir"

    def static(self, key: ModelKey) -> Any:
        """The :class:`StaticFunction` of ``key`` (memory, disk or built)."""
        cached = self._memory.get(key)
        if cached is not None:
            self._memory.move_to_end(key)
            self.stats["memory"] += 1
            return cached
        module = self.module(key)
        from backends.elector.tiling import StaticFunction

        static = StaticFunction(module, key.function)
        self._memory[key] = static
        while len(self._memory) > self.memory_items:
            self._memory.popitem(last=False)
        return static

    def module(self, key: ModelKey) -> Any:
        """The IR module of ``key`` after its pipeline (disk or built)."""
        from transcode_ir.serialization import load_module

        path = self.module_path(key)
        if path.exists():
            self.stats["disk"] += 1
            return load_module(path, with_params=False)
        with file_lock(path.with_suffix(".lock")):
            if path.exists():
                self.stats["disk"] += 1
                return load_module(path, with_params=False)
            module = self._build(key)
            from transcode_ir.printer import print_module

            atomic_write_text(path, print_module(module))
            self.stats["built"] += 1
            return module

    def onnx_path(self, key: ModelKey) -> Path:
        """The model's ONNX export (symbolic batch and sequence), exported once."""
        path = self.directory / "onnx" / f"{key.onnx_digest()}.onnx"
        if path.exists():
            return path
        with file_lock(path.with_suffix(".lock")):
            if path.exists():
                return path
            from frontends.export import export_onnx  # imports torch

            temporary = path.with_name(path.stem + f".{os.getpid()}.tmp.onnx")
            export_onnx(key.description, temporary, exporter=key.exporter, batch=2,
                        seq=min(key.seq, 16), vocab_size=key.vocab_size, check=False)
            os.replace(temporary, path)
            self.stats["exported"] += 1
        return path

    def _build(self, key: ModelKey) -> Any:
        from frontends.onnx import import_onnx
        from transcode_ir.pass_manager import run_pipeline

        onnx_path = self.onnx_path(key)
        module = import_onnx(onnx_path, {"input_ids": (key.batch, key.seq),
                                         "attention_mask": (key.batch, key.seq)},
                             name="model", copy_weights=False)
        run_pipeline(module, key.pipeline)
        if key.function not in module.functions:
            from transcode_ir.errors import UserError

            raise UserError(f"pipeline {key.pipeline_text!r} did not build @{key.function}")
        return module
