"""Op definitions: the machinery that defines op kinds, and their registry.

An :class:`OpDef` gives, for one op kind, everything the rest of the
toolkit knows about it: its operands, results and attributes, declared by
name and type (:class:`Operand`, :class:`Result`, :class:`Attr`); its shape
rule, extra verification, cost counts (MACs, other arithmetic, bytes in and
out), numpy semantics and gradient rule; the hardware module class that
runs it (``category``); and its :class:`Trait` s, the properties passes and
backends ask about (pure, commutative, zero-preserving, a contraction with
its (B, M, K, N)).  The verifier, the interpreter, autodiff, the ONNX
backend and the cost model all read these definitions; nothing keeps a
second table of op kinds.

Readers never restate a declared default: ``op.attr("axis")`` (or
``opdef.attribute(op, "axis")``) gives the op's value or the default its
definition declares, and ``op.operand("bias")`` the named operand (None
when an optional one is absent).

The op kinds themselves live outside the core, in dialects (the top-level
``dialects`` package: ``tensor``, ``arith``, ``nn``, ``fused``,
``training``, ``sparsity``), each a module that calls :func:`define` when
imported.  The registry loads them on the first lookup: the built-in
``dialects`` package by name (one layer up, as the pass registry loads
``passes``), then every module named in the entry-point group
``transcode.dialects`` (third-party dialects).  So this package imports
nothing above it, and everything that parses, verifies or interprets IR
sees every op kind.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from transcode_ir.core import Attributes, DenseAttr, Op
from transcode_ir.types import TensorType, numpy_dtype

__all__ = [
    "ENTRY_POINT_GROUP",
    "REQUIRED",
    "Attr",
    "Commutative",
    "Contraction",
    "DensityPreserving",
    "OpCost",
    "OpDef",
    "Operand",
    "Pure",
    "Result",
    "ShapeError",
    "Trait",
    "ZeroPreserving",
    "all_opdefs",
    "contraction_dims",
    "contraction_products",
    "define",
    "get_opdef",
    "matmul_dims",
    "op_cost",
]


# --------------------------------------------------------------------------- fields


ATTR_KINDS = ("int", "float", "str", "bool", "ints", "floats", "strs", "dense", "any")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of an attribute that has none: the op must carry it.
REQUIRED: Any = _Required()

_KIND_CHECKS: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (float, int)) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "ints": lambda v: isinstance(v, tuple) and all(isinstance(x, int) and not isinstance(x, bool) for x in v),
    "floats": lambda v: isinstance(v, tuple) and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                     for x in v),
    "strs": lambda v: isinstance(v, tuple) and all(isinstance(x, str) for x in v),
    "dense": lambda v: isinstance(v, DenseAttr),
    "any": lambda v: True,
}


@dataclass(frozen=True)
class Attr:
    """One attribute of an op kind: its type (one of ``ATTR_KINDS``), its
    default (``REQUIRED``: none, the op must carry it), the values it may take.

    ``Attr("int", default=-1)``; ``Attr("str", default="none", choices=("none", "tanh"))``.
    """

    kind: str
    default: Any = field(default=REQUIRED, kw_only=True)
    choices: tuple[Any, ...] | None = field(default=None, kw_only=True)
    doc: str = field(default="", kw_only=True)

    def __post_init__(self) -> None:
        if self.kind not in ATTR_KINDS:
            raise ValueError(f"unknown attribute kind {self.kind!r} (accepted: {', '.join(ATTR_KINDS)})")
        if not self.required and self.check(self.default) is not None:
            raise ValueError(f"default {self.default!r} is not a valid {self.kind}: "
                             f"{self.check(self.default)}")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def check(self, value: Any) -> str | None:
        """Return a description of what is wrong with ``value``, or None."""
        if not _KIND_CHECKS[self.kind](value):
            return f"expected {self.kind}, got {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"expected one of {', '.join(map(repr, self.choices))}, got {value!r}"
        return None


@dataclass(frozen=True)
class Operand:
    """One operand of an op kind, by name: ``Operand("bias", optional=True)`` may be
    left out (only at the end), ``Operand("inputs", variadic=True)`` takes any
    number (the last operand only)."""

    name: str
    optional: bool = field(default=False, kw_only=True)
    variadic: bool = field(default=False, kw_only=True)
    doc: str = field(default="", kw_only=True)

    def __str__(self) -> str:
        return f"*{self.name}" if self.variadic else f"{self.name}?" if self.optional else self.name


@dataclass(frozen=True)
class Result:
    """One result of an op kind, by name."""

    name: str = "result"
    doc: str = field(default="", kw_only=True)


@dataclass(frozen=True)
class OpCost:
    """What an op costs, independent of hardware.

    ``macs``: multiply-accumulates of matrix products; ``ops``: other
    elementary arithmetic (adds, multiplies, exponentials, comparisons, each
    counted as one); ``bytes_in`` / ``bytes_out``: bytes of operands read and
    results written at the IR's element types (views move nothing).
    """

    macs: int = 0
    ops: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    def __add__(self, other: OpCost) -> OpCost:
        return OpCost(self.macs + other.macs, self.ops + other.ops,
                      self.bytes_in + other.bytes_in, self.bytes_out + other.bytes_out)


# --------------------------------------------------------------------------- traits
#
# Properties of an op kind that passes and backends ask about, declared on its
# definition (``OpDef.traits``) instead of kept as name lists beside the
# passes.  Ask with ``opdef.has_trait(Commutative)`` or ``op.has_trait(...)``;
# a trait with parameters (``Contraction``) is fetched with ``opdef.trait(...)``.
# Traits are declared conservatively: an op without ``ZeroPreserving`` may
# still map zero to zero, it is just never relied upon.

Dims = tuple[int, int, int, int]
TraitT = TypeVar("TraitT", bound="Trait")


@dataclass(frozen=True)
class Trait:
    """Base class of op traits."""


@dataclass(frozen=True)
class Pure(Trait):
    """No side effects: an unused result can be removed, equal ops merged, a
    constant one folded.  Every op kind without ``side_effects`` has it."""


@dataclass(frozen=True)
class Commutative(Trait):
    """A two-operand op whose operands may be swapped without changing the result."""


@dataclass(frozen=True)
class ZeroPreserving(Trait):
    """A zero in operand 0 gives a zero at the same place of the (one) result:
    pruned zeros survive the op (``f(0) = 0`` elementwise, or a pure data move)."""


@dataclass(frozen=True)
class DensityPreserving(Trait):
    """The result holds the nonzeros of operand 0 (a permutation, copy or
    broadcast): its density is operand 0's."""


@dataclass(frozen=True)
class Contraction(Trait):
    """The op is one matrix product, or a chain of them, as (B, M, K, N):
    ``B`` independent products (batch, or convolution groups) of an ``M x K``
    by a ``K x N`` matrix.  A convolution is given by its im2col view, whose
    MACs equal the op's.  ``products(op)`` gives every product in order
    (fused attention has two: scores ``q @ kt`` and context ``p @ v``);
    ``loops(op)`` the loops (of ``b i j k``) each operand of the first product
    depends on, so a cost model knows which operand is reused across which loop.
    The op's MACs are ``sum(B*M*K*N)`` over its products."""

    products: Callable[[Op], tuple[Dims, ...]]
    loops: Callable[[Op], tuple[str, str]]


def contraction_products(op: Op) -> tuple[Dims, ...]:
    """Every (B, M, K, N) matrix product of ``op``; empty when it is no contraction."""
    trait = get_opdef(op.name).trait(Contraction)
    return () if trait is None else trait.products(op)


def contraction_dims(op: Op) -> Dims | None:
    """(B, M, K, N) of ``op``'s (first) matrix product, or None when it is no contraction."""
    products = contraction_products(op)
    return products[0] if products else None


def matmul_dims(op: Op) -> Dims:
    """(batch, M, K, N) of a product of operands 0 and 1 with numpy's matmul
    rules, batch being the product of the broadcast batch dimensions."""
    a, b = op.operands[0].type.shape, op.operands[1].type.shape
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    batch = math.prod(np.broadcast_shapes(a2[:-2], b2[:-2]))
    return batch, a2[-2], a2[-1], b2[-1]


def _matmul_loops(op: Op) -> tuple[str, str]:
    """An operand without batch dimensions is shared across the batch."""
    a, b = op.operands[0].type.rank, op.operands[1].type.rank
    return ("bik" if a > 2 else "ik"), ("bkj" if b > 2 else "kj")


#: The contraction of a (batched) matrix product of operands 0 and 1, numpy's rules.
MATMUL_CONTRACTION = Contraction(lambda op: (matmul_dims(op),), _matmul_loops)


# --------------------------------------------------------------------------- OpDef


InferFn = Callable[[list[TensorType], Attributes], list[TensorType] | None]
EvalFn = Callable[[Op, list[np.ndarray], Any], list[np.ndarray]]
CostFn = Callable[[Op], OpCost]
VerifyFn = Callable[[Op], str | None]
# A gradient rule: (builder, op, gradients of the op's results, some may be
# None) -> gradients of the op's operands (None where there is none).
GradFn = Callable[[Any, Op, list[Any]], list[Any]]

# Categories tell the cost model which hardware module class runs an op.
CATEGORIES = ("matmul", "elementwise", "nonlinear", "softmax", "layernorm", "reduce",
              "data", "view", "constant", "control", "conv", "sparsity", "loss", "optimizer")


def _unused_evaluate(op: Op, inputs: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    raise NotImplementedError(f"{op.name} has no numpy semantics")


@dataclass(kw_only=True)
class OpDef:
    """The definition of one op kind (see the module docstring); every field
    but the name is a keyword::

        define(OpDef("nn.softmax", operands=(Operand("x"),),
                     attributes={"axis": Attr("int", default=-1)},
                     infer=..., evaluate=..., category="softmax",
                     cost=..., grad=..., doc="..."))
    """

    name: str = field(kw_only=False)
    operands: tuple[Operand, ...] = ()
    results: tuple[Result, ...] = (Result(),)
    attributes: Mapping[str, Attr] = field(default_factory=dict)
    infer: InferFn | None = None
    evaluate: EvalFn = _unused_evaluate
    category: str
    cost: CostFn | None = None
    verify: VerifyFn | None = None
    grad: GradFn | None = None
    side_effects: bool = False
    traits: tuple[Trait, ...] = ()
    doc: str = ""

    def __post_init__(self) -> None:
        where = f"op definition {self.name}"
        if self.category not in CATEGORIES:
            raise ValueError(f"{where}: unknown category {self.category!r} "
                             f"(accepted: {', '.join(CATEGORIES)})")
        self.operands = tuple(self.operands)
        self.results = tuple(self.results)
        for o in self.operands:
            if not isinstance(o, Operand):
                raise TypeError(f"{where}: declare operands with Operand(...), got {o!r}")
        for i, o in enumerate(self.operands):
            later = self.operands[i + 1:]
            if o.variadic and later:
                raise ValueError(f"{where}: variadic operand {o.name} must be the last")
            if o.optional and any(not (x.optional or x.variadic) for x in later):
                raise ValueError(f"{where}: optional operand {o.name} is followed by a required one")
        for r in self.results:
            if not isinstance(r, Result):
                raise TypeError(f"{where}: declare results with Result(...), got {r!r}")
        for key, spec in self.attributes.items():
            if not isinstance(spec, Attr):
                raise TypeError(f"{where}: declare attribute {key!r} with Attr(...), got {spec!r}")
        traits = tuple(self.traits)
        if not self.side_effects and not any(isinstance(t, Pure) for t in traits):
            traits += (Pure(),)
        self.traits = traits

    # -- operands and results
    @property
    def min_operands(self) -> int:
        return sum(1 for o in self.operands if not (o.optional or o.variadic))

    @property
    def max_operands(self) -> float:
        return math.inf if any(o.variadic for o in self.operands) else len(self.operands)

    @property
    def num_results(self) -> int:
        return len(self.results)

    def operand(self, op: Op, name: str) -> Any:
        """Operand ``name`` of ``op``: a Value, None for an absent optional
        operand, the list of values for a variadic one."""
        for i, o in enumerate(self.operands):
            if o.name == name:
                if o.variadic:
                    return list(op.operands[i:])
                return op.operands[i] if i < len(op.operands) else None
        raise KeyError(f"{self.name} has no operand {name!r} "
                       f"(declared: {', '.join(o.name for o in self.operands) or 'none'})")

    # -- traits
    def has_trait(self, trait: type[Trait]) -> bool:
        """Whether the op kind declares ``trait`` (a :class:`Trait` subclass)."""
        return any(isinstance(t, trait) for t in self.traits)

    def trait(self, trait: type[TraitT]) -> TraitT | None:
        """The declared instance of ``trait`` (for its parameters), or None."""
        return next((t for t in self.traits if isinstance(t, trait)), None)

    # -- attributes
    def attribute(self, op: Op, key: str) -> Any:
        """Attribute ``key`` of ``op``, or its declared default when the op does
        not carry it; None for an absent pass annotation (``tile:x``).  Asking
        for an attribute the op kind does not declare is a KeyError: a typo is
        not a silent None."""
        if key in op.attributes:
            return op.attributes[key]
        spec = self.attributes.get(key)
        if spec is None:
            if ":" in key or key.startswith("_"):
                return None          # an annotation a pass has not added (yet)
            accepted = ", ".join(self.attributes) or "none"
            raise KeyError(f"{self.name} has no attribute {key!r} (declared: {accepted})")
        if spec.required:
            raise KeyError(f"{self.name} lacks its required attribute {key!r}")
        return spec.default

    def attribute_defaults(self, attrs: Attributes) -> dict[str, Any]:
        out = {k: s.default for k, s in self.attributes.items() if not s.required}
        out.update(attrs)
        return out

    def infer_types(self, types: list[TensorType], attrs: Attributes, module: Any = None) -> list[TensorType] | None:
        if self.infer is None:
            return None
        full = Attributes(self.attribute_defaults(attrs))
        return self.infer(types, full)

    def check_attributes(self, attrs: Attributes) -> list[str]:
        problems = []
        for key, spec in self.attributes.items():
            if key not in attrs:
                if spec.required:
                    problems.append(f"missing required attribute '{key}' ({spec.kind})")
                continue
            why = spec.check(attrs[key])
            if why:
                problems.append(f"attribute '{key}': {why}")
        for key in attrs:
            if key not in self.attributes and not key.startswith("_") and ":" not in key:
                accepted = ", ".join(self.attributes) or "none"
                problems.append(f"unknown attribute '{key}' (accepted: {accepted}; "
                                "annotations from passes use a dialect prefix such as 'tile:x')")
        return problems


# --------------------------------------------------------------------------- registry


#: Entry-point group through which installed packages add dialects: each entry
#: names a module that calls :func:`define` when imported.
ENTRY_POINT_GROUP = "transcode.dialects"
#: The built-in dialects: a package one layer up, imported by name on first lookup.
BUILTIN_DIALECTS = "dialects"

_REGISTRY: dict[str, OpDef] = {}
_BUILTINS_LOADED = False
_PLUGINS_LOADED = False


def define(opdef: OpDef) -> OpDef:
    """Register an op kind (dialect modules call this when imported)."""
    if opdef.name in _REGISTRY:
        raise ValueError(f"op {opdef.name} is defined twice")
    _REGISTRY[opdef.name] = opdef
    return opdef


def _load_builtin_dialects() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    try:
        importlib.import_module(BUILTIN_DIALECTS)
    except ModuleNotFoundError as err:
        if err.name != BUILTIN_DIALECTS:
            raise
        from transcode_ir.errors import UserError

        raise UserError(f"the built-in op kinds (package '{BUILTIN_DIALECTS}') cannot be "
                        "imported: install the project (pip install -e .) or run from its "
                        "top folder") from err


def _load_plugin_dialects() -> None:
    """Import the modules of the entry-point group (once).  Done when a name is
    not among the built-in op kinds, or when all of them are listed: reading the
    installed packages' metadata costs tens of milliseconds, which a process
    that only uses built-in ops does not pay."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    from transcode_ir.errors import UserError

    for ep in installed_entry_points(ENTRY_POINT_GROUP):   # lists the built-ins too: no-ops
        try:
            importlib.import_module(ep.value)
        except Exception as err:   # a broken plugin must not hide the built-in ops
            raise UserError(f"entry point '{ep.name}' ({ep.value}) in group {ENTRY_POINT_GROUP!r} "
                            f"failed to load: {type(err).__name__}: {err}") from err


@functools.lru_cache(maxsize=1)
def _all_entry_points() -> Any:
    from importlib.metadata import entry_points

    return entry_points()


def installed_entry_points(group: str) -> list[Any]:
    """The entry points of ``group`` in the installed distributions.  One scan of
    the installed packages' metadata serves every group."""
    return list(_all_entry_points().select(group=group))


def get_opdef(name: str) -> OpDef:
    """The definition of op kind ``name`` (KeyError when no dialect defines it)."""
    opdef = _REGISTRY.get(name)
    if opdef is None:
        _load_builtin_dialects()
        opdef = _REGISTRY.get(name)
        if opdef is None:
            _load_plugin_dialects()
            opdef = _REGISTRY.get(name)
            if opdef is None:
                raise KeyError(name)
    return opdef


def all_opdefs() -> dict[str, OpDef]:
    """Every registered op kind, by name."""
    _load_builtin_dialects()
    _load_plugin_dialects()
    return dict(_REGISTRY)


# --------------------------------------------------------------------------- costs


def op_cost(op: Op) -> OpCost:
    """Hardware-independent cost counts of one op, from its definition."""
    opdef = get_opdef(op.name)
    if opdef.cost is not None:
        return opdef.cost(op)
    return _default_cost(op, opdef)


def _bytes(types: Sequence[Any]) -> int:
    return sum(t.nbytes for t in types)


def _default_cost(op: Op, opdef: OpDef) -> OpCost:
    if opdef.category in ("view", "constant", "control"):
        return OpCost()
    ins = _bytes([v.type for v in op.operands])
    outs = _bytes([v.type for v in op.results])
    if opdef.category == "data":
        return OpCost(0, 0, ins, outs)
    numel = sum(v.type.numel for v in op.results)
    if opdef.category == "reduce":
        numel = op.operands[0].type.numel
    return OpCost(0, numel, ins, outs)


# --------------------------------------------------------------------------- helpers


def _same(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    return [types[0].dense()]


def _broadcast(types: list[TensorType], attrs: Attributes, dtype: str | None = None) -> list[TensorType]:
    try:
        shape = np.broadcast_shapes(*[t.shape for t in types])
    except ValueError:
        raise ShapeError("operand shapes " + ", ".join(str(list(t.shape)) for t in types)
                         + " do not broadcast") from None
    return [TensorType(tuple(shape), dtype or types[0].dtype)]


class ShapeError(ValueError):
    """A shape rule rejected its operands (reported by the verifier with the op)."""


def _norm_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ShapeError(f"axis {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def _np(attr_dtype: str) -> np.dtype:
    return numpy_dtype(attr_dtype)


def _out_dtype(op: Op, i: int = 0) -> np.dtype:
    return numpy_dtype(op.results[i].type.dtype)


# --------------------------------------------------------------------------- gradient helpers
#
# A gradient rule gets a builder (inserting into the function being built by
# autodiff), the op being differentiated (inside that function) and the
# gradients of its results; it returns the gradients of its operands, None
# where an operand has none (integer operands, or a zero gradient).  The
# builder autodiff passes has ``needs_grad(value)``; rules use it to skip
# work for operands that no parameter depends on.


def _needs(b: Any, value: Any) -> bool:
    """Whether the gradient of ``value`` is wanted (always, for a plain builder)."""
    if value.type.dtype not in ("f16", "f32", "f64"):
        return False
    fn = getattr(b, "needs_grad", None)
    return True if fn is None else bool(fn(value))


def _scalar_like(b: Any, number: float, like: Any) -> Any:
    """A scalar (0-d) constant with ``like``'s element type; it broadcasts
    against any shape without changing it."""
    return b.constant(np.asarray(number, dtype=numpy_dtype(like.type.dtype)))


def _constant_scalar(value: Any) -> float | None:
    """The number a constant operand holds in every element, or None."""
    owner = value.owner
    if not isinstance(owner, Op) or owner.name != "tensor.constant":
        return None
    arr = owner.attributes["value"].array()
    if arr.size == 0 or (arr.size > 1 and not np.all(arr == arr.reshape(-1)[0])):
        return None
    return float(arr.reshape(-1)[0])


def reduce_to_shape(b: Any, g: Any, shape: Sequence[int]) -> Any:
    """Sum a gradient over the axes along which its operand was broadcast."""
    shape = tuple(shape)
    have = g.type.shape
    if have == shape:
        return g
    lead = len(have) - len(shape)
    axes = list(range(lead)) + [lead + i for i, d in enumerate(shape)
                                if d == 1 and have[lead + i] != 1]
    if axes:
        g = b.op("tensor.reduce_sum", g, axes=tuple(axes), keepdims=False)
    if g.type.shape != shape:
        g = b.op("tensor.reshape", g, shape=shape)
    return g


def _zero_grad(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    """Rule of piecewise-constant ops (comparisons, logic): no gradient flows."""
    return [None] * len(op.operands)


def _swap_last(b: Any, v: Any) -> Any:
    perm = list(range(v.type.rank))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    return b.op("tensor.transpose", v, perm=tuple(perm))


def grad_matmul(b: Any, lhs: Any, rhs: Any, g: Any, need_lhs: bool | None = None,
                need_rhs: bool | None = None) -> tuple[Any, Any]:
    """Gradients of ``lhs @ rhs`` (numpy semantics) given the result's gradient.

    A rank-2 right operand (a weight) shared by a batch of left rows gets
    one large matrix product ``lhs2ᵀ @ g2`` over the flattened rows rather
    than a batched product and a sum, as a GEMM library would compute it.
    """
    need_lhs = _needs(b, lhs) if need_lhs is None else need_lhs
    need_rhs = _needs(b, rhs) if need_rhs is None else need_rhs
    a, w = lhs, rhs
    if a.type.rank == 1:
        a = b.op("tensor.reshape", a, shape=(1,) + a.type.shape)
        g = b.op("tensor.reshape", g, shape=g.type.shape[:-1] + (1,) + g.type.shape[-1:])
    if w.type.rank == 1:
        w = b.op("tensor.reshape", w, shape=w.type.shape + (1,))
        g = b.op("tensor.reshape", g, shape=g.type.shape + (1,))
    d_lhs = d_rhs = None
    if need_lhs:
        d = b.op("tensor.matmul", g, _swap_last(b, w))
        d_lhs = reduce_to_shape(b, d, a.type.shape)
        if d_lhs.type.shape != lhs.type.shape:
            d_lhs = b.op("tensor.reshape", d_lhs, shape=lhs.type.shape)
    if need_rhs:
        if w.type.rank == 2 and a.type.rank > 2:
            rows = math.prod(a.type.shape[:-1])
            a2 = b.op("tensor.reshape", a, shape=(rows, a.type.shape[-1]))
            g2 = b.op("tensor.reshape", g, shape=(rows, g.type.shape[-1]))
            d = b.op("tensor.matmul", b.op("tensor.transpose", a2, perm=(1, 0)), g2)
        else:
            d = b.op("tensor.matmul", _swap_last(b, a), g)
        d_rhs = reduce_to_shape(b, d, w.type.shape)
        if d_rhs.type.shape != rhs.type.shape:
            d_rhs = b.op("tensor.reshape", d_rhs, shape=rhs.type.shape)
    return d_lhs, d_rhs

