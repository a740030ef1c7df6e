"""Fixtures of the report tests: BERT-Tiny (batch 2, seq 32) compiled onto
acceltran-edge once per session with each simulator, and a small sweep
database made with the synthetic evaluator.

The ONNX export is the one tests/elector_compile reads (the run's shared
export, made once per run by ``onnx_exports`` in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import OnnxExports
from tests.elector_compile.conftest import ZooCache


@pytest.fixture(scope="session")
def bert_tiny_onnx(onnx_exports: OnnxExports) -> Path:
    return ZooCache(onnx_exports).onnx("bert-tiny")


@pytest.fixture(scope="session")
def reports(bert_tiny_onnx: Path) -> dict:
    """``{"analytical": Report, "event": Report}`` of BERT-Tiny on acceltran-edge."""
    from tools.commands.compile import compile_model

    return {sim: compile_model(str(bert_tiny_onnx), "acceltran-edge", batch=2, seq=32,
                               sim=sim).report
            for sim in ("analytical", "event")}


@pytest.fixture(scope="session")
def sweep_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results database of 24 synthetic evaluations of transcode-space."""
    from tools.cli import main

    db = tmp_path_factory.mktemp("sweep") / "sweep.sqlite"
    assert main(["sweep", "transcode-space", "--model", "zoo:bert-tiny", "--db", str(db),
                 "--budget", "24", "--synthetic", "--no-report"]) == 0
    return db


@pytest.fixture(scope="session")
def compiled(bert_tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``tcc compile`` of BERT-Tiny with the event simulator, writing the JSON
    report, the HTML report and the trace of the same run."""
    from tools.cli import main

    folder = tmp_path_factory.mktemp("compiled")
    paths = {"json": folder / "report.json", "html": folder / "report.html",
             "trace": folder / "trace.json"}
    assert main(["compile", str(bert_tiny_onnx), "--hw", "acceltran-edge", "--batch", "2",
                 "--seq", "32", "--sim", "event", "--json", str(paths["json"]),
                 "--html", str(paths["html"]), "--trace", str(paths["trace"])]) == 0
    return paths
