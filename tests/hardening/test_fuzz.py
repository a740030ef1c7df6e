"""The fuzzers of :mod:`tests.hardening.fuzzers`, a few examples each in
``make test`` (``TCC_FUZZ_EXAMPLES`` raises the count; ``make fuzz`` runs
many more and prints count and time).  Each asserts: success, one error
paragraph, or a usage error -- never a traceback."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

from tests.hardening import fuzzers

EXAMPLES = int(os.environ.get("TCC_FUZZ_EXAMPLES", "15"))
# Derandomised: make test draws the same examples every run (a new input
# found failing is make fuzz's job, which draws fresh ones each run).
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


@FUZZ
@given(fuzzers.hwdsl_inputs())
def test_fuzz_hwdsl(text: str) -> None:
    fuzzers.fuzz_hwdsl(text)


@FUZZ
@given(fuzzers.tir_inputs())
def test_fuzz_tir_and_npz(case) -> None:
    fuzzers.fuzz_tir(case)


@FUZZ
@given(fuzzers.onnx_inputs())
def test_fuzz_onnx(case) -> None:
    pytest.importorskip("onnx")
    fuzzers.fuzz_onnx(case)


@FUZZ
@given(fuzzers.command_lines())
def test_fuzz_command_lines(argv) -> None:
    fuzzers.fuzz_cli(argv)
