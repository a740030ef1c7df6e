"""A single matrix product on tiny-test, costed by hand for three loop orders.

tiny-test: 2 PEs x 2 lanes = 4 MAC lanes of 4 MACs; 20-bit data (2.5 bytes per
element); buffers 8 / 16 / 2 KiB at 370 GB/s; DRAM 32-2-1 at 25.6 GB/s and
13.44 nJ per 64-byte access; 700 MHz.  So per cycle:

    buffer bandwidth  370e9 / 700e6  = 528.571... bytes per cycle
    main memory       25.6e9 / 700e6 =  36.571... bytes per cycle

The op: ``out[1,16,16] = a[1,16,32] @ b[1,32,16]`` (both inputs are function
arguments, the result is returned), tiles 1 x 8 x 8 (b x x x y):

    dims (B, M, K, N)   = (1, 16, 32, 16)
    trips               nb = 1, ni = 16/8 = 2, nj = 16/8 = 2, nk = 32/8 = 4
    tile-products T     = 1 * 2 * 2 * 4 = 16
    lane cycles / tile  = ceil(1*8*8*8 / 4 MACs * density 1) = 128
    waves               = ceil(16 / 4 lanes) = 4
    compute             = 4 * 128 = 512 cycles (the roof: 8192 MACs / 16 = 512)

Residency: ``a`` and ``b`` (16*32*2.5 = 1280 bytes each) start in main
memory and fit the 8 KiB activation buffer: each is filled once (main-memory
read 1280, buffer write 1280).  The result (16*16*2.5 = 640 bytes) is a
function result: written through to main memory (buffer read 640, main-memory
write 640).  Main memory: 2560 + 640 = 3200 bytes = 87.5 cycles.  Fill (the
first tile before compute): an 8x8 tile, 160 bytes, from main memory:
160 / 36.571 = 4.375 cycles.  Compute-bound: cycles = 512 + 4.375 = 516.375
for every order; the orders differ in buffer traffic and so in energy.

Average real tile bytes: a has 1*2*4 = 8 tiles of 160 bytes, b 1*4*2 = 8 of
160, out 1*2*2 = 4 of 160.  An operand is fetched prod(trips of the loops
from the outermost to its innermost relevant loop) times (a: b,i,k; b: b,k,j;
out: b,i,j), and partial results are re-read (fetches - distinct) times.
"""

from __future__ import annotations

import math

import pytest

from backends.elector.analytical import simulate_analytical
from backends.elector.area import module_inventory
from backends.elector.mapping import clear_caches, map_function
from backends.elector.tiling import StaticFunction, schedule_function
from transcode_ir import Builder, Function, Module, TensorType, run_pipeline

BPE = 2.5
BUFFER_BW = 370e9 / 700e6
MM_BW = 25.6e9 / 700e6

# order: (a fetches, b fetches, out writes) worked out from the rule above
# (docs/cost-model.md, "tiny-test, four loop orders"): a wave is the 4 lanes'
# 4 consecutive tile-products; it spans c tiles of each loop (innermost loops
# first), reads each distinct tile it needs once (multicast), and a lane keeps
# its tile across waves while the operand's loops with more than one wave stay.
ORDERS = {
    # bijk: trips (1,2,2,4), a wave spans k whole: c = (1,1,1,4), waves (1,2,2,1).
    # a (b,i,k): 4 tiles a wave, changes with i -> 2 x 4 = 8; b (b,k,j): 4 a wave,
    # changes with j (inside i) -> 1*2*2 x 4 = 16; out (b,i,j): 1 a wave -> 4.
    "bijk": (8, 16, 4),
    # bkij: trips (1,4,2,2), the wave spans i and j: c = (1,1,2,2), waves (1,4,1,1).
    # a: 2 a wave x 4 (k) = 8; b: 2 a wave x 4 = 8; out: 4 a wave and never
    # changes (output stationary across k) -> 4.
    "bkij": (8, 8, 4),
    # kjib: trips (4,2,2,1): c = (1,2,2,1), waves (4,1,1,1): a 2 x 4, b 2 x 4, out 4.
    "kjib": (8, 8, 4),
    # jkbi: trips (2,4,1,2): c = (1,2,1,2), waves (2,2,1,1).  a (k,b,i): 2*1*2 = 4
    # a wave, changes with k -> 2*2 x 4 = 16; b (j,k,b): 2 a wave x 4 = 8;
    # out (j,b,i): 2 a wave, changes with j -> 2 x 2 = 4.
    "jkbi": (16, 8, 4),
}


def _module() -> Module:
    module = Module("hand")
    func = module.add_function(Function("forward", [TensorType((1, 16, 32)),
                                                    TensorType((1, 32, 16))], ["a", "b"]))
    builder = Builder(func)
    func.set_outputs([builder.op("tensor.matmul", func.args[0], func.args[1], loc="proj")],
                     ["out"])
    return module


def _run(order: str, design):
    import passes.tile  # noqa: F401

    module = _module()
    run_pipeline(module, f"tile{{b=1,x=8,y=8,order={order}}}")
    static = StaticFunction(module, "forward")
    mappings, plan = map_function(static, design)
    mapped = schedule_function(static, design, mappings, plan=plan)
    return mapped, simulate_analytical(mapped, design)


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_single_matmul_by_hand(order: str, design) -> None:
    clear_caches()
    tiny = design("tiny-test")
    mapped, result = _run(order, tiny)
    (op,) = mapped.ops
    fetch_a, fetch_b, writes_out = ORDERS[order]

    # Tiles, waves, lane cycles.
    assert (op.tile.b, op.tile.x, op.tile.y, op.order) == (1, 8, 8, order)
    (work,) = op.work
    assert (work.tiles, work.cycles_per_tile, work.waves, work.cycles) == (16, 128, 4, 512)
    assert work.busy_unit_cycles == 16 * 128

    # Bytes per operand: fetches x 160-byte tiles.
    by_role = {t.role: t for t in op.operands}
    assert by_role["lhs"].fetches == fetch_a and by_role["lhs"].distinct_tiles == 8
    assert by_role["rhs"].fetches == fetch_b and by_role["rhs"].distinct_tiles == 8
    assert by_role["out"].fetches == writes_out and by_role["out"].distinct_tiles == 4
    a_read, b_read = fetch_a * 160.0, fetch_b * 160.0
    out_write = writes_out * 160.0
    out_reread = out_write - 640.0            # partial sums read back
    fills = 1280.0 + 1280.0                   # a and b written into the buffer once
    through = 640.0                           # the result read out to main memory
    activation_read = a_read + b_read + out_reread + through
    activation_write = fills + out_write
    levels = op.bytes_by_level()
    assert levels["activation_buffer"] == pytest.approx((activation_read, activation_write))
    assert levels["main_memory"] == pytest.approx((2560.0, 640.0))
    assert levels["weight_buffer"] == (0.0, 0.0) and levels["mask_buffer"] == (0.0, 0.0)

    # Cycles: compute-bound, plus the first tile from main memory.
    memory = max(3200.0 / MM_BW, (activation_read + activation_write) / BUFFER_BW)
    assert memory < 512
    fill = 160.0 / MM_BW                      # 4.375 cycles
    assert op.fill_cycles == pytest.approx(fill)
    assert result.cycles == pytest.approx(512 + fill) == pytest.approx(516.375)
    assert result.seconds == pytest.approx(516.375 / 700e6)
    # Roofline: 8192 MACs / 16 per cycle = 512; compulsory main memory 3200 / 36.57 = 87.5.
    assert result.ops[0].roofline_cycles == pytest.approx(512.0)
    assert result.roofline_cycles == pytest.approx(512.0)

    # Dynamic energy: lane-cycles x (lane + FIFO + pre + post sparsity) per cycle;
    # dataflow busy lane-cycles / 2 lanes per PE; DMA busy while main memory moves
    # (87.5 cycles); buffers ceil(bytes / 64) accesses x energy per access each way;
    # main memory 3200 / 64 = 50 accesses x 13.44 nJ = 672 nJ.
    def per_cycle_nj(kind: str) -> float:
        return tiny.module_costs(kind).dynamic_energy_per_cycle_pj * 1e-3

    lane_cycles = 16 * 128
    energy = result.energy.by_class()
    for kind in ("mac_lane", "fifo", "pre_sparsity", "post_sparsity"):
        assert energy[kind].dynamic_nj == pytest.approx(lane_cycles * per_cycle_nj(kind))
    dataflow = lane_cycles / 2 * per_cycle_nj("dataflow")       # 2 lanes per PE
    assert energy["dataflow"].dynamic_nj == pytest.approx(dataflow)
    assert energy["dma"].dynamic_nj == pytest.approx(3200 / MM_BW * per_cycle_nj("dma"))
    assert energy["softmax"].dynamic_nj == 0.0 and energy["layer_norm"].dynamic_nj == 0.0
    access = tiny.buffer_costs("activation").energy_per_access_nj
    accesses = math.ceil(activation_read / 64) + math.ceil(activation_write / 64)
    assert energy["activation_buffer"].dynamic_nj == pytest.approx(accesses * access)
    assert energy["main_memory"].dynamic_nj == pytest.approx(50 * 13.44)
    assert energy["main_memory"].leakage_nj is None       # not characterised

    # Leakage: every module and buffer for the whole run (no power gating).
    seconds = 516.375 / 700e6
    leak_mw = sum(i.count * i.costs.leakage_mw for i in module_inventory(tiny))
    leak_mw += sum(tiny.buffer_costs(kind).leakage_mw for kind in ("activation", "weight", "mask"))
    assert result.energy.leakage_nj == pytest.approx(leak_mw * 1e-3 * seconds * 1e9)
    assert result.energy.total_nj == pytest.approx(result.energy.dynamic_nj
                                                   + result.energy.leakage_nj)


def test_orders_differ_only_in_traffic(design) -> None:
    """Same cycles (compute-bound), different buffer energy: the orders whose waves
    span i and j (bkij, kjib) read least."""
    tiny = design("tiny-test")
    energies = {order: _run(order, tiny)[1].energy.by_class()["activation_buffer"].dynamic_nj
                for order in ORDERS}
    assert energies["bkij"] == energies["kjib"] < energies["bijk"] == energies["jkbi"]


# --------------------------------------------------------------------------- two levels

# The same product with b a 32x16 weight (1280 bytes) on tiny-test with a 1 KiB
# weight buffer: the weight does not fit, so it is streamed, and main memory
# moves it in the largest block of the innermost loops whose weight tiles fit
# half the buffer (512 bytes = 3 tiles of 160 bytes), reloaded as the loops
# outside the block move (docs/cost-model.md, "tiny-test, four loop orders").
# order: (buffer reads of w = tiles to the lanes, tiles main memory moves)
STREAMED = {
    # bijk: waves (1,2,2,1); w (k, j) changes with j, i outside: 8 x 2 = 16 reads.
    # Block: k alone is 4 tiles > 3, so single tiles, reloaded by the full nest
    # down to k: 1*2*2*4 = 16.
    "bijk": (16, 16),
    # bkij: waves (1,4,1,1): w read once per tile, 8.  Block: j (2 tiles) and
    # i (no w loop): outer loops b, k: 4 x 2 = 8 tiles, the weight once.
    "bkij": (8, 8),
    # kjib: reads 8.  Block: b, i (no w loop), j: 2 tiles: outer k: 4 x 2 = 8.
    "kjib": (8, 8),
    # jkbi: reads 8.  Block: i, b (no w loop), k would be 4 tiles: single
    # tiles, reloaded down to k: 2 x 4 = 8.
    "jkbi": (8, 8),
}


def _weight_module() -> Module:
    module = Module("hand_w")
    func = module.add_function(Function("forward", [TensorType((1, 16, 32))], ["a"]))
    module.add_param("w", type=TensorType((32, 16)))
    builder = Builder(func)
    func.set_outputs([builder.op("tensor.matmul", func.args[0], builder.param("w"),
                                 loc="proj")], ["out"])
    return module


@pytest.mark.parametrize("order", sorted(STREAMED))
def test_streamed_weight_two_levels_by_hand(order: str, design) -> None:
    import dataclasses

    import passes.tile  # noqa: F401
    from backends.elector import validate_design

    clear_caches()
    tiny = design("tiny-test")
    small = validate_design(dataclasses.replace(
        tiny, name="tiny-small-weights",
        weight_buffer=dataclasses.replace(tiny.weight_buffer, size_bytes=1024)))
    module = _weight_module()
    run_pipeline(module, f"tile{{b=1,x=8,y=8,order={order}}}")
    static = StaticFunction(module, "forward")
    mappings, plan = map_function(static, small)
    (op,) = schedule_function(static, small, mappings, plan=plan).ops
    reads, moved = STREAMED[order]
    w = {t.role: t for t in op.operands}["rhs"]
    assert op.weights == "streamed" and not w.resident
    assert (w.fetches, w.distinct_tiles) == (reads, 8)
    assert w.buffer_read_bytes == reads * 160.0
    assert w.main_memory_read_bytes == moved * 160.0 == w.buffer_write_bytes
    a = {t.role: t for t in op.operands}["lhs"]
    assert a.fetches == ORDERS[order][0]            # the lane level as above
