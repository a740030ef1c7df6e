"""Mapping ops onto an ELECTOR accelerator: constraints checked with z3, and search.

Constraints are written once, in :data:`PRODUCT_CONSTRAINTS` and
:data:`ROW_CONSTRAINTS`, as functions of the tile sizes (and whether the
op's weights stay resident) over an arithmetic *backend*: numpy arrays when
the search filters a grid of candidate tiles, z3 terms when a mapping is
checked.  Every constraint has a readable name and an ``explain`` function
that says, in the user's units, what a violating mapping needs and what the
design has::

    activation-staging-fits: tile 1x64x64 needs 2 (double buffering) x 2 PEs x
    (10 KiB + 10 KiB + 10 KiB) = 120 KiB of activation buffer, but tiny-test
    has 8 KiB

A forced mapping (``tile{...}`` or attributes written by hand) that breaks a
constraint, or an op that no mapping fits, raises :class:`MappingError`
listing the constraints of the z3 unsat core (``assert_and_track``), so the
message names exactly the requirements that conflict.

The automatic choice (:func:`map_function`) enumerates the legal space of
each op -- tile sizes (powers of two up to the op's dims, plus the design's
default tile) x all 24 loop orders -- evaluates every candidate with the
vectorised cost formulas of :mod:`.tiling` (exact op cycles including
main-memory traffic, buffer traffic and fill), keeps the feasible ones and
picks the best for the objective (``latency``: fewest cycles -- within
:data:`PICK_MARGIN` -- then least dynamic energy; ``energy``; ``edp``).  Enumeration beats ``z3.Optimize`` here
by orders of magnitude (a grid of ~10k candidates costs a few milliseconds
in numpy).  The chosen mapping is then checked with z3 (one solver, reused
with push/pop).  Both the search and the check are cached per distinct op
signature and design, so BERT-Base's twelve identical layers cost one search.

Across designs (a co-design sweep), the design-independent part of an op's
candidate costs (:func:`~backends.elector.tiling.product_stage`: bytes per
level, lane tile-products and first-tile bytes per candidate) is kept per op
shape, operand specs, data width and :class:`~backends.elector.tiling.StageParams`
(:class:`_SearchTable`), without the loop orders that move the same bytes
with the same lanes per wave as an earlier order of the same tile (same cost
on every design; ties go to the first).  Each design then checks the
constraints once per tile and prices only the feasible candidates
(:func:`~backends.elector.tiling.stage_costs`): the same choice, bit for bit,
as costing the whole grid (``tests/elector_compile/test_search_equivalence.py``).

z3 is imported here only, lazily.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from backends.elector.design import Accelerator
from backends.elector.schedule import LOOP_ORDERS, OpMapping, TileShape
from backends.elector.tiling import (
    HardwareConsts,
    OperandSpec,
    OpStatic,
    ProductStage,
    ResidencyPlan,
    StageParams,
    StaticFunction,
    forced_streams,
    hardware_consts,
    matmul_costs,
    operand_key,
    operand_specs,
    plan_residency,
    plan_signature,
    product_stage,
    read_mapping,
    row_costs,
    spill_level_bytes,
    stage_costs,
    stored_bytes,
)
from transcode_ir.defaults import MAPPER_OBJECTIVE, MAPPER_OBJECTIVES
from transcode_ir.errors import UserError

__all__ = [
    "OBJECTIVES",
    "PRODUCT_CONSTRAINTS",
    "ROW_CONSTRAINTS",
    "Constraint",
    "MappingError",
    "best_order",
    "check_mapping",
    "clamp_tile",
    "clear_caches",
    "format_bytes",
    "map_function",
]

OBJECTIVES = MAPPER_OBJECTIVES
_TILE_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
_BATCH_TILES = (1, 2, 4, 8, 16, 32, 64)


class MappingError(UserError):
    """A mapping that breaks the design's constraints, or an op no mapping fits.
    ``constraints`` names the conflicting constraints (the z3 unsat core)."""

    def __init__(self, message: str, constraints: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.constraints = tuple(constraints)


def format_bytes(value: float) -> str:
    """``8 KiB``, ``1.5 MiB``, ``640 B``."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            amount = value / size
            return f"{amount:.4g} {unit}"
    return f"{value:.4g} B"


# --------------------------------------------------------------------------- backends


class _NumpyOps:
    """Constraint arithmetic on numpy arrays (vectorised candidate filtering)."""

    @staticmethod
    def And(*xs: Any) -> Any:
        out = True
        for x in xs:
            out = np.logical_and(out, x)
        return out

    @staticmethod
    def Implies(a: Any, b: Any) -> Any:
        return np.logical_or(np.logical_not(a), b)

    @staticmethod
    def Not(a: Any) -> Any:
        return np.logical_not(a)


class _Z3Ops:
    """Constraint arithmetic on z3 terms (Python booleans become z3 constants)."""

    def __init__(self, z3: Any) -> None:
        self._z3 = z3

    def _bool(self, value: Any) -> Any:
        return self._z3.BoolVal(bool(value)) if isinstance(value, (bool, np.bool_)) else value

    def And(self, *xs: Any) -> Any:
        return self._z3.And(*[self._bool(x) for x in xs])

    def Implies(self, a: Any, b: Any) -> Any:
        return self._z3.Implies(self._bool(a), self._bool(b))

    def Not(self, a: Any) -> Any:
        return self._z3.Not(self._bool(a))


@dataclass
class _Vars:
    """The decision variables: numpy arrays, z3 terms or plain numbers."""

    b: Any
    x: Any
    y: Any
    resident: Any        # weights held whole in the weight buffer


# --------------------------------------------------------------------------- constraint context


@dataclass(frozen=True)
class _Staged:
    """One tensor staged tile by tile: tile shape kind, loops, density, sparse."""

    role: str
    tile: str            # "lhs": b*x*y, "rhs": (b*)y*y, "out": b*x*y
    batched: bool
    density: float
    sparse: bool


@dataclass(frozen=True)
class ConstraintContext:
    """Constants of one op and one design that the constraints read."""

    design: str
    loc: str
    kind: str
    form: str
    dims: tuple[int, int, int, int] | None
    rows: int
    cols: int
    bytes_per_element: float
    pes: int
    lanes: int
    fifo_row: int                 # elements one lane FIFO row can hold: depth x MACs per lane
    activation_capacity: float
    weight_capacity: float
    mask_capacity: float
    activation: tuple[_Staged, ...]
    weight: tuple[_Staged, ...]
    weight_name: str
    weight_bytes: float
    extra_activation_staging: float   # fused attention: the softmax modules' tiles
    module: str                       # rows: "softmax" / "layernorm"
    module_tile: int
    modules: int
    row_tensors: int


def _tile_elements(staged: _Staged, v: _Vars) -> Any:
    batch = v.b if staged.batched else 1
    if staged.tile == "rhs":
        return batch * v.y * v.y
    return batch * v.x * v.y


def _staging(c: ConstraintContext, tensors: Sequence[_Staged], v: _Vars) -> Any:
    total = 0
    for staged in tensors:
        total = total + _tile_elements(staged, v) * (c.bytes_per_element * staged.density)
    return 2 * c.pes * total


def _mask_staging(c: ConstraintContext, v: _Vars) -> Any:
    total = 0
    for staged in c.activation + c.weight:
        if staged.sparse:
            total = total + _tile_elements(staged, v) * (1 / 8)
    return 2 * c.pes * total


@dataclass(frozen=True)
class Constraint:
    """A named constraint: ``holds(v, c, ops)`` gives a boolean (array or z3
    term); ``applies(c)`` says whether it concerns the op; ``explain(v, c)``
    says in words, for concrete values, what it requires."""

    name: str
    holds: Callable[[_Vars, ConstraintContext, Any], Any]
    explain: Callable[[_Vars, ConstraintContext], str]
    applies: Callable[[ConstraintContext], bool] = lambda c: True


def _tile_text(v: _Vars) -> str:
    return f"{v.b}x{v.x}x{v.y}"


def _explain_activation(v: _Vars, c: ConstraintContext) -> str:
    sizes = [_tile_elements(s, v) * c.bytes_per_element * s.density for s in c.activation]
    parts = " + ".join(format_bytes(s) for s in sizes) or "0 B"
    extra = (f" + {format_bytes(c.extra_activation_staging)} for the softmax tiles"
             if c.extra_activation_staging else "")
    total = 2 * c.pes * sum(sizes) + c.extra_activation_staging
    return (f"tile {_tile_text(v)} needs 2 (double buffering) x {c.pes} PEs x ({parts}){extra}"
            f" = {format_bytes(total)} of activation buffer, but {c.design} has "
            f"{format_bytes(c.activation_capacity)}")


def _explain_weight_staging(v: _Vars, c: ConstraintContext) -> str:
    size = sum(_tile_elements(s, v) * c.bytes_per_element * s.density for s in c.weight)
    return (f"streaming the weights {c.weight_name} with tile {_tile_text(v)} needs 2 (double "
            f"buffering) x {c.pes} PEs x {format_bytes(size)} = "
            f"{format_bytes(2 * c.pes * size)} of weight buffer, but {c.design} has "
            f"{format_bytes(c.weight_capacity)}")


def _explain_mask(v: _Vars, c: ConstraintContext) -> str:
    need = 2 * c.pes * sum(_tile_elements(s, v) / 8 for s in c.activation + c.weight if s.sparse)
    return (f"the masks of the sparse operands' tiles ({_tile_text(v)}) need "
            f"{format_bytes(need)} of mask buffer (double-buffered, {c.pes} PEs), but "
            f"{c.design} has {format_bytes(c.mask_capacity)}")


def _explain_rows_staging(v: _Vars, c: ConstraintContext) -> str:
    tile = v.x * v.y * c.bytes_per_element
    return (f"{c.module} tile {v.x}x{v.y} needs 2 (double buffering) x {c.modules} modules x "
            f"{c.row_tensors} tensors x {format_bytes(tile)} = "
            f"{format_bytes(2 * c.modules * c.row_tensors * tile)} of activation buffer, but "
            f"{c.design} has {format_bytes(c.activation_capacity)}")


def _rows_staging(v: _Vars, c: ConstraintContext) -> Any:
    return 2 * c.modules * c.row_tensors * (v.x * v.y) * c.bytes_per_element


PRODUCT_CONSTRAINTS: tuple[Constraint, ...] = (
    Constraint("tile-positive",
               lambda v, c, o: o.And(v.b >= 1, v.x >= 1, v.y >= 1),
               lambda v, c: f"tile sizes must be at least 1, got {_tile_text(v)}"),
    Constraint("batch-fits",
               lambda v, c, o: v.b <= c.dims[0],
               lambda v, c: f"tile b = {v.b} is larger than the op's batch dimension "
                            f"{c.dims[0]} (batch x heads)"),
    Constraint("sequence-fits",
               lambda v, c, o: v.x <= c.dims[1],
               lambda v, c: f"tile x = {v.x} is larger than the op's rows M = {c.dims[1]} "
                            "(the sequence, for activations)"),
    Constraint("columns-fit",
               lambda v, c, o: v.y <= max(c.dims[2], c.dims[3]),
               lambda v, c: f"tile y = {v.y} is larger than both K = {c.dims[2]} and "
                            f"N = {c.dims[3]}"),
    Constraint("tile-row-fits-lane",
               lambda v, c, o: v.y <= c.fifo_row,
               lambda v, c: f"a tile row of y = {v.y} elements does not fit a MAC lane's FIFO "
                            f"({c.fifo_row} elements: depth x MACs per lane)"),
    Constraint("activation-staging-fits",
               lambda v, c, o: _staging(c, c.activation, v) + c.extra_activation_staging
               <= c.activation_capacity,
               _explain_activation),
    Constraint("weights-fit-weight-buffer",
               lambda v, c, o: o.Implies(v.resident, c.weight_bytes <= c.weight_capacity),
               lambda v, c: f"the weights {c.weight_name} ({format_bytes(c.weight_bytes)}) "
                            f"do not fit the {format_bytes(c.weight_capacity)} weight buffer of "
                            f"{c.design}; stream them (map:weights = \"streamed\")",
               lambda c: bool(c.weight)),
    Constraint("weight-staging-fits",
               lambda v, c, o: o.Implies(o.Not(v.resident),
                                         _staging(c, c.weight, v) <= c.weight_capacity),
               _explain_weight_staging,
               lambda c: bool(c.weight)),
    Constraint("mask-staging-fits",
               lambda v, c, o: _mask_staging(c, v) <= c.mask_capacity,
               _explain_mask,
               lambda c: any(s.sparse for s in c.activation + c.weight)),
)

ROW_CONSTRAINTS: tuple[Constraint, ...] = (
    Constraint("tile-positive",
               lambda v, c, o: o.And(v.x >= 1, v.y >= 1),
               lambda v, c: f"tile sizes must be at least 1, got {v.x}x{v.y}"),
    Constraint("tile-fits-module",
               lambda v, c, o: o.And(v.x <= c.module_tile, v.y <= c.module_tile),
               lambda v, c: f"{c.module} tile {v.x}x{v.y} is larger than the design's "
                            f"{c.module} module tile {c.module_tile}x{c.module_tile}"),
    Constraint("sequence-fits",
               lambda v, c, o: v.x <= c.rows,
               lambda v, c: f"tile x = {v.x} is larger than the op's {c.rows} rows"),
    Constraint("columns-fit",
               lambda v, c, o: v.y <= c.cols,
               lambda v, c: f"tile y = {v.y} is larger than the op's {c.cols} columns"),
    Constraint("activation-staging-fits",
               lambda v, c, o: _rows_staging(v, c) <= c.activation_capacity,
               _explain_rows_staging),
)


def constraint_context(info: OpStatic, hw: HardwareConsts, plan: ResidencyPlan,
                       unit: str) -> ConstraintContext:
    """The constants the constraints of op ``info`` read on design ``hw``."""
    inputs, outputs = operand_specs(info, plan, None)
    activation, weight = [], []
    weight_bytes = 0.0
    weight_name = ""
    for spec in inputs + outputs[:1]:
        if spec.role not in ("lhs", "rhs", "rhs2", "out"):
            continue
        staged = _Staged(spec.role, spec.tile, "b" in spec.loops, spec.ref.density,
                         spec.ref.sparse)
        if spec.ref.is_param:
            weight.append(staged)
            weight_bytes += stored_bytes(spec.ref, hw)
            weight_name = spec.ref.name
        else:
            activation.append(staged)
    extra = 0.0
    if info.form == "attention":
        extra = 2.0 * hw.softmax_units * hw.softmax_tile ** 2 * hw.bytes_per_element
    module_tile, modules = ((hw.softmax_tile, hw.softmax_units) if unit == "softmax"
                            else (hw.layernorm_tile, hw.layernorm_units))
    return ConstraintContext(
        design=hw.name, loc=info.loc, kind=info.kind, form=info.form, dims=info.dims,
        rows=info.rows, cols=info.cols, bytes_per_element=hw.bytes_per_element, pes=hw.pes,
        lanes=hw.lanes, fifo_row=hw.fifo_depth * hw.macs_per_lane,
        activation_capacity=hw.capacity["activation_buffer"],
        weight_capacity=hw.capacity["weight_buffer"],
        mask_capacity=hw.capacity["mask_buffer"], activation=tuple(activation),
        weight=tuple(weight), weight_name=weight_name, weight_bytes=weight_bytes,
        extra_activation_staging=extra, module=unit, module_tile=module_tile, modules=modules,
        row_tensors=len(info.inputs) + len(info.outputs))


def _constraints_for(c: ConstraintContext) -> tuple[Constraint, ...]:
    chosen = PRODUCT_CONSTRAINTS if c.form in ("matmul", "attention") else ROW_CONSTRAINTS
    return tuple(k for k in chosen if k.applies(c))


# --------------------------------------------------------------------------- z3


_SOLVER: Any = None
_CHECK_CACHE: dict[tuple, tuple[str, ...]] = {}


def _solver() -> Any:
    global _SOLVER
    if _SOLVER is None:
        import z3

        _SOLVER = z3.Solver()
        _SOLVER.set("timeout", 5000)
        _SOLVER.set(unsat_core=True)
    return _SOLVER


def z3_conflicts(c: ConstraintContext, fixed: Mapping[str, Any] | None) -> tuple[str, ...]:
    """Check the op's constraints with z3: ``fixed`` gives values for some of
    ``b``, ``x``, ``y``, ``resident`` (each tracked as ``forced <name>``);
    the others are free.  Returns the names in a minimal unsat core, or
    ``()`` when the constraints are satisfiable.

    Each constraint is implied by a literal named after it, and the literals
    are checked as assumptions.  z3 returns *some* core, which one depending
    on the solver's history in this process (the checks before it: the points
    a co-design worker evaluated earlier), so the core is then shrunk: each
    name, in sorted order, is dropped when the rest is still unsat.  The same
    op on the same design then names the same constraints (whenever the
    minimal core is unique) whatever ran before."""
    import z3

    solver = _solver()
    solver.push()
    try:
        v = _Vars(z3.Int("b"), z3.Int("x"), z3.Int("y"), z3.Bool("resident"))
        ops = _Z3Ops(z3)
        literals = []
        for constraint in _constraints_for(c):
            literal = z3.Bool(constraint.name)
            solver.add(z3.Implies(literal, ops._bool(constraint.holds(v, c, ops))))
            literals.append(literal)
        # Domains of the free variables.
        if c.form in ("matmul", "attention"):
            solver.add(v.b <= max(c.dims[0], 1), v.x <= max(c.dims[1], 1),
                       v.y <= max(c.dims[2], c.dims[3], 1))
        else:
            solver.add(v.b == 1)
        for name, value in (fixed or {}).items():
            term = getattr(v, name)
            literal = z3.Bool(f"forced {name}")
            solver.add(z3.Implies(literal, term == value))
            literals.append(literal)
        result = solver.check(*literals)
        if result == z3.sat:
            return ()
        if result == z3.unknown:
            return ("z3 gave up (timeout)",)
        core = sorted(solver.unsat_core(), key=str)
        for literal in list(core):
            rest = [other for other in core if not other.eq(literal)]
            if solver.check(*rest) == z3.unsat:
                core = rest
        return tuple(str(literal) for literal in core)
    finally:
        solver.pop()


def check_mapping(info: OpStatic, mapping: OpMapping, hw: HardwareConsts,
                  plan: ResidencyPlan, forced: bool = True) -> None:
    """Check one op's mapping with z3; raise :class:`MappingError` naming
    the conflicting constraints (and explaining each) when it breaks any."""
    if mapping.tile is None or info.form not in ("matmul", "attention", "rows"):
        return
    c = constraint_context(info, hw, plan, mapping.unit)
    resident = mapping.weights != "streamed"
    fixed = {"b": mapping.tile.b, "x": mapping.tile.x, "y": mapping.tile.y,
             "resident": resident}
    # Names only shape the messages: ops that differ only in names (BERT's
    # twelve layers) share one z3 check.
    key = (dataclasses.replace(c, loc="", kind="", weight_name=""), tuple(sorted(fixed.items())))
    core = _CHECK_CACHE.get(key)
    if core is None:
        core = z3_conflicts(c, fixed)
        _CHECK_CACHE[key] = core
    if not core:
        return
    v = _Vars(mapping.tile.b, mapping.tile.x, mapping.tile.y, resident)
    by_name = {k.name: k for k in _constraints_for(c)}
    # Explain what the values break; the rest of the core (tile-positive, ...)
    # only bounds the free values.
    broken = [name for name in core if name in by_name
              and not bool(by_name[name].holds(v, c, _NumpyOps))]
    lines = [f"  - {name}: {by_name[name].explain(v, c)}"
             for name in broken or [n for n in core if n in by_name]]
    forced_names = [name.split(" ", 1)[1] for name in core if name.startswith("forced ")]
    what = "forced" if forced else "chosen"
    where = f"{info.kind} at {info.loc or '(no source name)'}"
    raise MappingError(
        f"the {what} mapping of {where} ({mapping.describe()}) does not fit {hw.name}; "
        f"conflicting constraints (z3 unsat core: {', '.join(core)}):\n" + "\n".join(lines)
        + (f"\n  the forced values involved: {', '.join(forced_names)}" if forced_names else "")
        + "\n  choose other tiles (tile{x=...,y=...}) or let elector-map choose",
        [n for n in core if not n.startswith("forced ")])


def _no_mapping_error(info: OpStatic, hw: HardwareConsts, plan: ResidencyPlan, unit: str,
                      smallest: _Vars) -> MappingError:
    c = constraint_context(info, hw, plan, unit)
    core = z3_conflicts(c, None)
    by_name = {k.name: k for k in _constraints_for(c)}
    names = [n for n in core if n in by_name] or [k.name for k in _constraints_for(c)
                                                  if not bool(k.holds(smallest, c, _NumpyOps))]
    # Explain the constraints that fail even at the smallest tile; the others
    # in the core (tile-positive, ...) only bound the tiles from below.
    failing = [n for n in names if n in by_name
               and not bool(by_name[n].holds(smallest, c, _NumpyOps))]
    lines = [f"  - {name}: even the smallest tile fails: {by_name[name].explain(smallest, c)}"
             for name in failing or names if name in by_name]
    return MappingError(
        f"{info.kind} at {info.loc or '(no source name)'} cannot be mapped onto {hw.name}: "
        f"no tile size and loop order satisfies the constraints (z3 unsat core: "
        f"{', '.join(core) or 'none'}):\n" + "\n".join(lines)
        + "\n  the model does not fit this design; use a design with larger buffers", names)


# --------------------------------------------------------------------------- search


_SEARCH_CACHE: dict[tuple, OpMapping] = {}
_GRID_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]] = {}
_TABLE_CACHE: dict[tuple, _SearchTable] = {}
_TABLE_CACHE_SIZE = 512
_ROWS_CACHE: dict[tuple, OpMapping] = {}


def clear_caches() -> None:
    """Forget cached searches, z3 checks and derived op costs (tests use this)."""
    from backends.elector import tiling

    _SEARCH_CACHE.clear()
    _CHECK_CACHE.clear()
    _GRID_CACHE.clear()
    _TABLE_CACHE.clear()
    _ROWS_CACHE.clear()
    _ORDERS_CACHE.clear()
    tiling._TRAFFIC_STATIC.clear()
    tiling._WAVE_CACHE.clear()
    tiling._PRODUCT_CACHE.clear()
    tiling._SPECS_CACHE.clear()
    tiling._STAGE_CACHE.clear()


def _signature(info: OpStatic, plan: ResidencyPlan, hw: HardwareConsts) -> tuple:
    return plan_signature(info, plan, hw)


def _powers(limit: int, sizes: Sequence[int]) -> list[int]:
    return [s for s in sizes if s <= max(limit, 1)]


def _product_grid(dims: tuple[int, int, int, int], default: TileShape
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The candidate grid of a product with dims ``dims``: every tile x every
    loop order (candidate ``i`` has tile ``i % tiles`` and order ``i // tiles``),
    and the number of tiles."""
    batch, m, k, n = dims
    extra = (default.b, default.x, default.y)
    if not (default.b <= batch and default.x <= m and default.y <= max(k, n)):
        extra = None
    key = (dims, extra)
    cached = _GRID_CACHE.get(key)
    if cached is not None:
        return cached
    bs = _powers(batch, _BATCH_TILES)
    xs = _powers(m, _TILE_SIZES)
    ys = _powers(max(k, n), _TILE_SIZES)
    tiles = {(b, x, y) for b in bs for x in xs for y in ys}
    if extra is not None:
        tiles.add(extra)
    grid = np.array(sorted(tiles), dtype=np.int64)
    count = len(grid)
    orders = np.repeat(np.arange(len(LOOP_ORDERS)), count)
    grid = np.tile(grid, (len(LOOP_ORDERS), 1))
    cached = (grid[:, 0], grid[:, 1], grid[:, 2], orders, count)
    if len(_GRID_CACHE) > 4096:
        _GRID_CACHE.clear()
    _GRID_CACHE[key] = cached
    return cached


@dataclass
class _SearchTable:
    """The design-independent part of one op's search (kept across designs).

    ``stage``: the candidates of the grid that can win, priced per design
    with :func:`~backends.elector.tiling.stage_costs`.  Of the candidates
    with the same tile, the same lanes per wave and the same bytes at every
    level (loop orders that move the same data) only the first in grid order
    is kept: the others
    cost exactly the same on every design, and ties go to the first.
    ``tile_b``/``tile_x``/``tile_y``: the grid's distinct tiles (the
    constraints depend on the tile only); ``tile_of``: each kept
    candidate's tile."""

    stage: ProductStage
    tile_b: np.ndarray
    tile_x: np.ndarray
    tile_y: np.ndarray
    tile_of: np.ndarray


def _search_table(info: OpStatic, bytes_per_element: float, default: TileShape,
                  inputs: Sequence[OperandSpec], output: OperandSpec,
                  extra_level_bytes: Mapping[str, float],
                  params: StageParams | None = None) -> _SearchTable:
    b, x, y, orders, count = _product_grid(info.dims, default)
    params = (params or StageParams()).for_operands(list(inputs) + [output])
    key = (info.form, info.dims, info.dims2, info.inner_density, info.rows, info.cols,
           bytes_per_element, params,
           (int(b[count - 1]), int(x[count - 1]), int(y[count - 1]), count),
           tuple(operand_key(s) for s in inputs), operand_key(output),
           tuple(sorted(extra_level_bytes.items())))
    table = _TABLE_CACHE.get(key)
    if table is not None:
        return table
    # Loops of one trip are inert (they move nothing, span nothing): orders
    # that differ only in where those sit cost the same on every design, so
    # only the first of each is priced.
    first, grid_key = _distinct_orders(info, b, x, y, orders, count)
    b, x, y, orders = b[first], x[first], y[first], orders[first]
    # The design-independent part of the traffic is kept per op shape and grid.
    stage = product_stage(info, bytes_per_element, b, x, y, orders, inputs, output,
                          extra_level_bytes, params, static_key=grid_key)
    tile_of = first % count
    # First candidate of each (tile, lanes a wave uses, bytes at every level).
    columns = ([np.broadcast_to(v, b.shape) for v in stage.level_bytes.values()]
               + [used for _, _, used in stage.products] + [tile_of])
    keep = _first_of_each_row(columns)
    tiles_b, tiles_x, tiles_y, _, _ = _product_grid(info.dims, default)
    table = _SearchTable(stage.subset(keep), tiles_b[:count], tiles_x[:count], tiles_y[:count],
                         tile_of[keep])
    if len(_TABLE_CACHE) >= _TABLE_CACHE_SIZE:
        _TABLE_CACHE.pop(next(iter(_TABLE_CACHE)))
    _TABLE_CACHE[key] = table
    return table


_HASH_FACTOR = np.uint64(0x9E3779B97F4A7C15)


def _first_of_each_row(columns: Sequence[np.ndarray]) -> np.ndarray:
    """Sorted positions of the first occurrence of each distinct row of
    ``columns`` (equal rows: equal values in every column).

    Rows are grouped by a 64-bit hash of their values (one sort of one
    column instead of a lexsort over all of them); the grouping is then
    checked: every row must equal its group's first row in every column, so a
    hash collision (or a NaN) can only send the work to the exact lexsort,
    never merge rows that differ."""
    key = np.zeros(len(columns[0]), dtype=np.uint64)
    for column in columns:
        if column.dtype.kind == "f":
            bits = (np.asarray(column, dtype=np.float64) + 0.0).view(np.uint64)  # -0.0 as 0.0
        else:
            bits = column.astype(np.uint64)
        key = key * _HASH_FACTOR ^ bits
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    representative = first[inverse.reshape(-1)]
    if all(np.array_equal(column[representative], column) for column in columns):
        return np.sort(first)
    # A collision or a NaN: a stable lexsort, then the rows that differ from
    # the previous one.
    order = np.lexsort(columns)
    same = np.ones(len(order) - 1, dtype=bool)
    for column in columns:
        ordered = column[order]
        same &= ordered[1:] == ordered[:-1]
    new = np.ones(len(order), dtype=bool)
    new[1:] = ~same
    return np.sort(order[new])


def _distinct_orders(info: OpStatic, b: np.ndarray, x: np.ndarray, y: np.ndarray,
                     orders: np.ndarray, count: int) -> tuple[np.ndarray, tuple]:
    """Grid positions of the first candidate of each (tile, order of the loops
    with more than one trip, in every product of the op), and a key naming
    them; cached per op shape and grid (design-independent)."""
    dims2 = info.dims2 if info.form == "attention" else None
    cache_key = (info.dims, dims2, len(b), count,
                 b[:count].tobytes() + x[:count].tobytes() + y[:count].tobytes())
    cached = _ORDERS_CACHE.get(cache_key)
    if cached is None:
        if len(_ORDERS_CACHE) > 4096:
            _ORDERS_CACHE.clear()
        cached = _ORDERS_CACHE[cache_key] = _first_orders(info.dims, dims2, b, x, y, orders,
                                                          count)
    return cached, cache_key


_ORDERS_CACHE: dict[tuple, np.ndarray] = {}


def _first_orders(dims1: tuple[int, int, int, int], dims2: tuple[int, int, int, int] | None,
                  b: np.ndarray, x: np.ndarray, y: np.ndarray, orders: np.ndarray,
                  count: int) -> np.ndarray:
    from backends.elector.tiling import _ORDER_PERM

    perm = _ORDER_PERM[orders]
    rows = np.arange(len(b))[:, None]
    key = np.arange(len(b)) % count
    for dims in [dims1] + ([dims2] if dims2 is not None else []):
        batch, m, k, n = dims
        trips = np.stack([-(-batch // b), -(-m // x), -(-n // y), -(-k // y)], axis=1)
        ordered = trips[rows, perm]
        code = np.zeros(len(b), dtype=np.int64)
        for p in range(4):
            code = np.where(ordered[:, p] > 1, code * 5 + perm[:, p] + 1, code)
        key = key * 625 + code
    _, first = np.unique(key, return_index=True)
    return np.sort(first)


#: Candidates within this relative margin of the best primary key (cycles, for
#: ``latency``) count as ties, decided by the secondary key (dynamic energy),
#: then by grid order: a first tile that arrives a few cycles sooner does not
#: buy a mapping that moves twice the bytes.
PICK_MARGIN = 1e-3


def _pick(cycles: np.ndarray, energy: np.ndarray, feasible: np.ndarray, objective: str) -> int:
    """Index of the best feasible candidate.  Primary keys within a relative
    :data:`PICK_MARGIN` of the best count as ties, decided by the secondary
    key, then by grid order."""
    index = np.flatnonzero(feasible)
    c, e = cycles[index], energy[index]
    if objective == "energy":
        primary, secondary = e, c
    elif objective == "edp":
        primary, secondary = c * e, c
    else:
        primary, secondary = c, e
    near = np.flatnonzero(primary <= float(np.min(primary)) * (1 + PICK_MARGIN))
    return int(index[near[np.argmin(secondary[near])]])


def _search_product(info: OpStatic, hw: HardwareConsts, plan: ResidencyPlan,
                    default: TileShape, objective: str) -> OpMapping:
    inputs, outputs = operand_specs(info, plan, None)
    table = _search_table(info, hw.bytes_per_element, default, inputs, outputs[0],
                          spill_level_bytes(info, plan), hw.stage_params)
    c = constraint_context(info, hw, plan, "mac")
    streamed_weights = any(s.streamed for s in inputs if s.ref.is_param and
                           s.role in ("lhs", "rhs"))
    # The constraints depend on the tile only: checked once per tile.
    v = _Vars(table.tile_b, table.tile_x, table.tile_y, not streamed_weights)
    fits = np.ones(len(table.tile_b), dtype=bool)
    for constraint in _constraints_for(c):
        fits &= constraint.holds(v, c, _NumpyOps)       # an array per tile, or one bool
    if not fits.any():
        raise _no_mapping_error(info, hw, plan, "mac", _Vars(1, 1, 1, not streamed_weights))
    feasible = fits[table.tile_of]
    stage = table.stage
    index = None
    if not feasible.all():
        # Price only the feasible candidates (grid order kept: ties go to the first).
        index = np.flatnonzero(feasible)
        stage = stage.subset(index)
    costs = stage_costs(stage, info, hw)
    best = _pick(costs.cycles, costs.energy_nj, _not_slower_than_dense(
        info, hw, stage, costs, inputs, outputs[0], spill_level_bytes(info, plan), objective),
        objective)
    weights = None
    if info.weight_ref is not None:
        weights = "streamed" if streamed_weights else "resident"
    return OpMapping("mac", TileShape(int(stage.b[best]), int(stage.x[best]), int(stage.y[best])),
                     LOOP_ORDERS[int(stage.order_index[best])], weights)


def _pruned(info: OpStatic, inputs: Sequence[OperandSpec]) -> bool:
    return info.inner_density < 1.0 or any(
        s.ref.density < 1.0 for s in inputs if s.role in ("lhs", "rhs", "rhs2"))


def _dense_spec(spec: OperandSpec) -> OperandSpec:
    if spec.ref.density >= 1.0 and spec.ref.source == "dense":
        return spec
    return dataclasses.replace(spec, ref=dataclasses.replace(spec.ref, density=1.0,
                                                             source="dense"))


def _not_slower_than_dense(info: OpStatic, hw: HardwareConsts, stage: ProductStage,
                           costs: Any, inputs: Sequence[OperandSpec], output: OperandSpec,
                           extra_level_bytes: Mapping[str, float], objective: str
                           ) -> np.ndarray:
    """The candidates a pruned op may take: those no slower -- in cycles and in
    MAC-lane (compute) cycles -- than the *dense reference*, the candidate the
    search picks when every operand is priced dense, priced here with the
    pruned operands (zero-skipping, compressed storage).  Zero-skipping only
    lowers a candidate's costs, so the reference is always allowed and a
    pruned operand never makes the op slower or its lanes busier than the
    dense mapping would; without the rule the energy tie-break of a
    transfer-bound op prefers big tiles whose per-tile ``ceil`` rounding
    lets the density show, at several times the lane cycles.  A dense op:
    every candidate."""
    everything = np.ones(len(stage.b), dtype=bool)
    if not _pruned(info, inputs):
        return everything
    dense_info = dataclasses.replace(info, inner_density=1.0)
    dense_inputs = [_dense_spec(s) for s in inputs]
    dense_output = _dense_spec(output)
    params = hw.stage_params.for_operands(dense_inputs + [dense_output])
    dense = stage_costs(product_stage(dense_info, hw.bytes_per_element, stage.b, stage.x,
                                      stage.y, stage.order_index, dense_inputs, dense_output,
                                      extra_level_bytes, params), dense_info, hw)
    ref = _pick(dense.cycles, dense.energy_nj, everything, objective)
    return ((costs.cycles <= costs.cycles[ref])
            & (costs.compute_cycles <= costs.compute_cycles[ref]))


def _search_rows(info: OpStatic, hw: HardwareConsts, plan: ResidencyPlan, unit: str,
                 objective: str) -> OpMapping:
    module_tile = hw.softmax_tile if unit == "softmax" else hw.layernorm_tile
    c = constraint_context(info, hw, plan, unit)
    best: tuple | None = None
    for x in _powers(min(module_tile, info.rows), _TILE_SIZES) + [min(module_tile, info.rows)]:
        for y in _powers(min(module_tile, info.cols), _TILE_SIZES) + [min(module_tile, info.cols)]:
            v = _Vars(1, x, y, True)
            if not all(bool(k.holds(v, c, _NumpyOps)) for k in _constraints_for(c)):
                continue
            tiles, cpt, modules, _ = row_costs(info, hw, unit, x, y)
            cycles = math.ceil(tiles / modules) * cpt
            key = (cycles, tiles * cpt, -x * y)
            if best is None or key < best[0]:
                best = (key, x, y)
    if best is None:
        raise _no_mapping_error(info, hw, plan, unit, _Vars(1, 1, 1, True))
    return OpMapping(unit, TileShape(1, best[1], best[2]))


def choose_mapping(info: OpStatic, hw: HardwareConsts, plan: ResidencyPlan, unit: str,
                   default: TileShape, objective: str = MAPPER_OBJECTIVE) -> OpMapping:
    """The best feasible mapping of one op (cached per op signature and design)."""
    if info.form not in ("matmul", "attention", "rows") or unit not in (
            "mac", "softmax", "layernorm"):
        weights = None
        return OpMapping(unit, None, None, weights)
    key = (_signature(info, plan, hw), unit, default, objective)
    cached = _SEARCH_CACHE.get(key)
    if cached is not None:
        return cached
    if info.form == "rows":
        # The row search reads only these numbers of the design: shared by
        # the designs that have the same.
        module_tile, modules = ((hw.softmax_tile, hw.softmax_units) if unit == "softmax"
                                else (hw.layernorm_tile, hw.layernorm_units))
        rows_key = (info.rows, info.cols, len(info.inputs) + len(info.outputs), unit,
                    module_tile, modules, hw.bytes_per_element,
                    hw.capacity["activation_buffer"])
        mapping = _ROWS_CACHE.get(rows_key)
        if mapping is None:
            mapping = _search_rows(info, hw, plan, unit, objective)
            if len(_ROWS_CACHE) > 100_000:
                _ROWS_CACHE.clear()
            _ROWS_CACHE[rows_key] = mapping
    else:
        mapping = _search_product(info, hw, plan, default, objective)
    if len(_SEARCH_CACHE) > 50_000:
        # Keys hold the design's hash: a long sweep adds a few per design.
        _SEARCH_CACHE.clear()
    _SEARCH_CACHE[key] = mapping
    return mapping


def _complete(forced: OpMapping, info: OpStatic, chosen_default: Callable[[], OpMapping]
              ) -> OpMapping:
    """A forced mapping with missing parts (no tile, no order) completed."""
    if info.form not in ("matmul", "attention", "rows"):
        return OpMapping(forced.unit)
    if forced.tile is not None and (forced.order is not None or info.form == "rows"):
        weights = forced.weights
        if weights is None and info.weight_ref is not None:
            weights = chosen_default().weights
        return OpMapping(forced.unit, forced.tile, forced.order if info.form != "rows" else None,
                         weights)
    auto = chosen_default()
    return OpMapping(forced.unit, forced.tile or auto.tile,
                     (forced.order or auto.order) if info.form != "rows" else None,
                     forced.weights or auto.weights)


def map_function(static: StaticFunction, accelerator: Accelerator,
                 objective: str = MAPPER_OBJECTIVE, respect_attributes: bool = True,
                 check: bool = True, *, tile: Sequence[int] | None = None,
                 order: str | None = None) -> tuple[list[OpMapping], ResidencyPlan]:
    """Map every op of a function: mappings recorded in the IR attributes are
    kept (and checked); the others are chosen by the search.  Returns one
    :class:`OpMapping` per op of ``static.ops`` and the residency plan.

    ``tile`` (``(b, x, y)``): every matrix product and fused attention is
    mapped with that tile, cut down to the op (:func:`clamp_tile`), and
    loop ``order`` (None or ``auto``: the best order for that tile under
    ``objective``); each such mapping is checked against the constraints
    (a co-design schedule; the ``tile`` pass does the same through IR
    attributes).

    Raises :class:`MappingError` for a forced mapping that breaks a
    constraint and for an op that no mapping fits."""
    if objective not in OBJECTIVES:
        raise UserError(f"unknown mapping objective {objective!r}; accepted: "
                        + ", ".join(OBJECTIVES))
    hw = hardware_consts(accelerator, static.training)
    forced: list[OpMapping | None] = [read_mapping(info.op) if respect_attributes else None
                                      for info in static.ops]
    for info, mapping in zip(static.ops, forced):
        if mapping is not None:
            _check_unit(info, mapping)
    units = static.default_units
    if any(m is not None for m in forced):
        provisional = [m if m is not None else OpMapping(units[info.index]) for info, m in
                       zip(static.ops, forced)]
        plan = plan_residency(static, hw, forced_streams(static, provisional))
    else:
        plan = plan_residency(static, hw, {})
    default = TileShape(*accelerator.mapping.tiles)
    mappings: list[OpMapping] = []
    for info, mapping in zip(static.ops, forced):
        unit = mapping.unit if mapping is not None else units[info.index]
        if mapping is None:
            chosen = choose_mapping(info, hw, plan, unit, default, objective)
            if check:
                check_mapping(info, chosen, hw, plan, forced=False)
        else:
            chosen = _complete(mapping, info,
                               lambda: choose_mapping(info, hw, plan, unit, default, objective))
            if check:
                check_mapping(info, chosen, hw, plan, forced=True)
        mappings.append(chosen)
    if tile is not None:
        mappings = _force_products(static, hw, plan, mappings, tile, order, objective)
    return mappings, plan


def clamp_tile(dims: tuple[int, int, int, int], tile: Sequence[int]) -> TileShape:
    """``tile`` cut down to a product of dims ``(B, M, K, N)``: ``b <= B``,
    ``x <= M``, ``y <= max(K, N)`` -- the bounds of the search's own candidates
    (:func:`_product_grid`)."""
    batch, rows, inner, columns = dims
    return TileShape(min(int(tile[0]), batch), min(int(tile[1]), rows),
                     min(int(tile[2]), max(inner, columns)))


def best_order(info: OpStatic, hw: HardwareConsts, plan: ResidencyPlan, tile: TileShape,
               objective: str = MAPPER_OBJECTIVE) -> str:
    """The loop order the search would pick for ``tile`` (same costs, same
    tie rule as :func:`_pick`)."""
    inputs, outputs = operand_specs(info, plan, None)
    count = len(LOOP_ORDERS)
    b, x, y = (np.full(count, v, dtype=np.int64) for v in (tile.b, tile.x, tile.y))
    costs = matmul_costs(info, hw, b, x, y, np.arange(count), inputs, outputs[0],
                         spill_level_bytes(info, plan))
    return LOOP_ORDERS[_pick(costs.cycles, costs.energy_nj, np.ones(count, dtype=bool),
                             objective)]


def _force_products(static: StaticFunction, hw: HardwareConsts, plan: ResidencyPlan,
                    mappings: list[OpMapping], tile: Sequence[int], order: str | None,
                    objective: str) -> list[OpMapping]:
    """``mappings`` with every product's tile forced (see :func:`map_function`)."""
    if order is not None and order != "auto" and order not in LOOP_ORDERS:
        raise UserError(f"loop order {order!r}: expected auto or a permutation of bijk")
    orders: dict[tuple, str] = {}     # ops with the same costs share the best order
    forced = list(mappings)
    for position, info in enumerate(static.ops):
        if info.form not in ("matmul", "attention"):
            continue
        current = mappings[position]
        shape = clamp_tile(info.dims, tile)
        chosen = order if order not in (None, "auto") else None
        if chosen is None:
            signature = (info.form, info.dims, info.dims2, shape, current.weights,
                         tuple(sorted(plan.streamed[info.index])),
                         tuple(sorted(plan.fills[info.index].items())))
            chosen = orders.get(signature)
            if chosen is None:
                chosen = orders[signature] = best_order(info, hw, plan, shape, objective)
        mapping = OpMapping(current.unit, shape, chosen, current.weights)
        check_mapping(info, mapping, hw, plan, forced=True)
        forced[position] = mapping
    return forced


def _unit_of(info: OpStatic) -> str:
    from backends.elector.tiling import default_unit

    return default_unit(info.op)


_UNITS_BY_FORM = {"matmul": ("mac",), "attention": ("mac",), "rows": ("softmax", "layernorm"),
                  "lanes": ("mac",), "data": ("dma",), "sparsity": ("sparsity", "mac")}


def _check_unit(info: OpStatic, mapping: OpMapping) -> None:
    allowed = _UNITS_BY_FORM.get(info.form, ("mac",))
    if info.form == "rows":
        allowed = (_unit_of(info),)
    if mapping.unit not in allowed:
        raise MappingError(f"{info.kind} at {info.loc or '(no source name)'}: map:unit = "
                           f"{mapping.unit!r} cannot run it; accepted: {', '.join(allowed)}",
                           ["unit-runs-op"])
