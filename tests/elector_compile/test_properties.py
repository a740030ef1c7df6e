"""Properties of the analytical simulator on every zoo model x library design,
for inference and for a training step.

* never faster than the roofline bound of any op, nor of the whole run;
* energy and area parts sum to their totals;
* twice the main-memory bandwidth is never slower;
* every chosen mapping passes the z3 check.

Models are imported small (batch x sequence below) to keep this quick; the
encoders keep their real depth and widths.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from backends.elector.compile_pipeline import evaluate
from tests.elector_compile.conftest import LIBRARY_DESIGNS, ZOO_MODELS

SIZES = {"bert-small": (2, 16), "bert-medium": (2, 16), "bert-base": (2, 16)}
REL = 1e-9


def _size(name: str) -> tuple[int, int]:
    return SIZES.get(name, (2, 32))


def _check_result(result, label: str) -> None:
    for op in result.ops:
        # cycles = end - start: allow the rounding of the two times.
        slack = 4 * math.ulp(op.end_cycle)
        assert op.cycles >= op.roofline_cycles * (1 - REL) - slack, \
            f"{label}: op {op.index} takes {op.cycles} < its roofline {op.roofline_cycles}"
        assert op.end_cycle <= result.cycles * (1 + REL)
    assert result.cycles >= result.roofline_cycles * (1 - REL), label
    assert 0 < result.achieved_fraction <= 1 + REL
    energy = result.energy
    parts = sum(row.dynamic_nj + (row.leakage_nj or 0.0) for row in energy.rows)
    assert parts == pytest.approx(energy.total_nj, rel=REL)
    assert energy.dynamic_nj + energy.leakage_nj == pytest.approx(energy.total_nj, rel=REL)
    assert all(row.dynamic_nj >= 0 and (row.leakage_nj or 0.0) >= 0 for row in energy.rows)
    area = [v for v in result.area_um2.values() if v is not None]
    assert sum(area) == pytest.approx(result.area_total_um2, rel=REL)
    assert result.area_um2["main_memory"] is None          # not characterised, not invented
    for kind, value in result.utilisation.items():
        assert 0.0 <= value <= 1.0 + REL, (label, kind, value)


def _double_bandwidth(accelerator):
    memory = accelerator.main_memory
    bandwidth = accelerator.main_memory_costs().bandwidth_bytes_per_s
    faster = dataclasses.replace(memory, bandwidth_bytes_per_s=2 * bandwidth)
    return dataclasses.replace(accelerator, main_memory=faster, name=accelerator.name + "-2xbw")


@pytest.mark.parametrize("train", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("model", ZOO_MODELS)
def test_zoo_on_library(model: str, train: bool, zoo, design) -> None:
    batch, seq = _size(model)
    static = zoo.static(model, batch, seq, train)
    for name in LIBRARY_DESIGNS:
        accelerator = design(name)
        label = f"{model} {'training' if train else 'inference'} on {name}"
        result = evaluate(static, accelerator, check=True)
        _check_result(result, label)
        assert len(result.ops) == len(static.ops)
        faster = evaluate(static, _double_bandwidth(accelerator))
        assert faster.cycles <= result.cycles * (1 + REL), \
            f"{label}: twice the main-memory bandwidth is slower " \
            f"({faster.cycles} > {result.cycles})"
        if train:
            kinds = {op.kind for op in static.ops}
            assert "optim.adam" in kinds and "loss.cross_entropy" in kinds
            assert result.energy.by_class()["stochastic_rounding"].dynamic_nj > 0
