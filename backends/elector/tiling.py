"""From IR to mapped IR: static op facts, residency planning, tile arithmetic.

Three layers, each computed once and reused:

1. :class:`StaticFunction` (design-independent, once per IR function): for
   every op that does work, its *form* (matrix product, fused attention, row
   op on the softmax / layer-norm modules, lane arithmetic, data movement,
   pruning), its dims, MACs and other arithmetic, its operands as
   :class:`TensorRef` (storage keys that look through views, so a reshape
   moves nothing), densities from the sparsity encodings, and dependencies.
2. :class:`HardwareConsts` (once per design) and :func:`plan_residency`
   (once per design x function): which tensors stay in the activation and
   weight buffers between ops (Belady's farthest-next-use eviction over the
   program order), which are too large and are streamed, and the main-memory
   fills and spills that causes.  Independent of tile sizes, so the tile
   search sees exact main-memory traffic.
3. The cost formulas of one op under a mapping, written once with numpy so
   they evaluate a whole grid of candidate tiles x loop orders at a time
   (:func:`matmul_costs`: the design-independent :func:`product_stage`
   priced on a design by :func:`stage_costs`; the search in :mod:`.mapping`
   keeps the stages across designs) and one chosen mapping
   (:func:`derive_mapped_op`, which builds the
   :class:`~backends.elector.schedule.MappedOp` the simulators read;
   :func:`schedule_function` derives ops that differ only in names once).

Conventions of the model (also in docs/compile.md):

* bytes are at the design's data width; a tensor with a sparsity encoding
  moves ``density x bytes`` of values plus a 1-bit-per-element mask through
  the mask buffer;
* each on-chip buffer has its own port at the technology's bandwidth; main
  memory at the configuration's bandwidth;
* a tile that hangs over a tensor's edge is padded in the lane (wasted MACs,
  counted) but only real elements are transferred;
* softmax and layer-norm modules of tile ``t`` take ``t`` elements per cycle
  and two passes over each ``x x y`` tile (statistics, then normalise):
  ``2 x`` cycles per tile;
* lane arithmetic (elementwise, reductions, losses, optimizer updates) runs
  ``macs_per_lane`` elementary operations per lane per cycle;
* the double-buffered tile staging area of a buffer is checked by the mapping
  constraints on its own; residency planning uses the whole buffer
  (an approximation: staging and resident tensors are not subtracted).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from backends.elector.design import Accelerator
from backends.elector.schedule import (
    LOOP_ORDERS,
    MappedFunction,
    MappedOp,
    OperandTraffic,
    OpMapping,
    TileShape,
    UnitWork,
)
from transcode_ir.core import Function, Module, Op, Value
from transcode_ir.errors import UserError
from transcode_ir.opdefs import (
    Contraction,
    DensityPreserving,
    contraction_dims,
    contraction_products,
    get_opdef,
    op_cost,
)

__all__ = [
    "FORMS",
    "HardwareConsts",
    "OpStatic",
    "ProductStage",
    "ResidencyPlan",
    "StaticFunction",
    "TensorRef",
    "default_unit",
    "derive_mapped_op",
    "design_hash",
    "hardware_consts",
    "matmul_costs",
    "plan_residency",
    "product_stage",
    "row_costs",
    "schedule_function",
    "stage_costs",
]

#: Forms of work, by op category.
FORMS = ("matmul", "attention", "rows", "lanes", "data", "sparsity")
_CATEGORY_FORM = {
    "matmul": "matmul", "conv": "matmul", "softmax": "rows", "layernorm": "rows",
    "elementwise": "lanes", "nonlinear": "lanes", "reduce": "lanes", "loss": "lanes",
    "optimizer": "lanes", "data": "data", "sparsity": "sparsity",
}
_FORM_UNIT = {"matmul": "mac", "attention": "mac", "lanes": "mac", "data": "dma",
              "sparsity": "sparsity"}
_FREE_CATEGORIES = ("view", "constant", "control")
ROW_PASSES = 2          # softmax / layer norm: statistics pass, normalise pass
#: A pruned tensor is stored compressed (values + 1-bit mask) below this density: the
#: break-even of the mask at 8-bit data (1 - 1/8); wider data breaks even later, so this
#: never stores compressed what would be larger than dense.
COMPRESS_BELOW = 0.875

# Loop orders as index arrays into (b, i, j, k), for the vectorised fetch counts.
_DIM_INDEX = {"b": 0, "i": 1, "j": 2, "k": 3}
_ORDER_PERM = np.array([[_DIM_INDEX[d] for d in order] for order in LOOP_ORDERS])


@functools.lru_cache(maxsize=64)
def _innermost(relevant: str) -> np.ndarray:
    """Per loop order, the position of the innermost loop in ``relevant``."""
    return np.array([max((order.index(d) for d in relevant), default=-1)
                     for order in LOOP_ORDERS])


#: Module attributes: names of function arguments / parameters that are
#: already in their buffer when the function starts (see :class:`TensorRef`).
ATTR_RESIDENT_ARGS = "map:resident_args"
ATTR_RESIDENT_PARAMS = "map:resident_params"


# --------------------------------------------------------------------------- static facts


@dataclass(frozen=True)
class TensorRef:
    """A tensor as storage: ``key`` is shared by a value and its views
    (``param:<name>``, ``arg:<name>``, ``v<op index>.<result>``)."""

    key: str
    name: str
    numel: int
    density: float
    source: str                 # measured / profile / assumed / dense
    buffer: str                 # activation_buffer / weight_buffer
    is_param: bool = False
    is_argument: bool = False
    #: A function argument or parameter already in its buffer when the
    #: function starts (module attributes :data:`ATTR_RESIDENT_ARGS` /
    #: :data:`ATTR_RESIDENT_PARAMS`: a decoder's KV cache and weights kept on
    #: chip between steps): no main-memory fill when it gets room.
    starts_on_chip: bool = False

    @property
    def sparse(self) -> bool:
        """Stored compressed (nonzeros plus a 1-bit mask per element): only when that is
        smaller than the dense tensor at any data width of 8 bits or more, i.e. below
        :data:`COMPRESS_BELOW` nonzeros; a denser pruned tensor is written dense by the
        post-sparsity unit (its zeros are still skipped by the lanes)."""
        return self.source != "dense" and self.density < COMPRESS_BELOW

    @property
    def stored_density(self) -> float:
        """The fraction of the dense bytes its values take in storage."""
        return self.density if self.sparse else 1.0


@dataclass
class OpStatic:
    """Design-independent facts of one op that does work."""

    index: int
    ir_index: int
    op: Op
    form: str
    loc: str
    result: str
    dims: tuple[int, int, int, int] | None = None
    dims2: tuple[int, int, int, int] | None = None      # attention: the context product
    macs: int = 0
    ops: int = 0
    rows: int = 0                                         # row ops: rows x cols
    cols: int = 0
    inputs: list[tuple[str, TensorRef, str]] = field(default_factory=list)   # role, ref, loops
    outputs: list[TensorRef] = field(default_factory=list)
    lookup: TensorRef | None = None                       # gather table: rows from main memory
    deps: tuple[int, ...] = ()
    writes_through: tuple[str, ...] = ()                  # output keys the function returns
    inner_density: float = 1.0                            # attention: pruned probs (DynaProp)

    @property
    def kind(self) -> str:
        return self.op.name

    @property
    def weight_ref(self) -> TensorRef | None:
        """The main weight operand (a parameter read by a matrix product)."""
        for role, ref, _ in self.inputs:
            if ref.is_param and role in ("rhs", "weight", "lhs"):
                return ref
        return None


def _probs_density(op: Op) -> float:
    """The density of the probabilities inside a fused attention pruned by DynaProp
    (the second product, probs x v, skips their zeros)."""
    if op.name != "nn.attention" or float(op.attr("tau")) <= 0.0:
        return 1.0
    return float(op.attributes.get("dynaprop:probs_density", 1.0))


def _density(value: Value) -> tuple[float, str]:
    enc = value.type.encoding
    if enc is None:
        return 1.0, "dense"
    return enc.density, enc.source


def default_unit(op: Op) -> str:
    """The module class an op runs on by default, from its category."""
    return _default_unit(op.name)


@functools.lru_cache(maxsize=1024)
def _default_unit(name: str) -> str:
    category = get_opdef(name).category
    if category in _FREE_CATEGORIES:
        return "none"
    form = _CATEGORY_FORM.get(category, "lanes")
    if form == "rows":
        return "softmax" if category == "softmax" else "layernorm"
    return _FORM_UNIT.get(form, "mac")


class StaticFunction:
    """The design-independent facts of one IR function (see module docstring)."""

    def __init__(self, module: Module, function: str | Function) -> None:
        func = module.function(function) if isinstance(function, str) else function
        self.module = module
        self.function = func
        self.ops: list[OpStatic] = []
        refs: dict[int, TensorRef | None] = {}          # id(Value) -> storage (None: free)
        producer: dict[str, int] = {}                   # storage key -> op index
        on_chip = set(module.attributes.get(ATTR_RESIDENT_ARGS, ()) or ())
        on_chip_params = set(module.attributes.get(ATTR_RESIDENT_PARAMS, ()) or ())
        for arg in func.args:
            density, source = _density(arg)
            refs[id(arg)] = TensorRef(f"arg:{arg.name}", arg.name or "arg", arg.type.numel,
                                      density, source, "activation_buffer", is_argument=True,
                                      starts_on_chip=arg.name in on_chip)
        returned: set[str] = set()
        #: Prune ops done on the way out of their producer's lane (:meth:`_fold_prune`).
        self.folded_prunes = 0
        self._ir_index = {id(op): i for i, op in enumerate(func)}
        for ir_index, op in enumerate(func):
            opdef = get_opdef(op.name)
            category = opdef.category
            if op.name in ("func.return", "tensor.assign"):
                # A returned value, or an optimizer update's new parameter or
                # moment: its producer writes it through to main memory (each
                # byte once); the assign itself moves nothing more.
                returned.update(refs[id(v)].key for v in op.operands if refs.get(id(v)))
                continue
            if op.name == "tensor.param":
                name = op.attributes["name"]
                param = module.params.get(name)
                value = op.result
                density, source = _density(value)
                if param is not None and param.type.encoding is not None:
                    density, source = param.type.density, param.type.encoding.source
                refs[id(value)] = TensorRef(f"param:{name}", name, value.type.numel, density,
                                            source, "weight_buffer", is_param=True,
                                            starts_on_chip=name in on_chip_params)
                continue
            if op.name == "nn.prune" and self._fold_prune(op, refs, producer):
                continue
            if category in _FREE_CATEGORIES:
                if category == "view" and op.operands:
                    base = refs.get(id(op.operands[0]))
                    for res in op.results:
                        refs[id(res)] = base
                else:
                    for res in op.results:
                        refs[id(res)] = None
                continue
            info = OpStatic(len(self.ops), ir_index, op, "", op.loc or "", "")
            outputs = []
            for k, res in enumerate(op.results):
                density, source = _density(res)
                if source == "dense" and op.has_trait(DensityPreserving) and op.operands:
                    # A permutation or copy keeps its input's nonzeros (the IR's
                    # types of such results carry no encoding).
                    base = refs.get(id(op.operands[0]))
                    if base is not None:
                        density, source = base.density, base.source
                ref = TensorRef(f"v{ir_index}.{k}", f"{op.name}#{ir_index}"
                                + (f".{k}" if len(op.results) > 1 else ""),
                                res.type.numel, density, source, "activation_buffer")
                refs[id(res)] = ref
                outputs.append(ref)
            info.outputs = outputs
            info.result = outputs[0].name if outputs else f"{op.name}#{ir_index}"
            self._describe(info, op, category, refs)
            deps = sorted({producer[ref.key] for _, ref, _ in info.inputs if ref.key in producer}
                          | ({producer[info.lookup.key]} if info.lookup is not None
                             and info.lookup.key in producer else set()))
            info.deps = tuple(deps)
            for ref in outputs:
                producer[ref.key] = info.index
            self.ops.append(info)
        for info in self.ops:
            info.writes_through = tuple(ref.key for ref in info.outputs if ref.key in returned)
        self.training = any(get_opdef(o.kind).category == "optimizer" for o in self.ops)
        self.densities = _density_sources(self)
        #: The module class each op runs on by default (:func:`default_unit`).
        self.default_units = [default_unit(info.op) for info in self.ops]

    def _fold_prune(self, op: Op, refs: dict[int, TensorRef | None],
                    producer: Mapping[str, int]) -> bool:
        """Prune on the way out of the lane: an ``nn.prune`` whose operand is read by
        nothing else and written by an op that does work is done by the post-sparsity
        unit as that op writes its result (AccelTran's DynaTran), so it is no job of its
        own: the producer writes the pruned tensor, at the pruned density.  Returns
        whether the prune was folded (otherwise it runs on the sparsity units).  Views
        between the producer and the prune (a reshape: no data moves) are looked
        through when each value on the way is read only by the next."""
        x = op.operands[0]
        base = refs.get(id(x))
        owner = x.owner
        chain = [x]
        while isinstance(owner, Op) and len(chain[-1].uses) == 1 and owner.operands \
                and get_opdef(owner.name).category == "view":
            chain.append(owner.operands[0])
            owner = chain[-1].owner
        x = chain[-1]
        if base is None or not isinstance(owner, Op) or len(x.uses) != 1 \
                or base.key not in producer or base.key != f"v{self._index_of(owner)}.0":
            return False
        info = self.ops[producer[base.key]]
        if info.op is not owner:
            return False
        density, source = _density(op.results[0])
        if source == "dense":
            density, source = base.density, base.source
        pruned = dataclasses.replace(base, density=density, source=source)
        info.outputs = [pruned if ref.key == base.key else ref for ref in info.outputs]
        for value in chain:
            refs[id(value)] = pruned
        refs[id(op.results[0])] = pruned
        self.folded_prunes += 1
        return True

    def _index_of(self, op: Op) -> int:
        return self._ir_index.get(id(op), -1)

    # -- per form ----------------------------------------------------------

    def _describe(self, info: OpStatic, op: Op, category: str,
                  refs: Mapping[int, TensorRef | None]) -> None:
        form = _CATEGORY_FORM.get(category, "lanes")
        cost = op_cost(op)
        info.ops = cost.ops

        def ref(i: int) -> TensorRef | None:
            return refs.get(id(op.operands[i])) if i < len(op.operands) else None

        def add(role: str, i: int, loops: str = "") -> None:
            r = ref(i)
            if r is not None:
                info.inputs.append((role, r, loops))

        products = contraction_products(op)
        if len(products) == 2:          # fused attention: scores, then context
            form = "attention"
            info.dims, info.dims2 = products
            batch, q_rows = info.dims[0], info.dims[1]
            kt = op.operands[1].type.shape
            add("lhs", 0, "bik")
            add("rhs", 1, "bkj")
            add("rhs2", 2, "bkj")
            if len(op.operands) > 3:
                add("mask", 3, "")
            info.macs = math.prod(info.dims) + math.prod(info.dims2)
            info.rows, info.cols = batch * q_rows, kt[-1]
            info.inner_density = _probs_density(op)
        elif form == "matmul":
            info.dims = contraction_dims(op)
            info.macs = math.prod(info.dims)
            lhs_loops, rhs_loops = get_opdef(op.name).trait(Contraction).loops(op)
            add("lhs", 0, lhs_loops)
            add("rhs", 1, rhs_loops)
            for i in range(2, len(op.operands)):
                add(f"in{i}", i, "")       # bias: read once
        elif form == "rows":
            shape = op.operands[0].type.shape
            info.cols = shape[-1] if shape else 1
            info.rows = max(op.operands[0].type.numel // max(info.cols, 1), 1)
            for i in range(len(op.operands)):
                add(f"in{i}", i)
        elif op.name == "tensor.gather" and ref(0) is not None \
                and ref(0).numel > op.results[0].type.numel:
            # A table larger than what is gathered: the rows are read from
            # main memory where the table lives (not loaded whole).
            form = "data"
            info.lookup = ref(0)
            add("in1", 1)
        else:
            for i in range(len(op.operands)):
                add(f"in{i}", i)
        info.form = form


def _density_sources(static: StaticFunction) -> dict[str, int]:
    """How many distinct tensors have a density of each source."""
    counts: dict[str, int] = {}
    seen: set[str] = set()
    for info in static.ops:
        for ref in [r for _, r, _ in info.inputs] + info.outputs:
            if ref.key in seen:
                continue
            seen.add(ref.key)
            counts[ref.source] = counts.get(ref.source, 0) + 1
    return counts


# --------------------------------------------------------------------------- hardware


@dataclass(frozen=True)
class HardwareConsts:
    """The numbers of a design the cost formulas use, gathered once."""

    name: str
    hash: str
    clock_hz: float
    bytes_per_element: float
    pes: int
    lanes_per_pe: int
    lanes: int
    macs_per_lane: int
    fifo_depth: int
    softmax_units: int
    softmax_tile: int
    layernorm_units: int
    layernorm_tile: int
    capacity: Mapping[str, float]            # buffer level -> bytes
    bandwidth: Mapping[str, float]           # level -> bytes per cycle (banks x port)
    energy_per_byte: Mapping[str, float]     # level -> nJ per byte
    lane_energy_per_cycle: float             # nJ per busy lane-cycle: lane, FIFO, sparsity [, SR]
    softmax_energy_per_cycle: float
    layernorm_energy_per_cycle: float
    training: bool
    banks: Mapping[str, int] = field(default_factory=dict)              # level -> banks
    bank_bandwidth: Mapping[str, float] = field(default_factory=dict)   # bytes/cycle per bank
    stage_params: StageParams = field(default_factory=lambda: StageParams())


def design_hash(accelerator: Accelerator) -> str:
    """A short hash of the design's normalised DSL text (what reports print)."""
    return _design_hash(accelerator)


@functools.lru_cache(maxsize=256)
def _design_hash(accelerator: Accelerator) -> str:
    from backends.elector.hwdsl import format_design

    return hashlib.sha256(format_design(accelerator).encode()).hexdigest()[:12]


@functools.lru_cache(maxsize=256)
def hardware_consts(accelerator: Accelerator, training: bool = False) -> HardwareConsts:
    """The :class:`HardwareConsts` of a design (cached per design)."""
    clock = accelerator.clock_hz
    pe = accelerator.pe_array
    memory = accelerator.main_memory_costs()
    capacity, bandwidth, energy = {}, {"main_memory": memory.bandwidth_bytes_per_s / clock}, {
        "main_memory": memory.energy_per_byte_nj}
    banks, bank_bandwidth = {"main_memory": 1}, {"main_memory": bandwidth["main_memory"]}
    multicast, room = [], []
    for level in buffer_levels(accelerator):
        capacity[level.name] = float(level.capacity_bytes)
        banks[level.name] = level.banks
        bank_bandwidth[level.name] = level.bank_bytes_per_cycle
        bandwidth[level.name] = level.banks * level.bank_bytes_per_cycle
        energy[level.name] = level.energy_per_byte_nj
        multicast.append((level.name, level.multicast))
        # A streamed operand's buffer-level block is double-buffered: two
        # blocks fit the buffer.
        room.append((level.name, level.capacity_bytes / 2.0))
    lane = accelerator.module_costs("mac_lane").dynamic_energy_per_cycle_pj
    lane += accelerator.module_costs("fifo").dynamic_energy_per_cycle_pj
    if accelerator.sparsity.pre:
        lane += accelerator.module_costs("pre_sparsity").dynamic_energy_per_cycle_pj
    if accelerator.sparsity.post:
        lane += accelerator.module_costs("post_sparsity").dynamic_energy_per_cycle_pj
    if training or accelerator.sparsity.stochastic_rounding:
        lane += accelerator.module_costs("stochastic_rounding").dynamic_energy_per_cycle_pj
    return HardwareConsts(
        name=accelerator.name, hash=design_hash(accelerator), clock_hz=clock,
        bytes_per_element=accelerator.data_width_bits / 8,
        pes=pe.pes, lanes_per_pe=pe.lanes, lanes=pe.pes * pe.lanes,
        macs_per_lane=pe.macs_per_lane, fifo_depth=pe.fifo_depth,
        softmax_units=pe.pes * accelerator.softmax.per_pe, softmax_tile=accelerator.softmax.tile,
        layernorm_units=pe.pes, layernorm_tile=accelerator.layer_norm.tile,
        capacity=capacity, bandwidth=bandwidth, energy_per_byte=energy,
        lane_energy_per_cycle=lane * 1e-3,
        softmax_energy_per_cycle=_per_cycle_nj(accelerator, "softmax"),
        layernorm_energy_per_cycle=_per_cycle_nj(accelerator, "layer_norm"),
        training=training, banks=banks, bank_bandwidth=bank_bandwidth,
        stage_params=StageParams(pe.pes * pe.lanes, tuple(multicast), tuple(room),
                                 _add_pe_buffer(accelerator, capacity, bandwidth, energy, banks,
                                                bank_bandwidth)))


def _add_pe_buffer(accelerator: Accelerator, capacity: dict, bandwidth: dict, energy: dict,
                   banks: dict, bank_bandwidth: dict) -> tuple:
    """The per-PE buffer's entries in the level tables (all PEs' buffers
    together: bandwidth = PEs x banks x port, capacity one PE's) and its
    :attr:`StageParams.pe_buffer`; ``()`` and nothing added without one."""
    if accelerator.pe_buffer is None:
        return ()
    from backends.elector.hierarchy import level

    pe_level = level(accelerator, "pe_buffer")
    capacity["pe_buffer"] = float(pe_level.capacity_bytes)
    banks["pe_buffer"] = pe_level.banks
    bank_bandwidth["pe_buffer"] = pe_level.bank_bytes_per_cycle
    bandwidth["pe_buffer"] = pe_level.total_bytes_per_cycle
    energy["pe_buffer"] = pe_level.read_nj_per_byte
    held = tuple(f"{operand}_buffer" for operand in accelerator.pe_buffer.holds)
    return (held, float(pe_level.capacity_bytes), accelerator.pe_array.lanes)


@dataclass(frozen=True)
class BufferLevel:
    """One on-chip buffer as the cost formulas see it: ``banks`` banks of one
    port each (``bank_bytes_per_cycle``), so the level's bandwidth is ``banks x
    port`` (accesses assumed spread evenly over the banks: no bank conflicts);
    ``multicast``: a tile read once reaches every lane of a wave that needs it."""

    name: str
    capacity_bytes: float
    banks: int
    bank_bytes_per_cycle: float
    energy_per_byte_nj: float
    multicast: bool = True


def buffer_levels(accelerator: Accelerator) -> tuple[BufferLevel, ...]:
    """The design's buffers (activation, weight, mask) with their banks and ports."""
    return _buffer_levels(accelerator)


@functools.lru_cache(maxsize=256)
def _buffer_levels(accelerator: Accelerator) -> tuple[BufferLevel, ...]:
    clock = accelerator.clock_hz
    try:
        from backends.elector.hierarchy import storage_levels
    except ImportError:
        storage_levels = None
    out = []
    if storage_levels is not None:
        for level in storage_levels(accelerator):
            name = level.name if level.name.endswith("_buffer") else f"{level.name}_buffer"
            if name not in ("activation_buffer", "weight_buffer", "mask_buffer"):
                continue
            kind = name[: -len("_buffer")]
            out.append(BufferLevel(name, float(level.capacity_bytes), int(level.banks),
                                   float(level.bank_bytes_per_cycle),
                                   accelerator.buffer_costs(kind).energy_per_byte_nj,
                                   bool(getattr(level, "multicast", True))))
        if len(out) == 3:
            return tuple(out)
        out = []
    # Stand-in for the hierarchy module: banks of at most 1 MiB, one port each.
    for kind in ("activation", "weight", "mask"):
        buffer = accelerator.buffer(kind)
        costs = accelerator.buffer_costs(kind)
        banks = 1
        if buffer.bandwidth_bytes_per_s is None:
            banks = max(1, math.ceil(buffer.size_bytes / 2**20))
        out.append(BufferLevel(f"{kind}_buffer", float(buffer.size_bytes), banks,
                               costs.bandwidth_bytes_per_s / clock, costs.energy_per_byte_nj))
    return tuple(out)


def _per_cycle_nj(accelerator: Accelerator, kind: str) -> float:
    return accelerator.module_costs(kind).dynamic_energy_per_cycle_pj * 1e-3


def stored_bytes(ref: TensorRef, hw: HardwareConsts) -> float:
    """Bytes a tensor takes in its buffer (compressed values; its mask lives
    in the mask buffer)."""
    return ref.numel * hw.bytes_per_element * ref.stored_density


# --------------------------------------------------------------------------- residency


@dataclass
class ResidencyPlan:
    """What the buffers hold between ops, per op.

    ``streamed[i]``: keys op ``i`` streams (too large for their buffer, or
    forced).  ``fills[i]``: ``{key: bytes}`` op ``i`` reads from main memory
    to make an input resident.  ``spills[i]``: ``[(ref, bytes)]`` tensors op
    ``i`` evicts while they are still needed (written to main memory once).
    """

    streamed: list[set[str]]
    fills: list[dict[str, float]]
    spills: list[list[tuple[TensorRef, float]]]
    #: Per-op facts derived from the plan (operand specs, signatures), computed once.
    memo: dict[tuple, object] = field(default_factory=dict, repr=False, compare=False)


def plan_residency(static: StaticFunction, hw: HardwareConsts,
                   forced_streamed: Mapping[int, Iterable[str]] | None = None) -> ResidencyPlan:
    """Belady residency over program order for the activation and weight
    buffers.  A tensor larger than its buffer (or named in
    ``forced_streamed[op index]``, or that cannot get room because the op's
    other operands fill the buffer) is streamed by the op that touches it;
    function arguments and parameters start in main memory; a tensor evicted
    while it still has uses is written back once (a spill) and read again
    when next needed (a fill).

    The plan depends on the design only through the two buffers' sizes and
    the data width, and on the sizes only through the outcome of its
    comparisons with them (``bytes > capacity``): it is kept per function,
    data width and forced streams with the interval of sizes over which every
    one of those comparisons comes out the same (:class:`_CapacityBounds`),
    and shared by the designs whose sizes fall in it: the same plan, exactly,
    and its memo of operand specs and signatures (do not mutate it)."""
    forced_streamed = forced_streamed or {}
    forced_key = tuple(sorted((i, tuple(sorted(keys))) for i, keys in forced_streamed.items()))
    capacity = (hw.capacity["activation_buffer"], hw.capacity["weight_buffer"])
    key = capacity + (hw.bytes_per_element, forced_key)
    plans: dict[tuple, ResidencyPlan] | None = static.__dict__.get("_plans")
    if plans is None:
        plans = static.__dict__["_plans"] = {}
    plan = plans.get(key)
    if plan is None:
        bounded: dict[tuple, list[tuple[_CapacityBounds, ResidencyPlan]]] = \
            static.__dict__.setdefault("_bounded_plans", {})
        candidates = bounded.setdefault((hw.bytes_per_element, forced_key), [])
        plan = next((p for bounds, p in candidates if bounds.admits(capacity)), None)
        if plan is None:
            bounds = _CapacityBounds(hw.capacity)
            plan = _plan_residency(static, hw, forced_streamed, bounds)
            if len(candidates) >= 64:
                candidates.pop(0)
            candidates.append((bounds, plan))
        if len(plans) >= 256:
            plans.pop(next(iter(plans)))
        plans[key] = plan
    return plan


class _CapacityBounds:
    """The activation and weight buffer sizes of one design, and every
    comparison :func:`_plan_residency` makes with them: ``exceeds(level,
    amount)`` is ``amount > capacity[level]``, and narrows the interval
    ``[low, high)`` of sizes for which it comes out the same.  A plan is
    decided by those outcomes alone (the byte totals it compares follow from
    them), so any sizes inside both intervals give the same plan."""

    def __init__(self, capacity: Mapping[str, float]) -> None:
        self.capacity = {level: capacity[level] for level in _PLANNED_LEVELS}
        self.low = dict.fromkeys(_PLANNED_LEVELS, -math.inf)
        self.high = dict.fromkeys(_PLANNED_LEVELS, math.inf)

    def exceeds(self, level: str, amount: float) -> bool:
        if amount > self.capacity[level]:
            self.high[level] = min(self.high[level], amount)
            return True
        self.low[level] = max(self.low[level], amount)
        return False

    def admits(self, capacity: tuple[float, float]) -> bool:
        """Whether sizes ``(activation, weight)`` lie inside the intervals."""
        return all(self.low[level] <= value < self.high[level]
                   for level, value in zip(_PLANNED_LEVELS, capacity))


_PLANNED_LEVELS = ("activation_buffer", "weight_buffer")


def _plan_residency(static: StaticFunction, hw: HardwareConsts,
                    forced_streamed: Mapping[int, Iterable[str]],
                    bounds: _CapacityBounds) -> ResidencyPlan:
    n = len(static.ops)
    uses: dict[str, list[int]] = {}
    for info in static.ops:
        for _, ref, _ in info.inputs:
            lst = uses.setdefault(ref.key, [])
            if not lst or lst[-1] != info.index:
                lst.append(info.index)
    dies_at: list[list[str]] = [[] for _ in range(n)]
    for key, lst in uses.items():
        dies_at[lst[-1]].append(key)
    pointer = dict.fromkeys(uses, 0)
    resident: dict[str, dict[str, float]] = {"activation_buffer": {}, "weight_buffer": {}}
    totals = {"activation_buffer": 0.0, "weight_buffer": 0.0}
    refs_by_key: dict[str, TensorRef] = {}
    in_memory: set[str] = set()
    plan = ResidencyPlan([set() for _ in range(n)], [dict() for _ in range(n)],
                         [[] for _ in range(n)])
    never = math.inf

    def next_use(key: str, now: int) -> float:
        lst = uses.get(key)
        if not lst:
            return never
        p = pointer[key]
        while p < len(lst) and lst[p] <= now:
            p += 1
        pointer[key] = p
        return lst[p] if p < len(lst) else never

    def make_room(level: str, need: float, now: int, keep: set[str]) -> bool:
        held = resident[level]
        while bounds.exceeds(level, totals[level] + need):
            candidates = [k for k in held if k not in keep]
            if not candidates:
                return False
            victim = max(candidates, key=lambda k: next_use(k, now))
            size = held.pop(victim)
            totals[level] -= size
            if next_use(victim, now) != never and victim not in in_memory:
                plan.spills[now].append((refs_by_key[victim], size))
                in_memory.add(victim)
        return True

    def hold(level: str, key: str, size: float) -> None:
        resident[level][key] = size
        totals[level] += size

    for info in static.ops:
        i = info.index
        keep = {ref.key for _, ref, _ in info.inputs} | {ref.key for ref in info.outputs}
        forced = set(forced_streamed.get(i, ()))
        streamed = plan.streamed[i]
        for _, ref, _ in info.inputs:
            refs_by_key[ref.key] = ref
            level = ref.buffer
            if ref.key in resident[level] or ref.key in streamed:
                continue
            size = stored_bytes(ref, hw)
            if ref.key in forced or bounds.exceeds(level, size) \
                    or not make_room(level, size, i, keep):
                streamed.add(ref.key)
                continue
            hold(level, ref.key, size)
            if not ref.starts_on_chip:
                plan.fills[i][ref.key] = size
                in_memory.add(ref.key)
        for ref in info.outputs:
            refs_by_key[ref.key] = ref
            size = stored_bytes(ref, hw)
            if ref.key not in uses:
                continue          # never read on chip again: nothing to keep
            if ref.key in forced or bounds.exceeds(ref.buffer, size) \
                    or not make_room(ref.buffer, size, i, keep):
                streamed.add(ref.key)
                in_memory.add(ref.key)
                continue
            hold(ref.buffer, ref.key, size)
        for key in dies_at[i]:
            ref = refs_by_key.get(key)
            if ref is not None and key in resident[ref.buffer]:
                totals[ref.buffer] -= resident[ref.buffer].pop(key)
    return plan


# --------------------------------------------------------------------------- cost formulas


def _ceil_div(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    return -(-np.asarray(a) // np.asarray(b))


@dataclass(frozen=True)
class OperandSpec:
    """What the cost formulas need to know about one operand of a product."""

    role: str
    ref: TensorRef
    loops: str                 # loops it depends on ("" : read once)
    tile: str                  # which tile shape: "lhs" b*x*y, "rhs" (b*)y*y, "out" b*x*y
    streamed: bool
    fill_bytes: float          # main-memory bytes to make it resident (0: already resident)
    write_through: bool = False


def _tile_elements(tile: str, loops: str, b: np.ndarray, x: np.ndarray,
                   y: np.ndarray) -> np.ndarray:
    batch = b if "b" in loops else 1
    if tile == "rhs":
        return batch * y * y
    return batch * x * y


def _distinct(loops: str, trips: np.ndarray) -> np.ndarray:
    out = np.ones(trips.shape[0], dtype=np.int64)
    for d in loops:
        out = out * trips[:, _DIM_INDEX[d]]
    return out


@dataclass(frozen=True)
class StageParams:
    """The numbers of a design the per-level traffic of a product depends on
    (kept in the stage caches' keys): ``lanes`` working at once (a *wave*),
    whether each buffer multicasts a tile read once to every lane of a
    wave that needs it, and the ``room`` (bytes) each buffer gives a streamed
    operand's buffer-level block.  ``StageParams()`` is the old
    one-lane-at-a-time model (no multicast, no buffer-level block)."""

    lanes: int = 1
    multicast: tuple[tuple[str, bool], ...] = ()
    room: tuple[tuple[str, float], ...] = ()
    #: The per-PE buffer: ``(global buffers whose operands it holds, one PE's
    #: capacity in bytes, lanes per PE)``; ``()``: the design has none.
    pe_buffer: tuple = ()

    def multicasts(self, level: str) -> bool:
        return dict(self.multicast).get(level, False)

    def room_at(self, level: str) -> float:
        return dict(self.room).get(level, 0.0)

    def for_operands(self, specs: Sequence[OperandSpec]) -> StageParams:
        """These params with only the room of the buffers that hold a streamed
        operand of ``specs`` (the only rooms the formulas read): a key that
        designs differing elsewhere share."""
        levels = {s.ref.buffer for s in specs if s.streamed}
        room = tuple((level, value) for level, value in self.room if level in levels)
        return self if room == self.room else dataclasses.replace(self, room=room)


_NO_PARAMS = StageParams()


def stage_params(hw: HardwareConsts) -> StageParams:
    """:class:`StageParams` of a design (lanes, multicast and streaming room per buffer)."""
    return hw.stage_params


#: Loops each operand kind depends on, as a mask over (b, i, j, k).
def _loop_mask(loops: str) -> np.ndarray:
    return np.array([d in loops for d in "bijk"])


def wave_coverage(ordered: Sequence[np.ndarray], lanes: int) -> list[np.ndarray]:
    """Spatial unrolling of one wave: per loop position (outermost first) and
    candidate, how many of that loop's tiles one wave spans: the innermost loops
    are unrolled across the lanes, each as far as the lanes left by the loops
    inside allow, ``c = min(trips, max(lanes // product of the c inside, 1))``.
    A wave runs ``prod(c)`` tile-products at once (the other lanes idle).

    Like the helpers below, it takes and gives one array of candidates per
    loop position (:data:`Columns`): whole-array numpy steps, no strided
    column slices of an ``(n, 4)`` array."""
    cover: list[np.ndarray] = [ordered[0]] * len(ordered)
    inside = None
    for p in range(len(ordered) - 1, -1, -1):
        if inside is None:          # innermost: the product of the c inside is 1
            cover[p] = np.minimum(ordered[p], max(lanes, 1))
            inside = cover[p]
        else:
            cover[p] = np.minimum(ordered[p], np.maximum(lanes // inside, 1))
            inside = inside * cover[p]
    return cover


#: Per loop position (outermost first), one array over the candidates.
Columns = Sequence[np.ndarray]


def _columns(values: np.ndarray) -> tuple[np.ndarray, ...]:
    """An ``(n, depth)`` array as :data:`Columns` (contiguous copies)."""
    return tuple(np.ascontiguousarray(values[:, p]) for p in range(values.shape[1]))


def level_fetches(ordered: Columns, relevant: Columns) -> np.ndarray:
    """How often the block an operand needs changes when the loops ``ordered``
    (trip counts per position, outermost first) run: the product of the trip
    counts from the outermost loop down to the innermost *relevant* loop that
    has more than one trip (1 when none has).  The lane-FIFO rule
    (:func:`~backends.elector.schedule.loop_fetches`) applied at any level."""
    return _outer_products(ordered, _moving(ordered, relevant))[-1]


def _row_prod(values: Columns) -> np.ndarray:
    """The product over the loop positions, per candidate."""
    out = values[0].copy()
    for column in values[1:]:
        out *= column
    return out


def _moving(ordered: Columns, relevant: Columns) -> list[np.ndarray]:
    """Per position: a loop the operand depends on, with more than one trip."""
    return [r & (o > 1) for o, r in zip(ordered, relevant)]


def _irrelevant_outer(ordered: Columns, relevant: Columns) -> np.ndarray:
    """``level_fetches(ordered, relevant) / prod(trips of the relevant loops)``:
    the product of the trip counts of the loops the operand does not depend on
    that lie outside its innermost relevant loop with more than one trip."""
    return _outer_products([np.where(r, 1, o) for o, r in zip(ordered, relevant)],
                           _moving(ordered, relevant))[-1]


def _outer_products(values: Columns, moving: Columns) -> list[np.ndarray]:
    """Per ``s`` in ``0..depth``: the product of ``values`` over the positions
    ``< s`` at or outside the innermost ``moving`` one among them (1 when none
    moves), for every ``s`` in one outer-to-inner pass."""
    run = np.ones(len(values[0]), dtype=values[0].dtype)
    out = [run]
    pending = run
    for value, moves in zip(values, moving):
        pending = pending * value
        run = np.where(moves, pending, run)
        out.append(run)
    return out


def _product_traffic(dims: tuple[int, int, int, int], b: np.ndarray, x: np.ndarray,
                     y: np.ndarray, order_index: np.ndarray, operands: Sequence[OperandSpec],
                     bpe: float, params: StageParams | None = None,
                     static_key: tuple | None = None) -> dict[str, object]:
    """Vectorised traffic of one matrix product over candidate mappings, at
    two levels below main memory (docs/cost-model.md):

    * **lanes** (spatial): a wave of ``params.lanes`` tile-products spans
      ``c`` tiles of each loop (:func:`wave_coverage`); the wave needs
      ``prod(c over the operand's loops)`` distinct tiles of an operand, each
      read once from its buffer and multicast to the lanes that use it (when
      the buffer multicasts; else every lane of the wave reads its own).
      Between waves a lane keeps its tile in its FIFO while the operand's
      loops stay put, so tile reads = ``level_fetches(waves' trip counts) x
      distinct tiles per wave``.  Partial sums of one output tile from lanes
      of the same wave are added on the way to the buffer (one write).
    * **buffer** (temporal): a streamed operand (one that does not stay in
      its buffer) is brought from main memory in the largest block of the
      innermost loops that fits the buffer's room (``params.room``); main
      memory moves it ``level_fetches(trip counts outside the block) x the
      block``, and never more than the buffer hands to the lanes.
    """
    params = params or _NO_PARAMS
    tile_products, ordered, per_spec = _traffic_static(dims, b, x, y, order_index, operands,
                                                       bpe, static_key)
    cover, waves, spatial, reads = _wave_numbers(ordered, params.lanes, (static_key, dims))
    result = {"tile_products": tile_products, "operands": [], "spatial": spatial}
    for spec, (relevant, distinct, tensor, average_tile, tile_elements, tile_bytes, blocks) \
            in zip(operands, per_spec):
        if relevant is not None:
            multicast = params.multicasts(spec.ref.buffer)
            fetches = reads.get((spec.loops, multicast))
            if fetches is None:
                # Every tile once, times the wave loops outside the operand's
                # innermost moving loop that it does not depend on (FIFO reuse
                # lost); without multicast, every lane reads its own copy.
                fetches = distinct * _irrelevant_outer(waves, relevant)
                if not multicast:
                    fetches = fetches * _row_prod([np.where(r, 1, c)
                                                   for c, r in zip(cover, relevant)])
                fetches.flags.writeable = False
                reads[(spec.loops, multicast)] = fetches
        else:
            fetches = np.ones_like(order_index)
        moved = fetches * average_tile
        pe_moved = None
        if params.pe_buffer and relevant is not None and spec.role in _PE_BUFFER_ROLES \
                and spec.ref.buffer in params.pe_buffer[0]:
            # The per-PE buffer's hook: what the lanes read (``moved``) now
            # comes from their PE's buffer, which the global buffer fills.
            pe_moved = moved
            moved = _pe_buffer_fetches(spec, operands, waves, cover, relevant, fetches,
                                       average_tile, params) * average_tile
        mm_blocks = fetches
        room = params.room_at(spec.ref.buffer)
        if spec.streamed and relevant is not None and room > 0:
            mm_blocks = np.minimum(fetches, _fitting_block(blocks, room / average_tile))
        mask = fetches * (spec.ref.numel / distinct) / 8.0 if spec.ref.sparse else 0.0 * moved
        entry = {"spec": spec, "fetches": fetches, "distinct": distinct,
                 "moved": moved, "mm_moved": mm_blocks * average_tile,
                 "mask": mask, "tile_bytes": tile_bytes,
                 "tile_elements": tile_elements, "tensor": tensor}
        if pe_moved is not None:
            entry["mm_moved"] = np.minimum(entry["mm_moved"], moved)
            entry["pe_read"], entry["pe_write"] = pe_moved, moved
        result["operands"].append(entry)
    return result


#: :func:`_wave_numbers` per (static key, product dims, lane count).
_WAVE_CACHE: dict[tuple, tuple] = {}


def _wave_numbers(ordered: Columns, lanes: int, static_key: tuple) -> tuple:
    """What :func:`_product_traffic` computes from the candidates' trip counts
    and the design's lane count alone: the wave coverage, the waves' trip
    counts, the lanes a wave uses and a dict for the operands' tile reads
    from their buffers under ``(loops, multicast)`` (filled by the caller).
    Cached when ``static_key[0]`` (the candidates' name, as for
    :func:`_traffic_static`) is given; the arrays are read-only."""
    cache_key = (static_key, lanes) if static_key[0] is not None else None
    hit = _WAVE_CACHE.get(cache_key) if cache_key is not None else None
    if hit is not None:
        return hit
    cover = wave_coverage(ordered, lanes)
    waves = [-(-o // c) for o, c in zip(ordered, cover)]
    spatial = _row_prod(cover)
    for array in cover + waves + [spatial]:
        array.flags.writeable = False
    out = (cover, waves, spatial, {})
    if cache_key is not None:
        if len(_WAVE_CACHE) > 256:
            _WAVE_CACHE.clear()
        _WAVE_CACHE[cache_key] = out
    return out


#: Operands a per-PE buffer can keep for its lanes: the inputs of a product
#: (results and partial sums go to their global buffer as without one).
_PE_BUFFER_ROLES = frozenset({"lhs", "rhs", "rhs2"})


def _pe_buffer_fetches(spec: OperandSpec, operands: Sequence[OperandSpec], waves: Columns,
                       cover: Columns, relevant: Columns, fetches: np.ndarray,
                       average_tile: np.ndarray, params: StageParams) -> np.ndarray:
    """Tile reads of ``spec`` from its global buffer when a per-PE buffer
    holds it (docs/cost-model.md, "Per-PE buffer"); ``fetches`` when it does
    not hold the operand's class.

    Without a PE buffer a lane keeps a tile only while the operand's loops
    stay put between waves (``fetches`` = distinct tiles x the wave loops
    outside the operand's innermost moving loop that it does not depend on).
    The PE buffer keeps, for its lanes, the largest block of the innermost
    wave loops whose tiles fit its room and reloads it as the loops outside
    move -- what a global buffer does for a streamed operand
    (:func:`_fitting_block`, here over the waves' trip counts): a wave needs
    ``min(tiles of the operand in the wave, lanes per PE)`` tiles in one PE;
    the room is half the buffer (double-buffered) shared evenly by the op's
    inputs it holds.  When the whole operand fits, the global buffer sends
    each tile once.  Called only for inputs of a class the buffer holds."""
    held, capacity, lanes_per_pe = params.pe_buffer
    sharing = sum(1 for other in operands
                  if other.role in _PE_BUFFER_ROLES and other.loops and other.ref.buffer in held)
    per_pe = np.minimum(_row_prod([np.where(r, c, 1) for c, r in zip(cover, relevant)]),
                        lanes_per_pe)
    # wave tile sets that fit (a fully pruned operand's tiles take no room)
    room_sets = capacity / 2.0 / sharing / np.maximum(per_pe * average_tile, 1e-30)
    kept = _fitting_block(_blocks(waves, relevant), room_sets)
    return fetches * (kept / np.maximum(level_fetches(waves, relevant), 1))


#: The design-independent part of :func:`_product_traffic` per search table
#: (op shape, candidate grid, operand specs, data width).
_TRAFFIC_STATIC: dict[tuple, tuple] = {}


def _traffic_static(dims: tuple[int, int, int, int], b: np.ndarray, x: np.ndarray,
                    y: np.ndarray, order_index: np.ndarray, operands: Sequence[OperandSpec],
                    bpe: float, static_key: tuple | None) -> tuple:
    """Tile-products (the product of the trip counts), the trip counts per
    loop position (outermost first, :data:`Columns`) and, per operand, its loop
    mask per position (None: read once), distinct tiles, bytes, average tile
    bytes, tile elements, tile bytes and its buffer-level blocks
    (:func:`_blocks`, streamed operands only): what does not depend on the
    design (cached under ``static_key``, which names the candidates, when
    given)."""
    cache_key = None
    if static_key is not None:
        cache_key = (static_key, dims, bpe, tuple(operand_key(s) for s in operands))
        hit = _TRAFFIC_STATIC.get(cache_key)
        if hit is not None:
            return hit
    batch, m, k, n = dims
    trips = np.stack([_ceil_div(batch, b), _ceil_div(m, x), _ceil_div(n, y), _ceil_div(k, y)],
                     axis=1).astype(np.int64)
    perm = _ORDER_PERM[order_index]
    ordered = _columns(trips[np.arange(trips.shape[0])[:, None], perm])
    per_spec = []
    for spec in operands:
        blocks = None
        if spec.loops:
            relevant = _columns(_loop_mask(spec.loops)[perm])
            distinct = _distinct(spec.loops, trips)
            if spec.streamed:
                blocks = _blocks(ordered, relevant)
        else:
            relevant = None
            distinct = np.ones_like(order_index)
        tensor = spec.ref.numel * bpe * spec.ref.stored_density
        tile_elements = _tile_elements(spec.tile, spec.loops, b, x, y)
        per_spec.append((relevant, distinct, tensor, tensor / distinct,      # real elements only
                         tile_elements, tile_elements * bpe * spec.ref.stored_density, blocks))
    out = (_row_prod(_columns(trips)), ordered, tuple(per_spec))
    if cache_key is not None:
        if len(_TRAFFIC_STATIC) > 2048:
            _TRAFFIC_STATIC.clear()
        _TRAFFIC_STATIC[cache_key] = out
    return out


def _blocks(ordered: Columns, relevant: Columns) -> list[tuple[np.ndarray, np.ndarray]]:
    """The candidate buffer-level blocks of an operand, smallest first: per
    block of the innermost loops (none, the innermost loop, two, ...), the
    operand's tiles in it (``prod`` of the trip counts of its loops inside)
    and the tiles main memory then moves: the block times
    :func:`level_fetches` of the loops outside it."""
    depth = len(ordered)
    # outer[s]: level_fetches of the loops outside a block of positions s.. .
    outer = _outer_products(ordered, _moving(ordered, relevant))
    block = np.ones(len(ordered[0]), dtype=np.int64)
    out = []
    for s in range(depth, -1, -1):
        if s < depth:
            block = block * np.where(relevant[s], ordered[s], 1)
        out.append((block, outer[s] * block))
    return out


def _fitting_block(blocks: Sequence[tuple[np.ndarray, np.ndarray]], room_tiles: np.ndarray
                   ) -> np.ndarray:
    """Tiles of an operand main memory moves when the buffer keeps the largest
    of its ``blocks`` (:func:`_blocks`) whose tiles fit ``room_tiles`` tiles,
    reloading it as the loops outside move (one tile at least)."""
    best = blocks[0][1]
    for block, fetches in blocks[1:]:
        best = np.where(block <= room_tiles, fetches, best)
    return best


def _operand_levels(entry: Mapping[str, object], output: bool) -> dict[str, np.ndarray]:
    """Bytes per level for one operand entry of :func:`_product_traffic`."""
    spec: OperandSpec = entry["spec"]  # type: ignore[assignment]
    moved = entry["moved"]
    level = spec.ref.buffer
    zero = 0.0 * moved  # type: ignore[operator]
    if not output:
        if spec.streamed:
            mm = entry.get("mm_moved", moved)
            return {"mm_read": mm, "mm_write": zero, "buf_read": moved, "buf_write": mm,
                    "mask": entry["mask"], "level": level}
        return {"mm_read": zero + spec.fill_bytes, "mm_write": zero, "buf_read": moved,
                "buf_write": zero + spec.fill_bytes, "mask": entry["mask"], "level": level}
    partial = moved - entry["tensor"]                            # re-read partial sums
    if spec.streamed:
        mm = entry.get("mm_moved", moved)
        mm_partial = mm - entry["tensor"]
        return {"mm_read": mm_partial, "mm_write": mm, "buf_read": moved + partial,
                "buf_write": moved + partial, "mask": entry["mask"], "level": level}
    through = entry["tensor"] if spec.write_through else 0.0
    return {"mm_read": zero, "mm_write": zero + through, "buf_read": partial + through,
            "buf_write": moved, "mask": entry["mask"], "level": level}


@dataclass
class CandidateCosts:
    """Costs of candidate mappings of one op (arrays, one entry per candidate)."""

    cycles: np.ndarray
    compute_cycles: np.ndarray
    fill_cycles: np.ndarray
    level_bytes: dict[str, np.ndarray]
    energy_nj: np.ndarray
    lane_tiles: list[np.ndarray]
    lane_cycles_per_tile: list[np.ndarray]
    staging: dict[str, np.ndarray]
    detail: list[dict[str, object]]
    row_work: tuple[int, int] | None = None      # attention: softmax tiles, cycles per tile
    #: Per product, the lanes a wave uses (the spatial unrolling, :func:`wave_coverage`).
    lane_used: list[np.ndarray] = field(default_factory=list)


@dataclass
class ProductStage:
    """The design-independent part of :func:`matmul_costs` for a set of
    candidates: everything that depends only on the op, its operand specs
    (residency flags, fills, densities), the data width and the candidate
    tiles and loop orders -- not on the rest of the design.  The search keeps
    it across designs and prices it per design with :func:`stage_costs`.

    ``products``: per product of the op (two for a fused attention), its
    lane tile-products and ``b x y x y x density`` per candidate; ``first``:
    per input whose first tile must arrive before compute starts, where it
    comes from and ``min(tile bytes, tensor bytes)``; ``staged``: per operand
    tile, its spec and tile bytes (staging); ``detail``: the per-operand
    arrays reports read (:func:`_product_numbers`).
    """

    b: np.ndarray
    x: np.ndarray
    y: np.ndarray
    order_index: np.ndarray
    products: list[tuple[np.ndarray, np.ndarray, np.ndarray]]   # tiles, work, lanes used
    level_bytes: dict[str, np.ndarray]
    first: list[tuple[str, np.ndarray]]
    staged: list[tuple[OperandSpec, np.ndarray, np.ndarray]]   # spec, tile bytes, elements
    detail: list[dict[str, object]]

    def subset(self, index: np.ndarray) -> ProductStage:
        """The candidates at ``index`` (without ``staged`` and ``detail``)."""
        return ProductStage(self.b[index], self.x[index], self.y[index], self.order_index[index],
                            [(tiles[index], work[index], used[index])
                             for tiles, work, used in self.products],
                            {lv: value[index] for lv, value in self.level_bytes.items()},
                            [(source, value[index]) for source, value in self.first], [], [])


def product_stage(info: OpStatic, bytes_per_element: float, b: np.ndarray, x: np.ndarray,
                  y: np.ndarray, order_index: np.ndarray, operands: Sequence[OperandSpec],
                  output: OperandSpec, extra_level_bytes: Mapping[str, float] | None = None,
                  params: StageParams | None = None, static_key: tuple | None = None
                  ) -> ProductStage:
    """The :class:`ProductStage` of candidates ``(b[i], x[i], y[i], order_index[i])``
    (arguments as for :func:`matmul_costs`, with the data width in bytes and the
    design's :class:`StageParams`)."""
    b, x, y = (np.asarray(v, dtype=np.int64) for v in (b, x, y))
    order_index = np.asarray(order_index, dtype=np.int64)
    bpe = bytes_per_element
    density = 1.0
    for spec in operands:
        if spec.role in ("lhs", "rhs"):
            density *= spec.ref.density
    products = [(info.dims, [s for s in operands if s.role in ("lhs", "rhs")], density)]
    if info.form == "attention":
        second = [s for s in operands if s.role == "rhs2"]
        density2 = (second[0].ref.density if second else 1.0) * info.inner_density
        products.append((info.dims2, second, density2))
    level_bytes = {lv: 0.0 * b for lv in ("main_memory", "activation_buffer", "weight_buffer",
                                          "mask_buffer")}
    detail: list[dict[str, object]] = []
    lanes: list[tuple[np.ndarray, np.ndarray]] = []
    first: list[tuple[str, np.ndarray]] = []
    staged: list[tuple[OperandSpec, np.ndarray, np.ndarray]] = []
    for p, (dims, specs, dens) in enumerate(products):
        out_spec = output if p == len(products) - 1 else None
        all_specs = list(specs) + ([out_spec] if out_spec is not None else [])
        traffic = _product_traffic(dims, b, x, y, order_index, all_specs, bpe, params,
                                   static_key)
        lanes.append((traffic["tile_products"], b * x * y * y * dens, traffic["spatial"]))
        for entry in traffic["operands"]:
            spec = entry["spec"]
            is_out = spec is out_spec
            levels = _operand_levels(entry, is_out)
            level_bytes["main_memory"] = level_bytes["main_memory"] + levels["mm_read"] \
                + levels["mm_write"]
            level_bytes[levels["level"]] = level_bytes[levels["level"]] + levels["buf_read"] \
                + levels["buf_write"]
            level_bytes["mask_buffer"] = level_bytes["mask_buffer"] + levels["mask"]
            if "pe_read" in entry:   # a per-PE buffer keeps this input for its lanes
                level_bytes["pe_buffer"] = level_bytes.get("pe_buffer", 0.0) \
                    + entry["pe_read"] + entry["pe_write"]
            detail.append({"entry": entry, "levels": levels, "output": is_out, "product": p})
            staged.append((spec, entry["tile_bytes"], entry["tile_elements"]))
            if not is_out:
                source = "main_memory" if (spec.streamed or spec.fill_bytes) else spec.ref.buffer
                first.append((source, np.minimum(entry["tile_bytes"], entry["tensor"])))
    # Other operands of the job (attention mask, bias): read once.
    for spec in operands:
        if spec.role in ("lhs", "rhs", "rhs2"):
            continue
        entry = {"spec": spec, "fetches": np.ones_like(b), "distinct": np.ones_like(b),
                 "tensor": spec.ref.numel * bpe * spec.ref.stored_density,
                 "tile_bytes": 0.0 * b, "tile_elements": 0 * b}
        entry["moved"] = entry["tensor"] + 0.0 * b
        entry["mask"] = (spec.ref.numel / 8.0 if spec.ref.sparse else 0.0) + 0.0 * b
        levels = _operand_levels(entry, False)
        level_bytes["main_memory"] = level_bytes["main_memory"] + levels["mm_read"]
        level_bytes[levels["level"]] = level_bytes[levels["level"]] + levels["buf_read"] \
            + levels["buf_write"]
        level_bytes["mask_buffer"] = level_bytes["mask_buffer"] + levels["mask"]
        detail.append({"entry": entry, "levels": levels, "output": False, "product": -1})
    if info.form == "attention":
        # Scores and probabilities stay on chip: written and read once each
        # through the activation buffer.
        internal = info.rows * info.cols * bpe
        level_bytes["activation_buffer"] = level_bytes["activation_buffer"] + 4 * internal
    if extra_level_bytes:
        for level, value in extra_level_bytes.items():
            level_bytes[level] = level_bytes[level] + value
    return ProductStage(b, x, y, order_index, lanes, level_bytes, first, staged, detail)


def stage_costs(stage: ProductStage, info: OpStatic, hw: HardwareConsts) -> CandidateCosts:
    """Price a :class:`ProductStage` on design ``hw``: lane cycles, fill,
    transfer time per level, cycles, dynamic energy and staging."""
    b = stage.b
    mpl = hw.macs_per_lane
    lane_tiles, lane_cpt = [], []
    compute = 0.0 * b
    lane_used = []
    for tiles, work, used in stage.products:
        cpt = np.maximum(np.ceil(work / mpl - 1e-9), 1).astype(np.int64)
        lane_tiles.append(tiles)
        lane_cpt.append(cpt)
        lane_used.append(used)
        compute = compute + _ceil_div(tiles, used) * cpt
    first_tile_cycles = 0.0 * b
    for source, first in stage.first:
        first_tile_cycles = np.maximum(first_tile_cycles, first / hw.bandwidth[source])
    act_staging = 0.0 * b
    weight_staging = 0.0 * b
    mask_staging = 0.0 * b
    for spec, tile_bytes, tile_elements in stage.staged:
        staged = 2 * hw.pes * tile_bytes
        if spec.ref.buffer == "weight_buffer":
            weight_staging = weight_staging + (staged if spec.streamed else 0.0)
        else:
            act_staging = act_staging + staged
        if spec.ref.sparse:
            # One mask bit per element of the tile, whatever its density (a
            # fully pruned tile still moves its mask).
            mask_staging = mask_staging + 2 * hw.pes * tile_elements / 8.0
    level_bytes = stage.level_bytes
    row_work = None
    fill = first_tile_cycles
    if info.form == "attention":
        # Softmax on the softmax modules.
        row_tiles, row_cpt, row_ideal = _row_work(info.rows, info.cols, hw.softmax_tile,
                                                  hw.softmax_tile)
        softmax_cycles = math.ceil(row_tiles / hw.softmax_units) * row_cpt
        row_work = (row_tiles, row_cpt)
        # The three stages pipeline across heads and tiles: the longest sets
        # the pace; the others add their first tile (pipeline fill).
        fill = fill + np.where(compute >= softmax_cycles, row_cpt, lane_cpt[0] + lane_cpt[1])
        compute = np.maximum(compute, softmax_cycles)
        act_staging = act_staging + 2 * hw.softmax_units * hw.softmax_tile ** 2 \
            * hw.bytes_per_element
    memory = None
    for lv, value in level_bytes.items():
        cycles_at = value / hw.bandwidth[lv]
        memory = cycles_at if memory is None else np.maximum(memory, cycles_at)
    # The fill cannot overlap compute; on a transfer-bound op its bytes are
    # already part of the transfer time.
    cycles = np.maximum(compute + fill, memory)
    lane_busy = sum(t * c for t, c in zip(lane_tiles, lane_cpt))
    energy = lane_busy * hw.lane_energy_per_cycle + sum(
        level_bytes[lv] * hw.energy_per_byte[lv] for lv in level_bytes)
    if row_work is not None:
        energy = energy + row_work[0] * row_work[1] * hw.softmax_energy_per_cycle
    return CandidateCosts(cycles, compute, fill, dict(level_bytes), energy, lane_tiles, lane_cpt,
                          {"activation_buffer": act_staging, "weight_buffer": weight_staging,
                           "mask_buffer": mask_staging}, stage.detail, row_work, lane_used)


def matmul_costs(info: OpStatic, hw: HardwareConsts, b: np.ndarray, x: np.ndarray,
                 y: np.ndarray, order_index: np.ndarray, operands: Sequence[OperandSpec],
                 output: OperandSpec, extra_level_bytes: Mapping[str, float] | None = None
                 ) -> CandidateCosts:
    """Cycles, bytes per level, dynamic energy and staging of a matrix product
    (or a fused attention) for every candidate ``(b[i], x[i], y[i],
    order_index[i])``.  ``operands`` in the order lhs, rhs(, rhs2, mask,
    bias...); ``output`` the result.  The design-independent part
    (:func:`product_stage`) priced on the design (:func:`stage_costs`)."""
    stage = product_stage(info, hw.bytes_per_element, b, x, y, order_index, operands, output,
                          extra_level_bytes, hw.stage_params)
    return stage_costs(stage, info, hw)


def _row_work(rows: int, cols: int, x: int, y: int) -> tuple[int, int, float]:
    """Module tiles, cycles per tile and the ideal for a row op with tile x*y."""
    tiles = math.ceil(rows / x) * math.ceil(cols / y)
    return tiles, ROW_PASSES * x, 0.0


def row_costs(info: OpStatic, hw: HardwareConsts, unit: str, x: int, y: int
              ) -> tuple[int, int, int, float]:
    """``(tiles, cycles per tile, modules, ideal cycles)`` of a softmax /
    layer-norm op with module tile ``x`` rows by ``y`` columns."""
    modules, module_tile = ((hw.softmax_units, hw.softmax_tile) if unit == "softmax"
                            else (hw.layernorm_units, hw.layernorm_tile))
    tiles, cpt, _ = _row_work(info.rows, info.cols, x, y)
    ideal = ROW_PASSES * info.rows * info.cols / (modules * module_tile)
    return tiles, cpt, modules, ideal


# --------------------------------------------------------------------------- one op


def operand_specs(info: OpStatic, plan: ResidencyPlan, weights: str | None
                  ) -> tuple[list[OperandSpec], list[OperandSpec]]:
    """Operand specs (inputs, outputs) of an op under a residency plan
    (computed once per plan, op and ``weights``: do not mutate the lists)."""
    key = ("specs", info.index, weights)
    cached = plan.memo.get(key)
    if cached is None:
        cached = plan.memo[key] = _shared_specs(info, plan, weights)[0]
    return cached  # type: ignore[return-value]


# Operand specs shared across residency plans (designs): keyed by the op (its
# identity; the entry keeps it alive), ``weights`` and everything
# :func:`_operand_specs` reads of the plan.  Entry: [specs, op, template body number].
_SPECS_CACHE: dict[tuple, list] = {}


def _shared_specs(info: OpStatic, plan: ResidencyPlan, weights: str | None) -> list:
    streamed = plan.streamed[info.index]
    fills = plan.fills[info.index]
    sig = (id(info), weights,
           tuple((ref.key in streamed, fills.get(ref.key, 0.0)) for _, ref, _ in info.inputs),
           tuple(ref.key in streamed for ref in info.outputs))
    entry = _SPECS_CACHE.get(sig)
    if entry is None:
        if len(_SPECS_CACHE) > 200_000:
            _SPECS_CACHE.clear()
        entry = _SPECS_CACHE[sig] = [_operand_specs(info, plan, weights), info, None]
    return entry


def _operand_specs(info: OpStatic, plan: ResidencyPlan, weights: str | None
                   ) -> tuple[list[OperandSpec], list[OperandSpec]]:
    streamed = plan.streamed[info.index]
    fills = plan.fills[info.index]
    tiles = {"lhs": "lhs", "rhs": "rhs", "rhs2": "rhs"}
    inputs = []
    for role, ref, loops in info.inputs:
        forced_stream = weights == "streamed" and ref.is_param and role in ("lhs", "rhs")
        inputs.append(OperandSpec(role, ref, loops, tiles.get(role, "lhs"),
                                  ref.key in streamed or forced_stream,
                                  0.0 if forced_stream else fills.get(ref.key, 0.0)))
    outputs = [OperandSpec("out" if k == 0 else f"out{k}", ref, "bij", "out",
                           ref.key in streamed, 0.0, ref.key in info.writes_through)
               for k, ref in enumerate(info.outputs)]
    return inputs, outputs


def spill_level_bytes(info: OpStatic, plan: ResidencyPlan) -> dict[str, float]:
    """Bytes per level that op ``info`` moves to spill other tensors."""
    out = {"main_memory": 0.0}
    for ref, size in plan.spills[info.index]:
        out["main_memory"] += size
        out[ref.buffer] = out.get(ref.buffer, 0.0) + size
    return out


def derive_mapped_op(info: OpStatic, mapping: OpMapping, plan: ResidencyPlan,
                     hw: HardwareConsts, deps: tuple[int, ...]) -> MappedOp:
    """The :class:`MappedOp` of one op under a mapping (the simulators' input)."""
    inputs, outputs = operand_specs(info, plan, mapping.weights)
    spills = [OperandTraffic("spill", ref.name, ref.buffer, True, size, 1.0, ref.source,
                             0.0, 0.0, 1, 1, size, 0.0, 0.0, 0.0, size)
              for ref, size in plan.spills[info.index]]
    bpe = hw.bytes_per_element
    if info.form in ("matmul", "attention"):
        return _derive_product(info, mapping, inputs, outputs, spills, plan, hw, deps)
    # Whole-tensor forms: every input read once, every output written once.
    traffic: list[OperandTraffic] = []
    first = 0.0
    inline = info.form == "sparsity"
    for spec in inputs + outputs:
        is_out = spec in outputs
        ref = spec.ref
        tensor = ref.numel * bpe * ref.stored_density
        mask = ref.numel / 8.0 if ref.sparse else 0.0
        if inline and not spec.streamed and not spec.fill_bytes and not spec.write_through:
            # Pruning runs in the post-sparsity units on the way out of the
            # producing lane: no buffer traffic of its own.
            traffic.append(OperandTraffic(spec.role, ref.name, ref.buffer, True, ref.numel * bpe,
                                          ref.density, ref.source, 0.0, 0.0, 1, 1, 0.0, 0.0,
                                          0.0, 0.0, 0.0))
            continue
        if is_out:
            mm_read, mm_write = 0.0, (tensor if (spec.streamed or spec.write_through) else 0.0)
            buf_read = tensor if (spec.streamed or spec.write_through) else 0.0
            buf_write = tensor
        elif spec.streamed:
            mm_read, mm_write, buf_read, buf_write = tensor, 0.0, tensor, tensor
        else:
            mm_read, mm_write = spec.fill_bytes, 0.0
            buf_read, buf_write = tensor, spec.fill_bytes
        if not is_out:
            source = "main_memory" if (spec.streamed or spec.fill_bytes) else ref.buffer
            first = max(first, min(tensor, 64.0 * hw.pes) / hw.bandwidth[source])
        traffic.append(OperandTraffic(spec.role, ref.name, ref.buffer, not spec.streamed,
                                      ref.numel * bpe, ref.density, ref.source, tensor, mask, 1, 1,
                                      buf_read, buf_write, mask, mm_read, mm_write))
    if info.lookup is not None:
        rows = info.outputs[0].numel * bpe
        traffic.append(OperandTraffic("table", info.lookup.name, "weight_buffer", False,
                                      info.lookup.numel * bpe, 1.0, info.lookup.source,
                                      rows, 0.0, 1, 1, 0.0, 0.0, 0.0, rows, 0.0))
        first = max(first, min(rows, 64.0 * hw.pes) / hw.bandwidth["main_memory"])
    unit = mapping.unit
    tile = mapping.tile
    if unit in ("softmax", "layernorm") and info.form == "rows":
        tx, ty = (tile.x, tile.y) if tile else _default_row_tile(info, hw, unit)
        tiles, cpt, modules, ideal = row_costs(info, hw, unit, tx, ty)
        work = (UnitWork(unit, tiles, cpt, modules, ideal),)
        staging = {"activation_buffer": 2.0 * modules * tx * ty * bpe
                   * (len(info.inputs) + len(info.outputs))}
    elif unit == "dma" or info.form == "data":
        blocks = math.ceil(sum(t.buffer_write_bytes + t.main_memory_read_bytes
                               for t in traffic) / 64.0)
        work = (UnitWork("dma", blocks, 1, hw.pes, blocks / hw.pes),)
        staging = {}
    elif unit == "sparsity":
        elements = sum(ref.numel for ref in info.outputs)
        work = (UnitWork("sparsity", elements, 1, hw.lanes, elements / hw.lanes),)
        staging = {}
    else:   # lane arithmetic
        ops = info.ops or sum(ref.numel for ref in info.outputs)
        lane_cycles = math.ceil(ops / hw.macs_per_lane)
        work = (UnitWork("mac", lane_cycles, 1, hw.lanes, ops / (hw.lanes * hw.macs_per_lane)),)
        staging = {}
    return MappedOp(
        index=info.index, ir_index=info.ir_index, kind=info.kind, loc=info.loc,
        result=info.result, unit=unit, work=work, tile=tile, order=None, dims=None,
        macs=0, effective_macs=0.0, padded_macs=0.0, ops=info.ops, density=1.0,
        operands=tuple(traffic + spills), weights=None, deps=deps, staging_bytes=staging,
        fill_cycles=first, mapping=mapping, compulsory_bytes=_compulsory(traffic + spills, bpe))


def _default_row_tile(info: OpStatic, hw: HardwareConsts, unit: str) -> tuple[int, int]:
    t = hw.softmax_tile if unit == "softmax" else hw.layernorm_tile
    return min(t, info.rows), min(t, info.cols)


def op_signature(info: OpStatic, inputs: Sequence[OperandSpec], outputs: Sequence[OperandSpec],
                 plan: ResidencyPlan, hw: HardwareConsts) -> tuple:
    """Everything about an op and its residency that its costs depend on
    (not its names): ops with equal signatures cost the same under the same
    mapping (BERT-Base's twelve layers)."""
    return (hw.name, hw.hash, hw.training) + _signature_body(info, inputs, outputs, plan)


def _signature_body(info: OpStatic, inputs: Sequence[OperandSpec],
                    outputs: Sequence[OperandSpec], plan: ResidencyPlan) -> tuple:
    """:func:`op_signature` less the design's name, hash and training flag."""

    def spec_key(s: OperandSpec) -> tuple:
        return (s.role, s.ref.numel, s.ref.density, s.ref.sparse, s.ref.buffer, s.ref.is_param,
                s.loops, s.tile, s.streamed, round(s.fill_bytes, 3), s.write_through)

    spills = tuple(sorted(spill_level_bytes(info, plan).items()))
    return (info.form, info.kind, info.dims, info.dims2, info.rows, info.cols, info.inner_density,
            tuple(spec_key(s) for s in list(inputs) + list(outputs)), spills)


def plan_signature(info: OpStatic, plan: ResidencyPlan, hw: HardwareConsts,
                   weights: str | None = None) -> tuple:
    """A key equal for two ops exactly when their :func:`op_signature` (with
    the operand specs of ``operand_specs(info, plan, weights)``) is: the
    design's name, hash and training flag, and the number standing for the
    signature's body (:func:`_body_number`, computed once per plan), so
    that cache look-ups hash four small values, not the body."""
    key = ("signature", info.index, weights)
    number = plan.memo.get(key)
    if number is None:
        inputs, outputs = operand_specs(info, plan, weights)
        number = plan.memo[key] = _body_number(_signature_body(info, inputs, outputs, plan))
    return (hw.name, hw.hash, hw.training, number)


#: Every signature body seen in this process, numbered in order of first
#: appearance (numbers are never reused: a cleared table only makes new ones).
_BODY_NUMBERS: dict[tuple, int] = {}
_BODY_COUNT = [0]


def _body_number(body: tuple) -> int:
    """The number of a signature body: equal numbers for equal bodies."""
    number = _BODY_NUMBERS.get(body)
    if number is None:
        if len(_BODY_NUMBERS) > 200_000:
            _BODY_NUMBERS.clear()
        number = _BODY_NUMBERS[body] = _BODY_COUNT[0]
        _BODY_COUNT[0] += 1
    return number


@dataclass(frozen=True)
class _ProductNumbers:
    """The numbers of a product op under one mapping, without names (cached)."""

    rows: tuple[tuple, ...]     # (spec position, tile bytes, tile mask bytes, distinct, fetches,
                                #  buffer read, buffer write, mask, mm read, mm write)
    work: tuple[UnitWork, ...]
    macs: int
    effective_macs: float
    padded_macs: float
    staging: Mapping[str, float]
    fill: float
    #: (read, written) bytes of the per-PE buffers (0, 0 without one).
    pe_buffer: tuple[float, float] = (0.0, 0.0)
    #: The op's compulsory bytes when it spills nothing (shared by equal ops).
    compulsory: dict[str, dict[str, float]] = field(default_factory=dict, compare=False)


_PRODUCT_CACHE: dict[tuple, _ProductNumbers] = {}
#: Design-independent stages of single mappings (:func:`product_stage`), kept across designs.
_STAGE_CACHE: dict[tuple, tuple[ProductStage, tuple[tuple, ...]]] = {}


def operand_key(spec: OperandSpec) -> tuple:
    """Everything about an operand spec the cost formulas read (not its names)."""
    ref = spec.ref
    return (spec.role, ref.numel, ref.density, ref.sparse, ref.buffer, spec.loops, spec.tile,
            spec.streamed, spec.fill_bytes, spec.write_through)


def _product_numbers(info: OpStatic, tile: TileShape, order: str, weights: str | None,
                     plan: ResidencyPlan, hw: HardwareConsts) -> _ProductNumbers:
    inputs, outputs = operand_specs(info, plan, weights)
    key = (plan_signature(info, plan, hw, weights), tile, order)
    cached = _PRODUCT_CACHE.get(key)
    if cached is not None:
        return cached
    extra = spill_level_bytes(info, plan)
    params = hw.stage_params.for_operands(list(inputs) + list(outputs))
    stage_key = (info.form, info.dims, info.dims2, info.inner_density, info.rows, info.cols,
                 hw.bytes_per_element, params,
                 tile, order, tuple(operand_key(s) for s in inputs), operand_key(outputs[0]),
                 tuple(sorted(extra.items())))
    cached_stage = _STAGE_CACHE.get(stage_key)
    if cached_stage is None:
        one = np.array([0])
        stage = product_stage(info, hw.bytes_per_element, one + tile.b, one + tile.x,
                              one + tile.y, one + LOOP_ORDERS.index(order), inputs, outputs[0],
                              extra, params, static_key=("mapping", tile, order))
        specs = list(inputs) + list(outputs)
        rows = []
        pe_read = pe_write = 0.0
        for d in stage.detail:
            entry, levels = d["entry"], d["levels"]
            spec: OperandSpec = entry["spec"]

            def first(value: object) -> float:
                return float(np.asarray(value).reshape(-1)[0])

            if "pe_read" in entry:
                pe_read += first(entry["pe_read"])
                pe_write += first(entry["pe_write"])

            tile_bytes = first(entry["tile_bytes"])
            mask_tile = first(entry.get("tile_elements", 0.0)) / 8.0 if spec.ref.sparse else 0.0
            rows.append((specs.index(spec), tile_bytes, mask_tile, int(first(entry["distinct"])),
                         int(first(entry["fetches"])), first(levels["buf_read"]),
                         first(levels["buf_write"]), first(levels["mask"]),
                         first(levels["mm_read"]), first(levels["mm_write"])))
        # The rows are all the detail needs: drop the arrays.
        stage = dataclasses.replace(stage, detail=[])
        if len(_STAGE_CACHE) > 20_000:
            _STAGE_CACHE.clear()
        cached_stage = _STAGE_CACHE[stage_key] = (stage, tuple(rows), (pe_read, pe_write))
    stage, rows, pe_bytes = cached_stage
    costs = stage_costs(stage, info, hw)
    products = [info.dims] + ([info.dims2] if info.form == "attention" else [])
    dens = [1.0, 1.0]
    for spec in inputs:
        if spec.role in ("lhs", "rhs"):
            dens[0] *= spec.ref.density
        if spec.role == "rhs2":
            dens[1] *= spec.ref.density
    dens[1] *= info.inner_density
    work, macs, effective, padded = [], 0, 0.0, 0.0
    for p, dims in enumerate(products):
        tiles = int(costs.lane_tiles[p][0])
        cpt = int(costs.lane_cycles_per_tile[p][0])
        used = int(costs.lane_used[p][0])
        dense = math.prod(dims)
        macs += dense
        effective += dense * dens[p]
        padded += (tiles * tile.b * tile.x * tile.y * tile.y - dense) * dens[p]
        work.append(UnitWork("mac", tiles, cpt, used,
                             dense * dens[p] / (hw.lanes * hw.macs_per_lane)))
    if costs.row_work is not None:
        tiles, cpt = costs.row_work
        work.append(UnitWork("softmax", tiles, cpt, hw.softmax_units,
                             ROW_PASSES * info.rows * info.cols
                             / (hw.softmax_units * hw.softmax_tile)))
    numbers = _ProductNumbers(rows, tuple(work), macs, effective, padded,
                              {k: float(np.asarray(v).reshape(-1)[0])
                               for k, v in costs.staging.items()},
                              float(costs.fill_cycles[0]), pe_bytes)
    if len(_PRODUCT_CACHE) > 100_000:
        _PRODUCT_CACHE.clear()
    _PRODUCT_CACHE[key] = numbers
    return numbers


def _derive_product(info: OpStatic, mapping: OpMapping, inputs: list[OperandSpec],
                    outputs: list[OperandSpec], spills: list[OperandTraffic], plan: ResidencyPlan,
                    hw: HardwareConsts, deps: tuple[int, ...]) -> MappedOp:
    tile = mapping.tile or TileShape(1, 16, 16)
    order = mapping.order or "bijk"
    numbers = _product_numbers(info, tile, order, mapping.weights, plan, hw)
    specs = list(inputs) + list(outputs)
    bpe = hw.bytes_per_element
    traffic: list[OperandTraffic] = []
    for (pos, tile_bytes, mask_tile, distinct, fetches, buf_read, buf_write, mask, mm_read,
         mm_write) in numbers.rows:
        spec = specs[pos]
        ref = spec.ref
        traffic.append(OperandTraffic(
            spec.role, ref.name, ref.buffer, not spec.streamed, ref.numel * bpe, ref.density,
            ref.source, tile_bytes, mask_tile, distinct, fetches, buf_read, buf_write, mask,
            mm_read, mm_write))
    traffic.extend(spills)
    if numbers.pe_buffer != (0.0, 0.0):
        traffic.append(_pe_buffer_traffic(info, numbers.pe_buffer))
    if info.form == "attention":
        internal = info.rows * info.cols * bpe
        traffic.append(OperandTraffic("scores", f"{info.result}:scores", "activation_buffer",
                                      True, internal, 1.0, "dense", 0.0, 0.0, 1, 1,
                                      2 * internal, 2 * internal, 0.0, 0.0, 0.0))
    weights = mapping.weights
    if weights is None and info.weight_ref is not None:
        weights = "streamed" if any(s.streamed for s in inputs if s.ref.is_param) else "resident"
    if spills:
        compulsory = _compulsory(traffic, bpe)
    else:
        compulsory = numbers.compulsory.get("")
        if compulsory is None:
            compulsory = numbers.compulsory[""] = _compulsory(traffic, bpe)
    macs = numbers.macs
    return MappedOp(
        index=info.index, ir_index=info.ir_index, kind=info.kind, loc=info.loc,
        result=info.result, unit=mapping.unit, work=numbers.work, tile=tile, order=order,
        dims=info.dims, macs=macs, effective_macs=numbers.effective_macs,
        padded_macs=numbers.padded_macs, ops=info.ops,
        density=numbers.effective_macs / macs if macs else 1.0,
        operands=tuple(traffic), weights=weights, deps=deps, staging_bytes=numbers.staging,
        fill_cycles=numbers.fill, mapping=mapping, compulsory_bytes=compulsory)


def _pe_buffer_traffic(info: OpStatic, pe_bytes: tuple[float, float]) -> OperandTraffic:
    """The per-PE buffers' traffic of a product as one pseudo-operand (role
    ``pe_buffer``, level ``pe_buffer``): the lanes' reads of the inputs the
    buffer keeps and its fills from the global buffers."""
    read, write = pe_bytes
    return OperandTraffic("pe_buffer", f"{info.result}:pe_buffer", "pe_buffer", True, 0.0, 1.0,
                          "dense", 0.0, 0.0, 1, 1, read, write, 0.0, 0.0, 0.0)


def _compulsory(traffic: Sequence[OperandTraffic], bpe: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for operand in traffic:
        if operand.role == "pe_buffer":   # its bytes are the tiles' reuse, none compulsory
            continue
        for level, value in operand.compulsory_bytes(bpe).items():
            out[level] = out.get(level, 0.0) + value
    return out


# --------------------------------------------------------------------------- a function


#: read_mapping per attributes object (frozen: replaced, never changed), by identity.
_READ_CACHE: dict[int, tuple[object, OpMapping | None]] = {}


def read_mapping(op: Op) -> OpMapping | None:
    """The mapping recorded in an op's attributes, or None when it has none."""
    attrs = op.attributes
    cached = _READ_CACHE.get(id(attrs))
    if cached is not None and cached[0] is attrs:
        return cached[1]
    mapping = _read_mapping(op)
    if len(_READ_CACHE) > 100_000:
        _READ_CACHE.clear()
    _READ_CACHE[id(attrs)] = (attrs, mapping)       # holds attrs: its id stays its own
    return mapping


def _read_mapping(op: Op) -> OpMapping | None:
    from backends.elector.schedule import (
        ATTR_ORDER,
        ATTR_TILE_B,
        ATTR_TILE_X,
        ATTR_TILE_Y,
        ATTR_UNIT,
        ATTR_WEIGHTS,
    )

    attrs = op.attributes
    keys = (ATTR_UNIT, ATTR_TILE_B, ATTR_TILE_X, ATTR_TILE_Y, ATTR_ORDER, ATTR_WEIGHTS)
    if not any(key in attrs for key in keys):
        return None
    tile = None
    if ATTR_TILE_X in attrs or ATTR_TILE_Y in attrs or ATTR_TILE_B in attrs:
        tile = TileShape(int(attrs.get(ATTR_TILE_B, 1)), int(attrs.get(ATTR_TILE_X, 1)),
                         int(attrs.get(ATTR_TILE_Y, 1)))
    try:
        return OpMapping(attrs.get(ATTR_UNIT, default_unit(op)), tile, attrs.get(ATTR_ORDER),
                         attrs.get(ATTR_WEIGHTS))
    except ValueError as err:
        raise UserError(f"{op.name} at {op.loc or '?'}: bad mapping attribute: {err}") from None


def schedule_function(static: StaticFunction, accelerator: Accelerator,
                      mappings: Sequence[OpMapping], pipeline: str = "",
                      plan: ResidencyPlan | None = None) -> MappedFunction:
    """Build the :class:`MappedFunction` of a function from one complete
    mapping per op (``mappings[i]`` for ``static.ops[i]``)."""
    hw = hardware_consts(accelerator, static.training)
    if plan is None:
        plan = plan_residency(static, hw, forced_streams(static, mappings))
    # Ops equal in everything but their names (BERT-Base's twelve layers) are
    # derived once: the others are copies with their own names.
    templates: dict[tuple, tuple[MappedOp, tuple]] = {}
    derived: list[MappedOp] = []
    for info in static.ops:
        mapping = mappings[info.index]
        key = _template_key(info, mapping, plan)
        entry = templates.get(key) if key is not None else None
        if entry is not None:
            derived.append(_renamed_copy(entry, info, mapping, plan))
            continue
        op = derive_mapped_op(info, mapping, plan, hw, info.deps)
        if key is not None:
            slots = _operand_slots(info, mapping, plan, hw)
            if len(slots) == len(op.operands):
                op.bytes_by_level()                 # computed once, shared with the copies
                templates[key] = (op, slots)
        derived.append(op)
    ops = tuple(derived)
    notes = []
    if any(op.weights == "streamed" for op in ops):
        notes.append("some weights do not fit the weight buffer and are streamed from main "
                     "memory tile by tile (re-loads counted)")
    return MappedFunction(static.module.name, static.function.name, accelerator.name,
                          hw.hash, ops, hw.bytes_per_element, static.training, pipeline,
                          dict(static.densities), tuple(notes))


def _template_key(info: OpStatic, mapping: OpMapping, plan: ResidencyPlan) -> tuple | None:
    """Everything :func:`derive_mapped_op` reads of an op besides its names
    (exact values), or None for an op that spills (not shared)."""
    if plan.spills[info.index]:
        return None
    memo_key = ("template", info.index, mapping.weights)
    number = plan.memo.get(memo_key)
    if number is None:
        entry = _shared_specs(info, plan, mapping.weights)
        if entry[2] is None:
            inputs, outputs = operand_specs(info, plan, mapping.weights)
            lookup = None if info.lookup is None else (info.lookup.numel, info.lookup.source)
            entry[2] = _body_number((
                "template", info.form, info.kind, info.dims, info.dims2, info.rows, info.cols,
                info.ops, lookup, mapping.weights,
                tuple(operand_key(s) + (s.ref.source, s.ref.is_param) for s in inputs + outputs)))
        number = plan.memo[memo_key] = entry[2]
    # The body stands as its number (:func:`_body_number`): equal for equal bodies.
    return (mapping.unit, mapping.tile, mapping.order, number)


def _operand_slots(info: OpStatic, mapping: OpMapping, plan: ResidencyPlan,
                   hw: HardwareConsts) -> tuple:
    """Where the name of each operand of ``derive_mapped_op(info, ...)`` comes
    from: a position in ``inputs + outputs``, ``"scores"`` or ``"lookup"``."""
    if info.form in ("matmul", "attention"):
        numbers = _product_numbers(info, mapping.tile or TileShape(1, 16, 16),
                                   mapping.order or "bijk", mapping.weights, plan, hw)
        slots: list[object] = [row[0] for row in numbers.rows]
        if info.form == "attention":
            slots.append("scores")
        return tuple(slots)
    inputs, outputs = operand_specs(info, plan, mapping.weights)
    slots = list(range(len(inputs) + len(outputs)))
    if info.lookup is not None:
        slots.append("lookup")
    return tuple(slots)


def _replaced(obj: object, changes: dict[str, object]) -> object:
    """A copy of a frozen dataclass instance with some fields changed (what
    ``dataclasses.replace`` does, without re-running ``__init__``)."""
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__)
    new.__dict__.update(changes)
    return new


def _renamed_copy(entry: tuple[MappedOp, tuple], info: OpStatic, mapping: OpMapping,
                  plan: ResidencyPlan) -> MappedOp:
    """The op ``info`` as a copy of an equal op's :class:`MappedOp`, with its own names."""
    template, slots = entry
    memo_key = ("names", info.index, mapping.weights, slots)
    names = plan.memo.get(memo_key)
    if names is None:
        inputs, outputs = operand_specs(info, plan, mapping.weights)
        specs = inputs + outputs
        names = plan.memo[memo_key] = tuple(
            f"{info.result}:scores" if slot == "scores"
            else info.lookup.name if slot == "lookup"  # type: ignore[union-attr]
            else specs[slot].ref.name for slot in slots)  # type: ignore[index]
    operands = [operand if operand.value == name else _replaced(operand, {"value": name})
                for operand, name in zip(template.operands, names)]
    return _replaced(template, {  # type: ignore[return-value]
        "index": info.index, "ir_index": info.ir_index, "loc": info.loc, "result": info.result,
        "operands": tuple(operands), "deps": info.deps, "mapping": mapping})


def forced_streams(static: StaticFunction, mappings: Sequence[OpMapping]) -> dict[int, set[str]]:
    """Weight operands that mappings force to be streamed."""
    out: dict[int, set[str]] = {}
    for info, mapping in zip(static.ops, mappings):
        if mapping.weights == "streamed":
            out[info.index] = {ref.key for role, ref, _ in info.inputs
                               if ref.is_param and role in ("lhs", "rhs")}
    return out
