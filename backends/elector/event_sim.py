"""The tile-level event-driven simulator of ELECTOR.

``simulate_event(mapped, accelerator, mode="waves")`` runs a
:class:`~backends.elector.schedule.MappedFunction` tile by tile on the
accelerator's resources and returns the same
:class:`~backends.elector.schedule.SimulationResult` as the analytical
simulator, plus stall cycles per class (per op and in total), a utilisation
timeline, and notes that say where and why it differs from the analytical
simulator.

Resources
=========

* **Module classes** (:data:`~backends.elector.schedule.UNITS`), ``P``
  modules each: MAC lanes (``PEs x lanes``), softmax modules, layer-norm
  modules (one per PE), DMA engines (one per PE), post-sparsity units (one
  per lane).  A module works on one tile at a time.
* **Storage levels** (main memory; activation, weight and mask buffers): one
  channel each at the level's bandwidth (main memory at its configuration's,
  each buffer's port at the technology's), shared by reads and writes, loads
  and stores, and every op.

How an op runs
==============

An op is one or more *stages* (:mod:`backends.elector.event_stages`): the
work it puts on one module class as tiles, with the bytes every tile loads
before it computes and stores after (matrix-product operands by the
contract's loop-order reuse rule, everything else spread evenly; the totals
per level are exactly the op's ``bytes_by_level()``).

* **In-order issue per class, in waves.**  The stages of a module class are
  issued in program order; tile ``n`` of a stage goes to module
  ``(offset + n) mod P`` (round robin continuing from the previous stage:
  under in-order issue, the module that frees first).  A *wave* is the
  tiles issued together: at most one per module, fewer when a staging slot
  refers back to a tile of the same wave.  A stage starts when the previous
  stage of its class has issued its last wave and every op it reads has
  finished (its last result tile stored).
* **Double buffering.**  Every module has two tile slots: a wave may be
  issued when, on each of its modules, the tile *two* back has finished
  (one slot computes while the other fills).  A matrix-product input
  streamed from main memory also needs one of the ``2 x PEs`` staging slots
  the mapping reserved in its buffer, from its load until the last tile
  that reuses it has finished.
* **Transfers.**  A wave's loads form one burst per level; bursts are served
  first come, first served; inside a burst the channel is shared equally by
  the wave's tiles that need that level (processor sharing: with sizes
  ``d_1 <= ... <= d_N`` tile ``i`` finishes ``sum_{j<i} d_j + (N-i+1) d_i``
  after the burst starts).  Stores likewise, one burst when the wave's last
  storing tile has computed.  Partial sums are accumulated in issue order
  (the channels are FIFO between bursts).
* **Streaming compute.**  Operands stream into a module as it computes, in
  ``rows`` parts (a reduction row of a tile-product, a pass of a softmax):
  a tile starts when its module is free and the first part of each operand
  has arrived, and ends at ``max(start + cycles, last byte + cycles/rows)``.
* **Fused attention** pipelines across heads: the softmax of a batch tile of
  heads waits for that batch tile's scores, the context product for its
  probabilities.

Time is kept in integers (``1/65536`` cycle; transfer times are rounded up,
so nothing beats a bandwidth).

Modes: per tile and in waves
============================

``mode="per-tile"`` steps through every tile with scalar arithmetic: the
requests of each tile, each tile's completion in a shared burst (in
processor-sharing order), each tile's start and end on its module, its
stalls.  ``mode="waves"`` (the default) computes the same quantities for a
whole wave with numpy (sorted cumulative sums for the shared bursts), and,
once a stage's waves repeat exactly -- every module, channel, pending event
and staging slot of the stage shifted by the same time from one period of
waves to the next, and nothing else scheduled before the end of the jump --
it skips whole periods in closed form (``state + periods x shift``): the
recurrences are max-plus and shift invariant, so the skipped waves would
have repeated the period exactly.  Stages running side by side (other
module classes, shared storage levels) jump together once their joint state
repeats -- every stage with a pending event shifted by one shift, each a
whole number of its own periods on (``_maybe_joint_jump``); a stage also jumps
past another's events when they share no storage level and no chunk link,
up to the earliest that stage could issue its last wave.  Both modes do the same integer
arithmetic, so they produce identical cycles, stalls and energy (the tests
check it).

Stalls
======

For every tile, the time its module sat idle before it (from when the module
was free and its class had turned to this stage) is split into the wait for
its wave to be issued -- for an input not produced yet (``dependency``:
another op, or a chunk of the same attention), for a slot
(``buffer_capacity``), for the class to finish issuing the previous stage
(``unit_busy``) -- and the wait for its first data (``main_memory`` or
``buffer_bandwidth``, by the level that delivered last); when a slot held
the wave back, the whole wait is ``buffer_capacity`` (the slot is what kept
its loads from overlapping the compute before).  Time a started tile spends
starved of data is charged to the level that delivered last.  A tile that had its
data but found its module still busy with another op waits for
``unit_busy``.  Module-cycles are divided by the modules the stage uses, so
stalls read as cycles of the op's module array; the time a stage's last
stores take after its last compute is added as a memory stall.

Energy
======

Priced by :func:`backends.elector.costing.energy_breakdown` from the same
activity as the analytical simulator (busy unit-cycles per class, bytes per
level, busy intervals per class) over the event simulator's run length:
by default every on-chip module and buffer leaks for the whole run; with
``power_gating = idle`` a module leaks only while busy, plus a wake-up per
op (:mod:`backends.elector.costing`).  The two simulators therefore differ
in energy only through leakage (and, gated, not even there: busy cycles and
wake-ups are the same in both).
"""

from __future__ import annotations

import bisect
import heapq
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from backends.elector.analytical import op_timing
from backends.elector.area import module_inventory
from backends.elector.costing import (
    area_by_class,
    busy_intervals,
    busy_module_cycles,
    energy_breakdown,
)
from backends.elector.design import Accelerator
from backends.elector.event_compare import explain_difference
from backends.elector.event_stages import (
    LEVEL_INDEX,
    MAX_TABLE_PERIOD,
    UNITS_PER_CYCLE,
    StagePlan,
    plan_op,
)
from backends.elector.schedule import (
    LEVELS,
    STALL_CLASSES,
    MappedFunction,
    MappedOp,
    OpResult,
    SimulationResult,
    TimelinePoint,
    bounding_level,
    level_utilisation,
)
from backends.elector.tiling import HardwareConsts, hardware_consts
from transcode_ir.errors import UserError

__all__ = ["EVENT_NOTES", "MODES", "EventMemoryError", "explain_difference", "memory_estimate",
           "memory_limit", "simulate_event"]

MODES = ("waves", "per-tile")

EVENT_NOTES = (
    ("event simulator: tiles on modules (in-order issue per module class, round robin, in "
    "waves), one channel per storage level (bursts first come first served, a burst shared "
    "by its tiles; reads and writes share a level's bandwidth), operands streamed into the "
    "modules as they compute, double buffering (two tile slots per module; 2 x PEs staging "
    "slots for inputs streamed from main memory), op-level dependencies, head-level "
    "pipelining inside a fused attention; transfer times rounded up to 1/65536 cycle"),
    ("event simulator: a storage level is one channel at its bandwidth (a buffer's banks x "
     "port, no bank conflicts); a matrix-product operand is loaded by the lane-FIFO loop rule "
     "when its reads follow it, else (reads multicast across a wave's lanes, buffer-level "
     "blocks) its bytes are spread evenly over the op's tiles; per-level totals are exactly "
     "the analytical model's"),
)

# Stall class indices (STALL_CLASSES order).
_DEP, _UNIT, _MM, _BUFBW, _BUFCAP = (STALL_CLASSES.index(name) for name in (
    "dependency", "unit_busy", "main_memory", "buffer_bandwidth", "buffer_capacity"))
_MM_LEVEL = LEVEL_INDEX["main_memory"]
_NO_LEVEL = -1
#: Longest period (in waves) a steady-state jump looks for.
_MAX_PERIOD_WAVES = 4096
#: Periods of snapshots a stage keeps to recognise a steady state.
_SNAPSHOTS_KEPT = 5
#: Joint snapshots of stages running side by side kept per stage.
_JOINT_KEPT = 8
#: Snapshot every wave (not once per period) when modules x period waves is
#: at most this.
_DENSE_SNAPSHOTS = 1 << 14
#: Waves smaller than this run through the scalar kernels even in "waves"
#: mode (numpy's per-call overhead exceeds the work; the results are the same).
_VECTOR_MIN_TILES = 24
_LOAD, _STORE = 0, 1
#: Load and store bursts kept per stage (a stage with more wave phases keeps none).
_BURST_CACHE_MAX = 32
#: Whole-wave rows, store masks and module arrays kept per stage (_StageRun.rows).
_WAVE_CACHE_MAX = 48
#: A wave is worked out per class of identical tiles when it has at least this
#: many tiles and this many times as many tiles as classes.
_CLASS_MIN_TILES = 512
_CLASS_GAIN = 8


def _first_tile(links, start: int, end: int, test) -> int | None:
    """The first tile ``n`` in ``[start, end)`` whose chunk id passes
    ``test`` (a vectorised predicate on chunk ids), or None.

    In closed form over the chunk ids (``test`` depends on the id only):
    a product stage's chunk is ``(n // stride) % count``, runs of ``stride``
    tiles cycling through the ids; a row stage's is non-decreasing in ``n``,
    chunk ``c`` starting at row ``ceil(c x rows_per_chunk / rows_per_tile)``.
    (It used to scan the tiles in blocks: 33 s of BERT-Base's 34 s once
    map's smaller attention tiles multiplied them.)"""
    if start >= end:
        return None
    passing = np.asarray(test(np.arange(links.count, dtype=np.int64)), dtype=bool)
    if not passing.any():
        return None
    if links.col_tiles:
        tile = start
        while tile < end:
            chunk = links.chunk_of_one(tile)
            if passing[chunk]:
                return tile
            later = np.nonzero(passing[chunk + 1:])[0]
            if not later.size:
                return None
            # The first tile whose chunk reaches the next passing id (a chunk
            # may be skipped when a tile spans more rows than a chunk).
            row = -(-(chunk + 1 + int(later[0])) * links.rows_per_chunk // links.rows_per_tile)
            tile = max(tile + 1, row * links.col_tiles)
        return None
    run = start // links.stride
    shift = int(np.nonzero(np.roll(passing, -(run % links.count)))[0][0])
    tile = max(start, (run + shift) * links.stride)
    return tile if tile < end else None


def _chunk_sizes(links, tiles: int) -> np.ndarray:
    """Tiles per chunk of a stage of ``tiles`` tiles, in closed form (never an
    array of every tile).  A product stage's chunk is ``(n // stride) %
    count``: every ``stride x count`` tiles give each chunk ``stride``, and
    the rest fills chunks in order.  A row stage's row tile ``i`` (of
    ``col_tiles`` tiles; the last may be partial) is in chunk ``min(i x
    rows_per_tile // rows_per_chunk, count - 1)``, so chunk ``c < count``
    starts at row tile ``ceil(c x rows_per_chunk / rows_per_tile)``."""
    count = links.count
    chunk = np.arange(count, dtype=np.int64)
    if not links.col_tiles:
        block = links.stride * count
        rest = tiles % block
        return (tiles // block) * links.stride + np.clip(rest - chunk * links.stride, 0,
                                                          links.stride)
    row_tiles = -(-tiles // links.col_tiles)
    starts = np.minimum(-(-chunk * links.rows_per_chunk // links.rows_per_tile), row_tiles)
    ends = np.append(starts[1:], row_tiles)
    sizes = np.maximum(ends - starts, 0) * links.col_tiles
    short = row_tiles * links.col_tiles - tiles          # the last row tile's missing tiles
    if short:
        sizes[links.chunk_of_one(tiles - 1)] -= short
    return sizes


def _chunk_runs(links, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of ``tiles`` (ascending indices) in one chunk: the position of
    each run's first tile, and its chunk (a chunk may have several runs).  A
    chunk id changes only where ``n // g`` does, ``g`` being a product
    stage's stride or a row stage's row of tiles, so when those boundaries
    are few the runs are found from them, else tile by tile."""
    step = links.col_tiles or links.stride
    low, high = int(tiles[0]) // step, int(tiles[-1]) // step
    if (high - low) * 8 < tiles.size:
        edges = np.arange(low + 1, high + 1, dtype=np.int64) * step
        starts = np.unique(np.concatenate(([0], np.searchsorted(tiles, edges))))
        return starts, links.chunk_of(tiles[starts])
    chunks = links.chunk_of(tiles)
    starts = np.flatnonzero(np.concatenate(([True], chunks[1:] != chunks[:-1])))
    return starts, chunks[starts]


def _level_stall(level: int) -> int:
    return _MM if level == _MM_LEVEL else _BUFBW


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# --------------------------------------------------------------------------- shared bursts


def _shared_burst_vector(sizes: np.ndarray, parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Transfers of ``sizes`` sharing a channel equally from time 0
    (processor sharing, simultaneous arrivals): when each has received all
    of its size, and when each has received its first ``parts``.  While
    every unfinished transfer gets the same rate, a transfer has received
    ``w`` at time ``sum_j min(size_j, w)``."""
    count = sizes.size
    smallest, largest = int(sizes.min()), int(sizes.max())
    if smallest == largest:
        return np.full(count, count * smallest, dtype=np.int64), count * parts
    ranked = np.sort(sizes, kind="stable")
    below = np.concatenate(([0], np.cumsum(ranked)))

    def received(work: np.ndarray) -> np.ndarray:
        smaller = np.searchsorted(ranked, work, side="left")
        return below[smaller] + work * (count - smaller)

    return received(sizes), received(parts)


def _shared_burst_scalar(sizes: Sequence[int], parts: Sequence[int]
                         ) -> tuple[list[int], list[int]]:
    """The same, tile by tile: each transfer's progress under equal sharing
    (``sum_j min(size_j, w)``), with the sizes ranked once."""
    ranked = sorted(sizes)
    below = [0]
    for size in ranked:
        below.append(below[-1] + size)
    count = len(ranked)

    def received(work: int) -> int:
        smaller = bisect.bisect_left(ranked, work)
        return below[smaller] + work * (count - smaller)

    return [received(size) for size in sizes], [received(part) for part in parts]


# --------------------------------------------------------------------------- runtime state


class _AnyPositive:
    """``stores_at`` of a stage with a long period: whether tile ``n`` stores
    at some level, from its :class:`~backends.elector.event_stages.PeriodicTable`s."""

    def __init__(self, tables: tuple) -> None:
        self.tables = tables

    def __getitem__(self, rho):
        rho = np.asarray(rho, dtype=np.int64)
        out = np.zeros(rho.shape, dtype=bool)
        for table in self.tables:
            out |= table[rho] > 0
        return out


class _UnitRecord:
    """``last`` and ``prev`` of the modules of a wave worked out per class:
    the module of the wave's ``i``-th tile, ``(first_module + i) % P``, has
    ``last_c[classes.index[i]]`` and ``prev_c[classes.index[i]]``.  Never
    changed once made (snapshots keep it)."""

    __slots__ = ("classes", "first_module", "last_c", "prev_c")

    def __init__(self, classes: _Classes, first_module: int, last_c: np.ndarray,
                 prev_c: np.ndarray) -> None:
        self.classes = classes
        self.first_module = first_module
        self.last_c = last_c
        self.prev_c = prev_c

    def fits(self, classes: _Classes, first_module: int) -> bool:
        return self.classes is classes and self.first_module == first_module

    def modules(self, parallel: int) -> slice | np.ndarray:
        size = self.classes.total
        if self.first_module + size <= parallel:
            return slice(self.first_module, self.first_module + size)
        return (self.first_module + np.arange(size, dtype=np.int64)) % parallel

    def write(self, last: np.ndarray, prev: np.ndarray, parallel: int) -> None:
        modules = self.modules(parallel)
        last[modules] = self.last_c[self.classes.index]
        prev[modules] = self.prev_c[self.classes.index]


class _UnitClass:
    """The modules of one class: when each is free, and the in-order issue queue.

    While a stage's waves are worked out per class, ``record`` holds its
    modules' times per class and ``last``/``prev`` are out of date for those
    modules: :meth:`settle` writes them (every reader but the per-class path
    settles first)."""

    def __init__(self, name: str, parallel: int) -> None:
        self.name = name
        self.parallel = parallel
        self.last = np.zeros(parallel, dtype=np.int64)     # end of the module's last tile
        self.prev = np.zeros(parallel, dtype=np.int64)     # end of the tile before it
        self.record: _UnitRecord | None = None
        self.issued = 0                                    # tiles issued so far (round robin)
        self.queue: list[_StageRun] = []
        self.head = 0
        self.last_issue = 0                                # when the last wave was issued
        self.last_issue_cause = _UNIT

    @property
    def current(self) -> _StageRun | None:
        return self.queue[self.head] if self.head < len(self.queue) else None

    def settle(self) -> None:
        """Write the per-class record into ``last`` and ``prev``."""
        if self.record is not None:
            self.record.write(self.last, self.prev, self.parallel)
            self.record = None

    def whole_record(self) -> _UnitRecord | None:
        """The record when it covers every module (so ``last`` and ``prev``
        follow from it alone), else None (settled)."""
        if self.record is not None and self.record.classes.total == self.parallel:
            return self.record
        self.settle()
        return None

    def move(self, delta: int) -> None:
        """Every module's times ``delta`` later."""
        self.last += delta
        self.prev += delta
        if self.record is not None:
            record = self.record
            self.record = _UnitRecord(record.classes, record.first_module,
                                      record.last_c + delta, record.prev_c + delta)


class _PendingWave:
    """A wave waiting to be issued: tiles ``first .. first + size - 1`` (the
    index array is made only when asked for), when it may be issued (time
    units) and the stall class of what set that time."""

    __slots__ = ("first", "size", "issue", "cause", "_tiles")

    def __init__(self, first: int, size: int, issue: int, cause: int,
                 tiles: np.ndarray | None = None) -> None:
        self.first, self.size, self.issue, self.cause = first, size, issue, cause
        self._tiles = tiles

    @property
    def tiles(self) -> np.ndarray:
        if self._tiles is None:
            self._tiles = np.arange(self.first, self.first + self.size, dtype=np.int64)
        return self._tiles


class _PendingStores:
    """A wave's storing tiles waiting for their store burst: when each
    computed and when its first output part was ready -- per tile, or per
    class of identical tiles (``classes``, a :class:`_Classes` of these
    tiles; the per-tile arrays are then expanded only when asked for).
    Never changed once made (snapshots keep it)."""

    __slots__ = ("_tiles", "first", "positions", "classes", "computed_c", "first_out_c",
                 "_computed", "_first_out")

    def __init__(self, tiles: np.ndarray | None, computed: np.ndarray, first_out: np.ndarray,
                 classes: _Classes | None = None, first: int = 0,
                 positions: np.ndarray | None = None) -> None:
        # Per class, the tiles may be given as ``first`` + ``positions`` (or
        # ``first`` onwards, one per tile of ``classes``), made when asked for.
        self._tiles = tiles
        self.first, self.positions = first, positions
        self.classes = classes
        if classes is None:
            self.computed_c = self.first_out_c = None
            self._computed, self._first_out = computed, first_out
        else:
            self.computed_c, self.first_out_c = computed, first_out
            self._computed = self._first_out = None

    @property
    def tiles(self) -> np.ndarray:
        if self._tiles is None:
            self._tiles = (self.first + self.positions if self.positions is not None
                           else np.arange(self.first, self.first + self.classes.total,
                                          dtype=np.int64))
        return self._tiles

    @property
    def computed(self) -> np.ndarray:
        """Compute-end time of each tile."""
        if self._computed is None:
            self._computed = self.computed_c[self.classes.index]
        return self._computed

    @property
    def first_out(self) -> np.ndarray:
        """When each tile's first output part was ready."""
        if self._first_out is None:
            self._first_out = self.first_out_c[self.classes.index]
        return self._first_out

    def moved(self, tiles: int, delta: int) -> _PendingStores:
        """The same stores ``tiles`` tiles and ``delta`` time units later."""
        if self.classes is not None:
            moved = None if self._tiles is None else self._tiles + tiles
            return _PendingStores(moved, self.computed_c + delta, self.first_out_c + delta,
                                  self.classes, self.first + tiles, self.positions)
        return _PendingStores(self.tiles + tiles, self.computed + delta, self.first_out + delta)

    def shifted_from(self, before: _PendingStores, shift: int) -> bool:
        """Is this ``before`` moved ``shift`` later (same tiles relative to their wave)?"""
        if self.classes is not None and self.classes is before.classes:
            return bool(np.array_equal(self.computed_c, before.computed_c + shift)
                        and np.array_equal(self.first_out_c, before.first_out_c + shift))
        if self.computed.size != before.computed.size:
            return False
        return bool(np.array_equal(self.computed, before.computed + shift)
                    and np.array_equal(self.first_out, before.first_out + shift))


class _Classes:
    """The tiles of a wave (or of its storing part) grouped into classes of
    identical tiles: the same bytes at every level, loads and stores (so the
    same place in every shared burst).  Tiles of a class whose modules were
    free at the same time are computed, stored and stalled alike, so a wave
    can be worked out per class and multiplied by the counts
    (:meth:`_Engine._issue_classes`).  Classes are numbered in the order of
    their first tile, so the first class holding a maximum is the first
    tile holding it."""

    __slots__ = ("index", "first", "count", "total", "load", "store", "stores", "storing",
                 "store_positions", "bursts")

    def __init__(self, index: np.ndarray, first: np.ndarray, count: np.ndarray,
                 load: dict[int, np.ndarray], store: dict[int, np.ndarray]) -> None:
        self.index = index                  # class of each tile (position in the run)
        self.first = first                  # position of each class's first tile
        self.count = count                  # tiles per class
        self.total = int(index.size)
        self.load = load                    # per level: each class's load units
        self.store = store                  # per level: each class's store units
        stores = np.zeros(first.size, dtype=bool)
        for sizes in store.values():
            stores |= sizes > 0
        self.stores = stores                # which classes store at some level
        self.storing: _Classes | None = None
        self.store_positions: np.ndarray | None = None
        self.bursts: dict = {}

    @classmethod
    def of(cls, row_class: np.ndarray, columns: np.ndarray, phase: int, tiles: int,
           load_levels: Sequence[int], store_levels: Sequence[int]) -> _Classes:
        """For a run of ``tiles`` consecutive tiles starting at table row
        ``phase``, from the class of each table row (``row_class``) and each
        class's bytes (``columns``: one column per load level, then per store
        level)."""
        period = row_class.size
        rows = np.arange(min(tiles, period), dtype=np.int64) + phase
        rows[rows >= period] -= period
        # The first tile of each class: rows recur only after ``period`` tiles.
        first = np.full(columns.shape[0], tiles, dtype=np.int64)
        np.minimum.at(first, row_class[rows], np.arange(rows.size, dtype=np.int64))
        present = np.nonzero(first < tiles)[0]
        present = present[np.argsort(first[present], kind="stable")]
        rank = np.full(columns.shape[0], -1, dtype=np.int64)
        rank[present] = np.arange(present.size)
        wave_rows = np.arange(tiles, dtype=np.int64) + phase
        index = rank[row_class[wave_rows % period]]
        count = np.bincount(index, minlength=present.size).astype(np.int64)
        columns = columns[present]
        load = {level: columns[:, i].copy() for i, level in enumerate(load_levels)}
        store = {level: columns[:, len(load_levels) + i].copy()
                 for i, level in enumerate(store_levels)}
        out = cls(index, first[present], count, load, store)
        if out.stores.any() and not out.stores.all():
            positions = np.nonzero(out.stores[index])[0]
            renumber = np.cumsum(out.stores) - 1
            kept = out.stores
            sub = cls(renumber[index[positions]], np.searchsorted(positions, out.first[kept]),
                      count[kept].astype(np.int64), {}, {lv: v[kept] for lv, v in store.items()})
            out.storing, out.store_positions = sub, positions
        return out

    def burst(self, kind: int, level: int, rows: int):
        """The class form of :meth:`_Engine._burst`: the classes that move bytes
        at ``level``, when each class's tiles have all their bytes and their
        first part (from the burst's start), and the burst's total.  A tile
        sharing the channel with tiles of sizes ``s_j`` has received ``w``
        at ``sum_j min(s_j, w)``, summed here per class with its count."""
        key = (kind, level)
        found = self.bursts.get(key)
        if found is not None:
            return found
        sizes = (self.load if kind == _LOAD else self.store)[level]
        sel = np.nonzero(sizes > 0)[0]
        if not sel.size:
            found = (None, None, None, 0)
        else:
            sizes, counts = sizes[sel], self.count[sel]
            order = np.argsort(sizes, kind="stable")
            ranked, ranked_counts = sizes[order], counts[order]
            below = np.concatenate(([0], np.cumsum(ranked * ranked_counts)))
            fewer = np.concatenate(([0], np.cumsum(ranked_counts)))
            everyone = int(fewer[-1])

            def received(work: np.ndarray) -> np.ndarray:
                smaller = np.searchsorted(ranked, work, side="left")
                return below[smaller] + work * (everyone - fewer[smaller])

            found = (sel, received(sizes), received(-(-sizes // rows)), int(below[-1]))
        self.bursts[key] = found
        return found


@dataclass
class _Snapshot:
    """A stage's state right before it issues a wave (for steady-state jumps)."""

    wave: int
    time: int
    cause: int
    last: np.ndarray | None            # the modules' times (None: from ``record``)
    prev: np.ndarray | None
    record: _UnitRecord | None         # covering every module
    channels: np.ndarray
    stores: list[tuple[int, int, _PendingStores]]            # (time, wave, stores)
    last_issue: int
    counters: tuple
    segments: int
    releases: list[tuple[int, np.ndarray]]                    # (first group, release times)


def _module_times(parallel: int, snap: _Snapshot) -> tuple[np.ndarray, np.ndarray]:
    if snap.record is None:
        return snap.last, snap.prev
    last = np.empty(parallel, dtype=np.int64)
    prev = np.empty(parallel, dtype=np.int64)
    snap.record.write(last, prev, parallel)
    return last, prev


def _modules_shifted(parallel: int, before: _Snapshot, after: _Snapshot, shift: int) -> bool:
    """Are the modules' times in ``after`` those of ``before`` moved ``shift`` later?"""
    if before.record is not None and after.record is not None \
            and after.record.fits(before.record.classes, before.record.first_module):
        return bool(np.array_equal(after.record.last_c, before.record.last_c + shift)
                    and np.array_equal(after.record.prev_c, before.record.prev_c + shift))
    last1, prev1 = _module_times(parallel, before)
    last2, prev2 = _module_times(parallel, after)
    return bool(np.array_equal(last2, last1 + shift) and np.array_equal(prev2, prev1 + shift))


class _StageRun:
    """A stage being simulated."""

    def __init__(self, plan: StagePlan, op: _OpRun, unit: _UnitClass, ident: int) -> None:
        self.plan = plan
        self.op = op
        self.unit = unit
        self.ident = ident
        self.cycles_units = plan.cycles * UNITS_PER_CYCLE
        self.tail_units = _ceil_div(self.cycles_units, plan.rows)
        self.wave_size = plan.batch_size
        self.waves = _ceil_div(plan.tiles, self.wave_size) if plan.tiles else 0
        self.load_levels = sorted(plan.load_units)
        self.store_levels = sorted(plan.store_units)
        self.levels_used = sorted(set(self.load_levels) | set(self.store_levels))
        if plan.period <= MAX_TABLE_PERIOD:
            self.stores_at = np.zeros(plan.period, dtype=bool)   # by n % period
            for table in plan.store_units.values():
                self.stores_at |= table > 0
        else:                       # long periods: computed from the streams
            self.stores_at = _AnyPositive(tuple(plan.store_units.values()))
        self.offset = 0
        self.turn = 0
        self.started = False
        self.next_wave = 0
        self.pending_loads: dict[int, _PendingWave] = {}
        self.pending_stores: dict[int, _PendingStores] = {}
        self.done = 0
        self.max_done = 0
        self.max_done_level = _NO_LEVEL
        self.max_computed = 0
        self.tile_stalls = [0] * len(STALL_CLASSES)             # module time units
        self.tail_stalls = [0] * len(STALL_CLASSES)             # time units
        self.release = [np.full(_ceil_div(plan.tiles, c.group), -1, dtype=np.int64)
                        for c in plan.staging]
        self.chunk_left: np.ndarray | None = None
        self.chunk_done: np.ndarray | None = None
        if plan.chunks is not None:
            self.chunk_left = _chunk_sizes(plan.chunks, plan.tiles)
            self.chunk_done = np.zeros(plan.chunks.count, dtype=np.int64)
        self.snapshots: dict[int, _Snapshot] = {}
        # Bursts by wave phase (_Engine._burst), while phases are few.
        phases = plan.period // math.gcd(plan.period, self.wave_size) if plan.tiles else 0
        self.burst_cache: dict | None = {} if 0 < phases <= _BURST_CACHE_MAX // 4 else None
        # A whole wave's table rows, store mask and modules, by its phase (few).
        self.wave_cache: dict = {}
        # Waves worked out per class of identical tiles (_Engine._issue_classes).
        # (A period-1 stage moving nothing at a level of its tables is left to
        # _issue_uniform, which books an empty burst there.)
        self.by_class = (plan.period <= MAX_TABLE_PERIOD and self.burst_cache is not None
                         and (plan.period > 1 or all(
                             int(table[0]) > 0 for table in (*plan.load_units.values(),
                                                             *plan.store_units.values()))))
        self.row_classes: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def complete(self) -> bool:
        return self.done >= self.plan.tiles

    def wave_tiles(self, wave: int) -> np.ndarray:
        start = wave * self.wave_size
        return np.arange(start, min(start + self.wave_size, self.plan.tiles), dtype=np.int64)

    def pending_wave(self, wave: int, issue: int, cause: int) -> _PendingWave:
        start = wave * self.wave_size
        return _PendingWave(start, min(self.wave_size, self.plan.tiles - start), issue, cause)

    def _whole(self, tiles: np.ndarray) -> bool:
        return bool(tiles.size) and int(tiles[-1]) - int(tiles[0]) + 1 == tiles.size

    def rows(self, tiles: np.ndarray) -> np.ndarray:
        """``tiles % period`` (the table rows), kept per phase for whole waves.
        The array returned is shared: read it, never write it."""
        if not self._whole(tiles):
            return tiles % self.plan.period
        key = (0, int(tiles[0]) % self.plan.period, tiles.size)
        found = self.wave_cache.get(key)
        if found is None:
            found = tiles % self.plan.period
            if len(self.wave_cache) < _WAVE_CACHE_MAX:
                self.wave_cache[key] = found
        return found

    def stores_of(self, tiles: np.ndarray) -> np.ndarray:
        """Which tiles store (``stores_at`` of their rows); shared, read only."""
        if not self._whole(tiles):
            return self.stores_at[tiles % self.plan.period]
        key = (1, int(tiles[0]) % self.plan.period, tiles.size)
        found = self.wave_cache.get(key)
        if found is None:
            found = self.stores_at[self.rows(tiles)]
            if len(self.wave_cache) < _WAVE_CACHE_MAX:
                self.wave_cache[key] = found
        return found

    def classes_at(self, first: int, size: int) -> _Classes | None:
        """The classes of identical tiles of the wave of tiles ``first ..
        first + size - 1``, kept per phase (None when they are too many to be
        worth it)."""
        key = (3, first % self.plan.period, size)
        found = self.wave_cache.get(key)
        if found is None:
            if self.row_classes is None:
                plan = self.plan
                rows = np.arange(plan.period, dtype=np.int64)
                columns = [plan.load_units[level][rows] for level in self.load_levels]
                columns += [plan.store_units[level][rows] for level in self.store_levels]
                signature = np.stack(columns, axis=1) if columns else np.zeros(
                    (plan.period, 1), dtype=np.int64)
                unique, inverse = np.unique(signature, axis=0, return_inverse=True)
                self.row_classes = (inverse.reshape(-1), unique)
            row_class, columns = self.row_classes
            found = False
            if columns.shape[0] * _CLASS_GAIN <= size:
                classes = _Classes.of(row_class, columns, key[1], size,
                                      self.load_levels, self.store_levels)
                if classes.first.size * _CLASS_GAIN <= size:
                    found = classes
            if len(self.wave_cache) < _WAVE_CACHE_MAX:
                self.wave_cache[key] = found
        return found or None

    def modules_of(self, tiles: np.ndarray) -> np.ndarray:
        """The module of each tile (round robin from ``offset``); shared, read only."""
        parallel = self.unit.parallel
        if not self._whole(tiles):
            return (self.offset + tiles) % parallel
        key = (2, (self.offset + int(tiles[0])) % parallel, tiles.size)
        found = self.wave_cache.get(key)
        if found is None:
            found = (self.offset + tiles) % parallel
            if len(self.wave_cache) < _WAVE_CACHE_MAX:
                self.wave_cache[key] = found
        return found


class _OpRun:
    def __init__(self, op: MappedOp) -> None:
        self.op = op
        self.stages: list[_StageRun] = []
        self.deps_left = len(set(op.deps))
        self.ready = 0                     # when the last op it reads finished
        self.start: int | None = None
        self.end: int | None = None
        self.dependents: list[_OpRun] = []


# --------------------------------------------------------------------------- the engine


class EventMemoryError(UserError):
    """The event simulation would need more memory than it may use."""


#: Memory the event simulator may use for its per-tile tables, unless
#: ``TCC_EVENT_SIM_MEMORY`` (e.g. ``4G``, ``512M``) says otherwise.
DEFAULT_MEMORY_LIMIT = 2 * 2**30
#: Bytes of engine state per wave stepped through (busy segments, pending
#: waves), and the most waves it steps through per stage (the rest are
#: skipped in closed form or repeat a period).
_BYTES_PER_WAVE = 600
_BASE_BYTES = 64 * 2**20


def memory_limit() -> int:
    """The event simulator's memory budget in bytes (``TCC_EVENT_SIM_MEMORY``)."""
    text = os.environ.get("TCC_EVENT_SIM_MEMORY", "").strip()
    if not text:
        return DEFAULT_MEMORY_LIMIT
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?", text, re.IGNORECASE)
    if match is None:
        raise UserError(f"TCC_EVENT_SIM_MEMORY={text!r}: expected a size such as 4G, 512M or "
                        "2147483648 (bytes)")
    scale = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[match.group(2).upper()]
    return int(float(match.group(1)) * scale)


def memory_estimate(plans: Sequence[StagePlan]) -> int:
    """Bytes the engine needs beyond its fixed tables: the release time of
    every staging group (kept for the whole run) and the per-chunk counters,
    which grow with the batch; the busy segments of the waves it steps
    through; a fixed base."""
    total = _BASE_BYTES
    for plan in plans:
        for constraint in plan.staging:
            total += 8 * _ceil_div(plan.tiles, constraint.group)
        if plan.chunks is not None:
            total += 16 * plan.chunks.count
        waves = _ceil_div(plan.tiles, max(1, plan.batch_size)) if plan.tiles else 0
        total += _BYTES_PER_WAVE * min(waves, 4 * _MAX_PERIOD_WAVES)
    return total


def _check_memory(plans: Sequence[StagePlan], mapped: MappedFunction) -> None:
    need, limit = memory_estimate(plans), memory_limit()
    if need <= limit:
        return
    tiles = sum(plan.tiles for plan in plans)
    raise EventMemoryError(
        f"the event simulator would need about {need / 2**30:.1f} GiB for @{mapped.function} "
        f"({tiles:,} tiles; its per-tile tables grow with batch x sequence), more than its "
        f"limit of {limit / 2**30:.1f} GiB; use --sim analytical (its cost does not depend "
        "on the batch), a smaller --batch or --seq, or raise the limit with "
        "TCC_EVENT_SIM_MEMORY=SIZE (e.g. 8G)")


class _Engine:
    """The discrete-event loop (see the module docstring)."""

    def __init__(self, mapped: MappedFunction, hw: HardwareConsts, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mapped = mapped
        self.hw = hw
        self.vector = mode == "waves"
        self.channels = np.zeros(len(LEVELS), dtype=np.int64)   # when each channel is free
        self.heap: list[tuple[int, int, int, int, int]] = []   # (time, seq, kind, stage, wave)
        self.seq = 0
        self.units: dict[tuple[str, int], _UnitClass] = {}
        self.ops = [_OpRun(op) for op in mapped.ops]
        self.stages: list[_StageRun] = []
        self.waiters: dict[tuple[int, int], list[_StageRun]] = {}
        self.segments: list[tuple[str, int, int, int]] = []    # (unit, start, end, busy units)
        self.segment_stage: list[int] = []                       # the stage of each segment
        self.jumps = 0
        self.joint_history: dict[int, list[tuple[tuple[int, ...], dict, list]]] = {}
        self.waves_issued = 0              # every wave, skipped ones included
        self.waves_processed = 0           # waves stepped through one by one
        self.plan_notes: list[str] = []
        plans = [plan_op(op_run.op, hw, mapped.bytes_per_element) for op_run in self.ops]
        _check_memory([plan for op_plans in plans for plan in op_plans], mapped)
        for op_run, op_plans in zip(self.ops, plans):
            for dep in sorted(set(op_run.op.deps)):
                self.ops[dep].dependents.append(op_run)
            for plan in op_plans:
                unit = self.units.setdefault((plan.unit, plan.parallel),
                                             _UnitClass(plan.unit, plan.parallel))
                stage = _StageRun(plan, op_run, unit, len(self.stages))
                self.stages.append(stage)
                op_run.stages.append(stage)
                unit.queue.append(stage)
                self.plan_notes.extend(f"op {op_run.op.index} ({op_run.op.kind}): {note}"
                                       for note in plan.notes)

    def _segment(self, stage: _StageRun, segment: tuple[str, int, int, int]) -> None:
        self.segments.append(segment)
        self.segment_stage.append(stage.ident)

    def _push(self, time: int, kind: int, stage: _StageRun, wave: int) -> None:
        heapq.heappush(self.heap, (time, self.seq, kind, stage.ident, wave))
        self.seq += 1

    def run(self) -> None:
        finished: list[_OpRun] = []
        for op_run in self.ops:
            if op_run.deps_left == 0:
                if op_run.stages:
                    for stage in op_run.stages:
                        self._try_start(stage)
                else:
                    finished.append(op_run)
        self._finish_ops(finished)
        while self.heap:
            time, _, kind, ident, wave = heapq.heappop(self.heap)
            stage = self.stages[ident]
            if kind == _LOAD:
                self._issue(stage, wave, time)
            else:
                self._store(stage, wave)
        unfinished = [o.op.index for o in self.ops if o.end is None]
        if unfinished:
            raise RuntimeError(f"event simulation deadlocked; ops never finished: "
                               f"{unfinished[:10]}")

    # -- starting stages and issuing waves -----------------------------------

    def _try_start(self, stage: _StageRun) -> None:
        if stage.started or stage.op.deps_left or stage.unit.current is not stage:
            return
        stage.started = True
        stage.offset = stage.unit.issued % stage.unit.parallel
        stage.turn = stage.unit.last_issue
        stage.unit.last_issue_cause = _UNIT
        self._schedule_wave(stage, 0)

    def _advance_class(self, unit: _UnitClass) -> None:
        unit.head += 1
        nxt = unit.current
        if nxt is not None:
            self._try_start(nxt)

    def _schedule_wave(self, stage: _StageRun, wave: int) -> None:
        """When ``wave`` may be issued (all its tiles' constraints met); push its event."""
        plan = stage.plan
        unit = stage.unit
        record = unit.record
        if record is not None and self.vector and stage.by_class and not plan.staging \
                and plan.chunks is None:
            # A wave worked out per class like the one before it (no tile array).
            first = wave * stage.wave_size
            size = min(stage.wave_size, plan.tiles - first)
            if size == record.classes.total and record.fits(
                    stage.classes_at(first, size), (stage.offset + first) % unit.parallel):
                issue, cause = stage.op.ready, _DEP
                if unit.last_issue > issue:
                    issue, cause = unit.last_issue, unit.last_issue_cause
                # Every class of the wave is in it: the latest slot is its class's.
                latest = int(record.prev_c.max())
                if latest > issue:
                    issue, cause = latest, _BUFCAP
                stage.pending_loads[wave] = _PendingWave(first, size, issue, cause)
                stage.next_wave = wave + 1
                self._push(issue, _LOAD, stage, wave)
                return
        tiles = stage.wave_tiles(wave)
        upstream = None
        if plan.chunks is not None and plan.chunks.waits_for is not None:
            upstream = stage.op.stages[plan.chunks.waits_for]
            chunks = _chunk_runs(plan.chunks, tiles)[1]       # every chunk of the wave
            missing = chunks[upstream.chunk_left[chunks] > 0]
            if missing.size:
                self.waiters.setdefault((upstream.ident, int(missing.min())), []).append(stage)
                stage.next_wave = wave
                return
        unit = stage.unit
        modules = stage.modules_of(tiles)
        issue, cause = stage.op.ready, _DEP
        if unit.last_issue > issue:
            issue, cause = unit.last_issue, unit.last_issue_cause
        if record is not None and not (
                self.vector and stage.by_class and tiles.size == record.classes.total
                and record.fits(stage.classes_at(int(tiles[0]), tiles.size), int(modules[0]))):
            unit.settle()
            record = None
        if record is not None or self.vector:
            # With a record every class of the wave is in it: the latest slot
            # is its class's.
            bounds: list[tuple[np.ndarray, int]] = [
                (record.prev_c if record is not None else unit.prev[modules], _BUFCAP)]
            for constraint, release in zip(plan.staging, stage.release):
                group = tiles // constraint.group - constraint.slots
                sel = (tiles % constraint.group == 0) & (group >= 0)
                if sel.any():
                    bounds.append((release[group[sel]], _BUFCAP))
            if upstream is not None:
                bounds.append((upstream.chunk_done[chunks], _DEP))
            for values, why in bounds:
                latest = int(values.max())
                if latest > issue:
                    issue, cause = latest, why
        else:
            for position in range(tiles.size):
                slot = int(unit.prev[modules[position]])
                if slot > issue:
                    issue, cause = slot, _BUFCAP
            for constraint, release in zip(plan.staging, stage.release):
                for tile in tiles.tolist():
                    group = tile // constraint.group - constraint.slots
                    if tile % constraint.group == 0 and group >= 0 and int(release[group]) > issue:
                        issue, cause = int(release[group]), _BUFCAP
            if upstream is not None:
                for tile in tiles.tolist():
                    bound = int(upstream.chunk_done[plan.chunks.chunk_of_one(tile)])
                    if bound > issue:
                        issue, cause = bound, _DEP
        stage.pending_loads[wave] = _PendingWave(int(tiles[0]), tiles.size, issue, cause, tiles)
        stage.next_wave = wave + 1
        self._push(issue, _LOAD, stage, wave)

    def _issue(self, stage: _StageRun, wave: int, time: int) -> None:
        if self.vector:
            wave = self._maybe_jump(stage, wave, time)
        pending = stage.pending_loads.pop(wave)
        unit = stage.unit
        if stage.op.start is None or pending.issue < stage.op.start:
            stage.op.start = pending.issue
        if self.vector and stage.by_class and pending.size >= _CLASS_MIN_TILES \
                and pending.first >= unit.parallel:
            classes = stage.classes_at(pending.first, pending.size)
            if classes is not None:
                by_class = self._issue_classes(stage, pending, classes)
                if by_class is not None:
                    self._issued_classes(stage, wave, pending, classes, *by_class)
                    return
        tiles = pending.tiles
        modules = stage.modules_of(tiles)
        unit.settle()
        if self.vector and (tiles.size >= _VECTOR_MIN_TILES or stage.plan.period == 1):
            started, computed = self._issue_vector(stage, tiles, pending, modules)
        else:
            started, computed = self._issue_scalar(stage, tiles, pending, modules)
        self.waves_issued += 1
        self.waves_processed += 1
        unit.issued += tiles.size
        unit.last_issue = pending.issue
        unit.last_issue_cause = pending.cause
        plan = stage.plan
        for constraint, release in zip(plan.staging, stage.release):
            np.maximum.at(release, tiles // constraint.group, computed)
        if stage.store_levels:
            stores = stage.stores_of(tiles)
            # Results stream out in parts too: the burst may start when the
            # first part of the first storing tile is ready.
            first_out = started + stage.tail_units
            if stores.all():
                stage.pending_stores[wave] = _PendingStores(tiles, computed, first_out)
                self._push(int(first_out.min()), _STORE, stage, wave)
            else:
                if stores.any():
                    stage.pending_stores[wave] = _PendingStores(tiles[stores], computed[stores],
                                                                first_out[stores])
                    self._push(int(first_out[stores].min()), _STORE, stage, wave)
                plain = ~stores
                self._tiles_done(stage, tiles[plain], computed[plain],
                                 np.full(int(plain.sum()), _NO_LEVEL, dtype=np.int8))
        else:
            self._tiles_done(stage, tiles, computed,
                             np.full(tiles.size, _NO_LEVEL, dtype=np.int8))
        if wave + 1 < stage.waves:
            self._schedule_wave(stage, wave + 1)
        else:
            self._advance_class(unit)

    def _issued_classes(self, stage: _StageRun, wave: int, pending: _PendingWave,
                        classes: _Classes, started: np.ndarray, computed: np.ndarray) -> None:
        """The rest of :meth:`_issue` for a wave worked out per class."""
        unit = stage.unit
        self.waves_issued += 1
        self.waves_processed += 1
        unit.issued += pending.size
        unit.last_issue = pending.issue
        unit.last_issue_cause = pending.cause
        plan = stage.plan
        if plan.staging:
            per_tile = computed[classes.index]
            for constraint, release in zip(plan.staging, stage.release):
                np.maximum.at(release, pending.tiles // constraint.group, per_tile)
        no_level = np.full(computed.size, _NO_LEVEL, dtype=np.int8)
        if stage.store_levels:
            first_out = started + stage.tail_units
            stores = classes.stores
            if stores.all():
                stage.pending_stores[wave] = _PendingStores(None, computed, first_out, classes,
                                                            pending.first)
                self._push(int(first_out.min()), _STORE, stage, wave)
            else:
                if classes.storing is not None:
                    stage.pending_stores[wave] = _PendingStores(
                        None, computed[stores], first_out[stores], classes.storing,
                        pending.first, classes.store_positions)
                    self._push(int(first_out[stores].min()), _STORE, stage, wave)
                plain = ~stores
                if stage.chunk_left is None:
                    self._classes_done(stage, int(classes.count[plain].sum()), computed[plain],
                                       no_level[plain])
                else:
                    mask = plain[classes.index]
                    self._tiles_done(stage, pending.tiles[mask], computed[classes.index][mask],
                                     no_level[classes.index][mask])
        elif stage.chunk_left is None:
            self._classes_done(stage, classes.total, computed, no_level)
        else:
            self._tiles_done(stage, pending.tiles, computed[classes.index],
                             no_level[classes.index])
        if wave + 1 < stage.waves:
            self._schedule_wave(stage, wave + 1)
        else:
            self._advance_class(unit)

    def _issue_classes(self, stage: _StageRun, pending: _PendingWave, classes: _Classes
                       ) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`_issue_vector` per class of identical tiles, when the tiles of
        each class found their modules free at the same time (else None,
        nothing done): the same integers, counted once per class and
        multiplied by the class's size.  Returns each class's start and
        compute end."""
        unit = stage.unit
        first_module = (stage.offset + pending.first) % unit.parallel
        record = unit.record
        if record is not None and record.fits(classes, first_module):
            free = record.last_c
        else:
            unit.settle()
            if first_module + pending.size <= unit.parallel:
                modules = slice(first_module, first_module + pending.size)
            else:
                modules = stage.modules_of(pending.tiles)
            free_tiles = unit.last[modules]
            free = free_tiles[classes.first]
            if not np.array_equal(free[classes.index], free_tiles):
                return None
        plan = stage.plan
        issue = pending.issue
        count = classes.count
        size = count.size
        loaded: np.ndarray | None = None
        first = loaded
        loaded_level = first_level = loaded
        for level in stage.load_levels:
            sel, finish, part, total = classes.burst(_LOAD, level, plan.rows)
            if sel is None:
                continue
            start = max(int(self.channels[level]), issue)
            finish, part = finish + start, part + start
            self.channels[level] = start + total
            self._segment(stage, (LEVELS[level], start, start + total, total))
            if loaded is None:
                if sel.size == size:
                    loaded, first = finish, part
                    loaded_level = np.full(size, level, dtype=np.int8)
                    first_level = loaded_level.copy()
                    continue
                loaded = np.full(size, issue, dtype=np.int64)
                first = loaded.copy()
                loaded_level = np.full(size, _NO_LEVEL, dtype=np.int8)
                first_level = loaded_level.copy()
            later = finish > loaded[sel]
            loaded[sel[later]] = finish[later]
            loaded_level[sel[later]] = level
            later = part > first[sel]
            first[sel[later]] = part[later]
            first_level[sel[later]] = level
        if loaded is None:
            loaded = np.full(size, issue, dtype=np.int64)
            first = loaded.copy()
            loaded_level = np.full(size, _NO_LEVEL, dtype=np.int8)
            first_level = loaded_level.copy()
        started = np.maximum(free, first)
        computed = np.maximum(started + stage.cycles_units, loaded + stage.tail_units)
        self._segment(stage, (unit.name, int(started.min()), int(computed.max()),
                              pending.size * stage.cycles_units))
        acc = stage.tile_stalls
        base = np.maximum(free, stage.turn)
        idle = first > base
        if idle.any():
            wait_base = base[idle]
            weight = count[idle]
            if pending.cause == _BUFCAP:
                acc[_BUFCAP] += int(((first[idle] - wait_base) * weight).sum())
            else:
                acc[pending.cause] += int((np.maximum(issue - wait_base, 0) * weight).sum())
                memory_wait = (first[idle] - np.maximum(wait_base, issue)) * weight
                levels = first_level[idle]
                acc[_MM] += int(memory_wait[levels == _MM_LEVEL].sum())
                acc[_BUFBW] += int(memory_wait[levels > _MM_LEVEL].sum())
        starved = computed - (started + stage.cycles_units)
        hungry = starved > 0
        if hungry.any():
            levels = loaded_level[hungry]
            starved = starved[hungry] * count[hungry]
            acc[_MM] += int(starved[levels == _MM_LEVEL].sum())
            acc[_BUFBW] += int(starved[levels > _MM_LEVEL].sum())
        # (No first round here: the caller takes waves past the class's first.)
        unit.record = _UnitRecord(classes, first_module, computed, free)
        return started, computed

    def _uniform_loads(self, stage: _StageRun, count: int, issue: int
                       ) -> tuple[int, int, int, int]:
        """Loads of a wave whose tiles all move the same bytes (period 1):
        ``(last byte, level, first part, level)``, one value for every tile."""
        plan = stage.plan
        loaded, first = issue, issue
        loaded_level = first_level = _NO_LEVEL
        for level in stage.load_levels:
            size = int(plan.load_units[level][0])
            start = max(int(self.channels[level]), issue)
            total = count * size
            self.channels[level] = start + total
            self._segment(stage, (LEVELS[level], start, start + total, total))
            if start + total > loaded:
                loaded, loaded_level = start + total, level
            part = start + count * _ceil_div(size, plan.rows)
            if part > first:
                first, first_level = part, level
        return loaded, loaded_level, first, first_level

    def _issue_uniform(self, stage: _StageRun, tiles: np.ndarray, pending: _PendingWave,
                       modules: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
        """The vector kernel for a wave of identical tiles (the common case)."""
        issue = pending.issue
        loaded, loaded_level, first, first_level = self._uniform_loads(stage, tiles.size, issue)
        unit = stage.unit
        free = unit.last[modules].copy()
        started = np.maximum(free, first)
        computed = np.maximum(started + stage.cycles_units, loaded + stage.tail_units)
        self._segment(stage, (unit.name, int(started.min()), int(computed.max()),
                              int(tiles.size) * stage.cycles_units))
        acc = stage.tile_stalls
        base = np.maximum(free, stage.turn)
        idle = first > base
        if idle.any():
            wait_base = base[idle]
            if pending.cause == _BUFCAP:
                # The slot kept the loads from overlapping earlier compute.
                acc[_BUFCAP] += int((first - wait_base).sum())
            else:
                acc[pending.cause] += int(np.maximum(issue - wait_base, 0).sum())
                if first_level != _NO_LEVEL:
                    acc[_level_stall(first_level)] += int(
                        (first - np.maximum(wait_base, issue)).sum())
        if loaded_level != _NO_LEVEL:
            starved = computed - (started + stage.cycles_units)
            acc[_level_stall(loaded_level)] += int(starved[starved > 0].sum())
        if tiles[0] < unit.parallel:
            wait = free - np.maximum(first, stage.turn)
            busy = (tiles < unit.parallel) & ~idle & (wait > 0)
            if busy.any():
                acc[_UNIT] += int(wait[busy].sum())
        unit.prev[modules] = free
        unit.last[modules] = computed
        return started, computed

    def _issue_vector(self, stage: _StageRun, tiles: np.ndarray, pending: _PendingWave,
                      modules: np.ndarray) -> np.ndarray:
        plan = stage.plan
        if plan.period == 1:
            first_module = int(modules[0])
            if first_module + tiles.size <= stage.unit.parallel:
                modules = slice(first_module, first_module + tiles.size)
            return self._issue_uniform(stage, tiles, pending, modules)
        rho = stage.rows(tiles)
        issue = pending.issue
        loaded: np.ndarray | None = None      # last byte in
        first = loaded                        # first part of each operand in
        loaded_level = first_level = loaded
        for level in stage.load_levels:
            sel, finish, part, total = self._burst(stage, _LOAD, level, tiles, rho)
            if sel is None:
                continue
            start = max(int(self.channels[level]), issue)
            finish, part = finish + start, part + start
            self.channels[level] = start + total
            self._segment(stage, (LEVELS[level], start, start + total, total))
            if loaded is None:
                if sel.size == tiles.size:
                    # The first level every tile loads at: each moves at least
                    # one unit from ``start >= issue``, so all of it is later.
                    loaded, first = finish, part
                    loaded_level = np.full(tiles.size, level, dtype=np.int8)
                    first_level = loaded_level.copy()
                    continue
                loaded = np.full(tiles.size, issue, dtype=np.int64)
                first = loaded.copy()
                loaded_level = np.full(tiles.size, _NO_LEVEL, dtype=np.int8)
                first_level = loaded_level.copy()
            if sel.size == tiles.size:          # every tile loads here: masks, not indices
                later = finish > loaded
                np.copyto(loaded, finish, where=later)
                loaded_level[later] = level
                later = part > first
                np.copyto(first, part, where=later)
                first_level[later] = level
                continue
            later = finish > loaded[sel]
            loaded[sel[later]] = finish[later]
            loaded_level[sel[later]] = level
            later = part > first[sel]
            first[sel[later]] = part[later]
            first_level[sel[later]] = level
        if loaded is None:
            loaded = np.full(tiles.size, issue, dtype=np.int64)
            first = loaded.copy()
            loaded_level = np.full(tiles.size, _NO_LEVEL, dtype=np.int8)
            first_level = loaded_level.copy()
        unit = stage.unit
        first_module = int(modules[0])
        if first_module + tiles.size <= unit.parallel and stage._whole(tiles):
            modules = slice(first_module, first_module + tiles.size)
            free = unit.last[modules].copy()
        else:
            free = unit.last[modules]
        started = np.maximum(free, first)
        computed = np.maximum(started + stage.cycles_units, loaded + stage.tail_units)
        self._segment(stage, (unit.name, int(started.min()), int(computed.max()),
                              int(tiles.size) * stage.cycles_units))
        # Stalls: the module's idle time before each tile, and starvation inside it.
        acc = stage.tile_stalls
        base = np.maximum(free, stage.turn)
        idle = first > base
        if idle.any():
            wait_base = base[idle]
            if pending.cause == _BUFCAP:
                # The slot kept the loads from overlapping earlier compute.
                acc[_BUFCAP] += int((first[idle] - wait_base).sum())
            else:
                acc[pending.cause] += int(np.maximum(issue - wait_base, 0).sum())
                memory_wait = first[idle] - np.maximum(wait_base, issue)
                levels = first_level[idle]
                acc[_MM] += int(memory_wait[levels == _MM_LEVEL].sum())
                acc[_BUFBW] += int(memory_wait[levels > _MM_LEVEL].sum())
        starved = computed - (started + stage.cycles_units)
        hungry = starved > 0
        if hungry.any():
            levels = loaded_level[hungry]
            acc[_MM] += int(starved[hungry][levels == _MM_LEVEL].sum())
            acc[_BUFBW] += int(starved[hungry][levels > _MM_LEVEL].sum())
        first_round = tiles < unit.parallel
        if first_round[0]:
            wait = free - np.maximum(first, stage.turn)
            busy = first_round & ~idle & (wait > 0)
            if busy.any():
                acc[_UNIT] += int(wait[busy].sum())
        unit.prev[modules] = free
        unit.last[modules] = computed
        return started, computed

    def _burst(self, stage: _StageRun, kind: int, level: int, tiles: np.ndarray,
               rho: np.ndarray):
        """A wave's load (or store) burst at ``level`` from time 0: the tiles that load
        (positions in the wave), when each has all its bytes and its first
        part, and the burst's total.  It depends only on the wave's table
        phase and size (for a run of consecutive tiles), so it is kept per
        phase while a stage has few."""
        plan = stage.plan
        key = (kind, level, int(tiles[0]) % plan.period, tiles.size)
        cache = stage.burst_cache
        if int(tiles[-1]) - int(tiles[0]) + 1 != tiles.size:
            cache = None                    # not a whole wave (a wave's storing tiles)
        if cache is not None and key in cache:
            return cache[key]
        table = plan.load_units[level] if kind == _LOAD else plan.store_units[level]
        sizes = table[rho]
        sel = np.nonzero(sizes > 0)[0]
        if not sel.size:
            entry = (None, None, None, 0)
        else:
            sizes = sizes[sel]
            finish, part = _shared_burst_vector(sizes, -(-sizes // plan.rows))
            entry = (sel, finish, part, int(sizes.sum()))
        if cache is not None and len(cache) < _BURST_CACHE_MAX:
            cache[key] = entry
        return entry

    def _issue_scalar(self, stage: _StageRun, tiles: np.ndarray, pending: _PendingWave,
                      modules: np.ndarray) -> np.ndarray:
        plan = stage.plan
        unit = stage.unit
        acc = stage.tile_stalls
        issue = pending.issue
        tile_list = tiles.tolist()
        count = len(tile_list)
        loaded = [issue] * count
        first = [issue] * count
        loaded_level = [_NO_LEVEL] * count
        first_level = [_NO_LEVEL] * count
        for level in stage.load_levels:
            table = plan.load_units[level]
            members = [(i, int(table[t % plan.period])) for i, t in enumerate(tile_list)]
            members = [(i, size) for i, size in members if size > 0]
            if not members:
                continue
            start = max(int(self.channels[level]), issue)
            sizes = [size for _, size in members]
            finish, parts = _shared_burst_scalar(sizes, [_ceil_div(x, plan.rows) for x in sizes])
            total = sum(sizes)
            self.channels[level] = start + total
            self._segment(stage, (LEVELS[level], start, start + total, total))
            for (i, _), done, part in zip(members, finish, parts):
                done, part = done + start, part + start
                if done > loaded[i]:
                    loaded[i], loaded_level[i] = done, level
                if part > first[i]:
                    first[i], first_level[i] = part, level
        computed_out, started_out = [], []
        earliest, latest = None, None
        for i, tile in enumerate(tile_list):
            module = int(modules[i])
            free = int(unit.last[module])
            started = max(free, first[i])
            computed = max(started + stage.cycles_units, loaded[i] + stage.tail_units)
            base = max(free, stage.turn)
            if first[i] > base:
                if pending.cause == _BUFCAP:
                    acc[_BUFCAP] += first[i] - base
                else:
                    acc[pending.cause] += max(issue - base, 0)
                    if first_level[i] != _NO_LEVEL:
                        acc[_level_stall(first_level[i])] += first[i] - max(base, issue)
            elif tile < unit.parallel:
                wait = free - max(first[i], stage.turn)
                if wait > 0:
                    acc[_UNIT] += wait
            starved = computed - (started + stage.cycles_units)
            if starved > 0:
                acc[_level_stall(loaded_level[i])] += starved
            unit.prev[module] = free
            unit.last[module] = computed
            computed_out.append(computed)
            started_out.append(started)
            earliest = started if earliest is None else min(earliest, started)
            latest = computed if latest is None else max(latest, computed)
        self._segment(stage, (unit.name, earliest, latest, count * stage.cycles_units))
        return np.array(started_out, dtype=np.int64), np.array(computed_out, dtype=np.int64)

    # -- stores ---------------------------------------------------------------

    def _store(self, stage: _StageRun, wave: int) -> None:
        pending = stage.pending_stores.pop(wave)
        if pending.classes is not None:
            self._store_classes(stage, pending)
            return
        plan = stage.plan
        tiles, computed = pending.tiles, pending.computed
        request = int(pending.first_out.min())
        rho = stage.rows(tiles) if self.vector and tiles.size >= _VECTOR_MIN_TILES else None
        if self.vector and plan.period == 1:
            done = computed.copy()
            done_level = np.full(tiles.size, _NO_LEVEL, dtype=np.int8)
            for level in stage.store_levels:
                size = int(plan.store_units[level][0])
                start = max(int(self.channels[level]), request)
                total = tiles.size * size
                self.channels[level] = start + total
                self._segment(stage, (LEVELS[level], start, start + total, total))
                finish = np.maximum(start + total,
                                    computed + tiles.size * _ceil_div(size, plan.rows))
                later = finish > done
                done[later] = finish[later]
                done_level[later] = level
        elif self.vector and tiles.size >= _VECTOR_MIN_TILES:
            done, done_level = self._store_bursts(
                stage, computed, request,
                lambda level: self._burst(stage, _STORE, level, tiles, rho))
        else:
            tile_list = tiles.tolist()
            done_list = computed.tolist()
            level_list = [_NO_LEVEL] * len(tile_list)
            for level in stage.store_levels:
                table = plan.store_units[level]
                members = [(i, int(table[t % plan.period])) for i, t in enumerate(tile_list)]
                members = [(i, size) for i, size in members if size > 0]
                if not members:
                    continue
                start = max(int(self.channels[level]), request)
                sizes = [size for _, size in members]
                finish, parts = _shared_burst_scalar(sizes,
                                                     [_ceil_div(x, plan.rows) for x in sizes])
                total = sum(sizes)
                self.channels[level] = start + total
                self._segment(stage, (LEVELS[level], start, start + total, total))
                for (i, _), end, part in zip(members, finish, parts):
                    end = max(end + start, int(computed[i]) + part)
                    if end > done_list[i]:
                        done_list[i], level_list[i] = end, level
            done = np.array(done_list, dtype=np.int64)
            done_level = np.array(level_list, dtype=np.int8)
        stage.max_computed = max(stage.max_computed, int(computed.max()))
        self._tiles_done(stage, tiles, done, done_level)

    def _store_bursts(self, stage: _StageRun, computed: np.ndarray, request: int,
                      burst: Callable[[int], tuple]) -> tuple[np.ndarray, np.ndarray]:
        """Each store level's burst (``burst(level)`` -> ``(sel, finish, part,
        total)`` relative to its start, or ``sel`` None) on the level's
        channel from ``request`` on: when each entry of ``computed`` (tiles or
        classes) is done storing, and at which level it finished last."""
        done = computed.copy()
        done_level = np.full(done.size, _NO_LEVEL, dtype=np.int8)
        for level in stage.store_levels:
            sel, finish, part, total = burst(level)
            if sel is None:
                continue
            start = max(int(self.channels[level]), request)
            self.channels[level] = start + total
            self._segment(stage, (LEVELS[level], start, start + total, total))
            # The last part leaves after the tile has computed.
            finish = np.maximum(finish + start, computed[sel] + part)
            later = finish > done[sel]
            done[sel[later]] = finish[later]
            done_level[sel[later]] = level
        return done, done_level

    def _store_classes(self, stage: _StageRun, pending: _PendingStores) -> None:
        """:meth:`_store` per class of identical tiles."""
        classes, computed = pending.classes, pending.computed_c
        request = int(pending.first_out_c.min())
        done, done_level = self._store_bursts(
            stage, computed, request,
            lambda level: classes.burst(_STORE, level, stage.plan.rows))
        stage.max_computed = max(stage.max_computed, int(computed.max()))
        if stage.chunk_left is None:
            self._classes_done(stage, classes.total, done, done_level)
        else:
            self._tiles_done(stage, pending.tiles, done[classes.index],
                             done_level[classes.index])

    def _classes_done(self, stage: _StageRun, tiles: int, done: np.ndarray,
                      done_level: np.ndarray) -> None:
        """:meth:`_tiles_done` for ``tiles`` tiles given per class (in the order
        of their first tiles), for a stage without chunks."""
        if not tiles:
            return
        stage.done += tiles
        latest = int(np.argmax(done))
        if int(done[latest]) > stage.max_done:
            stage.max_done = int(done[latest])
            stage.max_done_level = int(done_level[latest])
        if not stage.store_levels:
            stage.max_computed = max(stage.max_computed, int(done.max()))
        if stage.complete:
            self._stage_complete(stage)

    def _tiles_done(self, stage: _StageRun, tiles: np.ndarray, done: np.ndarray,
                    done_level: np.ndarray) -> None:
        """Tiles whose results are complete at ``done``."""
        if not tiles.size:
            return
        stage.done += int(tiles.size)
        latest = int(np.argmax(done))
        if int(done[latest]) > stage.max_done:
            stage.max_done = int(done[latest])
            stage.max_done_level = int(done_level[latest])
        if not stage.store_levels:
            stage.max_computed = max(stage.max_computed, int(done.max()))
        if stage.chunk_left is not None:
            # Chunk ids come in runs along the tiles: one maximum and one
            # count per run (the same as per tile, in a few operations).
            starts, runs = _chunk_runs(stage.plan.chunks, tiles)
            np.maximum.at(stage.chunk_done, runs, np.maximum.reduceat(done, starts))
            np.subtract.at(stage.chunk_left, runs, np.diff(np.append(starts, tiles.size)))
            for chunk in np.unique(runs).tolist():
                if stage.chunk_left[chunk] == 0:
                    for waiter in self.waiters.pop((stage.ident, chunk), []):
                        self._schedule_wave(waiter, waiter.next_wave)
        if stage.complete:
            self._stage_complete(stage)

    def _stage_complete(self, stage: _StageRun) -> None:
        stage.burst_cache = None
        stage.wave_cache = {}
        tail = stage.max_done - stage.max_computed
        if tail > 0 and stage.max_done_level != _NO_LEVEL:
            stage.tail_stalls[_level_stall(stage.max_done_level)] += tail
        op_run = stage.op
        if all(s.complete for s in op_run.stages):
            op_run.end = max(s.max_done for s in op_run.stages)
            self._finish_ops([op_run])

    def _finish_ops(self, finished: list[_OpRun]) -> None:
        """Ops that just finished: wake the ops that read them."""
        while finished:
            op_run = finished.pop()
            if op_run.end is None:          # an op with nothing to do
                op_run.start = op_run.end = op_run.ready
            for dependent in op_run.dependents:
                dependent.deps_left -= 1
                dependent.ready = max(dependent.ready, op_run.end)
                if dependent.deps_left == 0:
                    if dependent.stages:
                        for stage in dependent.stages:
                            self._try_start(stage)
                    else:
                        finished.append(dependent)

    # -- steady-state jumps ---------------------------------------------------

    def _maybe_jump(self, stage: _StageRun, wave: int, time: int) -> int:
        """Skip whole periods of repeating waves once the stage is in steady
        state; returns the wave to issue now (``wave`` when nothing was skipped)."""
        plan = stage.plan
        period = math.lcm(stage.wave_size, stage.unit.parallel, plan.period) // stage.wave_size
        if period > _MAX_PERIOD_WAVES:
            return wave
        first_full_round = _ceil_div(stage.unit.parallel, stage.wave_size) + 1
        last_full = stage.waves - 2          # the last wave may be short: never jumped over
        if wave < first_full_round or wave + 2 * period > last_full:
            stage.snapshots.clear()
            return wave
        # Small arrays: snapshot every wave, so a repeat is seen one period
        # after the transient ends; large ones: once per period.
        every_wave = stage.unit.parallel * period <= _DENSE_SNAPSHOTS
        if not every_wave and (wave - first_full_round) % period:
            return wave
        snap = self._snapshot(stage, wave, time)
        history = stage.snapshots
        history[wave] = snap
        for old in [w for w in history if w < wave - (_SNAPSHOTS_KEPT - 1) * period]:
            del history[old]
        foreign = self._foreign_bound(stage)
        # A max-plus system turns periodic after a transient, possibly with a
        # cyclicity above one (double buffering couples wave k to k - 2):
        # find the shortest multiple of the pattern period that repeats.
        for back in range(1, _SNAPSHOTS_KEPT):
            before = history.get(wave - back * period)
            if before is None:
                break
            shift = snap.time - before.time
            if shift <= 0 or stage.op.ready > before.time or stage.turn > before.time:
                continue
            cycle = period * back
            cycles = (last_full - wave) // cycle
            if foreign is not None:
                # Nothing else may happen before the last skipped event.
                cycles = min(cycles, (foreign - 1 - time) // shift)
            if cycles < 1 or not self._shifted(stage, before, snap, shift):
                continue
            chunk = None
            if stage.plan.chunks is not None:
                limit, chunk = self._chunk_limit(stage, wave, before.time)
                cycles = min(cycles, (limit - wave) // cycle)
            if cycles < 1:
                return wave
            return self._jump(stage, before, snap, shift, cycles, cycle, chunk)
        if foreign is not None:
            return self._maybe_joint_jump(stage, wave, time, snap)
        return wave

    @staticmethod
    def _period_waves(stage: _StageRun) -> int:
        """Waves after which a stage's tiles meet the same modules, table rows
        and staging groups again."""
        tiles = math.lcm(stage.wave_size, stage.unit.parallel, stage.plan.period,
                         *(c.group for c in stage.plan.staging))
        return tiles // stage.wave_size

    def _maybe_joint_jump(self, stage: _StageRun, wave: int, time: int, snap: _Snapshot) -> int:
        """Skip whole periods of several stages running side by side (on
        different module classes, sharing storage levels) once they repeat
        together: every stage with a pending event is snapshotted when
        ``stage`` issues, and if the whole state -- each stage's modules,
        slots, pending stores and pending wave, every channel, and the order
        of the pending events -- is an earlier state moved later by one shift
        (each stage a whole number of its own periods of waves on), all of them
        are advanced by the same number of repetitions (max-plus and shift
        invariant, as for one stage).  Returns the wave of ``stage`` to issue now."""
        if self.waiters or stage.plan.chunks is not None:
            return wave
        idents = sorted({entry[3] for entry in self.heap} | {stage.ident})
        waves: dict[int, int] = {}
        for ident in idents:
            other = self.stages[ident]
            if other.plan.chunks is not None or len(other.pending_loads) != 1:
                return wave
            (pending,) = other.pending_loads
            first_full_round = _ceil_div(other.unit.parallel, other.wave_size) + 1
            if pending < first_full_round or pending + 2 > other.waves - 2:
                return wave
            waves[ident] = pending
        snaps = {ident: (snap if ident == stage.ident
                         else self._snapshot(self.stages[ident], waves[ident], time))
                 for ident in idents}
        order = [(t, kind, ident, w) for (t, _, kind, ident, w) in sorted(self.heap)]
        key = tuple(idents)
        history = [h for h in self.joint_history.get(stage.ident, []) if h[0] == key]
        for _, before_snaps, before_order in reversed(history):
            shift = time - before_snaps[stage.ident].time
            if shift <= 0 or len(order) != len(before_order):
                continue
            apart = {ident: waves[ident] - before_snaps[ident].wave for ident in idents}
            # The pending events first (scalars): most candidates fail here.
            if any(t2 != t1 + shift or k2 != k1 or i2 != i1 or w2 != w1 + apart[i1]
                   for (t1, k1, i1, w1), (t2, k2, i2, w2) in zip(before_order, order)):
                continue
            cycles = None
            fits = True
            for ident in idents:
                other = self.stages[ident]
                before = before_snaps[ident]
                if apart[ident] <= 0 or apart[ident] % self._period_waves(other) \
                        or other.op.ready > before.time or other.turn > before.time \
                        or not self._shifted(other, before, snaps[ident], shift):
                    fits = False
                    break
                room = (other.waves - 2 - waves[ident]) // apart[ident]
                cycles = room if cycles is None else min(cycles, room)
            if not fits or not cycles or cycles < 1:
                continue
            return self._joint_jump(stage, before_snaps, snaps, apart, shift, cycles)
        history.append((key, snaps, order))
        self.joint_history[stage.ident] = history[-_JOINT_KEPT:]
        return wave

    def _joint_jump(self, stage: _StageRun, before: dict[int, _Snapshot],
                    after: dict[int, _Snapshot], apart: dict[int, int], shift: int,
                    periods: int) -> int:
        """Advance every stage in ``after`` by ``periods`` repetitions (its
        ``apart`` waves each, all later by ``shift``)."""
        delta = shift * periods
        levels: set[int] = set()
        for ident, snap in after.items():
            other = self.stages[ident]
            old = before[ident]
            waves = apart[ident] * periods
            tiles_jumped = waves * other.wave_size
            for klass in range(len(STALL_CLASSES)):
                other.tile_stalls[klass] += (snap.counters[0][klass]
                                             - old.counters[0][klass]) * periods
            other.done += (snap.counters[1] - old.counters[1]) * periods
            other.max_done += delta
            other.max_computed += delta
            unit = other.unit
            unit.move(delta)
            unit.issued += tiles_jumped
            unit.last_issue += delta
            self.waves_issued += waves
            levels.update(other.levels_used)
            for constraint, release, (low, window) in zip(other.plan.staging, other.release,
                                                         snap.releases):
                target = low + tiles_jumped // constraint.group
                release[target:target + window.size] = window + delta
            other.pending_stores = {w + waves: p.moved(tiles_jumped, delta)
                                    for w, p in other.pending_stores.items()}
            load = other.pending_loads.pop(snap.wave)
            new_wave = snap.wave + waves
            other.pending_loads[new_wave] = other.pending_wave(new_wave, load.issue + delta,
                                                               load.cause)
            other.next_wave = new_wave + 1
            other.snapshots.clear()
        for level in levels:
            self.channels[level] += delta
        # Timeline: each stage's busy segments of the period, stretched.
        first = min(snap.segments for snap in before.values())
        last = min(snap.segments for snap in after.values())
        spans: dict[tuple[int, str], list[int]] = {}
        for index in range(first, last):
            if self.segment_stage[index] not in after:
                continue                    # a stage that ran and finished in between
            name, start, end, busy = self.segments[index]
            span = spans.setdefault((self.segment_stage[index], name), [start, end, 0])
            span[0], span[1], span[2] = min(span[0], start), max(span[1], end), span[2] + busy
        for (ident, name), (start, end, busy) in spans.items():
            self._segment(self.stages[ident], (name, start + shift, end + delta, busy * periods))
        entries = sorted(self.heap)
        self.heap = []
        for time, _, kind, ident, w in entries:
            self._push(time + delta, kind, self.stages[ident], w + apart[ident] * periods)
        self.joint_history.clear()
        self.jumps += 1
        return after[stage.ident].wave + apart[stage.ident] * periods

    def _foreign_bound(self, stage: _StageRun) -> int | None:
        """Until when the stage may jump: the earliest time another stage could
        act on it, or None.

        Another stage's event acts on this one only through a storage level both
        use, a chunk link, or when it changes what runs next: its class moving
        on to its next stage (after issuing its last wave) or its op finishing
        (after that).  So a stage that is still issuing, uses none of this
        stage's levels and is not chunk-linked bounds the jump only by the
        earliest its last wave can be issued: each of its modules works on one
        tile at a time, none of its ``R`` tiles not yet issued starts before
        its pending wave's issue ``t``, and a module's tile two back must have
        finished, so not before ``t + (R // modules - 2) x tile cycles``.  Any
        other stage bounds it by its next event."""
        first: dict[int, int] = {}
        for (t, _, _, ident, _) in self.heap:
            if ident != stage.ident and t < first.get(ident, t + 1):
                first[ident] = t
        if not first:
            return None
        mine = set(stage.levels_used)
        bound = None
        for ident, t in first.items():
            other = self.stages[ident]
            if (stage.plan.chunks is None and other.plan.chunks is None
                    and len(other.pending_loads) == 1 and mine.isdisjoint(other.levels_used)):
                (wave,) = other.pending_loads
                left = other.plan.tiles - wave * other.wave_size
                t += max(left // other.unit.parallel - 2, 0) * other.cycles_units
            bound = t if bound is None else min(bound, t)
        return bound

    def _chunk_limit(self, stage: _StageRun, wave: int, since: int) -> tuple[int, int | None]:
        """For a stage linked to others by chunks (fused attention): the
        last wave a jump may reach, and the chunk whose tiles it completes.

        Waves whose upstream chunk is not finished, or finished after
        ``since`` (so it may still bind), are out of reach; and if another
        stage waits for this stage's chunks, the jump must stay inside the
        chunk of the oldest unfinished tile and must not finish it."""
        plan = stage.plan
        links = plan.chunks
        size = stage.wave_size
        first = wave * size
        limit = stage.waves
        if links.waits_for is not None:
            upstream = stage.op.stages[links.waits_for]
            fine = (upstream.chunk_left == 0) & (upstream.chunk_done <= since)
            bad = _first_tile(links, first, plan.tiles, lambda ids: ~fine[ids])
            if bad is not None:
                limit = min(limit, bad // size - 1)
        downstream = any(s.plan.chunks is not None and s.plan.chunks.waits_for == plan.position
                         for s in stage.op.stages)
        if not downstream:
            return limit, None
        oldest = min([first] + [int(p.tiles.min()) for p in stage.pending_stores.values()])
        chunk = links.chunk_of_one(oldest)
        boundary = _first_tile(links, oldest, plan.tiles, lambda ids: ids != chunk)
        if boundary is None:
            return -1, chunk                    # the rest is the last chunk: it would finish
        if _first_tile(links, boundary, plan.tiles, lambda ids: ids == chunk) is not None:
            return -1, chunk                    # the chunk is not contiguous: no jump
        # Every wave issued up to the one after the jump lies in the chunk,
        # and a tile of the chunk is left for after the jump.
        return min(limit, boundary // size - 2), chunk

    def _snapshot(self, stage: _StageRun, wave: int, time: int) -> _Snapshot:
        unit = stage.unit
        stores = sorted((t, w, stage.pending_stores[w]) for (t, _, kind, ident, w) in self.heap
                        if ident == stage.ident and kind == _STORE)
        counters = (tuple(stage.tile_stalls), stage.done, stage.max_done, stage.max_computed)
        first_tile = wave * stage.wave_size
        releases = []
        for constraint, release in zip(stage.plan.staging, stage.release):
            # The fetches later waves can still wait for: the last `slots`
            # groups before this wave, and the group in progress.
            low = max(first_tile // constraint.group - constraint.slots, 0)
            high = _ceil_div(first_tile, constraint.group)
            releases.append((low, release[low:high].copy()))
        record = unit.whole_record()
        last, prev = (None, None) if record is not None else (unit.last.copy(), unit.prev.copy())
        return _Snapshot(wave, time, stage.pending_loads[wave].cause, last, prev, record,
                         self.channels.copy(), stores, unit.last_issue, counters,
                         len(self.segments), releases)

    @staticmethod
    def _shifted(stage: _StageRun, before: _Snapshot, after: _Snapshot, shift: int) -> bool:
        """Is ``after`` exactly ``before`` moved later by ``shift``?"""
        if after.cause != before.cause or after.last_issue != before.last_issue + shift:
            return False
        if not _modules_shifted(stage.unit.parallel, before, after, shift):
            return False
        # Only the stage's own channels matter (nothing else may act before
        # the jump ends: _maybe_jump checks the other pending events).
        for level in stage.levels_used:
            if after.channels[level] != before.channels[level] + shift:
                return False
        if len(after.stores) != len(before.stores):
            return False
        waves_apart = after.wave - before.wave
        for (t1, w1, stores1), (t2, w2, stores2) in zip(before.stores, after.stores):
            if t2 != t1 + shift or w2 != w1 + waves_apart \
                    or not stores2.shifted_from(stores1, shift):
                return False
        tiles_apart = waves_apart * stage.wave_size
        for constraint, (low1, rel1), (low2, rel2) in zip(stage.plan.staging, before.releases,
                                                          after.releases):
            if low2 != low1 + tiles_apart // constraint.group or rel1.size != rel2.size \
                    or not np.array_equal(rel2, rel1 + shift):
                return False
        return after.counters[2] == before.counters[2] + shift \
            and after.counters[3] == before.counters[3] + shift

    def _jump(self, stage: _StageRun, before: _Snapshot, after: _Snapshot, shift: int,
              periods: int, period: int, chunk: int | None = None) -> int:
        """Advance the stage by ``periods`` repetitions of ``period`` waves."""
        delta = shift * periods
        waves = period * periods
        tiles_jumped = waves * stage.wave_size
        unit = stage.unit
        for klass in range(len(STALL_CLASSES)):
            stage.tile_stalls[klass] += (after.counters[0][klass]
                                         - before.counters[0][klass]) * periods
        done = (after.counters[1] - before.counters[1]) * periods
        stage.done += done
        stage.max_done += delta
        if chunk is not None:
            # All the tiles finished during the jump belong to ``chunk``.
            stage.chunk_left[chunk] -= done
            stage.chunk_done[chunk] = max(int(stage.chunk_done[chunk]), stage.max_done)
        stage.max_computed += delta
        unit.move(delta)
        unit.issued += tiles_jumped
        unit.last_issue += delta
        self.waves_issued += waves
        for level in stage.levels_used:
            self.channels[level] += delta
        for constraint, release, (low, window) in zip(stage.plan.staging, stage.release,
                                                     after.releases):
            target = low + tiles_jumped // constraint.group
            release[target:target + window.size] = window + delta
        # Timeline: the period's busy segments, stretched over the skipped span.
        spans: dict[str, list[int]] = {}
        owners = self.segment_stage
        for index in range(before.segments, after.segments):
            if owners[index] != stage.ident:
                continue                    # another stage's, in between (see _foreign_bound)
            name, start, end, busy = self.segments[index]
            span = spans.setdefault(name, [start, end, 0])
            span[0], span[1], span[2] = min(span[0], start), max(span[1], end), span[2] + busy
        for name, (start, end, busy) in spans.items():
            self._segment(stage, (name, start + shift, end + delta, busy * periods))
        # The stage's pending events, moved on (same order among themselves).
        own = sorted(entry for entry in self.heap if entry[3] == stage.ident)
        self.heap = [entry for entry in self.heap if entry[3] != stage.ident]
        heapq.heapify(self.heap)
        stage.pending_stores = {w + waves: p.moved(tiles_jumped, delta)
                                for w, p in stage.pending_stores.items()}
        for time, _, kind, _, w in own:
            self._push(time + delta, kind, stage, w + waves)
        new_wave = after.wave + waves
        load = stage.pending_loads.pop(after.wave)
        stage.pending_loads[new_wave] = stage.pending_wave(new_wave, load.issue + delta,
                                                           load.cause)
        stage.next_wave = new_wave + 1
        stage.snapshots.clear()
        self.jumps += 1
        return new_wave


# --------------------------------------------------------------------------- results


@dataclass
class _Activity:
    unit_busy: dict[str, float] = field(default_factory=dict)
    ideal: dict[str, float] = field(default_factory=dict)
    level_bytes: dict[str, list[float]] = field(
        default_factory=lambda: {level: [0.0, 0.0] for level in LEVELS})
    compulsory: dict[str, float] = field(default_factory=lambda: {level: 0.0 for level in LEVELS})


def simulate_event(mapped: MappedFunction, accelerator: Accelerator, *, mode: str = "waves",
                   compare: bool = True) -> SimulationResult:
    """Simulate a mapped function tile by tile (see the module docstring).

    ``mode``: ``"waves"`` (default; numpy per wave and steady-state jumps) or
    ``"per-tile"`` (scalar, every tile stepped; same results, for small
    models).  ``compare``: also run the analytical simulator and explain in
    the notes where the two differ most, by stall class.
    """
    hw = hardware_consts(accelerator, mapped.training)
    engine = _Engine(mapped, hw, mode)
    engine.run()
    unit = float(UNITS_PER_CYCLE)
    activity = _Activity()
    results: list[OpResult] = []
    total_stalls = {name: 0.0 for name in STALL_CLASSES}
    prices = {i.kind: i.costs.dynamic_energy_per_cycle_pj * 1e-3
              for i in module_inventory(accelerator, mapped.training)}
    for op_run in engine.ops:
        op = op_run.op
        compute, memory, roof, bound = op_timing(op, hw)
        busy: dict[str, float] = {}
        for work in op.work:
            busy[work.unit] = busy.get(work.unit, 0.0) + work.busy_unit_cycles
            activity.ideal[work.unit] = activity.ideal.get(work.unit, 0.0) + work.ideal_cycles
        for name, value in busy.items():
            activity.unit_busy[name] = activity.unit_busy.get(name, 0.0) + value
        by_level = op.bytes_by_level()
        for level, (read, write) in by_level.items():
            rw = activity.level_bytes.setdefault(level, [0.0, 0.0])   # pe_buffer: not in LEVELS
            rw[0] += read
            rw[1] += write
        for level, value in op.compulsory_bytes.items():
            activity.compulsory[level] += value
        stalls = {name: 0.0 for name in STALL_CLASSES}
        for stage in op_run.stages:
            modules = max(1, min(stage.unit.parallel, stage.plan.tiles))
            for index, name in enumerate(STALL_CLASSES):
                stalls[name] += (stage.tile_stalls[index] / modules
                                 + stage.tail_stalls[index]) / unit
        for name, value in stalls.items():
            total_stalls[name] += value
        dynamic = _op_dynamic(accelerator, prices, busy, by_level, hw, mapped.training)
        start = (op_run.start if op_run.start is not None else op_run.ready) / unit
        end = op_run.end / unit
        results.append(OpResult(op.index, start, end, compute, memory, roof, bound, dynamic,
                                stalls,
                                bounding_level=bounding_level(compute + op.fill_cycles, memory),
                                level_utilisation=level_utilisation(memory, end - start)))
    makespan = max((r.end_cycle for r in results), default=0.0)
    cycles = makespan
    bytes_by_level = {level: (rw[0], rw[1]) for level, rw in activity.level_bytes.items()}
    energy = energy_breakdown(accelerator, activity.unit_busy, bytes_by_level, cycles,
                              mapped.training, busy_intervals(mapped.ops))
    roof, roof_bound = max(activity.ideal.values(), default=0.0), "compute"
    for level, value in activity.compulsory.items():
        if value / hw.bandwidth[level] > roof:
            roof, roof_bound = value / hw.bandwidth[level], level
    transfer = {level: (rw[0] + rw[1]) / hw.bandwidth[level] for level, rw in bytes_by_level.items()}
    utilisation = _utilisation(accelerator, activity.unit_busy, transfer, cycles, mapped.training)
    timeline = _timeline(engine.segments, hw, cycles)
    notes = list(EVENT_NOTES) + list(energy.assumptions) + list(mapped.notes)
    notes.extend(sorted(set(engine.plan_notes))[:20])
    result = SimulationResult(
        simulator="event", cycles=cycles, seconds=cycles / accelerator.clock_hz, energy=energy,
        area_um2=area_by_class(accelerator, mapped.training), utilisation=utilisation,
        bytes_by_level=bytes_by_level, roofline_cycles=roof, roofline_bound=roof_bound,
        ops=tuple(results), stalls=total_stalls, timeline=timeline, notes=tuple(notes))
    if compare:
        from backends.elector.analytical import simulate_analytical

        analytical = simulate_analytical(mapped, accelerator, timeline=False)
        result = _with_notes(result, explain_difference(mapped, result, analytical, hw))
    return result


def _with_notes(result: SimulationResult, extra: Sequence[str]) -> SimulationResult:
    import dataclasses

    return dataclasses.replace(result, notes=tuple(result.notes) + tuple(extra))


def _op_dynamic(accelerator: Accelerator, prices: Mapping[str, float],
                busy: Mapping[str, float], by_level: Mapping[str, tuple[float, float]],
                hw: HardwareConsts, training: bool) -> dict[str, float]:
    """Dynamic energy of one op by class, with the shared prices of
    :mod:`backends.elector.costing` (module kinds and levels), in nJ."""
    out: dict[str, float] = {}
    if busy:
        mm_cycles = sum(by_level["main_memory"]) / hw.bandwidth["main_memory"]
        for kind, cycles in busy_module_cycles(accelerator, busy, mm_cycles, training).items():
            if cycles and kind in prices:
                out[kind] = cycles * prices[kind]
    for level, (read, write) in by_level.items():
        if read or write:
            out[level] = (read + write) * hw.energy_per_byte[level]
    return out


def _utilisation(accelerator: Accelerator, unit_busy: Mapping[str, float],
                 transfer: Mapping[str, float], cycles: float, training: bool) -> dict[str, float]:
    """Busy fraction per module kind, bandwidth fraction per level (as the
    analytical simulator defines them)."""
    if cycles <= 0:
        return {}
    busy = busy_module_cycles(accelerator, unit_busy, transfer.get("main_memory", 0.0), training)
    out: dict[str, float] = {}
    for instance in module_inventory(accelerator, training):
        out[instance.kind] = min(busy.get(instance.kind, 0.0) / (instance.count * cycles), 1.0)
    for level, value in transfer.items():
        out[level] = min(value / cycles, 1.0)
    return out


def _timeline(segments: Sequence[tuple[str, int, int, int]], hw: HardwareConsts, cycles: float,
              bins: int = 1000) -> tuple[TimelinePoint, ...]:
    """Utilisation of each module class (and bandwidth fraction of each level) in
    ``bins`` equal slices of the run, from the busy segments the simulation
    recorded (a wave's compute span and busy module-time; a burst's transfer
    span and busy time)."""
    if cycles <= 0 or not segments:
        return ()
    capacity = {"mac": hw.lanes, "softmax": hw.softmax_units, "layernorm": hw.layernorm_units,
                "dma": hw.pes, "sparsity": hw.lanes}
    horizon = cycles * UNITS_PER_CYCLE
    edges = np.linspace(0.0, horizon, bins + 1)
    names = sorted({s[0] for s in segments})
    out: dict[str, np.ndarray] = {}
    for name in names:
        rows = np.array([(s[1], s[2], s[3]) for s in segments if s[0] == name], dtype=np.float64)
        start, end, busy = rows[:, 0], np.maximum(rows[:, 1], rows[:, 0] + 1), rows[:, 2]
        rate = busy / (end - start)
        # Busy time accumulated up to t is piecewise linear; evaluate at the edges.
        times = np.concatenate([start, end])
        slopes = np.concatenate([rate, -rate])
        order = np.argsort(times, kind="stable")
        times, slopes = times[order], slopes[order]
        slope_after = np.cumsum(slopes)
        value_at = np.concatenate([[0.0], np.cumsum(slope_after[:-1] * np.diff(times))])
        index = np.searchsorted(times, edges, side="right") - 1
        valid = index >= 0
        cumulative = np.zeros(edges.size)
        cumulative[valid] = value_at[index[valid]] + slope_after[index[valid]] * (
            edges[valid] - times[index[valid]])
        width = np.diff(edges)
        out[name] = np.clip(np.diff(cumulative) / (width * capacity.get(name, 1)), 0.0, 1.0)
    points = []
    for b in range(bins):
        points.append(TimelinePoint(float(edges[b] / UNITS_PER_CYCLE),
                                    {name: float(out[name][b]) for name in names}))
    return tuple(points)
