"""The mapped-IR contract: what the ELECTOR simulators consume and produce.

This module holds *data only* (frozen dataclasses, constants and two small
pure helpers).  It is the interface between

* the mapping (:mod:`backends.elector.mapping`, the ``elector-map`` pass and
  the target-independent ``tile`` pass), which decides per op the module
  class that runs it, the tile sizes and the loop order and records them as IR
  attributes;
* :func:`backends.elector.tiling.schedule_function`, which reads those
  attributes and derives one :class:`MappedOp` per op that does work (tile
  counts, per-tile lane cycles at the op's input density, bytes per tile per
  operand and per storage level, weight residency and re-loads, padding
  waste, dependencies): a :class:`MappedFunction`;
* the two simulators, which turn a :class:`MappedFunction` into a
  :class:`SimulationResult`:

  - ``backends.elector.analytical.simulate_analytical(mapped, accelerator)``
    (per op, overlapping compute and transfers; for search), and
  - ``backends.elector.event_sim.simulate_event(mapped, accelerator)``
    (tile-level, event driven; for final numbers; written separately).

Both simulators must fill the same :class:`SimulationResult` (the event
simulator also fills ``stalls`` and a utilisation timeline), and energy
should be computed with :func:`backends.elector.costing.energy_breakdown`
from busy unit-cycles and bytes per level so that the two agree on prices.

IR attribute names (dialect prefixes, so the verifier accepts them and they
print and parse)
============================================================================

``map:unit``     module class that runs the op: one of :data:`UNITS`
``map:weights``  ``"resident"`` (the op's weight tensor is held whole in the
                 weight buffer) or ``"streamed"`` (tiles come from main
                 memory as the loop nest needs them; re-loads are counted)
``tile:b``       tile size along the batch dimension (matrix products)
``tile:x``       tile rows: M of a matrix product; rows per tile of a
                 softmax / layer-norm module
``tile:y``       tile columns: K and N of a matrix product (the reference's
                 square ``b x y`` by ``y x y`` tile pair); columns per tile of
                 a softmax / layer-norm module
``tile:order``   loop order of the tile loops, outermost first, a permutation
                 of ``bijk`` (``b`` batch tiles, ``i`` row tiles of M, ``j``
                 column tiles of N, ``k`` reduction tiles of K); all 24 are
                 legal
``map:design``   (module attribute) ``"<design name>@<design hash>"`` the
                 mapping was chosen for

Model of a matrix product (after docs/sources.md, "Tiling and dataflow")
=======================================================================

An op with dims ``(B, M, K, N)`` (``B`` the product of the broadcast batch
dimensions) is split into tile-products: a ``b x x x y`` tile of the left
operand times a ``b x y x y`` tile of the right operand (``y x y`` for a
weight shared across the batch), giving a ``b x x x y`` partial result.
There are ``nb * ni * nj * nk`` tile-products with ``nb = ceil(B/b)``,
``ni = ceil(M/x)``, ``nj = ceil(N/y)``, ``nk = ceil(K/y)``.  One MAC lane runs
one tile-product in ``ceil(b*x*y*y * density / macs_per_lane)`` cycles,
``density`` being the fraction of multiplications zero-skipping cannot skip
(product of the two operand densities: zeros are assumed independent).
Tile-products are issued in loop order; the lanes' FIFOs keep the tile of an
operand while the loops it depends on stay put (left operand ``{b, i, k}``,
right operand ``{b, k, j}`` or ``{k, j}`` for weights, result ``{b, i, j}``),
so an operand is fetched ``prod(trip counts of the loops from the outermost
down to its innermost relevant loop)`` times (:func:`loop_fetches`).

Units and levels
================

Bytes are at the design's data width (20-bit fixed point in AccelTran:
2.5 bytes per element), whatever the IR element type.  Cycles are clock
cycles of the design.  Energy is in nanojoules, area in square micrometres.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ATTR_DESIGN",
    "ATTR_ORDER",
    "ATTR_TILE_B",
    "ATTR_TILE_X",
    "ATTR_TILE_Y",
    "ATTR_UNIT",
    "ATTR_WEIGHTS",
    "BUFFER_LEVELS",
    "ENERGY_CLASSES",
    "LEVELS",
    "LOOP_DIMS",
    "LOOP_ORDERS",
    "OPERAND_LOOPS",
    "STALL_CLASSES",
    "UNITS",
    "UNIT_MODULE_KINDS",
    "EnergyBreakdown",
    "EnergyRow",
    "MappedFunction",
    "MappedOp",
    "OpMapping",
    "OpResult",
    "OperandTraffic",
    "SimulationResult",
    "TileShape",
    "TimelinePoint",
    "UnitWork",
    "as_plain",
    "bounding_level",
    "level_utilisation",
    "loop_fetches",
    "loop_trips",
]

# --------------------------------------------------------------------------- names

ATTR_UNIT = "map:unit"
ATTR_WEIGHTS = "map:weights"
ATTR_TILE_B = "tile:b"
ATTR_TILE_X = "tile:x"
ATTR_TILE_Y = "tile:y"
ATTR_ORDER = "tile:order"
ATTR_DESIGN = "map:design"

#: Module classes an op can run on.  ``mac``: the MAC lanes of the PE array
#: (matrix products, and elementwise/non-linear/reduction/loss/optimizer
#: arithmetic at ``macs_per_lane`` operations per lane per cycle); ``softmax``
#: and ``layernorm``: the softmax and layer-norm modules; ``dma``: data
#: movement only (transpose, gather, concat, slice, parameter writes), run by
#: the DMA engines and dataflow modules at buffer / main-memory bandwidth;
#: ``sparsity``: DynaProp prune ops on the post-sparsity units; ``none``:
#: free ops (views, constants, parameters), which never appear in a
#: :class:`MappedFunction`.
UNITS: tuple[str, ...] = ("mac", "softmax", "layernorm", "dma", "sparsity", "none")

#: Technology module kinds (see ``backends.elector.area.module_inventory``)
#: that are busy while an op works on a unit.  Sparsity units and FIFOs sit
#: in the MAC lanes' pipeline and are busy whenever the lanes are.
UNIT_MODULE_KINDS: Mapping[str, tuple[str, ...]] = {
    "mac": ("mac_lane", "pre_sparsity", "post_sparsity", "fifo", "stochastic_rounding"),
    "softmax": ("softmax",),
    "layernorm": ("layer_norm",),
    "dma": ("dma",),
    "sparsity": ("post_sparsity",),
    "none": (),
}

#: Storage levels, in the order reports print them.
LEVELS: tuple[str, ...] = ("main_memory", "activation_buffer", "weight_buffer", "mask_buffer")
BUFFER_LEVELS: tuple[str, ...] = ("activation_buffer", "weight_buffer", "mask_buffer")

#: Energy classes of a report: the module kinds of the technology, the three
#: buffers and main memory.  Every joule of a result is in exactly one class.
ENERGY_CLASSES: tuple[str, ...] = (
    "mac_lane", "pre_sparsity", "post_sparsity", "fifo", "stochastic_rounding",
    "softmax", "layer_norm", "dataflow", "dma",
    "activation_buffer", "weight_buffer", "mask_buffer", "main_memory",
)

#: Why a tile waited, as the event simulator classifies it (cycles per class).
STALL_CLASSES: tuple[str, ...] = (
    "dependency",        # an input was not produced yet
    "unit_busy",         # every module of the class was busy with other tiles
    "main_memory",       # waiting for main-memory bandwidth
    "buffer_bandwidth",  # waiting for an on-chip buffer port
    "buffer_capacity",   # no room in a buffer for the next tile (double buffering full)
)

LOOP_DIMS = "bijk"
#: All 24 loop orders, outermost loop first.
LOOP_ORDERS: tuple[str, ...] = tuple("".join(p) for p in itertools.permutations(LOOP_DIMS))

#: Loops each operand of a matrix product depends on.
OPERAND_LOOPS: Mapping[str, str] = {
    "lhs": "bik",      # input 1: reused while (b, i, k) stays
    "rhs": "bkj",      # input 2: reused while (b, k, j) stays
    "weight": "kj",    # a weight shared across the batch
    "out": "bij",      # the result (partial sums while k moves)
}


# --------------------------------------------------------------------------- helpers


def loop_trips(dims: tuple[int, int, int, int], tile: TileShape) -> dict[str, int]:
    """Trip counts ``{b, i, j, k}`` of the tile loops of a ``(B, M, K, N)`` product."""
    batch, m, k, n = dims
    return {"b": math.ceil(batch / tile.b), "i": math.ceil(m / tile.x),
            "j": math.ceil(n / tile.y), "k": math.ceil(k / tile.y)}


def loop_fetches(order: str, trips: Mapping[str, int], relevant: str) -> int:
    """How many times a tile that depends on the loops ``relevant`` is
    brought to a lane when the loops run in ``order`` (outermost first).

    The tile stays in the lane's FIFO while only irrelevant loops *inside*
    its innermost relevant loop move; any relevant loop moving, or an
    irrelevant loop outside it moving, brings it again.  So the count is the
    product of the trip counts of the loops from the outermost down to the
    innermost relevant one.  ``relevant`` empty: fetched once.
    """
    innermost = max((order.index(d) for d in relevant), default=-1)
    return math.prod(trips[d] for d in order[: innermost + 1])


# --------------------------------------------------------------------------- mapped IR


@dataclass(frozen=True)
class TileShape:
    """Tile sizes: ``b`` batch, ``x`` rows, ``y`` columns (see module docstring)."""

    b: int
    x: int
    y: int

    def __post_init__(self) -> None:
        for name in ("b", "x", "y"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"tile {name} must be a positive integer, got {value!r}")

    def __str__(self) -> str:
        return f"{self.b}x{self.x}x{self.y}"


@dataclass(frozen=True)
class OpMapping:
    """The mapping decisions of one op: what the IR attributes say
    (``map:unit``, ``tile:b``/``tile:x``/``tile:y``, ``tile:order``,
    ``map:weights``).  ``tile``/``order`` are None for ops that are not
    tiled; ``weights`` is None for ops without a weight operand."""

    unit: str
    tile: TileShape | None = None
    order: str | None = None
    weights: str | None = None

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}, got {self.unit!r}")
        if self.order is not None and self.order not in LOOP_ORDERS:
            raise ValueError(f"loop order must be a permutation of 'bijk', got {self.order!r}")
        if self.weights not in (None, "resident", "streamed"):
            raise ValueError(f"weights must be 'resident' or 'streamed', got {self.weights!r}")

    def attributes(self) -> dict[str, Any]:
        """The IR attributes that record this mapping (None: remove)."""
        return {ATTR_UNIT: self.unit,
                ATTR_TILE_B: self.tile.b if self.tile else None,
                ATTR_TILE_X: self.tile.x if self.tile else None,
                ATTR_TILE_Y: self.tile.y if self.tile else None,
                ATTR_ORDER: self.order,
                ATTR_WEIGHTS: self.weights}

    def describe(self) -> str:
        parts = [self.unit]
        if self.tile is not None:
            parts.append(f"tile {self.tile}")
        if self.order is not None:
            parts.append(f"order {self.order}")
        if self.weights is not None:
            parts.append(f"weights {self.weights}")
        return ", ".join(parts)


@dataclass(frozen=True)
class OperandTraffic:
    """How one operand (or the result) of a mapped op moves.

    ``level``: the buffer it lives in on chip (``activation_buffer`` or
    ``weight_buffer``).  ``resident``: the whole tensor is held in that buffer
    for the op (else it is *streamed*: every tile fetch comes from main
    memory).  ``tile_bytes`` are the compressed value bytes of one tile
    (dense bytes x density) and ``tile_mask_bytes`` its mask (one bit per
    element, in the mask buffer; 0 for a dense operand).  ``fetches`` counts
    tile transfers between the buffer and the lanes under the loop order
    (writes of partial results for the output), ``distinct_tiles`` the tiles
    of the tensor, ``reloads = fetches - distinct_tiles`` the transfers that
    a bigger FIFO would have saved.

    ``buffer_read_bytes`` / ``buffer_write_bytes``: bytes this op reads from /
    writes to ``level`` for this operand (values only); ``mask_bytes``: mask
    bytes read/written in the mask buffer; ``main_memory_read_bytes`` /
    ``main_memory_write_bytes``: bytes this op moves between main memory and
    the chip for this operand (fills of a resident tensor not yet on chip,
    every tile of a streamed one, spills of results).  ``source``: where the
    operand's density came from (``measured``, ``profile``, ``assumed``, or
    ``dense`` when it has no sparsity encoding).
    """

    role: str                   # "lhs", "rhs", "weight", "out", "in0", "in1", ...
    value: str                  # readable name of the IR value (for reports)
    level: str
    resident: bool
    tensor_bytes: float         # dense, at the data width
    density: float
    source: str
    tile_bytes: float
    tile_mask_bytes: float
    distinct_tiles: int
    fetches: int
    buffer_read_bytes: float
    buffer_write_bytes: float
    mask_bytes: float
    main_memory_read_bytes: float
    main_memory_write_bytes: float

    @property
    def reloads(self) -> int:
        return max(self.fetches - self.distinct_tiles, 0)

    @property
    def is_output(self) -> bool:
        return self.role == "out" or self.role.startswith("out")

    def compulsory_bytes(self, bytes_per_element: float) -> dict[str, float]:
        """The least traffic per level this operand needs whatever the tiles
        and loop order (each element moved once where it moves at all): what
        the roofline bound charges.  On-chip intermediates of a fused job
        (role ``scores``) are not compulsory."""
        if self.role == "scores":
            return {}
        values = self.tensor_bytes * self.density
        out = {"main_memory": min(self.main_memory_read_bytes, values)
               + min(self.main_memory_write_bytes, values),
               self.level: min(self.buffer_read_bytes, values)
               + min(self.buffer_write_bytes, values)}
        if self.mask_bytes:
            out["mask_buffer"] = min(self.mask_bytes,
                                     self.tensor_bytes / bytes_per_element / 8.0)
        return out


@dataclass(frozen=True)
class UnitWork:
    """The work an op puts on one module class.

    ``tiles`` units of work (tile-products for ``mac``, module tiles for
    ``softmax``/``layernorm``, transfers for ``dma``), each taking
    ``cycles_per_tile`` cycles on one module of the class (lane, softmax
    module, ...); ``parallel`` modules of the class can work at once
    (``pes * lanes`` MAC lanes, ``pes * per_pe`` softmax modules, ``pes``
    layer-norm modules, ``pes`` DMA engines).  ``busy_unit_cycles`` is
    ``tiles * cycles_per_tile`` (what dynamic energy is charged on);
    ``cycles`` the time the class needs with all modules working,
    ``ceil(tiles / parallel) * cycles_per_tile`` (``waves`` times the tile).
    ``ideal_cycles`` is the compute roof: useful work over peak throughput,
    without padding or wave quantisation.
    """

    unit: str
    tiles: int
    cycles_per_tile: int
    parallel: int
    ideal_cycles: float

    @property
    def waves(self) -> int:
        return math.ceil(self.tiles / self.parallel) if self.tiles else 0

    @property
    def cycles(self) -> int:
        return self.waves * self.cycles_per_tile

    @property
    def busy_unit_cycles(self) -> int:
        return self.tiles * self.cycles_per_tile


@dataclass(frozen=True)
class MappedOp:
    """One op of a function as the accelerator runs it (ops that do no work
    -- views, constants, parameter reads -- are left out).

    ``index``: position in :attr:`MappedFunction.ops`; ``ir_index``: position
    of the op in the IR function (counting every op).  ``kind`` is the IR op
    name (``nn.linear``), ``loc`` its source name (module path) or ``""``.
    ``unit``: the module class that runs it (:data:`UNITS`); ``work``: the
    work per module class (a fused ``nn.attention`` puts work on ``mac`` and
    ``softmax``; its parts pipeline across heads).  ``tile``/``order``: the
    mapping (None for ops that are not tiled).  ``dims``: ``(B, M, K, N)`` of
    a matrix product (the scores product for ``nn.attention``).

    ``macs``: dense multiply-accumulates; ``effective_macs``: after
    zero-skipping (``macs * density``); ``padded_macs``: MACs the lanes do on
    padding (tiles that hang over the tensor's edges) -- wasted work, at the
    op's density; ``ops``: other elementary arithmetic (op_cost's ``ops``).
    ``density``: fraction of MACs zero-skipping cannot skip.

    ``operands``: traffic per operand and for the result(s).
    ``weights``: ``"resident"``, ``"streamed"`` or None (no weight operand).
    ``deps``: indices (in :attr:`MappedFunction.ops`) of the ops whose
    results this op reads, views and free ops looked through.
    ``fill_cycles``: the part of the op that cannot overlap (first tiles
    arriving before compute starts, pipeline fill between fused parts).
    ``staging_bytes``: double-buffered tile staging each buffer needs for
    this op (what the mapping constraints checked).  ``compulsory_bytes``:
    the least traffic per level any mapping of the op needs (the sum of
    :meth:`OperandTraffic.compulsory_bytes`; the roofline's memory term).
    ``mapping``: the decisions this op was derived from.
    """

    index: int
    ir_index: int
    kind: str
    loc: str
    result: str
    unit: str
    work: tuple[UnitWork, ...]
    tile: TileShape | None
    order: str | None
    dims: tuple[int, int, int, int] | None
    macs: int
    effective_macs: float
    padded_macs: float
    ops: int
    density: float
    operands: tuple[OperandTraffic, ...]
    weights: str | None
    deps: tuple[int, ...]
    staging_bytes: Mapping[str, float] = field(default_factory=dict)
    fill_cycles: float = 0.0
    mapping: OpMapping | None = None
    compulsory_bytes: Mapping[str, float] = field(default_factory=dict)

    # -- derived totals --------------------------------------------------

    def work_on(self, unit: str) -> UnitWork | None:
        for work in self.work:
            if work.unit == unit:
                return work
        return None

    @property
    def lane_cycles_per_tile(self) -> int:
        """Cycles one MAC lane takes per tile-product (0 when not on lanes)."""
        work = self.work_on("mac")
        return work.cycles_per_tile if work else 0

    @property
    def num_tiles(self) -> int:
        return self.work[0].tiles if self.work else 0

    @property
    def waves(self) -> int:
        return self.work[0].waves if self.work else 0

    def bytes_by_level(self) -> dict[str, tuple[float, float]]:
        """``{level: (read bytes, written bytes)}`` moved by this op (computed
        once; do not mutate the returned dict)."""
        cached = self.__dict__.get("_bytes_by_level")
        if cached is None:
            cached = self._bytes_by_level()
            object.__setattr__(self, "_bytes_by_level", cached)
        return cached

    def _bytes_by_level(self) -> dict[str, tuple[float, float]]:
        mm_read = mm_write = mask_read = mask_write = 0.0
        buffers = {"activation_buffer": [0.0, 0.0], "weight_buffer": [0.0, 0.0]}
        for operand in self.operands:
            mm_read += operand.main_memory_read_bytes
            mm_write += operand.main_memory_write_bytes
            rw = buffers.get(operand.level)
            if rw is None:
                rw = buffers[operand.level] = [0.0, 0.0]
            rw[0] += operand.buffer_read_bytes
            rw[1] += operand.buffer_write_bytes
            if operand.mask_bytes:
                if operand.is_output:
                    mask_write += operand.mask_bytes
                else:
                    mask_read += operand.mask_bytes
        mask = buffers.pop("mask_buffer", [0.0, 0.0])
        out = {"main_memory": (mm_read, mm_write),
               "activation_buffer": tuple(buffers.pop("activation_buffer")),
               "weight_buffer": tuple(buffers.pop("weight_buffer")),
               "mask_buffer": (mask[0] + mask_read, mask[1] + mask_write)}
        for level, rw in buffers.items():   # levels only some designs have (pe_buffer)
            out[level] = tuple(rw)
        return out

    def bytes_at(self, level: str) -> float:
        read, write = self.bytes_by_level()[level]
        return read + write


@dataclass(frozen=True)
class MappedFunction:
    """A function mapped onto one accelerator: the simulators' input.

    ``ops`` in program order (a valid topological order of ``deps``).
    ``design``/``design_hash`` name the accelerator the mapping was made
    for; ``pipeline`` is the exact pass pipeline that produced the IR;
    ``training`` is true for ``train_step`` (stochastic-rounding units on).
    ``densities`` counts the operands by where their density came from
    (``measured``/``profile``/``assumed``/``dense``); ``assumed`` figures are
    marked in reports.  ``bytes_per_element`` is the data width in bytes.
    """

    module: str
    function: str
    design: str
    design_hash: str
    ops: tuple[MappedOp, ...]
    bytes_per_element: float
    training: bool
    pipeline: str = ""
    densities: Mapping[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.ops)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class EnergyRow:
    """Energy of one class (:data:`ENERGY_CLASSES`), in nanojoules.
    ``leakage_nj`` is None when the technology does not characterise it
    (main memory): it is then left out of the totals and said so.
    ``leakage_busy_nj``: the part leaked while the modules were busy (a
    buffer holds data the whole run: all of it); the rest,
    ``leakage_idle_nj``, is leaked idle (with power gating: the wake-ups)."""

    energy_class: str
    label: str
    dynamic_nj: float
    leakage_nj: float | None
    leakage_busy_nj: float | None = None

    @property
    def total_nj(self) -> float:
        return self.dynamic_nj + (self.leakage_nj or 0.0)

    @property
    def leakage_idle_nj(self) -> float | None:
        if self.leakage_nj is None:
            return None
        return self.leakage_nj - (self.leakage_busy_nj or 0.0)


@dataclass(frozen=True)
class EnergyBreakdown:
    """Energy by class; totals are sums of the rows (so parts sum to totals)."""

    rows: tuple[EnergyRow, ...]
    assumptions: tuple[str, ...] = ()
    #: The design's ``power_gating`` option the leakage was priced with.
    power_gating: str = "none"

    @property
    def dynamic_nj(self) -> float:
        return sum(row.dynamic_nj for row in self.rows)

    @property
    def leakage_nj(self) -> float:
        return sum(row.leakage_nj or 0.0 for row in self.rows)

    @property
    def leakage_busy_nj(self) -> float:
        return sum(row.leakage_busy_nj or 0.0 for row in self.rows)

    @property
    def leakage_idle_nj(self) -> float:
        return sum(row.leakage_idle_nj or 0.0 for row in self.rows)

    @property
    def total_nj(self) -> float:
        return sum(row.total_nj for row in self.rows)

    def by_class(self) -> dict[str, EnergyRow]:
        return {row.energy_class: row for row in self.rows}


@dataclass(frozen=True)
class OpResult:
    """What a simulator says about one :class:`MappedOp` (same ``index``).

    ``start_cycle``/``end_cycle``: when it ran (ops on different module
    classes may overlap); ``cycles = end - start``.  ``compute_cycles``: the
    busiest module class's time; ``memory_cycles``: transfer time per level
    (bytes / bandwidth per cycle).  ``roofline_cycles``: the op's roofline
    bound ``max(useful work / peak throughput, compulsory bytes / bandwidth
    per level)``; ``bound`` names the term that set it (``compute`` or a
    level).  ``dynamic_energy_nj`` by energy class (leakage is charged over
    the whole run, not per op).  ``stalls``: cycles per :data:`STALL_CLASSES`
    (event simulator; empty for the analytical one).
    """

    index: int
    start_cycle: float
    end_cycle: float
    compute_cycles: float
    memory_cycles: Mapping[str, float]
    roofline_cycles: float
    bound: str
    dynamic_energy_nj: Mapping[str, float]
    stalls: Mapping[str, float] = field(default_factory=dict)
    #: What set the op's own duration: ``"compute"`` or the storage level whose
    #: bytes over its bandwidth (banks x port) took longest
    #: (:func:`bounding_level`); ``""`` when the simulator did not say.
    bounding_level: str = ""
    #: Per storage level, the fraction of the op's duration its transfers keep
    #: the level's bandwidth busy (``memory_cycles[level] / cycles``, at most 1).
    level_utilisation: Mapping[str, float] = field(default_factory=dict)

    @property
    def cycles(self) -> float:
        return self.end_cycle - self.start_cycle


@dataclass(frozen=True)
class TimelinePoint:
    """Utilisation of each unit class (0..1) from ``cycle`` to the next point."""

    cycle: float
    utilisation: Mapping[str, float]


@dataclass(frozen=True)
class SimulationResult:
    """The outcome of simulating a :class:`MappedFunction` on an accelerator.

    ``cycles``/``seconds``: end to end.  ``energy``: by class, dynamic and
    leakage (parts sum to totals).  ``area_um2``: area by class (module kinds,
    ``<kind>_buffer``; ``main_memory`` None: not characterised).
    ``utilisation``: busy fraction of each module kind over the run
    (``mac_lane``, ``softmax``, ``layer_norm``, ``dma``, ...) and bandwidth
    fraction of each level.  ``bytes_by_level``: ``{level: (read, written)}``.
    ``roofline_cycles``: whole-function roofline bound (total useful work
    per module class over its peak, total compulsory bytes per level over its
    bandwidth, whichever is largest); ``achieved_fraction =
    roofline_cycles / cycles`` (1.0 would be at the roof).  ``ops``: one
    :class:`OpResult` per mapped op.  ``stalls``: total stall cycles per class
    (event simulator).  ``timeline``: utilisation over time.  ``notes``:
    assumptions a reader must know (power gating, what is not characterised).
    """

    simulator: str
    cycles: float
    seconds: float
    energy: EnergyBreakdown
    area_um2: Mapping[str, float | None]
    utilisation: Mapping[str, float]
    bytes_by_level: Mapping[str, tuple[float, float]]
    roofline_cycles: float
    roofline_bound: str
    ops: tuple[OpResult, ...]
    stalls: Mapping[str, float] = field(default_factory=dict)
    timeline: tuple[TimelinePoint, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def achieved_fraction(self) -> float:
        return self.roofline_cycles / self.cycles if self.cycles else 1.0

    @property
    def area_total_um2(self) -> float:
        return sum(v for v in self.area_um2.values() if v is not None)


def bounding_level(compute_cycles: float, memory_cycles: Mapping[str, float]) -> str:
    """``"compute"`` when the busiest module class takes at least as long as
    every level's transfers, else the level whose transfers take longest."""
    level, cycles = max(memory_cycles.items(), key=lambda kv: kv[1], default=("", 0.0))
    return level if cycles > compute_cycles else "compute"


def level_utilisation(memory_cycles: Mapping[str, float], duration: float) -> dict[str, float]:
    """Busy fraction of each level's bandwidth over an op of ``duration`` cycles."""
    if duration <= 0:
        return {level: 0.0 for level in memory_cycles}
    return {level: min(value / duration, 1.0) for level, value in memory_cycles.items()}


def as_plain(value: Any) -> Any:
    """A JSON-ready copy of a contract object (dataclasses become dicts)."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): as_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

