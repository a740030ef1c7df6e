"""The event simulator's memory (issue 13: 3.76 GB and 4 min at batch
16,384 x seq 512).  Transfer tables whose period grows with the batch are
computed from their streams instead of stored (same values, so the same
results), chunk scans are blocked, and what still grows with the batch is
estimated first: beyond ``TCC_EVENT_SIM_MEMORY`` the run is refused with
the memory it would need."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backends.elector.event_sim as event_sim
import backends.elector.event_stages as event_stages
from backends.elector.event_stages import PeriodicTable, transfer_units
from tests.hardening.conftest import assert_user_error, run_tcc

SMALL_MATMULS = """module @mm {
  param @w : tensor<32x32xf32> {kind = "weight"}
  func @forward(%x: tensor<2x64x32xf32>) -> (y: tensor<2x64x32xf32>) {
    %0 = tensor.param() {name = "w"} : tensor<32x32xf32> loc("w")
    %1 = tensor.matmul(%x, %0) : tensor<2x64x32xf32> loc("mm")
    %2 = tensor.matmul(%1, %0) : tensor<2x64x32xf32> loc("mm2")
    func.return(%2)
  }
}
"""


@st.composite
def streams(draw: st.DrawFn):
    period = draw(st.sampled_from([1, 2, 4, 6, 12, 64, 96]))
    divisors = [d for d in range(1, period + 1) if period % d == 0]
    out = []
    for _ in range(draw(st.integers(1, 4))):
        every = draw(st.sampled_from(divisors))
        out.append((draw(st.floats(0.0, 1e6, allow_nan=False)), every,
                    draw(st.integers(0, every - 1))))
    return period, tuple(out), draw(st.sampled_from([0.5, 1.0, 8.0, 64.0, 1e3]))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(streams())
def test_periodic_table_equals_the_stored_table(case) -> None:
    period, items, bandwidth = case
    table = np.zeros(period)
    for amount, every, phase in items:
        table[phase::every] += amount
    stored = transfer_units(table, bandwidth)
    lazy = PeriodicTable(period, items, bandwidth)
    rho = np.arange(period)
    assert np.array_equal(lazy[rho], stored)
    assert all(lazy[int(r)] == stored[r] for r in range(period))
    assert lazy.any() == bool(stored.any())


def _report(path: Path) -> str:
    from tools.commands.compile import compile_model

    report = compile_model(str(path), "tiny-test", sim="event").report
    return json.dumps(report.to_json(), sort_keys=True, default=str)


def test_computed_tables_give_the_same_simulation(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Every table computed (limit 1) versus stored: identical report."""
    path = tmp_path / "mm.tir"
    path.write_text(SMALL_MATMULS)
    stored = _report(path)
    made = []
    original = PeriodicTable.__init__

    def counting(self, *args):
        made.append(args[0])
        original(self, *args)
    monkeypatch.setattr(PeriodicTable, "__init__", counting)
    monkeypatch.setattr(event_stages, "MAX_TABLE_PERIOD", 1)
    monkeypatch.setattr(event_sim, "MAX_TABLE_PERIOD", 1)
    computed = _report(path)
    assert made and max(made) > 1           # some stage really had a periodic table
    assert computed == stored


def test_refusal_names_the_memory_it_would_need(tmp_path: Path, module_file: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TCC_EVENT_SIM_MEMORY", "1M")
    err = assert_user_error(run_tcc(["compile", module_file, "--hw", "tiny-test", "--sim",
                                     "event"], capsys),
                            "the event simulator would need about", "GiB", "limit of 0.0 GiB",
                            "--sim analytical", "TCC_EVENT_SIM_MEMORY")
    assert "tiles" in err


@pytest.mark.parametrize("value", ["lots", "-1G", "1.5.2M"])
def test_bad_memory_setting(module_file: Path, value: str, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TCC_EVENT_SIM_MEMORY", value)
    assert_user_error(run_tcc(["compile", module_file, "--hw", "tiny-test", "--sim", "event"],
                              capsys), "TCC_EVENT_SIM_MEMORY", "expected a size")


def test_memory_setting_units(monkeypatch: pytest.MonkeyPatch) -> None:
    for text, expected in (("4G", 4 * 2**30), ("512M", 512 * 2**20), ("2048", 2048),
                           ("1.5GiB", 3 * 2**29)):
        monkeypatch.setenv("TCC_EVENT_SIM_MEMORY", text)
        assert event_sim.memory_limit() == expected
    monkeypatch.delenv("TCC_EVENT_SIM_MEMORY")
    assert event_sim.memory_limit() == event_sim.DEFAULT_MEMORY_LIMIT
