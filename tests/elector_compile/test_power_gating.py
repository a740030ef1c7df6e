"""Power gating (``power_gating = idle``): worked by hand on one matrix product,
and never raising energy on any zoo model x library design (issue 12).

The rule (backends/elector/costing.py): a module kind leaks
``min(whole run, busy module-cycles + wake-ups x modules x 10 cycles)`` of its
leakage per cycle; a wake-up is one op putting work on the kind's class;
buffers stay powered all run.
"""

from __future__ import annotations

import dataclasses

import pytest

from backends.elector.analytical import simulate_analytical
from backends.elector.area import module_inventory
from backends.elector.costing import WAKE_UP_CYCLES
from backends.elector.event_sim import simulate_event
from backends.elector.mapping import clear_caches, map_function
from backends.elector.tiling import schedule_function
from tests.elector_compile.conftest import LIBRARY_DESIGNS, ZOO_MODELS
from tests.elector_compile.test_hand_worked import MM_BW, _module

REL = 1e-9


def _gated(accelerator):
    return dataclasses.replace(accelerator, power_gating="idle")


def test_single_matmul_gated_by_hand(design) -> None:
    """tiny-test, ``out[1,16,16] = a[1,16,32] @ b[1,32,16]`` in tiles 1x8x8
    (see test_hand_worked): 16 tile-products of 128 lane-cycles on 4 lanes
    (2 PEs x 2), 516.375 cycles; main memory moves 3,200 bytes (87.5 cycles
    of the DMA engines).  One op, so one wake-up per class it uses:

    * MAC lanes (and FIFOs, pre-/post-sparsity units): busy 2,048 of
      4 x 516.375 = 2,065.5 module-cycles; gated they would cost
      2,048 + 4 x 10 = 2,088 > 2,065.5: kept on, same leakage as ``none``;
    * dataflow modules: busy 2,048 / 2 lanes per PE = 1,024 of 2 x 516.375 =
      1,032.75; gated 1,024 + 2 x 10 = 1,044 > 1,032.75: kept on;
    * DMA engines: busy 87.5 (main-memory transfer cycles); gated
      87.5 + 2 x 10 = 107.5 < 1,032.75: gated, 107.5 cycles of one DMA's
      leakage, of which 87.5 busy and 20 the wake-ups;
    * softmax and layer-norm modules: never used, no wake-up: no leakage;
    * buffers: powered all run, as with ``none``.
    """
    import passes.tile  # noqa: F401
    from transcode_ir import run_pipeline

    clear_caches()
    tiny = design("tiny-test")
    module = _module()
    run_pipeline(module, "tile{b=1,x=8,y=8,order=bijk}")
    from backends.elector.tiling import StaticFunction

    static = StaticFunction(module, "forward")
    mappings, plan = map_function(static, tiny)
    mapped = schedule_function(static, tiny, mappings, plan=plan)
    plain = simulate_analytical(mapped, tiny)
    gated = simulate_analytical(mapped, _gated(tiny))
    assert gated.cycles == plain.cycles == pytest.approx(516.375)
    assert WAKE_UP_CYCLES == 10
    cycles = 516.375
    dma_busy = 3200 / MM_BW
    assert dma_busy == pytest.approx(87.5)

    def rate(kind: str) -> float:      # nJ per cycle, one module
        return tiny.module_costs(kind).leakage_mw * 1e-3 / 700e6 * 1e9

    counts = {i.kind: i.count for i in module_inventory(tiny)}
    assert counts["mac_lane"] == 4 and counts["dataflow"] == 2 and counts["dma"] == 2
    on, off = plain.energy.by_class(), gated.energy.by_class()
    for kind in ("mac_lane", "fifo", "pre_sparsity", "post_sparsity", "dataflow"):
        assert off[kind].leakage_nj == pytest.approx(counts[kind] * cycles * rate(kind)), kind
        assert off[kind].leakage_nj == pytest.approx(on[kind].leakage_nj)
    assert off["mac_lane"].leakage_busy_nj == pytest.approx(2048 * rate("mac_lane"))
    assert off["dataflow"].leakage_busy_nj == pytest.approx(1024 * rate("dataflow"))
    assert off["dma"].leakage_nj == pytest.approx((87.5 + 2 * 10) * rate("dma"))
    assert off["dma"].leakage_busy_nj == pytest.approx(87.5 * rate("dma"))
    assert off["dma"].leakage_idle_nj == pytest.approx(20 * rate("dma"))
    assert on["dma"].leakage_nj == pytest.approx(2 * cycles * rate("dma"))
    for kind in ("softmax", "layer_norm"):
        assert off[kind].leakage_nj == 0.0 and on[kind].leakage_nj > 0
    for level in ("activation_buffer", "weight_buffer", "mask_buffer"):
        assert off[level].leakage_nj == pytest.approx(on[level].leakage_nj)
        assert off[level].leakage_busy_nj == pytest.approx(off[level].leakage_nj)
    assert gated.energy.power_gating == "idle" and plain.energy.power_gating == "none"
    assert any("power_gating = idle" in note for note in gated.notes)
    assert gated.energy.total_nj < plain.energy.total_nj


SIZES = {"bert-small": (2, 16), "bert-medium": (2, 16), "bert-base": (2, 16)}


@pytest.mark.parametrize("train", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("model", ZOO_MODELS)
def test_gating_never_raises_energy(model: str, train: bool, zoo, design) -> None:
    """Same run, same dynamic energy, same busy leakage; leakage per class never
    above ``none``; the idle part is all that changes."""
    batch, seq = SIZES.get(model, (2, 32))
    static = zoo.static(model, batch, seq, train)
    for name in LIBRARY_DESIGNS:
        accelerator = design(name)
        mappings, plan = map_function(static, accelerator)
        mapped = schedule_function(static, accelerator, mappings, plan=plan)
        plain = simulate_analytical(mapped, accelerator, timeline=False)
        gated = simulate_analytical(mapped, _gated(accelerator), timeline=False)
        label = f"{model} {'training' if train else 'inference'} on {name}"
        assert gated.cycles == plain.cycles, label
        assert gated.energy.total_nj <= plain.energy.total_nj * (1 + REL), label
        on, off = plain.energy.by_class(), gated.energy.by_class()
        for kind, row in off.items():
            assert row.dynamic_nj == on[kind].dynamic_nj, (label, kind)
            if row.leakage_nj is None:
                assert on[kind].leakage_nj is None
                continue
            assert row.leakage_nj <= on[kind].leakage_nj * (1 + REL), (label, kind)
            assert row.leakage_busy_nj == pytest.approx(on[kind].leakage_busy_nj, rel=REL)
            assert 0.0 <= row.leakage_busy_nj <= row.leakage_nj * (1 + REL), (label, kind)
        parts = gated.energy.leakage_busy_nj + gated.energy.leakage_idle_nj
        assert parts == pytest.approx(gated.energy.leakage_nj, rel=REL)
        # The softmax modules of a server design sit idle nearly all run.
        if name == "acceltran-server" and on["softmax"].dynamic_nj > 0:
            assert off["softmax"].leakage_nj < 0.05 * on["softmax"].leakage_nj, label


def test_event_simulator_gates_the_same(zoo, design) -> None:
    """The event simulator prices the same busy cycles and wake-ups: gated, its
    leakage of modules equals the analytical one (only buffers depend on the run
    length), and its energy is within 5% of the analytical simulator's."""
    static = zoo.static("bert-tiny", 2, 32, False)
    accelerator = _gated(design("acceltran-edge"))
    mappings, plan = map_function(static, accelerator)
    mapped = schedule_function(static, accelerator, mappings, plan=plan)
    analytical = simulate_analytical(mapped, accelerator, timeline=False)
    event = simulate_event(mapped, accelerator)
    plain = simulate_event(mapped, design("acceltran-edge"))
    assert event.energy.total_nj <= plain.energy.total_nj
    ev, an = event.energy.by_class(), analytical.energy.by_class()
    for inst in module_inventory(accelerator):
        kind = inst.kind
        if ev[kind].leakage_nj < an[kind].leakage_nj * (1 - 1e-6):
            # kept on in the analytical run only if it is longer: then gated here
            assert event.cycles < analytical.cycles
        assert ev[kind].leakage_busy_nj == pytest.approx(an[kind].leakage_busy_nj, rel=1e-6)
    assert event.energy.total_nj == pytest.approx(analytical.energy.total_nj, rel=0.05)
    # The per-op table's fields are filled by the event simulator too.
    for ev_op, an_op in zip(event.ops, analytical.ops):
        assert ev_op.bounding_level == an_op.bounding_level != ""
        assert all(0.0 <= v <= 1.0 for v in ev_op.level_utilisation.values())
