"""The per-PE buffer in the cost model (docs/cost-model.md, "Per-PE buffer"):
one product worked by hand to the cycle, and the scaling invariant on a zoo
model (adding a PE buffer that holds weights is never slower and never makes
the weight buffer read more)."""

from __future__ import annotations

import dataclasses

import pytest

from backends.elector import validate_design
from backends.elector.analytical import simulate_analytical
from backends.elector.design import PEBuffer
from backends.elector.mapping import clear_caches, map_function
from backends.elector.tiling import StaticFunction, hardware_consts, schedule_function
from transcode_ir import Builder, Function, Module, TensorType, run_pipeline

#: tiny-test's weight buffer slowed to one 2.8 GB/s port: 2.8e9 / 700e6 = 4 bytes
#: per cycle, so that weight reads bound the product (docs/cost-model.md).
SLOW_PORT = 2.8e9


def _weight_module() -> Module:
    module = Module("hand_pe")
    func = module.add_function(Function("forward", [TensorType((1, 16, 32))], ["a"]))
    module.add_param("w", type=TensorType((32, 16)))
    builder = Builder(func)
    func.set_outputs([builder.op("tensor.matmul", func.args[0], builder.param("w"),
                                 loc="proj")], ["out"])
    return module


def _designs(design):
    tiny = design("tiny-test")
    slow = validate_design(dataclasses.replace(
        tiny, name="tiny-slow-weights",
        weight_buffer=dataclasses.replace(tiny.weight_buffer,
                                          bank_bandwidth_bytes_per_s=SLOW_PORT)))
    with_pe = validate_design(dataclasses.replace(slow, name="tiny-slow-weights-pe",
                                                  pe_buffer=PEBuffer(4096, ("weight",))))
    return slow, with_pe


def _mapped(order: str, accelerator):
    import passes.tile  # noqa: F401

    clear_caches()
    module = _weight_module()
    run_pipeline(module, f"tile{{b=1,x=8,y=8,order={order}}}")
    static = StaticFunction(module, "forward")
    mappings, plan = map_function(static, accelerator)
    return schedule_function(static, accelerator, mappings, plan=plan)


def _run(order: str, accelerator):
    mapped = _mapped(order, accelerator)
    return mapped.ops[0], simulate_analytical(mapped, accelerator)


def test_pe_buffer_by_hand_bijk(design) -> None:
    slow, with_pe = _designs(design)
    assert hardware_consts(slow).stage_params.pe_buffer == ()
    # out[1,16,16] = a[1,16,32] @ w[32,16], tile 1x8x8, order bijk: trips (1,2,2,4),
    # a wave spans k (c = 1,1,1,4), waves T = (1,2,2,1); compute 4 waves x 128 = 512
    # cycles, fill 160 B / 36.571 B per cycle = 4.375.  w (loops k, j): 8 distinct
    # 160-byte tiles; its innermost moving wave loop is j and i (not a w loop) lies
    # outside: every tile twice, 16 reads = 2560 B, plus the 1280-byte fill.
    op, result = _run("bijk", slow)
    w = {t.role: t for t in op.operands}["rhs"]
    assert (w.fetches, w.distinct_tiles, w.buffer_read_bytes) == (16, 8, 2560.0)
    assert op.bytes_by_level()["weight_buffer"] == (2560.0, 1280.0)
    assert "pe_buffer" not in op.bytes_by_level()
    # weight buffer (2560 + 1280) / 4 = 960 > 516.375: bound by the weight buffer.
    assert result.cycles == pytest.approx(960.0)
    assert result.ops[0].bounding_level == "weight_buffer"

    # With a 4 KiB PE buffer holding weights: one PE's wave needs min(4 tiles of w in a
    # wave, 2 lanes) = 2 tiles = 320 B; its room is 4096 / 2 (double-buffered) / 1
    # held input = 2048 B = 6.4 wave sets.  The block of wave loops j, k (2 x 1 sets)
    # fits, with nothing outside it moving: the global buffer sends each tile once,
    # 16 x 2 / 4 = 8 reads = 1280 B; the lanes read their 16 tiles from the PE
    # buffers (2560 B) which the global buffer filled (1280 B).
    op, result = _run("bijk", with_pe)
    w = {t.role: t for t in op.operands}["rhs"]
    assert (w.fetches, w.buffer_read_bytes) == (16, 1280.0)
    levels = op.bytes_by_level()
    assert levels["weight_buffer"] == (1280.0, 1280.0)
    assert levels["pe_buffer"] == (2560.0, 1280.0)
    # weight buffer (1280 + 1280) / 4 = 640; PE buffers 3840 B over 2 PEs x 528.57 B
    # per cycle = 3.63; compute 516.375: 640 cycles.
    assert result.cycles == pytest.approx(640.0)
    assert result.ops[0].memory_cycles["pe_buffer"] == pytest.approx(3840 / (2 * 370e9 / 700e6))
    assert result.ops[0].bounding_level == "weight_buffer"
    # Energy: the PE buffers' accesses at their own (4 KiB) price.
    costs = with_pe.pe_buffer_costs()
    row = result.energy.by_class()["pe_buffer"]
    assert row.dynamic_nj == pytest.approx((3840 / 64) * costs.energy_per_access_nj)
    # The event simulator (no port of its own for the PE buffers) agrees as for any
    # design: within 10% on cycles and 5% on energy.
    from backends.elector.event_sim import simulate_event

    event = simulate_event(_mapped("bijk", with_pe), with_pe)
    assert event.cycles == pytest.approx(result.cycles, rel=0.10)
    assert event.energy.total_nj == pytest.approx(result.energy.total_nj, rel=0.05)
    assert event.bytes_by_level["pe_buffer"] == pytest.approx((2560.0, 1280.0))


def test_weight_stationary_orders_gain_nothing(design) -> None:
    # bkij, kjib, jkbi already read each weight tile once (docs/cost-model.md,
    # "tiny-test, four loop orders"): the PE buffer changes no cycle.
    slow, with_pe = _designs(design)
    for order in ("bkij", "kjib", "jkbi"):
        before, after = _run(order, slow)[1], _run(order, with_pe)[1]
        assert after.cycles == before.cycles == pytest.approx(640.0), order
        assert after.bytes_by_level["weight_buffer"] == before.bytes_by_level["weight_buffer"]


@pytest.mark.parametrize("name", ["tiny-test", "acceltran-edge", "acceltran-server"])
def test_pe_buffer_holding_weights_is_never_slower(name: str, zoo, design) -> None:
    from backends.elector.compile_pipeline import evaluate

    static = zoo.static("bert-tiny", 2, 32)
    plain = design(name)
    with_pe = validate_design(dataclasses.replace(plain, name=f"{name}+pe",
                                                  pe_buffer=PEBuffer(65536, ("weight",))))
    clear_caches()
    before = evaluate(static, plain)
    after = evaluate(static, with_pe)
    assert after.cycles <= before.cycles
    read_before, read_after = (r.bytes_by_level["weight_buffer"][0] for r in (before, after))
    assert read_after <= read_before
    if name == "tiny-test":
        # 4 lanes re-read BERT-Tiny's weights from the weight buffer; a 64 KiB PE
        # buffer keeps them: strictly fewer reads.
        assert read_after < read_before
    assert after.bytes_by_level["pe_buffer"][0] > 0


def test_reports_show_the_pe_buffer_level(design) -> None:
    from backends.elector import area_breakdown
    from backends.elector.report import Report

    _slow, with_pe = _designs(design)
    mapped = _mapped("bijk", with_pe)
    report = Report(model="hand", source="test", function="forward", training=False,
                    optimizer=None, batch=1, seq=None, pipeline="tile", design=with_pe.name,
                    design_hash="-", technology="14nm", clock_hz=with_pe.clock_hz,
                    peak_macs_per_cycle=with_pe.peak_macs_per_cycle, tool_version="test",
                    mapped=mapped, result=simulate_analytical(mapped, with_pe),
                    area=area_breakdown(with_pe))
    data = report.to_json()
    assert data["bytes"]["pe_buffer"] == {"read": 2560.0, "written": 1280.0}
    assert data["ops"][0]["bytes"]["pe_buffer"] == {"read": 2560.0, "written": 1280.0}
    text = report.to_text()
    assert any(line.startswith("pe buffer ") for line in text.splitlines())
    assert "pe the per-PE buffers" in text
