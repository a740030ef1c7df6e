"""``mode="waves"`` equals ``mode="per-tile"``: the same cycles, op timings, stalls
and energy, to the bit.

Waves mode computes whole waves with numpy and skips periods of repeating
waves in closed form; per-tile mode steps every tile with scalar arithmetic.
Both keep time in integers, so the results must be *identical*, not merely
close.  Cases: BERT-Tiny on tiny-test (tiles forced to 8x8 so per-tile mode
stays quick; several loop orders), BERT-Tiny on acceltran-edge as mapped,
training steps, and hand-built products that exercise the staging slots of
streamed operands and every loop order.
"""

from __future__ import annotations

import pytest

from backends.elector.event_sim import simulate_event
from backends.elector.mapping import map_function
from backends.elector.schedule import LOOP_ORDERS, SimulationResult
from backends.elector.tiling import StaticFunction, schedule_function
from transcode_ir import Builder, Function, Module, TensorType, run_pipeline


def _assert_identical(waves: SimulationResult, per_tile: SimulationResult) -> None:
    assert waves.cycles == per_tile.cycles
    assert waves.stalls == per_tile.stalls
    assert waves.energy.total_nj == per_tile.energy.total_nj
    assert [row.total_nj for row in waves.energy.rows] == \
        [row.total_nj for row in per_tile.energy.rows]
    for a, b in zip(waves.ops, per_tile.ops, strict=True):
        assert (a.index, a.start_cycle, a.end_cycle) == (b.index, b.start_cycle, b.end_cycle)
        assert dict(a.stalls) == dict(b.stalls)
        assert dict(a.dynamic_energy_nj) == dict(b.dynamic_energy_nj)


def _both(mapped, accelerator) -> tuple[SimulationResult, SimulationResult]:
    return (simulate_event(mapped, accelerator, mode="waves", compare=False),
            simulate_event(mapped, accelerator, mode="per-tile", compare=False))


def _map(module: Module, function: str, accelerator):
    static = StaticFunction(module, function)
    mappings, plan = map_function(static, accelerator)
    return schedule_function(static, accelerator, mappings, plan=plan)


@pytest.mark.parametrize("tiles", ["tile{x=8,y=8}", "tile{x=8,y=8,order=kjib}",
                                   "tile{b=1,x=4,y=8,order=jkbi}"])
def test_bert_tiny_on_tiny_test(tiles: str, zoo, design) -> None:
    import passes.tile  # noqa: F401  (registers the tile pass)

    tiny = design("tiny-test")
    module = zoo.module("bert-tiny", 1, 8).clone()
    run_pipeline(module, tiles)
    waves, per_tile = _both(_map(module, "forward", tiny), tiny)
    _assert_identical(waves, per_tile)
    assert waves.cycles > 0


def test_bert_tiny_training_on_tiny_test(zoo, design) -> None:
    import passes.tile  # noqa: F401

    tiny = design("tiny-test")
    module = zoo.module("bert-tiny", 1, 8, train=True).clone()
    run_pipeline(module, "tile{x=8,y=8}")
    waves, per_tile = _both(_map(module, "train_step", tiny), tiny)
    _assert_identical(waves, per_tile)


@pytest.mark.parametrize("tiles", ["tile{x=8,y=8}", "tile{b=1,x=4,y=8,order=jkbi}"])
def test_waves_worked_out_per_class(tiles: str, zoo, design, monkeypatch) -> None:
    """A wave of a few classes of identical tiles is worked out once per class
    (``_Engine._issue_classes``, with the modules' times kept per class in
    between): forced here on tiny-test's small waves, it must give the same
    results as per tile, and it must have been used."""
    import backends.elector.event_sim as event_sim
    import passes.tile  # noqa: F401

    monkeypatch.setattr(event_sim, "_CLASS_MIN_TILES", 1)
    monkeypatch.setattr(event_sim, "_CLASS_GAIN", 1)
    used = []
    original = event_sim._Engine._issue_classes

    def counted(self, *args):
        out = original(self, *args)
        used.append(out is not None)
        return out

    monkeypatch.setattr(event_sim._Engine, "_issue_classes", counted)
    tiny = design("tiny-test")
    module = zoo.module("bert-tiny", 1, 8, train=True).clone()
    run_pipeline(module, tiles)
    waves, per_tile = _both(_map(module, "train_step", tiny), tiny)
    _assert_identical(waves, per_tile)
    assert sum(used) > 100


def test_bert_tiny_on_edge_as_mapped(mapped_zoo) -> None:
    mapped, edge = mapped_zoo.get("bert-tiny", "acceltran-edge", size=(1, 8))
    waves, per_tile = _both(mapped, edge)
    _assert_identical(waves, per_tile)


def _product_module(m: int, k: int, n: int) -> Module:
    module = Module("product")
    func = module.add_function(Function("forward", [TensorType((1, m, k)),
                                                    TensorType((1, k, n))], ["a", "b"]))
    builder = Builder(func)
    func.set_outputs([builder.op("tensor.matmul", func.args[0], func.args[1], loc="proj")],
                     ["out"])
    return module


@pytest.mark.parametrize("order", LOOP_ORDERS)
def test_single_product_every_loop_order(order: str, design) -> None:
    import passes.tile  # noqa: F401

    tiny = design("tiny-test")
    module = _product_module(16, 32, 16)
    run_pipeline(module, f"tile{{b=1,x=4,y=4,order={order}}}")
    mapped = _map(module, "forward", tiny)
    waves, per_tile = _both(mapped, tiny)
    _assert_identical(waves, per_tile)


def test_streamed_operand_waits_for_staging_slots(design) -> None:
    """An operand larger than tiny-test's 8 KiB activation buffer is streamed
    from main memory; with 24x24 tiles only four of its fetches fit beside the
    other tiles, so loads wait for slots (buffer_capacity stalls), the same in
    both modes, including across the steady-state jumps of waves mode."""
    import passes.tile  # noqa: F401

    tiny = design("tiny-test")
    module = _product_module(32, 96, 96)
    run_pipeline(module, "tile{b=1,x=4,y=24,order=bijk}")
    mapped = _map(module, "forward", tiny)
    (op,) = mapped.ops
    assert any(not t.resident for t in op.operands if t.role in ("lhs", "rhs"))
    waves, per_tile = _both(mapped, tiny)
    _assert_identical(waves, per_tile)
    assert waves.stalls["buffer_capacity"] > 0
