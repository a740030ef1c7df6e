"""The tile-level event-driven simulator of ELECTOR.

``simulate_event(mapped, accelerator, mode="waves")`` runs a
:class:`~backends.elector.schedule.MappedFunction` tile by tile on the
accelerator's resources and returns the same
:class:`~backends.elector.schedule.SimulationResult` as the analytical
simulator, plus stall cycles per class (per op and in total) and a
utilisation timeline.

Resources
=========

* **Module classes** (:data:`~backends.elector.schedule.UNITS`): ``P``
  modules each -- MAC lanes (``PEs x lanes``), softmax modules, layer-norm
  modules (one per PE), DMA engines (one per PE), post-sparsity units (one
  per lane).  A module runs one tile at a time for the tile's cycles.
* **Storage levels** (main memory, activation / weight / mask buffer): one
  first-come-first-served channel each at the level's bandwidth (main
  memory at the configuration's, each buffer's port at the technology's),
  shared by reads and writes, by loads and stores, and by every op.

What an op does
===============

An op is one or more *stages* (:mod:`backends.elector.event_stages`): the
work it puts on one module class, as tiles with the bytes each tile loads
before it computes and stores after it computes (matrix-product operands by
the loop-order reuse rule of the contract, everything else spread evenly; the
totals per level are the op's ``bytes_by_level()`` exactly).

* **In-order issue per class.**  The stages of a module class are issued in
  program order; tile ``n`` of a stage goes to module ``(offset + n) mod P``
  (round robin continuing from the previous stage, which under in-order issue
  is the module that frees first).  A stage starts issuing when the previous
  stage of its class has issued its last tile and every op it reads has
  finished (op-level dependencies: an op is finished when its last tile has
  stored its result).
* **Double buffering.**  Every module has two tile slots: the loads of a
  tile may start when the module's tile *two* back has finished computing
  (one slot computes while the other fills); matrix-product inputs streamed
  from main memory also need one of the ``2 x PEs`` staging slots the
  mapping reserved in their buffer, held from the load until the last tile
  that reuses the fetch has computed.  Waiting for either is a
  ``buffer_capacity`` stall.
* **Transfers.**  A tile's loads queue on each level's channel (a tile that
  needs nothing from a level does not queue there); it computes when all its
  loads are done and its module is free; its stores queue on the channels
  when it has computed; the result tile is complete when its stores are.
  Reduction tiles accumulate in issue order (partial sums are written back in
  the order the loop order produces them: the channels are FIFO).
* **Fused attention** pipelines across heads: the softmax of a batch tile of
  heads waits for that batch tile's scores, the context product for its
  probabilities (chunk dependencies inside the op).

Events and waves
================

Transfers are arbitrated per *wave*: the tiles a stage issues together (at
most one per module, ``P`` of them, fewer when a staging slot refers back to
a tile of the same wave) queue their loads as one burst when the earliest of
them may start, and their stores as one burst when the first of them has
computed.  Events are processed in time order (ties in scheduling order).
Inside a burst each tile is served first-come-first-served in tile order.

``mode="per-tile"`` steps through every tile of a burst with scalar
arithmetic.  ``mode="waves"`` (the default) computes the same recurrences for
a whole wave with numpy (first-come-first-served queues are max-plus scans:
``finish_k = D_k + max(free, max_{j<=k}(request_j - D_{j-1}))`` with ``D``
the running sum of transfer times) and, once a stage's waves repeat exactly
-- every module, channel and pending event of the stage shifted by the same
number of cycles from one period of waves to the next, nothing else
scheduled in between -- jumps over whole periods in closed form
(``state + periods x shift``), since the recurrences are max-plus linear
and shift invariant.  Time is kept in integers (``1/65536`` cycle: transfer
times are rounded *up* to it, so nothing beats the bandwidth), so the two
modes produce identical cycles, stalls and energy.

Stalls
======

For every tile, the time its module sat idle before it (from when the module
was free and the class had turned to this stage) is split into the wait
before its loads could be requested -- for an input not yet produced
(``dependency``: another op, or a chunk of the same attention), for a slot
(``buffer_capacity``), for the class to finish issuing the previous stage
(``unit_busy``) -- and the wait for its loads, charged to the level whose
transfer finished last (``main_memory`` or ``buffer_bandwidth``).  A tile
that was loaded but found its module still busy with another op's tile waits
for ``unit_busy``.  The module-cycles are divided by the modules the stage
uses, so a stall reads as cycles of the op's module array; the time a stage's
last stores take after its last compute is added as a memory stall.

Energy
======

Priced by :func:`backends.elector.costing.energy_breakdown` from the same
activity as the analytical simulator (busy unit-cycles per class, bytes per
level) and the event simulator's run length: leakage of every on-chip module
and buffer over the whole run, *no power gating* (the same assumption as the
analytical simulator).  So the two differ in energy only through leakage.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from backends.elector.analytical import op_timing
from backends.elector.area import module_inventory
from backends.elector.costing import area_by_class, busy_module_cycles, energy_breakdown
from backends.elector.design import Accelerator
from backends.elector.event_stages import (
    LEVEL_INDEX,
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
)
from backends.elector.tiling import HardwareConsts, hardware_consts

__all__ = ["EVENT_NOTES", "MODES", "explain_difference", "simulate_event"]

MODES = ("waves", "per-tile")

EVENT_NOTES = (
    "event simulator: tiles on modules (in-order issue per module class, round robin), "
    "first-come-first-served channels per storage level (reads and writes share a "
    "level's bandwidth), double buffering (two tile slots per module; 2 x PEs staging "
    "slots for inputs streamed from main memory), op-level dependencies, head-level "
    "pipelining inside a fused attention; transfer times rounded up to 1/65536 cycle",
)

# Stall class indices (STALL_CLASSES order).
_DEP, _UNIT, _MM, _BUFBW, _BUFCAP = (STALL_CLASSES.index(name) for name in (
    "dependency", "unit_busy", "main_memory", "buffer_bandwidth", "buffer_capacity"))
_MM_LEVEL = LEVEL_INDEX["main_memory"]
_NO_LEVEL = -1
#: Periods of waves a jump needs to see repeat before it extrapolates.
_MAX_PERIOD_WAVES = 64
_MIN_JUMP_PERIODS = 2
#: Waves smaller than this run through the scalar kernels even in "waves"
#: mode (numpy's per-call overhead exceeds the work; the results are the same).
_VECTOR_MIN_TILES = 24


def _level_stall(level: int) -> int:
    return _MM if level == _MM_LEVEL else _BUFBW


# --------------------------------------------------------------------------- runtime state


class _UnitClass:
    """The modules of one class: when each is free, and the in-order issue queue."""

    def __init__(self, name: str, parallel: int) -> None:
        self.name = name
        self.parallel = parallel
        self.last = np.zeros(parallel, dtype=np.int64)     # end of the module's last tile
        self.prev = np.zeros(parallel, dtype=np.int64)     # end of the tile before it
        self.issued = 0                                    # tiles issued so far (round robin)
        self.queue: list[_StageRun] = []
        self.head = 0
        self.last_issue = 0                                # time of the last wave issued
        self.last_issue_cause = _UNIT

    @property
    def current(self) -> _StageRun | None:
        return self.queue[self.head] if self.head < len(self.queue) else None


@dataclass
class _PendingWave:
    tiles: np.ndarray                  # tile indices (in the stage)
    request: np.ndarray                # time units each tile may start loading
    cause: np.ndarray                  # stall class of the request's binding term


@dataclass
class _PendingStores:
    tiles: np.ndarray
    computed: np.ndarray               # compute-end time of each tile


@dataclass
class _Snapshot:
    """State of a stage right before it issues a wave (for steady-state jumps)."""

    wave: int
    time: int
    request: np.ndarray
    cause: np.ndarray
    last: np.ndarray
    prev: np.ndarray
    channels: np.ndarray
    stores: list[tuple[int, int, np.ndarray, np.ndarray]]     # (time, wave, tiles, computed)
    last_issue: int
    counters: tuple
    segments: int
    max_event_time: int
    releases: list[tuple[int, np.ndarray]]                    # (first group, release times)


class _StageRun:
    """A stage being simulated."""

    def __init__(self, plan: StagePlan, op: _OpRun, unit: _UnitClass, ident: int) -> None:
        self.plan = plan
        self.op = op
        self.unit = unit
        self.ident = ident
        self.cycles_units = plan.cycles * UNITS_PER_CYCLE
        self.wave_size = plan.batch_size
        self.waves = math.ceil(plan.tiles / self.wave_size) if plan.tiles else 0
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
        self.first_request: int | None = None
        self.tile_stalls = [0] * len(STALL_CLASSES)        # module time units
        self.tail_stalls = [0] * len(STALL_CLASSES)        # time units
        self.release = [np.full(-(-plan.tiles // c.group), -1, dtype=np.int64)
                        for c in plan.staging]
        self.chunk_left: np.ndarray | None = None
        self.chunk_done: np.ndarray | None = None
        if plan.chunks is not None:
            ids = plan.chunks.chunk_of(np.arange(plan.tiles))
            self.chunk_left = np.bincount(ids, minlength=plan.chunks.count).astype(np.int64)
            self.chunk_done = np.zeros(plan.chunks.count, dtype=np.int64)
        self.snapshots: list[_Snapshot] = []
        self.has_stores = bool(plan.store_units)
        self.levels_used = sorted(set(plan.load_units) | set(plan.store_units))

    @property
    def complete(self) -> bool:
        return self.done >= self.plan.tiles

    def wave_tiles(self, wave: int) -> np.ndarray:
        start = wave * self.wave_size
        return np.arange(start, min(start + self.wave_size, self.plan.tiles), dtype=np.int64)


class _OpRun:
    def __init__(self, op: MappedOp) -> None:
        self.op = op
        self.stages: list[_StageRun] = []
        self.deps_left = len(set(op.deps))
        self.ready = 0                     # when the last op it reads finished
        self.start: int | None = None
        self.end: int | None = None
        self.dependents: list[_OpRun] = []


# --------------------------------------------------------------------------- kernels


def _scan_vector(free: int, request: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """Finish times of a first-come-first-served queue served in array order."""
    total = np.cumsum(duration)
    bound = np.maximum.accumulate(request - (total - duration))
    return total + np.maximum(bound, free)


class _BurstSegment:
    """The main-memory timeline segment of one burst, built tile by tile (the
    scalar kernels' counterpart of the vector kernels' first start / last
    finish / summed busy time)."""

    def __init__(self) -> None:
        self.first: int | None = None
        self.last = 0
        self.busy = 0

    def add(self, begin: int, finish: int, duration: int) -> None:
        if self.first is None:
            self.first = begin
        self.last = finish
        self.busy += duration

    def close(self, segments: list) -> None:
        if self.first is not None:
            segments.append(("main_memory", self.first, self.last, self.busy))


class _Engine:
    """The discrete-event loop (see the module docstring)."""

    def __init__(self, mapped: MappedFunction, hw: HardwareConsts, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mapped = mapped
        self.hw = hw
        self.vector = mode == "waves"
        self.channels = np.zeros(len(LEVELS), dtype=np.int64)
        self.heap: list[tuple[int, int, int, int, int]] = []   # (time, seq, kind, stage, wave)
        self.seq = 0
        self.now = 0
        self.units: dict[str, _UnitClass] = {}
        self.ops = [_OpRun(op) for op in mapped.ops]
        self.stages: list[_StageRun] = []
        self.waiters: dict[tuple[int, int], list[_StageRun]] = {}
        self.segments: list[tuple[str, int, int, int]] = []    # (unit, start, end, busy units)
        self.jumps = 0
        self.plan_notes: list[str] = []
        for op_run in self.ops:
            for dep in sorted(set(op_run.op.deps)):
                self.ops[dep].dependents.append(op_run)
            for plan in plan_op(op_run.op, hw, mapped.bytes_per_element):
                unit = self._unit(plan.unit, plan.parallel)
                stage = _StageRun(plan, op_run, unit, len(self.stages))
                self.stages.append(stage)
                op_run.stages.append(stage)
                unit.queue.append(stage)
                self.plan_notes.extend(f"op {op_run.op.index} ({op_run.op.kind}): {note}"
                                       for note in plan.notes)

    def _unit(self, name: str, parallel: int) -> _UnitClass:
        key = f"{name}/{parallel}"
        if key not in self.units:
            self.units[key] = _UnitClass(name, parallel)
        return self.units[key]

    # -- scheduling -------------------------------------------------------

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
            self.now = time
            stage = self.stages[ident]
            if kind == 0:
                self._issue(stage, wave, time)
            else:
                self._store(stage, wave)
        unfinished = [o.op.index for o in self.ops if o.end is None]
        if unfinished:
            raise RuntimeError(f"event simulation deadlocked; ops never finished: {unfinished[:10]}")

    def _try_start(self, stage: _StageRun) -> None:
        if stage.started or stage.op.deps_left or stage.unit.current is not stage:
            return
        stage.started = True
        stage.offset = stage.unit.issued % stage.unit.parallel
        stage.turn = stage.unit.last_issue
        if stage.waves:
            self._schedule_wave(stage, 0)
        else:
            self._advance_class(stage.unit)

    def _advance_class(self, unit: _UnitClass) -> None:
        unit.head += 1
        nxt = unit.current
        if nxt is not None:
            unit.last_issue_cause = _UNIT
            self._try_start(nxt)

    def _schedule_wave(self, stage: _StageRun, wave: int) -> None:
        """Work out when each tile of ``wave`` may request its loads and push the event."""
        plan = stage.plan
        tiles = stage.wave_tiles(wave)
        upstream = None
        if plan.chunks is not None and plan.chunks.waits_for is not None:
            upstream = stage.op.stages[plan.chunks.waits_for]
            chunks = plan.chunks.chunk_of(tiles)
            missing = chunks[upstream.chunk_left[chunks] > 0]
            if missing.size:
                key = (upstream.ident, int(missing.min()))
                self.waiters.setdefault(key, []).append(stage)
                stage.next_wave = wave
                return
        unit = stage.unit
        modules = (stage.offset + tiles) % unit.parallel
        if wave == 0:
            floor, floor_cause = unit.last_issue, _UNIT
        else:
            floor, floor_cause = unit.last_issue, unit.last_issue_cause
        ready = stage.op.ready
        if self.vector:
            request = np.full(tiles.size, ready, dtype=np.int64)
            cause = np.full(tiles.size, _DEP, dtype=np.int8)
            if floor > ready:
                request[:] = floor
                cause[:] = floor_cause
            self._bind(request, cause, unit.prev[modules], _BUFCAP)
            for constraint, release in zip(plan.staging, stage.release):
                first = tiles % constraint.group == 0
                group = tiles // constraint.group - constraint.slots
                sel = np.nonzero(first & (group >= 0))[0]
                if sel.size:
                    bound = np.full(tiles.size, -1, dtype=np.int64)
                    bound[sel] = release[group[sel]]
                    self._bind(request, cause, bound, _BUFCAP)
            if upstream is not None:
                self._bind(request, cause, upstream.chunk_done[plan.chunks.chunk_of(tiles)], _DEP)
        else:
            req_list, cause_list = [], []
            for position, tile in enumerate(tiles.tolist()):
                req, why = ready, _DEP
                if floor > req:
                    req, why = floor, floor_cause
                slot = int(unit.prev[modules[position]])
                if slot > req:
                    req, why = slot, _BUFCAP
                for constraint, release in zip(plan.staging, stage.release):
                    group = tile // constraint.group - constraint.slots
                    if tile % constraint.group == 0 and group >= 0:
                        bound = int(release[group])
                        if bound > req:
                            req, why = bound, _BUFCAP
                if upstream is not None:
                    bound = int(upstream.chunk_done[plan.chunks.chunk_of_one(tile)])
                    if bound > req:
                        req, why = bound, _DEP
                req_list.append(req)
                cause_list.append(why)
            request = np.array(req_list, dtype=np.int64)
            cause = np.array(cause_list, dtype=np.int8)
        stage.pending_loads[wave] = _PendingWave(tiles, request, cause)
        stage.next_wave = wave + 1
        self._push(int(request.min()), 0, stage, wave)

    @staticmethod
    def _bind(request: np.ndarray, cause: np.ndarray, bound: np.ndarray, why: int) -> None:
        later = bound > request
        if later.any():
            request[later] = bound[later]
            cause[later] = why

    # -- issuing a wave -----------------------------------------------------

    def _issue(self, stage: _StageRun, wave: int, time: int) -> None:
        if self.vector and stage.plan.chunks is None:
            wave = self._maybe_jump(stage, wave, time)
            time = self.now
        pending = stage.pending_loads.pop(wave)
        unit = stage.unit
        tiles, request, cause = pending.tiles, pending.request, pending.cause
        modules = (stage.offset + tiles) % unit.parallel
        if stage.first_request is None:
            stage.first_request = time
            if stage.op.start is None or time < stage.op.start:
                stage.op.start = time
        plan = stage.plan
        if self.vector and tiles.size >= _VECTOR_MIN_TILES:
            computed = self._issue_vector(stage, tiles, request, cause, modules)
        else:
            computed = self._issue_scalar(stage, tiles, request, cause, modules)
        unit.issued += tiles.size
        unit.last_issue = time
        unit.last_issue_cause = int(cause[int(np.argmin(request))])
        start = int(computed.min()) - stage.cycles_units
        self.segments.append((unit.name, start, int(computed.max()),
                              int(tiles.size) * stage.cycles_units))
        for constraint, release in zip(plan.staging, stage.release):
            np.maximum.at(release, tiles // constraint.group, computed)
        if stage.has_stores:
            store_tiles = self._store_tiles(stage, tiles)
            if store_tiles.size:
                computed_stores = computed[store_tiles - tiles[0]]
                stage.pending_stores[wave] = _PendingStores(store_tiles, computed_stores)
                self._push(int(computed_stores.min()), 1, stage, wave)
            plain = np.setdiff1d(tiles, store_tiles, assume_unique=True)
            if plain.size:
                self._tiles_done(stage, plain, computed[plain - tiles[0]],
                                 np.full(plain.size, _NO_LEVEL, dtype=np.int8))
        else:
            self._tiles_done(stage, tiles, computed, np.full(tiles.size, _NO_LEVEL, dtype=np.int8))
        if wave + 1 < stage.waves:
            self._schedule_wave(stage, wave + 1)
        else:
            self._advance_class(unit)

    @staticmethod
    def _store_tiles(stage: _StageRun, tiles: np.ndarray) -> np.ndarray:
        plan = stage.plan
        rho = tiles % plan.period
        has = np.zeros(tiles.size, dtype=bool)
        for table in plan.store_units.values():
            has |= table[rho] > 0
        return tiles[has]

    def _issue_vector(self, stage: _StageRun, tiles: np.ndarray, request: np.ndarray,
                      cause: np.ndarray, modules: np.ndarray) -> np.ndarray:
        plan = stage.plan
        rho = tiles % plan.period
        loaded = request.copy()
        level_of = np.full(tiles.size, _NO_LEVEL, dtype=np.int8)
        for level in sorted(plan.load_units):
            duration = plan.load_units[level][rho]
            sel = np.nonzero(duration > 0)[0]
            if not sel.size:
                continue
            finish = _scan_vector(int(self.channels[level]), request[sel], duration[sel])
            if level == _MM_LEVEL:
                first = int(finish[0] - duration[sel[0]])
                self.segments.append(("main_memory", first, int(finish[-1]),
                                      int(duration[sel].sum())))
            self.channels[level] = finish[-1]
            later = finish > loaded[sel]
            loaded[sel[later]] = finish[later]
            level_of[sel[later]] = level
        unit = stage.unit
        free = unit.last[modules]
        started = np.maximum(loaded, free)
        computed = started + stage.cycles_units
        # Stalls: the module's idle time before the tile, by cause.
        base = np.maximum(free, stage.turn)
        idle = loaded > base
        if idle.any():
            req_wait = np.maximum(request[idle] - base[idle], 0)
            mem_wait = loaded[idle] - np.maximum(request[idle], base[idle])
            why = cause[idle]
            lev = level_of[idle]
            acc = stage.tile_stalls
            for klass in np.unique(why).tolist():
                acc[klass] += int(req_wait[why == klass].sum())
            mem_sel = lev != _NO_LEVEL
            if mem_sel.any():
                mm = lev == _MM_LEVEL
                acc[_MM] += int(mem_wait[mem_sel & mm].sum())
                acc[_BUFBW] += int(mem_wait[mem_sel & ~mm].sum())
        first_round = tiles < unit.parallel
        if first_round.any():
            wait = free - np.maximum(loaded, stage.turn)
            busy = first_round & ~idle & (wait > 0)
            if busy.any():
                stage.tile_stalls[_UNIT] += int(wait[busy].sum())
        unit.prev[modules] = free
        unit.last[modules] = computed
        return computed

    def _issue_scalar(self, stage: _StageRun, tiles: np.ndarray, request: np.ndarray,
                      cause: np.ndarray, modules: np.ndarray) -> np.ndarray:
        plan = stage.plan
        unit = stage.unit
        acc = stage.tile_stalls
        computed_out = []
        levels = sorted(plan.load_units)
        tile_list = tiles.tolist()
        req_list = request.tolist()
        cause_list = cause.tolist()
        module_list = modules.tolist()
        segment = _BurstSegment()
        for position, tile in enumerate(tile_list):
            rho = tile % plan.period
            req = req_list[position]
            loaded, level_of = req, _NO_LEVEL
            for level in levels:
                duration = int(plan.load_units[level][rho])
                if duration <= 0:
                    continue
                begin = max(int(self.channels[level]), req)
                finish = begin + duration
                if level == _MM_LEVEL:
                    segment.add(begin, finish, duration)
                self.channels[level] = finish
                if finish > loaded:
                    loaded, level_of = finish, level
            module = module_list[position]
            free = int(unit.last[module])
            started = max(loaded, free)
            computed = started + stage.cycles_units
            base = max(free, stage.turn)
            if loaded > base:
                acc[cause_list[position]] += max(req - base, 0)
                if level_of != _NO_LEVEL:
                    acc[_level_stall(level_of)] += loaded - max(req, base)
            elif tile < unit.parallel:
                wait = free - max(loaded, stage.turn)
                if wait > 0:
                    acc[_UNIT] += wait
            unit.prev[module] = free
            unit.last[module] = computed
            computed_out.append(computed)
        segment.close(self.segments)
        return np.array(computed_out, dtype=np.int64)

    # -- stores ---------------------------------------------------------------

    def _store(self, stage: _StageRun, wave: int) -> None:
        pending = stage.pending_stores.pop(wave)
        plan = stage.plan
        tiles, computed = pending.tiles, pending.computed
        rho = tiles % plan.period
        if self.vector and tiles.size >= _VECTOR_MIN_TILES:
            done = computed.copy()
            level_of = np.full(tiles.size, _NO_LEVEL, dtype=np.int8)
            for level in sorted(plan.store_units):
                duration = plan.store_units[level][rho]
                sel = np.nonzero(duration > 0)[0]
                if not sel.size:
                    continue
                finish = _scan_vector(int(self.channels[level]), computed[sel], duration[sel])
                if level == _MM_LEVEL:
                    first = int(finish[0] - duration[sel[0]])
                    self.segments.append(("main_memory", first, int(finish[-1]),
                                          int(duration[sel].sum())))
                self.channels[level] = finish[-1]
                later = finish > done[sel]
                done[sel[later]] = finish[later]
                level_of[sel[later]] = level
        else:
            done_list, level_list = [], []
            levels = sorted(plan.store_units)
            segment = _BurstSegment()
            for tile, comp in zip(tiles.tolist(), computed.tolist()):
                finished, level_of_tile = comp, _NO_LEVEL
                for level in levels:
                    duration = int(plan.store_units[level][tile % plan.period])
                    if duration <= 0:
                        continue
                    begin = max(int(self.channels[level]), comp)
                    finish = begin + duration
                    if level == _MM_LEVEL:
                        segment.add(begin, finish, duration)
                    self.channels[level] = finish
                    if finish > finished:
                        finished, level_of_tile = finish, level
                done_list.append(finished)
                level_list.append(level_of_tile)
            segment.close(self.segments)
            done = np.array(done_list, dtype=np.int64)
            level_of = np.array(level_list, dtype=np.int8)
        stage.max_computed = max(stage.max_computed, int(computed.max()))
        self._tiles_done(stage, tiles, done, level_of)

    def _tiles_done(self, stage: _StageRun, tiles: np.ndarray, done: np.ndarray,
                    level_of: np.ndarray) -> None:
        """Tiles whose results are complete at ``done``."""
        if not tiles.size:
            return
        stage.done += int(tiles.size)
        latest = int(np.argmax(done))
        if int(done[latest]) > stage.max_done:
            stage.max_done = int(done[latest])
            stage.max_done_level = int(level_of[latest])
        if not stage.has_stores:
            stage.max_computed = max(stage.max_computed, int(done.max()))
        if stage.chunk_left is not None:
            chunks = stage.plan.chunks.chunk_of(tiles)
            np.maximum.at(stage.chunk_done, chunks, done)
            np.subtract.at(stage.chunk_left, chunks, 1)
            for chunk in np.unique(chunks).tolist():
                if stage.chunk_left[chunk] == 0:
                    for waiter in self.waiters.pop((stage.ident, chunk), []):
                        self._schedule_wave(waiter, waiter.next_wave)
        if stage.complete:
            self._stage_complete(stage)

    def _stage_complete(self, stage: _StageRun) -> None:
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

    def _period_waves(self, stage: _StageRun) -> int:
        plan = stage.plan
        tiles_per_period = math.lcm(stage.wave_size, stage.unit.parallel, plan.period)
        return tiles_per_period // stage.wave_size

    def _maybe_jump(self, stage: _StageRun, wave: int, time: int) -> int:
        """Skip whole periods of identical waves once the stage is in steady
        state; returns the wave to issue now (``wave`` when nothing was skipped)."""
        period = self._period_waves(stage)
        if period > _MAX_PERIOD_WAVES:
            return wave
        first_full_round = -(-stage.unit.parallel // stage.wave_size) + 1
        last_full = stage.waves - 2          # the last wave may be short: never jumped over
        if wave < first_full_round or wave + period * _MIN_JUMP_PERIODS > last_full:
            stage.snapshots.clear()
            return wave
        if (wave - first_full_round) % period:
            return wave
        snap = self._snapshot(stage, wave, time)
        stage.snapshots.append(snap)
        if len(stage.snapshots) < 2:
            return wave
        before = stage.snapshots[-2]
        stage.snapshots = stage.snapshots[-1:]
        if before.wave != wave - period:
            return wave
        shift = snap.time - before.time
        if shift <= 0 or stage.op.ready > before.time or stage.turn > before.time:
            return wave
        if not self._shifted(before, snap, shift, stage):
            return wave
        # How many periods fit before anything else happens.
        periods = (last_full - wave) // period - 1
        foreign = [t for (t, _, _, ident, _) in self.heap if ident != stage.ident]
        if foreign:
            horizon = min(foreign)
            periods = min(periods, (horizon - 1 - snap.max_event_time) // shift)
        if periods < 1:
            return wave
        return self._jump(stage, before, snap, shift, periods, period)

    def _snapshot(self, stage: _StageRun, wave: int, time: int) -> _Snapshot:
        pending = stage.pending_loads[wave]
        unit = stage.unit
        stores = [(t, w, stage.pending_stores[w].tiles, stage.pending_stores[w].computed)
                  for (t, _, kind, ident, w) in self.heap if ident == stage.ident and kind == 1]
        stores.sort(key=lambda s: s[1])
        counters = (tuple(stage.tile_stalls), stage.done, stage.max_done, stage.max_computed,
                    stage.max_done_level)
        first_tile = wave * stage.wave_size
        releases = []
        for constraint, release in zip(stage.plan.staging, stage.release):
            # The fetches later waves can still wait for: the last `slots`
            # groups before this wave, and the group in progress.
            low = max(first_tile // constraint.group - constraint.slots, 0)
            high = -(-first_tile // constraint.group)
            releases.append((low, release[low:high].copy()))
        return _Snapshot(wave, time, pending.request.copy(), pending.cause.copy(),
                         unit.last.copy(), unit.prev.copy(), self.channels.copy(), stores,
                         unit.last_issue, counters, len(self.segments), time, releases)

    def _shifted(self, before: _Snapshot, after: _Snapshot, shift: int, stage: _StageRun) -> bool:
        if not np.array_equal(after.request, before.request + shift) \
                or not np.array_equal(after.cause, before.cause):
            return False
        if not np.array_equal(after.last, before.last + shift) \
                or not np.array_equal(after.prev, before.prev + shift):
            return False
        for level in range(len(LEVELS)):
            if level in stage.levels_used:
                if after.channels[level] != before.channels[level] + shift:
                    return False
            elif after.channels[level] != before.channels[level]:
                return False
        if after.last_issue != before.last_issue + shift:
            return False
        if len(after.stores) != len(before.stores):
            return False
        waves_apart = after.wave - before.wave
        for (t1, w1, tiles1, comp1), (t2, w2, tiles2, comp2) in zip(before.stores, after.stores):
            if t2 != t1 + shift or w2 != w1 + waves_apart or tiles1.size != tiles2.size \
                    or not np.array_equal(comp2, comp1 + shift):
                return False
        tiles_apart = waves_apart * stage.wave_size
        for constraint, (low1, rel1), (low2, rel2) in zip(stage.plan.staging, before.releases,
                                                          after.releases):
            if low2 != low1 + tiles_apart // constraint.group or rel1.size != rel2.size \
                    or not np.array_equal(rel2, rel1 + shift):
                return False
        # Counters that must repeat: the max-done bookkeeping shifts too.
        if after.counters[2] != before.counters[2] + shift or \
                after.counters[3] != before.counters[3] + shift:
            return False
        return True

    def _jump(self, stage: _StageRun, before: _Snapshot, after: _Snapshot, shift: int,
              periods: int, period: int) -> int:
        """Advance the stage by ``periods`` whole periods of ``period`` waves."""
        delta = shift * periods
        waves = period * periods
        unit = stage.unit
        # Stalls and counters grow by the per-period increments.
        stalls_before, stalls_after = before.counters[0], after.counters[0]
        for klass in range(len(STALL_CLASSES)):
            stage.tile_stalls[klass] += (stalls_after[klass] - stalls_before[klass]) * periods
        done_per_period = after.counters[1] - before.counters[1]
        stage.done += done_per_period * periods
        stage.max_done += delta
        stage.max_computed += delta
        unit.last += delta
        unit.prev += delta
        unit.issued += waves * stage.wave_size
        unit.last_issue += delta
        for level in stage.levels_used:
            self.channels[level] += delta
        tiles_jumped = waves * stage.wave_size
        for constraint, release, (low, window) in zip(stage.plan.staging, stage.release,
                                                     after.releases):
            target = low + tiles_jumped // constraint.group
            release[target:target + window.size] = window + delta
        # Timeline: the period's segments, stretched over the jumped span.
        period_segments = self.segments[before.segments:after.segments]
        by_unit: dict[str, list[int]] = {}
        for name, start, end, busy in period_segments:
            entry = by_unit.setdefault(name, [start, end, 0])
            entry[0] = min(entry[0], start)
            entry[1] = max(entry[1], end)
            entry[2] += busy
        for name, (start, end, busy) in by_unit.items():
            self.segments.append((name, start + shift, end + delta, busy * periods))
        # Re-issue this stage's pending events shifted, in their order.
        own = sorted((entry for entry in self.heap if entry[3] == stage.ident),
                     key=lambda e: (e[0], e[1]))
        self.heap = [entry for entry in self.heap if entry[3] != stage.ident]
        heapq.heapify(self.heap)
        new_wave = after.wave + waves
        load = stage.pending_loads.pop(after.wave)
        stage.pending_loads[new_wave] = _PendingWave(stage.wave_tiles(new_wave),
                                                     load.request + delta, load.cause)
        stores = {}
        for w, pend in stage.pending_stores.items():
            stores[w + waves] = _PendingStores(pend.tiles + waves * stage.wave_size,
                                               pend.computed + delta)
        stage.pending_stores = stores
        for time, _, kind, _, w in own:
            self._push(time + delta, kind, stage, w + waves)
        stage.next_wave = new_wave + 1
        stage.snapshots.clear()
        self.jumps += 1
        # The event being processed becomes the load of new_wave, shifted.
        self.now = after.time + delta
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
            activity.level_bytes[level][0] += read
            activity.level_bytes[level][1] += write
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
                                stalls))
    makespan = max((r.end_cycle for r in results), default=0.0)
    cycles = makespan
    bytes_by_level = {level: (rw[0], rw[1]) for level, rw in activity.level_bytes.items()}
    energy = energy_breakdown(accelerator, activity.unit_busy, bytes_by_level, cycles,
                              mapped.training)
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

        analytical = simulate_analytical(mapped, accelerator)
        result = _with_notes(result, explain_difference(mapped, result, analytical))
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
    """Utilisation of each module class (and of main-memory bandwidth) in
    ``bins`` equal slices of the run, from the busy segments the simulation
    recorded (a wave's compute span and busy module-time; a burst's transfer
    span and busy time)."""
    if cycles <= 0 or not segments:
        return ()
    capacity = {"mac": hw.lanes, "softmax": hw.softmax_units, "layernorm": hw.layernorm_units,
                "dma": hw.pes, "sparsity": hw.lanes, "main_memory": 1}
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


# --------------------------------------------------------------------------- explanation

_STALL_WORDS = {
    "dependency": "waiting for inputs produced by earlier ops (the analytical model starts an "
                  "op's transfers only when its inputs are ready too, but overlaps everything "
                  "else inside the op)",
    "unit_busy": "waiting for modules still busy with the previous op on the class",
    "main_memory": "waiting for main-memory bandwidth (first tiles before compute can start, "
                   "the last wave's compute and stores after the last transfer, and bursts "
                   "shared with other ops; the analytical model charges max(compute, transfer) "
                   "+ one tile of fill)",
    "buffer_bandwidth": "waiting for an on-chip buffer port (loads and stores of a wave "
                        "queue on the same port)",
    "buffer_capacity": "waiting for a double-buffering slot (a module's next tile cannot load "
                       "until the tile two back has computed; streamed inputs need one of the "
                       "2 x PEs staging slots)",
}


def explain_difference(mapped: MappedFunction, event: SimulationResult,
                       analytical: SimulationResult, top: int = 5) -> tuple[str, ...]:
    """Notes that say where the event simulator differs most from the
    analytical one: the run totals, the ops whose durations differ most, and
    the stall classes behind them."""
    notes = []
    gap = (event.cycles - analytical.cycles) / analytical.cycles if analytical.cycles else 0.0
    energy_gap = ((event.energy.total_nj - analytical.energy.total_nj) / analytical.energy.total_nj
                  if analytical.energy.total_nj else 0.0)
    notes.append(f"event vs analytical: {event.cycles:,.0f} vs {analytical.cycles:,.0f} cycles "
                 f"({gap:+.1%}), energy {energy_gap:+.1%} (same activity; leakage over the "
                 "different run length)")
    total = sum(event.stalls.values())
    if total > 0:
        parts = ", ".join(f"{name} {value:,.0f}" for name, value in
                          sorted(event.stalls.items(), key=lambda kv: -kv[1]) if value > 0)
        notes.append(f"stall cycles (op module arrays, summed over ops): {parts}")
    diffs = []
    for op, ev, an in zip(mapped.ops, event.ops, analytical.ops):
        diffs.append((ev.cycles - an.cycles, op, ev, an))
    diffs.sort(key=lambda d: -abs(d[0]))
    for delta, op, ev, an in diffs[:top]:
        if abs(delta) < 1:
            break
        stalls = sorted(((v, k) for k, v in ev.stalls.items() if v > 0), reverse=True)
        why = ", ".join(f"{k} {v:,.0f}" for v, k in stalls[:3]) or "no stalls"
        notes.append(f"op {op.index} {op.kind} ({op.loc or op.result}): event {ev.cycles:,.0f} vs "
                     f"analytical {an.cycles:,.0f} cycles ({delta:+,.0f}); stalls: {why}")
    dominant = max(event.stalls.items(), key=lambda kv: kv[1], default=(None, 0.0))
    if dominant[0] is not None and dominant[1] > 0:
        notes.append(f"largest stall class {dominant[0]}: {_STALL_WORDS[dominant[0]]}")
    return tuple(notes)
