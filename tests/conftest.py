"""Fixtures shared by every test folder: one ONNX export of each zoo model per run.

Exporting a zoo model is the slowest thing the suite does (the dynamo exporter
takes 10-60 s of CPU even for a 2-layer model), and several folders need the
same files: tests/zoo checks the exports themselves, tests/frontend imports
them.  :func:`onnx_exports` (session-scoped) exports each ``(model, exporter,
opset, dynamic, batch, seq)`` once per test run into one folder that every
pytest-xdist worker of the run shares; a lock file per export makes a second
worker (or the zoo tests' background prefetch process) wait for the first
one's file instead of exporting the same model again.  Files are written into
a private folder and renamed into place, so nobody sees half an export.

The tests of the compiler (tests/passes, tests/dynaprop_ir, tests/backend_onnx,
tests/elector_compile, tests/elector_event, tests/reports) share the
TorchScript exports with a 512-token vocabulary (``onnx_exports(name,
"torchscript", vocab_size=SMALL_VOCAB)``), traced at the shared sizes: a
dynamic-shape TorchScript export does not depend on the trace sizes (the
files of BERT-Tiny traced at 2x16, 2x8 and 1x16 differ only in the
``transcode.example_*`` metadata), so each folder imports the one file at the
sizes it needs.

The folder is the run's temporary root (``pytest --basetemp`` or pytest's
numbered ``pytest-of-<user>/pytest-N``), so a new run exports afresh: the
files depend on torch, onnx and the zoo sources, and a stale file would
hide a change.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

#: Example sizes the shared exports are traced at.  Dynamic-shape exports do
#: not depend on them (tests run them at other sizes); fixed-shape exports do,
#: and ask for their own sizes.
SHARED_TRACE_BATCH = 2
SHARED_TRACE_SEQ = 16
#: The embedding table of the compiler tests' exports (the encoders keep their
#: layers, widths and heads; only the vocabulary is shorter).
SMALL_VOCAB = 512


def export_stem(name: str, exporter: str, *, batch: int, seq: int, opset: int | None,
                dynamic: bool, vocab_size: int | None = None) -> str:
    return (f"{name}-{exporter}{opset or ''}-b{batch}s{seq}"
            f"{f'-v{vocab_size}' if vocab_size else ''}{'' if dynamic else '-static'}")


def export_once(directory: str | os.PathLike[str], name: str, exporter: str, *, batch: int,
                seq: int, opset: int | None = None, dynamic: bool = True,
                vocab_size: int | None = None) -> Any:
    """``export_onnx(name, ...)`` of the seed-0 zoo model into ``directory``,
    once per directory: the first caller (any process) exports under a lock,
    later ones read its result.  Returns the :class:`ExportResult`.
    ``vocab_size`` picks a smaller embedding table, as in ``export_onnx``."""
    from frontends.export import ExportResult

    directory = Path(directory)
    stem = export_stem(name, exporter, batch=batch, seq=seq, opset=opset, dynamic=dynamic,
                       vocab_size=vocab_size)
    final = directory / stem
    record = final / "result.json"
    if not record.exists():
        with locked(directory / f"{stem}.lock"):
            if not record.exists():
                _export_into(directory, final, name, exporter, batch=batch, seq=seq,
                             opset=opset, dynamic=dynamic, vocab_size=vocab_size)
    fields = json.loads(record.read_text())
    fields["path"] = final / "model.onnx"
    fields["output_names"] = tuple(fields["output_names"])
    return ExportResult(**fields)


def _export_into(directory: Path, final: Path, name: str, exporter: str, **options: Any) -> None:
    from frontends.export import export_onnx

    staging = Path(tempfile.mkdtemp(prefix=f"{final.name}.", dir=directory))
    try:
        result = export_onnx(name, staging / "model.onnx", exporter=exporter, seed=0, **options)
        fields = asdict(result)
        fields.pop("path")
        (staging / "result.json").write_text(json.dumps(fields))
        os.rename(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class OnnxExports:
    """The run's shared export folder; call it like ``export_once`` without
    the folder."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __call__(self, name: str, exporter: str, *, batch: int = SHARED_TRACE_BATCH,
                 seq: int = SHARED_TRACE_SEQ, opset: int | None = None, dynamic: bool = True,
                 vocab_size: int | None = None) -> Any:
        return export_once(self.directory, name, exporter, batch=batch, seq=seq, opset=opset,
                           dynamic=dynamic, vocab_size=vocab_size)


def run_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """``<the run's temporary root>/<name>``: one folder per test run that
    every pytest-xdist worker of the run shares (made when missing).  Fixtures
    keep files made once per run here (guard each with :func:`locked`); it
    needs no pytest cache, so it works under ``-p no:cacheprovider``."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent                  # the workers' common temporary root
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (made when missing): the
    other processes of the run (xdist workers) wait at the same path."""
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)        # released when the file closes
        yield


@pytest.fixture(scope="session")
def onnx_exports(tmp_path_factory: pytest.TempPathFactory) -> OnnxExports:
    """Exports of zoo models shared by every test (and xdist worker) of the run."""
    return OnnxExports(run_folder(tmp_path_factory, "onnx-exports"))

