"""A single matrix product on tiny-test, timed by hand in the event model, for
four loop orders.

The op is the one of tests/elector_compile/test_hand_worked.py:
``out[1,16,16] = a[1,16,32] @ b[1,32,16]`` with tiles 1 x 8 x 8, ``a`` and
``b`` function arguments (in main memory: each is filled into the activation
buffer once, 1280 bytes), ``out`` a function result (written through to main
memory, 640 bytes).

tiny-test: 4 MAC lanes (2 PEs x 2 lanes) of 4 MACs; buffer port
370e9/700e6 = 3700/7 bytes per cycle; main memory 25.6e9/700e6 = 256/7 bytes
per cycle; the event model's time unit is 1/65536 cycle.

Tiles: trips b=1, i=2, j=2, k=4, so 16 tile-products of
``1*8*8*8 / 4 = 128`` cycles; 4 lanes -> 4 waves of 4 tiles, tile ``n`` on
lane ``n mod 4``.  Operands stream into a lane in ``y = 8`` reduction rows:
a tile starts when the first eighth of each of its operands is in, and
finishes ``128/8 = 16`` cycles after its last byte at the earliest.

Bytes per fetch (the contract's totals divided by the fetch counts; the
loop-order rule, where the mapping's fetch counts follow it: an operand is
fetched at the first tile of each run of tiles in which its loops stay put,
the result written at the last; see ORDERS for each order):

* main memory: an input fetch carries ``1280 / fetches`` bytes (its share of
  the fill), a result write ``640 / writes`` bytes (its share of the
  write-through);
* with 16 fetches that is 80 bytes = 80 * 7/256 = 2.1875 cycles; with 8,
  160 bytes = 4.375 cycles; a result write of 40 bytes (16 writes) = 1.09375
  cycles, of 160 bytes (4 writes) = 4.375 cycles.

Wave 0 is issued at cycle 0 (nothing to wait for).  Its main-memory burst
is shared by its 4 tiles; while all four still transfer, each gets a quarter
of the bandwidth, so a tile has its first eighth after ``sum_j min(d_j,
d_i/8)`` (``d`` in cycles).  The activation-buffer burst is 14.5x faster and
never sets the start.  Every later wave finds its data in long before its
lane is free (loads of at most 17.5 cycles against 128 of compute, double
buffered), so the lanes compute back to back: lane ``m`` ends at
``first(m) + 4 * 128``.  The last result write of the op leaves its final
eighth after the lane finishes: ``sum_j min(w_j, w/8)`` over the last
wave's writes ``w``.  So

    cycles = max over lanes of first(m) + 512 + last part of the last write.

The analytical model says ``512 + 4.375 = 516.375`` for every order (compute
plus one 160-byte tile of fill).
"""

from __future__ import annotations

import pytest

from backends.elector.analytical import simulate_analytical
from backends.elector.event_sim import simulate_event
from backends.elector.mapping import clear_caches, map_function
from backends.elector.tiling import StaticFunction, schedule_function
from tests.elector_compile.test_hand_worked import _module  # the same product
from transcode_ir import run_pipeline

UNIT = 1 / 65536

# order: (expected cycles, main-memory stall cycles)
# The fetch counts are the mapping's (tests/elector_compile/test_hand_worked.py,
# docs/cost-model.md: waves of 4 tile-products, multicast, FIFO reuse across
# waves).  The event model places an operand's fetches by the loop-order rule
# when its count equals tiles / run for one of the operand's loop choices
# (``bik``/``ik``, ``bkj``/``kj``, ``bij``/``ij``), else it spreads the bytes
# evenly over the 16 tiles (1280 / 16 = 80 B of an input, 640 / 16 = 40 B of
# the result per tile).
ORDERS = {
    # bijk (trips 1,2,2,4): a 8 fetches (the rule says 16: spread, 80 B a
    # tile); b 16 (every tile, 80 B); out 4 = 16 / 4 (written by tiles 3, 7,
    # 11, 15: 160 B = 4.375 cycles).  Wave 0: 160 B per tile, all equal: first
    # eighth after 4 * 4.375/8 = 2.1875; the last write alone in its burst:
    # its last eighth 4.375/8 = 0.546875.  cycles = 2.1875 + 512 + 0.546875.
    "bijk": (514.734375, 2.1875 + 0.546875),
    # kjib (trips 4,2,2,1): a 8 (rule 16 for bik and ik: spread, 80 B); b 8 =
    # 16 / 2 for kj (run of trips[i] x trips[b] = 2: even tiles, 160 B); out 4
    # (rule 16: spread, 40 B).  Wave 0 main memory: tiles 0, 2 move 240 B
    # (6.5625 cycles), tiles 1, 3 80 B (2.1875).  First eighth of tile 0:
    # min(2.1875, 0.8203125) * 2 + min(6.5625, 0.8203125) * 2 = 3.28125; of
    # tile 1: 4 * 0.2734375 = 1.09375.  The last wave writes 4 results of 40 B
    # (1.09375 cycles): their last eighths, shared by 4, take 4 * 1.09375/8 =
    # 0.546875.  cycles = 3.28125 + 512 + 0.546875 = 515.828125.  Main-memory
    # stall: lanes idle (3.28125 + 1.09375 + 3.28125 + 1.09375) / 4 lanes =
    # 2.1875, plus the 0.546875 tail.
    "kjib": (515.828125, 2.1875 + 0.546875),
    # bkij (trips 1,4,2,2): a 8 = 16 / 2 for bik (innermost relevant i, run of
    # trips[j] = 2: even tiles, 160 B); b 8 (rule 16: spread, 80 B); out 4
    # (rule 16: spread, 40 B).  Wave 0: 240, 80, 240, 80 B as for kjib.
    "bkij": (515.828125, 2.1875 + 0.546875),
    # jkbi (trips 2,4,1,2): a 16 (every tile, 80 B); b 8 = 16 / 2 for bkj
    # (innermost relevant b, one trip, run of trips[i] = 2: even tiles, 160 B);
    # out 4 (spread, 40 B).  Wave 0 as for kjib.
    "jkbi": (515.828125, 2.1875 + 0.546875),
}


def _mapped(order: str, tiny):
    import passes.tile  # noqa: F401  (registers the tile pass)

    module = _module()
    run_pipeline(module, f"tile{{b=1,x=8,y=8,order={order}}}")
    static = StaticFunction(module, "forward")
    mappings, plan = map_function(static, tiny)
    return schedule_function(static, tiny, mappings, plan=plan)


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_single_matmul_by_hand(order: str, design) -> None:
    clear_caches()
    tiny = design("tiny-test")
    mapped = _mapped(order, tiny)
    (op,) = mapped.ops
    (work,) = op.work
    assert (work.tiles, work.cycles_per_tile, work.parallel) == (16, 128, 4)
    cycles, memory_stall = ORDERS[order]

    for mode in ("waves", "per-tile"):
        result = simulate_event(mapped, tiny, mode=mode)
        # The derivation is exact; transfer times are whole time units here
        # (multiples of 7/256 cycle), so no rounding enters.
        assert result.cycles == pytest.approx(cycles, abs=UNIT)
        (op_result,) = result.ops
        assert op_result.start_cycle == 0.0
        assert op_result.end_cycle == pytest.approx(cycles, abs=UNIT)
        assert op_result.stalls["main_memory"] == pytest.approx(memory_stall, abs=UNIT)
        assert sum(op_result.stalls.values()) == pytest.approx(memory_stall, abs=UNIT)
        assert result.seconds == pytest.approx(cycles / 700e6, rel=1e-12)

    # The analytical model: compute plus one tile of fill, for every order.
    analytical = simulate_analytical(mapped, tiny)
    assert analytical.cycles == pytest.approx(516.375)
    # Same activity, so the same dynamic energy; leakage over the run length.
    event = simulate_event(mapped, tiny, compare=False)
    assert event.energy.dynamic_nj == pytest.approx(analytical.energy.dynamic_nj, rel=1e-12)
    assert event.energy.leakage_nj / analytical.energy.leakage_nj == pytest.approx(
        cycles / 516.375, rel=1e-9)


def test_orders_differ_in_the_first_wave(design) -> None:
    """The loop order decides which tiles of the first wave fetch which
    operand, and so when the lanes can start."""
    tiny = design("tiny-test")
    cycles = {order: simulate_event(_mapped(order, tiny), tiny, compare=False).cycles
              for order in ORDERS}
    assert cycles["bijk"] < cycles["bkij"] == cycles["jkbi"] == cycles["kjib"]
