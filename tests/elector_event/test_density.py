"""Halving density never increases MAC-lane cycles in the event simulator.

With the tiles fixed (``tile{x=16,y=16}``), DynaProp's prune points are given
assumed densities and halved; every matrix product's tile-products then take
no more lane cycles, the simulated lanes are busy no longer, and no op's
compute time grows.
"""

from __future__ import annotations

import itertools

import pytest

from backends.elector.event_sim import simulate_event
from backends.elector.mapping import map_function
from backends.elector.tiling import StaticFunction, schedule_function
from tests.elector_compile.conftest import mapped_pruned_bert_tiny
from transcode_ir import Builder, Function, Module, SparsityEncoding, TensorType, run_pipeline


def _lane_busy_cycles(result, accelerator) -> float:
    lanes = accelerator.pe_array.pes * accelerator.pe_array.lanes
    return result.utilisation["mac_lane"] * result.cycles * lanes


def test_dynaprop_densities_halved_on_bert_tiny(zoo, design) -> None:
    pytest.importorskip("passes.dynaprop")
    edge = design("acceltran-edge")
    runs = []
    for density in (0.5, 0.25, 0.125):
        mapped = mapped_pruned_bert_tiny(zoo, edge, density)
        runs.append((mapped, simulate_event(mapped, edge, compare=False)))
    for (dense, before), (sparse, after) in itertools.pairwise(runs):
        assert len(dense.ops) == len(sparse.ops)
        for op_before, op_after, res_before, res_after in zip(dense.ops, sparse.ops,
                                                              before.ops, after.ops):
            assert op_after.lane_cycles_per_tile <= op_before.lane_cycles_per_tile
            assert res_after.compute_cycles <= res_before.compute_cycles
        assert _lane_busy_cycles(after, edge) <= _lane_busy_cycles(before, edge) * (1 + 1e-9)
        assert _lane_busy_cycles(after, edge) < _lane_busy_cycles(before, edge)
        lanes_before = before.energy.by_class()["mac_lane"].dynamic_nj
        assert after.energy.by_class()["mac_lane"].dynamic_nj < lanes_before


@pytest.mark.parametrize("order", ["bijk", "kjib"])
def test_halving_density_single_product(order: str, design) -> None:
    """One product on tiny-test, its left operand ever sparser: lane cycles
    and the simulated run never grow."""
    import passes.tile  # noqa: F401

    tiny = design("tiny-test")
    previous = None
    for density in (1.0, 0.5, 0.25, 0.125, 0.0625):
        module = Module("one")
        a_type = TensorType((1, 32, 64)).with_encoding(SparsityEncoding(density, "assumed"))
        func = module.add_function(Function("forward", [a_type, TensorType((1, 64, 32))],
                                            ["a", "b"]))
        builder = Builder(func)
        func.set_outputs([builder.op("tensor.matmul", *func.args, loc="layer.0.proj")], ["out"])
        run_pipeline(module, f"tile{{x=8,y=8,order={order}}}")
        static = StaticFunction(module, "forward")
        mappings, plan = map_function(static, tiny)
        mapped = schedule_function(static, tiny, mappings, plan=plan)
        result = simulate_event(mapped, tiny, compare=False)
        lanes = _lane_busy_cycles(result, tiny)
        if previous is not None:
            assert lanes <= previous[0] * (1 + 1e-9)
            assert result.cycles <= previous[1] * (1 + 1e-9)
        previous = (lanes, result.cycles)
