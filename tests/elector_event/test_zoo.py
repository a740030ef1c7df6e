"""The event simulator on every zoo model x library design, inference and a
training step (sizes in conftest.py: small batch x sequence; the encoders keep
their real depth and widths).

Properties:

* never faster than the roofline bound of any op, nor of the whole run, nor
  than the analytical critical path relaxed of its conservative terms
  (:func:`backends.elector.event_compare.analytical_variants`, a true lower
  bound of the event model);
* energy and area parts sum to their totals; utilisation and the timeline
  stay within [0, 1]; stalls are non-negative, per op and in total;
* twice the main-memory bandwidth is never slower (by default the cases
  that simulate in a few seconds: every model but BERT-Medium/Base for
  inference on tiny-test and for training, and training not on tiny-test;
  all of them with ``TCC_ZOO_FULL=1``).

Agreement with the analytical simulator (the issue's checks, on every case):

* the dynamic energy is the same (same activity, same prices) and leakage
  scales with the run length: energy differs only through leakage;
* total latency within 10% and total energy within 5%;
* the event report says why they differ (its notes: the totals, the
  analytical terms behind the gap, the stall classes).
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from backends.elector.analytical import simulate_analytical
from backends.elector.event_compare import analytical_variants
from backends.elector.event_sim import simulate_event
from backends.elector.schedule import STALL_CLASSES
from backends.elector.tiling import hardware_consts
from tests.elector_event.conftest import FULL, LIBRARY_DESIGNS, ZOO_MODELS, slow_case

REL = 1e-9


def _double_bandwidth(accelerator):
    memory = accelerator.main_memory
    bandwidth = accelerator.main_memory_costs().bandwidth_bytes_per_s
    faster = dataclasses.replace(memory, bandwidth_bytes_per_s=2 * bandwidth)
    return dataclasses.replace(accelerator, main_memory=faster, name=accelerator.name + "-2xbw")


def _check_properties(result, mapped, label: str) -> None:
    assert len(result.ops) == len(mapped.ops)
    for op in result.ops:
        # cycles = end - start: allow the rounding of the two times.
        slack = 4 * math.ulp(op.end_cycle)
        assert op.cycles >= op.roofline_cycles * (1 - REL) - slack, \
            f"{label}: op {op.index} takes {op.cycles} < its roofline {op.roofline_cycles}"
        assert 0 <= op.start_cycle <= op.end_cycle <= result.cycles * (1 + REL)
        assert set(op.stalls) == set(STALL_CLASSES) and min(op.stalls.values()) >= 0
    assert result.cycles >= result.roofline_cycles * (1 - REL), label
    assert 0 < result.achieved_fraction <= 1 + REL
    energy = result.energy
    assert sum(row.total_nj for row in energy.rows) == pytest.approx(energy.total_nj, rel=REL)
    assert energy.dynamic_nj + energy.leakage_nj == pytest.approx(energy.total_nj, rel=REL)
    assert all(row.dynamic_nj >= 0 and (row.leakage_nj or 0.0) >= 0 for row in energy.rows)
    area = [v for v in result.area_um2.values() if v is not None]
    assert sum(area) == pytest.approx(result.area_total_um2, rel=REL)
    assert result.area_um2["main_memory"] is None
    for kind, value in result.utilisation.items():
        assert 0.0 <= value <= 1.0 + REL, (label, kind, value)
    assert set(result.stalls) == set(STALL_CLASSES) and min(result.stalls.values()) >= 0
    assert sum(result.stalls.values()) == pytest.approx(
        sum(sum(op.stalls.values()) for op in result.ops), rel=1e-6)
    assert result.timeline and all(0.0 <= v <= 1.0 for p in result.timeline
                                   for v in p.utilisation.values())


CASES = [pytest.param(model, hw, train, id=f"{model}-{hw}-{'train' if train else 'infer'}",
                      marks=[pytest.mark.skipif(slow_case(model, hw, train) and not FULL,
                                                reason="slow; TCC_ZOO_FULL=1 runs it")])
         for train in (False, True) for model in ZOO_MODELS for hw in LIBRARY_DESIGNS]


@pytest.mark.parametrize(("model", "hw", "train"), CASES)
def test_zoo_on_library(model: str, hw: str, train: bool, mapped_zoo) -> None:
    mapped, accelerator = mapped_zoo.get(model, hw, train)
    label = f"{model} {'training' if train else 'inference'} on {hw}"
    event = simulate_event(mapped, accelerator)
    analytical = simulate_analytical(mapped, accelerator)
    assert event.simulator == "event"
    _check_properties(event, mapped, label)

    # Never below the analytical critical path without its conservative terms.
    variants = analytical_variants(mapped, hardware_consts(accelerator, mapped.training))
    assert variants["analytical"] == pytest.approx(analytical.cycles, rel=REL)
    assert event.cycles >= variants["relaxed"] * (1 - REL), label

    # Same activity, same prices: energy differs only through leakage.
    ev_rows, an_rows = event.energy.by_class(), analytical.energy.by_class()
    for name, row in ev_rows.items():
        assert row.dynamic_nj == pytest.approx(an_rows[name].dynamic_nj, rel=REL), (label, name)
        if row.leakage_nj is not None and an_rows[name].leakage_nj:
            assert row.leakage_nj / an_rows[name].leakage_nj == pytest.approx(
                event.cycles / analytical.cycles, rel=1e-6)
    assert event.bytes_by_level == analytical.bytes_by_level

    gap = event.cycles / analytical.cycles - 1
    energy_gap = event.energy.total_nj / analytical.energy.total_nj - 1
    assert abs(gap) <= 0.10, f"{label}: event {event.cycles:,.0f} vs analytical " \
        f"{analytical.cycles:,.0f} cycles ({gap:+.1%})\n" + "\n".join(event.notes)
    assert abs(energy_gap) <= 0.05, f"{label}: energy {energy_gap:+.1%}"
    assert any(note.startswith("event vs analytical") for note in event.notes)
    assert any(note.startswith("stall cycles") for note in event.notes) or \
        sum(event.stalls.values()) == 0

    big = model in ("bert-medium", "bert-base")
    if FULL or not (big and (train or hw == "tiny-test")) and not (train and hw == "tiny-test"):
        faster = simulate_event(mapped, _double_bandwidth(accelerator), compare=False)
        assert faster.cycles <= event.cycles * (1 + REL), \
            f"{label}: twice the main-memory bandwidth is slower ({faster.cycles} > {event.cycles})"
