"""Stages of the event simulator: what each tile of a mapped op loads, computes and stores.

The event simulator (:mod:`backends.elector.event_sim`) runs *stages*: a
stage is the work an op puts on one module class
(:class:`~backends.elector.schedule.UnitWork`), as ``tiles`` tiles of
``cycles_per_tile`` cycles on ``parallel`` modules, with the bytes each tile
moves at every storage level.  A plain op is one stage; a fused
``nn.attention`` is three (scores product on the lanes, softmax on the softmax
modules, context product on the lanes), linked at head granularity.

This module turns a :class:`~backends.elector.schedule.MappedOp` into
:class:`StagePlan` objects -- pure data, no timing:

* **Loads and stores per tile.**  The bytes of every
  :class:`~backends.elector.schedule.OperandTraffic` row are distributed over
  the op's tiles so that the totals per level are exactly the op's
  ``bytes_by_level()`` (the analytical simulator's and the energy model's
  figures):

  - an input of a matrix product (``lhs``, ``rhs``, ``rhs2``) is fetched at
    the *first* tile of each run of tiles in which its loops stay put (the
    contract's FIFO-reuse rule, :func:`~backends.elector.schedule.loop_fetches`):
    tile ``n`` fetches it when ``n % q == 0``, ``q`` being the product of the
    trip counts of the loops inside its innermost relevant loop; each fetch
    carries ``1/fetches`` of the operand's buffer, main-memory and mask bytes;
  - the result of a matrix product is written at the *last* tile of each run
    (``n % q == q - 1``), with ``1/fetches`` of its bytes (partial sums re-read
    and accumulated on the way: read-modify-write in issue order);
  - everything else (operands of whole-tensor ops, biases, attention masks,
    spills, the on-chip scores of a fused attention) is spread evenly over
    the tiles of its stage.

  Loads happen before a tile computes, stores after.  The loads and stores
  of tile ``n`` depend only on ``n % period`` (every ``q`` above divides the
  largest, so ``period`` is that largest), so a plan keeps one table of
  transfer times per level, indexed by ``n % period``.

* **Transfer times** are integers in units of ``1 / UNITS_PER_CYCLE`` of a
  cycle (``ceil(bytes / bandwidth per cycle)``), so the two modes of the
  simulator do the same integer arithmetic and agree exactly.

* **Staging.**  A matrix-product input streamed from main memory lands in
  its buffer and holds a slot there until the last tile that reuses it has
  finished: fetch ``g`` can start only when fetch ``g - slots`` is done with.
  The room for such tiles is the buffer's size less what the op's resident
  operands occupy at that level, shared by the op's streamed operands there,
  and never less than the double-buffered ``2 x PEs`` tiles the mapping
  constraints checked (the residency plan's other tensors are not in the
  mapped IR, so they are not subtracted: an approximation).

* **Chunks** (fused attention): the scores product, the softmax and the
  context product are split by batch tile (one chunk per ``b``-tile of
  heads); a softmax tile waits for the scores of its chunk, a context tile
  for the probabilities of its chunk.

* **Streaming.**  A tile's operands stream into its module while it
  computes, in ``rows`` equal parts (``StagePlan.rows``): a matrix
  tile-product consumes its operands one reduction row at a time (``y``
  rows: a row of the right tile with a column of the left one is
  ``b*x*y`` MACs), a softmax / layer-norm tile in two passes (the
  normalising pass needs the whole tile), lane arithmetic and data movement
  element by element.  So a tile can start when its first part has
  arrived and finishes no earlier than one part's compute after its last
  byte.

* **Unit-cycle work** (the contract counts data movement in 64-byte blocks
  and lane arithmetic in lane-cycles, one cycle each) is grouped: a DMA
  engine works through a descriptor of consecutive blocks, a lane through a
  contiguous chunk of elements -- as few waves as :data:`UNIT_WORK_WAVES`,
  but a DMA wave's burst never holds a level for more than
  :data:`BURST_CYCLES` cycles (bursts are served first come, first served,
  so long copies would make a concurrent op's small transfers wait behind
  them; memory controllers interleave requesters at a fine grain).  Lane
  arithmetic keeps its few large waves: its loads come from up to three
  levels at once, and small waves two slots deep would leave the ports idle
  between them.  The
  grouped tiles take as many cycles as the blocks or lane-cycles they hold
  (the busy cycles the energy model charges are the contract's, untouched).

When an op's figures do not fit the loop-order rule (fetch counts that do not
match), its bytes are spread evenly instead, and the plan says so in
``notes``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from backends.elector.schedule import LEVELS, MappedOp, OperandTraffic, TileShape, loop_trips
from backends.elector.tiling import HardwareConsts

__all__ = [
    "BURST_CYCLES",
    "LEVEL_INDEX",
    "UNITS_PER_CYCLE",
    "UNIT_WORK_WAVES",
    "ChunkLink",
    "StagePlan",
    "StagingConstraint",
    "plan_op",
    "transfer_units",
]

#: Time resolution of the event simulator: one cycle is this many time units.
UNITS_PER_CYCLE = 1 << 16

LEVEL_INDEX: Mapping[str, int] = {level: i for i, level in enumerate(LEVELS)}

#: Waves a stage of unit-cycle work (DMA blocks, lane-cycles) is grouped into
#: when its bursts stay short enough (see BURST_CYCLES).
UNIT_WORK_WAVES = 4
#: Longest burst (cycles on one level) grouping may build for one wave.
BURST_CYCLES = 256

#: Loops of the operands of a matrix product, in the order tried: with and
#: without the batch loop (a weight shared across the batch).
_OPERAND_LOOP_CHOICES: Mapping[str, tuple[str, ...]] = {
    "lhs": ("bik", "ik"), "rhs": ("bkj", "kj"), "rhs2": ("bkj", "kj"), "out": ("bij", "ij"),
}


def transfer_units(nbytes: np.ndarray, bandwidth: float) -> np.ndarray:
    """Transfer times of ``nbytes`` at ``bandwidth`` bytes per cycle, in time
    units, rounded up (never faster than the bandwidth)."""
    units = np.ceil(np.asarray(nbytes, dtype=np.float64) * UNITS_PER_CYCLE / bandwidth)
    return units.astype(np.int64)


#: Longest period whose transfer table is stored (8 bytes per entry); a
#: longer one -- it grows with the batch when a reuse pattern spans batch
#: tiles (issue 13: 3 GB of tables at batch 16,384 x seq 512) -- is a
#: :class:`PeriodicTable` computed from its few streams on demand.
MAX_TABLE_PERIOD = 1 << 16


class PeriodicTable:
    """``transfer_units`` of the bytes a tile ``n`` moves, for ``n % period``,
    without the table: the sum of ``amount`` over the streams with
    ``n % every == phase``, summed in stream order (so the values equal the
    stored table's exactly).  Indexable by an int or an int array."""

    __slots__ = ("period", "streams", "bandwidth")

    def __init__(self, period: int, streams: tuple[tuple[float, int, int], ...],
                 bandwidth: float) -> None:
        self.period, self.streams, self.bandwidth = period, streams, bandwidth

    def _bytes(self, rho: np.ndarray) -> np.ndarray:
        total = np.zeros(rho.shape)
        for amount, every, phase in self.streams:
            total[rho % every == phase] += amount
        return total

    def __getitem__(self, rho):
        if isinstance(rho, (int, np.integer)):
            return transfer_units(self._bytes(np.array([rho], dtype=np.int64)),
                                  self.bandwidth)[0]
        return transfer_units(self._bytes(np.asarray(rho, dtype=np.int64)), self.bandwidth)

    def positive(self, rho) -> np.ndarray:
        """``self[rho] > 0``."""
        return self[rho] > 0

    def any(self) -> bool:
        # Each stream's own phase is a tile where at least its amount moves.
        return any(self[phase] > 0 for _, _, phase in self.streams)


@dataclass(frozen=True)
class StagingConstraint:
    """Fetch ``g`` of a streamed operand (its first tile is ``g * group``) may
    start loading only when fetch ``g - slots`` has been used by the last
    tile of its group."""

    operand: str
    group: int          # tiles per fetch (q)
    slots: int          # staging slots (2 x PEs)

    @property
    def distance(self) -> int:
        """Tiles between a fetch and the last tile of the fetch it waits for."""
        return (self.slots - 1) * self.group + 1


@dataclass(frozen=True)
class ChunkLink:
    """How the tiles of a stage map to chunks (attention: batch tiles of heads).

    Product stages: ``chunk(n) = (n // stride) % count`` (the digit of the
    batch loop in the loop order).  Row stages (softmax): tiles are row-major
    over ``row_tiles x col_tiles`` tiles of ``rows_per_tile`` rows, and a row
    belongs to chunk ``row // rows_per_chunk``.  ``waits_for``: the stage
    (position in the op's stages) whose chunk must be complete first, or
    None.
    """

    count: int
    stride: int = 1
    col_tiles: int = 0
    rows_per_tile: int = 0
    rows_per_chunk: int = 0
    waits_for: int | None = None

    def chunk_of(self, tiles: np.ndarray) -> np.ndarray:
        tiles = np.asarray(tiles, dtype=np.int64)
        if self.col_tiles:
            rows = (tiles // self.col_tiles) * self.rows_per_tile
            return np.minimum(rows // self.rows_per_chunk, self.count - 1)
        return (tiles // self.stride) % self.count

    def chunk_of_one(self, tile: int) -> int:
        if self.col_tiles:
            rows = (tile // self.col_tiles) * self.rows_per_tile
            return min(rows // self.rows_per_chunk, self.count - 1)
        return (tile // self.stride) % self.count


@dataclass
class StagePlan:
    """One stage of an op: ``tiles`` tiles of ``cycles`` cycles on ``unit``
    (``parallel`` modules).  ``load_units[level]`` / ``store_units[level]``:
    transfer time (time units) of tile ``n`` at that level is
    ``table[n % period]``; only levels with traffic appear.  ``*_bytes``:
    the bytes behind them (totals, for checks)."""

    op_index: int
    position: int                       # 0.. within the op
    name: str                           # "scores", "softmax", "context", or the unit
    unit: str
    parallel: int
    tiles: int
    cycles: int
    period: int
    load_units: dict[int, np.ndarray] = field(default_factory=dict)
    store_units: dict[int, np.ndarray] = field(default_factory=dict)
    load_bytes: dict[str, float] = field(default_factory=dict)
    store_bytes: dict[str, float] = field(default_factory=dict)
    staging: tuple[StagingConstraint, ...] = ()
    chunks: ChunkLink | None = None
    notes: tuple[str, ...] = ()
    rows: int = 1                       # parts a tile's operands stream in

    @property
    def batch_size(self) -> int:
        """Tiles processed together: at most one per module, and no tile may
        wait on a tile of its own batch (staging distance)."""
        size = self.parallel
        for constraint in self.staging:
            size = min(size, constraint.distance)
        return max(1, min(size, self.tiles))

    def bytes_by_level(self) -> dict[str, float]:
        out = {level: 0.0 for level in LEVELS}
        for level, value in self.load_bytes.items():
            out[level] += value
        for level, value in self.store_bytes.items():
            out[level] += value
        return out


# --------------------------------------------------------------------------- building


@dataclass
class _Stream:
    """Bytes a stage moves at one level: ``amount`` at every tile ``n`` with
    ``n % every == phase`` (``every`` 1: every tile)."""

    store: bool
    level: str
    amount: float
    every: int = 1
    phase: int = 0


class _StageBuilder:
    def __init__(self, op: MappedOp, position: int, name: str, unit: str, parallel: int,
                 tiles: int, cycles: int, rows: int = 1) -> None:
        self.op = op
        self.rows = max(1, rows)
        self.position = position
        self.name = name
        self.unit = unit
        self.parallel = parallel
        self.tiles = tiles
        self.cycles = cycles
        self.streams: list[_Stream] = []
        self.staging: list[StagingConstraint] = []
        self.chunks: ChunkLink | None = None
        self.notes: list[str] = []

    def even(self, store: bool, level: str, total: float) -> None:
        if total:
            self.streams.append(_Stream(store, level, total / self.tiles))

    def patterned(self, store: bool, level: str, total: float, every: int, fetches: int) -> None:
        if total:
            phase = every - 1 if store else 0
            self.streams.append(_Stream(store, level, total / fetches, every, phase))

    def build(self, hw: HardwareConsts) -> StagePlan:
        period = max((s.every for s in self.streams), default=1)
        loads: dict[int, np.ndarray] = {}
        stores: dict[int, np.ndarray] = {}
        load_bytes: dict[str, float] = {}
        store_bytes: dict[str, float] = {}
        per_level: dict[tuple[bool, str], list[_Stream]] = {}
        for stream in self.streams:
            if stream.level not in LEVEL_INDEX:
                # A per-PE buffer has no channel of its own in this
                # simulator: its bytes count for energy, not for timing.
                continue
            per_level.setdefault((stream.store, stream.level), []).append(stream)
            totals = store_bytes if stream.store else load_bytes
            totals[stream.level] = (totals.get(stream.level, 0.0)
                                    + stream.amount * (self.tiles // stream.every))
        for (store, level), streams in per_level.items():
            if period <= MAX_TABLE_PERIOD:
                table = np.zeros(period)
                for stream in streams:
                    table[stream.phase::stream.every] += stream.amount
                units = transfer_units(table, hw.bandwidth[level])
            else:
                units = PeriodicTable(period, tuple((s.amount, s.every, s.phase)
                                                    for s in streams), hw.bandwidth[level])
            if units.any():
                (stores if store else loads)[LEVEL_INDEX[level]] = units
        return StagePlan(self.op.index, self.position, self.name, self.unit, self.parallel,
                         self.tiles, self.cycles, period, loads, stores, load_bytes,
                         store_bytes, tuple(self.staging), self.chunks, tuple(self.notes),
                         self.rows)


def _input_levels(operand: OperandTraffic) -> list[tuple[str, float]]:
    """(level, bytes) an input moves before its tiles compute."""
    return [(operand.level, operand.buffer_read_bytes + operand.buffer_write_bytes),
            ("main_memory", operand.main_memory_read_bytes + operand.main_memory_write_bytes),
            ("mask_buffer", operand.mask_bytes)]


def _output_levels(operand: OperandTraffic) -> list[tuple[str, float]]:
    """(level, bytes) a result moves after its tiles compute (partial sums
    re-read and accumulated, write-through to main memory)."""
    return [(operand.level, operand.buffer_write_bytes + operand.buffer_read_bytes),
            ("main_memory", operand.main_memory_write_bytes + operand.main_memory_read_bytes),
            ("mask_buffer", operand.mask_bytes)]


def _spread(builder: _StageBuilder, operand: OperandTraffic) -> None:
    levels = _output_levels(operand) if operand.is_output else _input_levels(operand)
    for level, total in levels:
        builder.even(operand.is_output, level, total)


class _LoopNest:
    """The tile loops of one product of a stage: trips, order, run lengths."""

    def __init__(self, dims: tuple[int, int, int, int], tile: TileShape, order: str) -> None:
        self.trips = loop_trips(dims, tile)
        self.order = order
        self.tiles = math.prod(self.trips.values())

    def run_length(self, relevant: str) -> int:
        """Tiles during which an operand depending on ``relevant`` stays put."""
        innermost = max(self.order.index(d) for d in relevant)
        return math.prod(self.trips[d] for d in self.order[innermost + 1:])

    def stride(self, loop: str) -> int:
        return self.run_length(loop)


def _staging_slots(op: MappedOp, operand: OperandTraffic, hw: HardwareConsts) -> int:
    """Tiles of a streamed operand its buffer can hold at once (see the
    module docstring)."""
    level = operand.level
    resident = sum(t.tensor_bytes * t.density for t in op.operands
                   if t.level == level and t.resident and t.role not in ("spill", "scores"))
    streamed_tile = sum(t.tile_bytes for t in op.operands
                        if t.level == level and not t.resident and t.tile_bytes > 0)
    room = hw.capacity[level] - resident
    slots = int(room // streamed_tile) if streamed_tile > 0 and room > 0 else 0
    return max(slots, 2 * hw.pes)


def _add_product_operand(builder: _StageBuilder, nest: _LoopNest, operand: OperandTraffic,
                         hw: HardwareConsts) -> None:
    """An operand of a matrix product, fetched (or written) by the loop-order rule."""
    role = "out" if operand.is_output else operand.role
    every = None
    for relevant in _OPERAND_LOOP_CHOICES.get(role, ()):
        run = nest.run_length(relevant)
        if nest.tiles // run == operand.fetches:
            every = run
            break
    if every is None:
        # Reads multicast across a wave's lanes (or blocked at buffer level) are
        # fewer than the lane-FIFO rule's: spread evenly over the tiles (totals
        # exact; EVENT_NOTES says so), no note per op.
        _spread(builder, operand)
        return
    levels = _output_levels(operand) if operand.is_output else _input_levels(operand)
    for level, total in levels:
        builder.patterned(operand.is_output, level, total, every, operand.fetches)
    if not operand.is_output and not operand.resident and operand.main_memory_read_bytes > 0:
        constraint = StagingConstraint(operand.role, every, _staging_slots(builder.op, operand, hw))
        # A slot freed 2 x P tiles back is already implied by double
        # buffering and in-order issue (the tile it waits for is two back on
        # a module of this wave or of an earlier one): keep only binding ones.
        if constraint.distance < 2 * builder.parallel:
            builder.staging.append(constraint)


def plan_op(op: MappedOp, hw: HardwareConsts, bytes_per_element: float) -> list[StagePlan]:
    """The stages of one mapped op (see the module docstring)."""
    works = [w for w in op.work if w.tiles > 0 or w.cycles_per_tile > 0]
    total_bytes = sum(op.bytes_at(level) for level in LEVELS)
    if not works or sum(w.tiles for w in works) == 0:
        if total_bytes <= 0:
            return []
        # Data moves but nothing computes: one zero-cycle tile carries it.
        unit = op.work[0].unit if op.work else op.unit
        parallel = op.work[0].parallel if op.work else 1
        builder = _StageBuilder(op, 0, unit, unit, parallel, 1, 0)
        for operand in op.operands:
            _spread(builder, operand)
        return [builder.build(hw)]
    if op.kind == "nn.attention" and op.dims is not None and op.tile is not None \
            and op.order is not None and len(works) == 3:
        plans = _plan_attention(op, works, hw, bytes_per_element)
        if plans is not None:
            return plans
    if len(works) == 1 and works[0].unit == "mac" and op.dims is not None \
            and op.tile is not None and op.order is not None:
        plan = _plan_product(op, works[0], hw)
        if plan is not None:
            return [plan]
    return _plan_even(op, works, hw)


def _even_level_bytes(op: MappedOp) -> dict[str, float]:
    """Bytes per level an op spreads evenly over its tiles, loads and
    stores apart (each is one burst per wave): the larger of the two."""
    loads: dict[str, float] = {}
    stores: dict[str, float] = {}
    for operand in op.operands:
        levels = _output_levels(operand) if operand.is_output else _input_levels(operand)
        side = stores if operand.is_output else loads
        for level, total in levels:
            side[level] = side.get(level, 0.0) + total
    return {level: max(loads.get(level, 0.0), stores.get(level, 0.0))
            for level in set(loads) | set(stores)}


def _plan_even(op: MappedOp, works: Sequence, hw: HardwareConsts) -> list[StagePlan]:
    """Whole-tensor ops (and anything unrecognised): bytes spread evenly over
    the tiles of the first stage."""
    plans = []
    for position, work in enumerate(works):
        tiles = max(work.tiles, 1)
        cycles = work.cycles_per_tile if work.tiles else 0
        if work.unit in ("softmax", "layernorm"):
            rows = 2                            # statistics pass, then normalising pass
        elif cycles == 1:
            # Unit-cycle work: group it into descriptors / vector chunks.
            group = -(-tiles // (work.parallel * UNIT_WORK_WAVES))
            wave_cycles = max(((level_bytes / tiles) * work.parallel / hw.bandwidth[level]
                               for level, level_bytes in _even_level_bytes(op).items()),
                              default=0.0)
            if work.unit == "dma" and wave_cycles > 0:
                group = min(group, max(1, int(BURST_CYCLES // wave_cycles)))
            tiles, cycles = -(-tiles // group), group
            rows = cycles                       # streams element by element
        else:
            rows = 1
        builder = _StageBuilder(op, position, work.unit, work.unit, work.parallel, tiles,
                                cycles, rows)
        if position == 0:
            for operand in op.operands:
                _spread(builder, operand)
        plans.append(builder.build(hw))
    return plans


def _plan_product(op: MappedOp, work, hw: HardwareConsts) -> StagePlan | None:
    nest = _LoopNest(op.dims, op.tile, op.order)
    if nest.tiles != work.tiles:
        return None
    builder = _StageBuilder(op, 0, "product", "mac", work.parallel, work.tiles,
                            work.cycles_per_tile, op.tile.y)
    for operand in op.operands:
        if operand.role in ("lhs", "rhs") or operand.is_output:
            _add_product_operand(builder, nest, operand, hw)
        else:
            _spread(builder, operand)       # bias, spills: spread evenly
    return builder.build(hw)


def _plan_attention(op: MappedOp, works: Sequence, hw: HardwareConsts,
                    bytes_per_element: float) -> list[StagePlan] | None:
    """Scores product -> softmax -> context product, chunked by batch tile."""
    scores_work, context_work, softmax_work = works
    if (scores_work.unit, context_work.unit, softmax_work.unit) != ("mac", "mac", "softmax"):
        return None
    roles = {operand.role: operand for operand in op.operands}
    out = roles.get("out")
    if out is None:
        return None
    batch, rows, _, keys = op.dims
    width = round(out.tensor_bytes / (batch * rows * bytes_per_element))
    nest1 = _LoopNest(op.dims, op.tile, op.order)
    nest2 = _LoopNest((batch, rows, keys, width), op.tile, op.order)
    if nest1.tiles != scores_work.tiles or nest2.tiles != context_work.tiles:
        return None
    module_tile = softmax_work.cycles_per_tile // 2        # 2 passes of x cycles
    if module_tile < 1:
        return None
    row_tiles, col_tiles = math.ceil(batch * rows / module_tile), math.ceil(keys / module_tile)
    if row_tiles * col_tiles != softmax_work.tiles:
        return None
    chunk_count = nest1.trips["b"]
    scores = _StageBuilder(op, 0, "scores", "mac", scores_work.parallel, scores_work.tiles,
                           scores_work.cycles_per_tile, op.tile.y)
    softmax = _StageBuilder(op, 1, "softmax", "softmax", softmax_work.parallel,
                            softmax_work.tiles, softmax_work.cycles_per_tile, 2)
    context = _StageBuilder(op, 2, "context", "mac", context_work.parallel, context_work.tiles,
                            context_work.cycles_per_tile, op.tile.y)
    scores.chunks = ChunkLink(chunk_count, stride=nest1.stride("b"))
    softmax.chunks = ChunkLink(chunk_count, col_tiles=col_tiles, rows_per_tile=module_tile,
                               rows_per_chunk=rows * op.tile.b, waits_for=0)
    context.chunks = ChunkLink(chunk_count, stride=nest2.stride("b"), waits_for=1)
    for operand in op.operands:
        if operand.role in ("lhs", "rhs"):
            _add_product_operand(scores, nest1, operand, hw)
        elif operand.role == "rhs2" or operand.is_output:
            _add_product_operand(context, nest2, operand, hw)
        elif operand.role == "scores":
            # Written by the scores product, read and rewritten by the
            # softmax, read by the context product (all on chip).
            half_read, half_write = operand.buffer_read_bytes / 2, operand.buffer_write_bytes / 2
            scores.even(True, operand.level, half_write)
            softmax.even(False, operand.level, half_read)
            softmax.even(True, operand.level, half_write)
            context.even(False, operand.level, half_read)
        elif operand.role == "mask":
            _spread(softmax, operand)
        else:
            _spread(scores, operand)        # spills and anything else
    return [scores.build(hw), softmax.build(hw), context.build(hw)]
