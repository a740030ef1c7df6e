"""The cost model over the storage levels: BERT-Base FFN-up on acceltran-server
worked by hand (docs/cost-model.md), and scaling invariants on every zoo model.

acceltran-server: 512 PEs x 32 lanes = 16,384 lanes of 16 MACs; 20-bit data
(2.5 bytes); buffers of 32 / 64 MiB = 32 / 64 banks of 370e9 / 700e6 bytes per
cycle each; RRAM 256 GB/s.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from backends.elector import validate_design
from backends.elector.analytical import simulate_analytical
from backends.elector.mapping import map_function
from backends.elector.tiling import (
    ATTR_RESIDENT_ARGS,
    ATTR_RESIDENT_PARAMS,
    StaticFunction,
    buffer_levels,
    hardware_consts,
    schedule_function,
)
from tests.elector_compile.conftest import ZOO_MODELS
from transcode_ir import Builder, Function, Module, TensorType, run_pipeline

PORT = 370e9 / 700e6                 # one bank's port, bytes per cycle
MAIN = 256e9 / 700e6                 # RRAM 32-2-1


def _ffn_up(on_chip: bool, tile: bool = True) -> Module:
    """``h = x[4,128,768] @ w[768,3072]`` followed by a GELU (so h stays on chip)."""
    module = Module("ffn")
    func = module.add_function(Function("forward", [TensorType((4, 128, 768))], ["x"]))
    module.add_param("w", type=TensorType((768, 3072)))
    builder = Builder(func)
    h = builder.op("tensor.matmul", func.args[0], builder.param("w"), loc="ffn.up")
    func.set_outputs([builder.op("nn.gelu", h, loc="ffn.act")], ["y"])
    if on_chip:
        module.attributes = module.attributes.with_(
            **{ATTR_RESIDENT_PARAMS: ("w",), ATTR_RESIDENT_ARGS: ("x",)})
    if tile:
        import passes.tile  # noqa: F401

        run_pipeline(module, "tile{b=1,x=32,y=4,order=bijk}")
    return module


def _simulate(module: Module, accelerator):
    static = StaticFunction(module, "forward")
    mappings, plan = map_function(static, accelerator)
    mapped = schedule_function(static, accelerator, mappings, plan=plan)
    return mapped, simulate_analytical(mapped, accelerator)


def test_ffn_up_on_server_by_hand(design) -> None:
    server = design("acceltran-server")
    hw = hardware_consts(server)
    assert hw.banks["activation_buffer"] == 32 and hw.banks["weight_buffer"] == 64
    assert hw.bandwidth["activation_buffer"] == pytest.approx(32 * PORT)
    assert hw.bandwidth["weight_buffer"] == pytest.approx(64 * PORT)
    assert hw.bandwidth["main_memory"] == pytest.approx(MAIN)

    mapped, result = _simulate(_ffn_up(on_chip=True), server)
    op, op_result = mapped.ops[0], result.ops[0]
    assert op.dims == (4, 128, 768, 3072) and op.macs == 1_207_959_552
    # Trips (b, i, j, k) = (4, 4, 768, 192); k unrolled whole (192 lanes), j
    # 16384 // 192 = 85: 16,320 lanes a wave; 512-MAC tile-products, 32 cycles.
    (work,) = op.work
    assert (work.tiles, work.cycles_per_tile, work.parallel) == (2_359_296, 32, 85 * 192)
    assert work.waves == math.ceil(2_359_296 / 16_320) == 145
    assert op_result.compute_cycles == 145 * 32 == 4640
    by_role = {t.role: t for t in op.operands}
    # x: 3,072 tiles of 320 B read once; w: 147,456 tiles of 40 B, again for
    # every (b, i) = 16; h: 12,288 tiles of 320 B written once.
    assert (by_role["lhs"].fetches, by_role["lhs"].tile_bytes) == (3072, 320.0)
    assert (by_role["rhs"].fetches, by_role["rhs"].distinct_tiles) == (147_456 * 16, 147_456)
    assert by_role["rhs"].tile_bytes == 40.0
    assert (by_role["out"].fetches, by_role["out"].tile_bytes) == (12_288, 320.0)
    levels = op.bytes_by_level()
    assert levels["activation_buffer"] == (983_040.0, 3_932_160.0)
    assert levels["weight_buffer"] == (94_371_840.0, 0.0)
    assert levels["main_memory"] == (0.0, 0.0)
    memory = op_result.memory_cycles
    assert memory["activation_buffer"] == pytest.approx(4_915_200 / (32 * PORT))   # 290.59
    assert memory["weight_buffer"] == pytest.approx(94_371_840 / (64 * PORT))      # 2,789.71
    fill = 320 / (32 * PORT)                                                         # 0.0189
    assert op.fill_cycles == pytest.approx(fill)
    assert op_result.cycles == pytest.approx(4640 + fill)
    assert op_result.bounding_level == "compute"
    # Roofline: 1,207,959,552 MACs / 262,144 per cycle = 4,608 (compute bound).
    assert op_result.roofline_cycles == pytest.approx(4608.0)
    assert op_result.bound == "compute"
    assert op_result.level_utilisation["weight_buffer"] == pytest.approx(
        memory["weight_buffer"] / (4640 + fill))
    # The search finds this mapping or one as fast.
    _, searched = _simulate(_ffn_up(on_chip=True, tile=False), server)
    assert searched.ops[0].cycles <= op_result.cycles + 1e-6


def test_ffn_up_as_compiled_is_main_memory_bound(design) -> None:
    """Both operands from main memory: 5,898,240 + 983,040 bytes at 365.71 bytes
    per cycle = 18,816 cycles, whatever the mapping."""
    server = design("acceltran-server")
    mapped, result = _simulate(_ffn_up(on_chip=False, tile=False), server)
    op_result = result.ops[0]
    assert mapped.ops[0].bytes_by_level()["main_memory"] == (6_881_280.0, 0.0)
    assert op_result.cycles == pytest.approx(6_881_280 / MAIN) == pytest.approx(18_816.0)
    assert op_result.bounding_level == "main_memory" == op_result.bound


# --------------------------------------------------------------------------- scaling


def _doubled_pes(accelerator):
    return validate_design(dataclasses.replace(
        accelerator, name=f"{accelerator.name}-2x-pes",
        pe_array=dataclasses.replace(accelerator.pe_array, pes=2 * accelerator.pe_array.pes)))


def _doubled_banks(accelerator, kind: str):
    banks = {level.name: level.banks for level in buffer_levels(accelerator)}
    buffer = getattr(accelerator, f"{kind}_buffer")
    return validate_design(dataclasses.replace(
        accelerator, name=f"{accelerator.name}-2x-{kind}-banks",
        **{f"{kind}_buffer": dataclasses.replace(buffer, banks=2 * banks[f"{kind}_buffer"])}))


def _run(static, accelerator):
    mappings, plan = map_function(static, accelerator, check=False)
    mapped = schedule_function(static, accelerator, mappings, plan=plan)
    return mapped, simulate_analytical(mapped, accelerator, timeline=False)


@pytest.mark.parametrize("model", ZOO_MODELS)
def test_scaling_invariants(model: str, zoo, design) -> None:
    """On acceltran-edge, batch 2 x seq 64: doubling the PEs (banks follow the
    design's rule: they depend on buffer sizes, which stay) is never slower, and
    with the weights on chip its largest compute-bound product is at least 1.8x
    faster; doubling any buffer's banks is never slower.  Analytical only."""
    edge = design("acceltran-edge")
    static = zoo.static(model, 2, 64)
    _, base = _run(static, edge)
    _, doubled = _run(static, _doubled_pes(edge))
    assert doubled.cycles <= base.cycles * (1 + 1e-9)
    assert base.cycles >= base.roofline_cycles * (1 - 1e-9)
    for kind in ("activation", "weight", "mask"):
        _, more_banks = _run(static, _doubled_banks(edge, kind))
        assert more_banks.cycles <= base.cycles * (1 + 1e-9), kind

    module = zoo.module(model, 2, 64).clone()
    module.attributes = module.attributes.with_(
        **{ATTR_RESIDENT_PARAMS: tuple(sorted(module.params))})
    on_chip = StaticFunction(module, "forward")
    mapped, base = _run(on_chip, edge)
    _, doubled = _run(on_chip, _doubled_pes(edge))
    assert doubled.cycles <= base.cycles * (1 + 1e-9)
    bound = [(op.macs, i) for i, (op, r) in enumerate(zip(mapped.ops, base.ops))
             if op.macs and r.bounding_level == "compute"]
    assert bound, f"{model}: no compute-bound product with the weights on chip"
    _, largest = max(bound)
    assert base.ops[largest].cycles / doubled.ops[largest].cycles >= 1.8
