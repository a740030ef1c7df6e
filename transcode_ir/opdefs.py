"""Op definitions: the one place where each op kind is defined.

An :class:`OpDef` gives, for one op kind: its operands and attributes, its
shape rule, extra verification, its cost counts (MACs, other arithmetic,
bytes in and out), its numpy semantics, and its gradient rule (a slot filled
by the autodiff pass family).  The verifier, the interpreter, autodiff, the
ONNX backend and the cost model all read these definitions; nothing keeps a
second table of op kinds.

Op kinds are grouped in dialects: ``tensor`` (data movement, matrix products,
reductions, constants, parameters), ``arith`` (elementwise arithmetic) and
``nn`` (neural-network layers: activations, softmax, layer norm, conv1d).
Other files add ops with :func:`define` (the passes add fused ops, DynaProp
adds prune ops).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transcode_ir.core import Attributes, DenseAttr, Op
from transcode_ir.types import TensorType, dtype_size, numpy_dtype

__all__ = [
    "AttrSpec",
    "Commutative",
    "Contraction",
    "DensityPreserving",
    "OpCost",
    "OpDef",
    "Pure",
    "Trait",
    "ZeroPreserving",
    "all_opdefs",
    "contraction_dims",
    "contraction_products",
    "define",
    "get_opdef",
    "op_cost",
]


# --------------------------------------------------------------------------- framework


ATTR_KINDS = ("int", "float", "str", "bool", "ints", "floats", "strs", "dense", "any")


@dataclass(frozen=True)
class AttrSpec:
    """One attribute of an op kind: its kind, whether required, its default."""

    kind: str
    required: bool = True
    default: Any = None
    choices: tuple[Any, ...] | None = None
    doc: str = ""

    def check(self, value: Any) -> str | None:
        """Return a description of what is wrong with ``value``, or None."""
        ok = {
            "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "float": lambda v: isinstance(v, (float, int)) and not isinstance(v, bool),
            "str": lambda v: isinstance(v, str),
            "bool": lambda v: isinstance(v, bool),
            "ints": lambda v: isinstance(v, tuple) and all(isinstance(x, int) and not isinstance(x, bool) for x in v),
            "floats": lambda v: isinstance(v, tuple) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v),
            "strs": lambda v: isinstance(v, tuple) and all(isinstance(x, str) for x in v),
            "dense": lambda v: isinstance(v, DenseAttr),
            "any": lambda v: True,
        }[self.kind](value)
        if not ok:
            return f"expected {self.kind}, got {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"expected one of {', '.join(map(repr, self.choices))}, got {value!r}"
        return None


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


@dataclass
class OpDef:
    """The definition of one op kind.  See the module docstring."""

    name: str
    operands: tuple[str, ...]
    attributes: dict[str, AttrSpec]
    infer: InferFn | None
    evaluate: EvalFn
    category: str
    cost: CostFn | None = None
    verify: VerifyFn | None = None
    grad: GradFn | None = None
    side_effects: bool = False
    num_results: int | None = 1
    doc: str = ""
    traits: tuple[Trait, ...] = ()

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"{self.name}: unknown category {self.category!r}")
        traits = tuple(self.traits)
        if not self.side_effects and not any(isinstance(t, Pure) for t in traits):
            traits += (Pure(),)
        self.traits = traits

    def has_trait(self, trait: type[Trait]) -> bool:
        """Whether the op kind declares ``trait`` (a :class:`Trait` subclass)."""
        return any(isinstance(t, trait) for t in self.traits)

    def trait(self, trait: type[Trait]) -> Any:
        """The declared instance of ``trait`` (for its parameters), or None."""
        return next((t for t in self.traits if isinstance(t, trait)), None)

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
        return spec.default

    # -- operand arity: a trailing "?" marks an optional operand, a leading "*" a variadic one
    @property
    def min_operands(self) -> int:
        return sum(1 for o in self.operands if not o.endswith("?") and not o.startswith("*"))

    @property
    def max_operands(self) -> float:
        return math.inf if any(o.startswith("*") for o in self.operands) else len(self.operands)

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


_REGISTRY: dict[str, OpDef] = {}


def define(opdef: OpDef) -> OpDef:
    if opdef.name in _REGISTRY:
        raise ValueError(f"op {opdef.name} is defined twice")
    _REGISTRY[opdef.name] = opdef
    return opdef


def get_opdef(name: str) -> OpDef:
    try:
        return _REGISTRY[name]
    except KeyError:
        _load_extensions()
        if name in _REGISTRY:
            return _REGISTRY[name]
        raise KeyError(name) from None


def has_opdef(name: str) -> bool:
    try:
        get_opdef(name)
        return True
    except KeyError:
        return False


def all_opdefs() -> dict[str, OpDef]:
    _load_extensions()
    return dict(_REGISTRY)


_EXTENSIONS_LOADED = False
# Modules of the core that define further ops (kept in separate files to keep
# this one readable).  They import this module, so they are loaded lazily.
_EXTENSION_MODULES = (
    "transcode_ir.ops_fused",      # fused jobs made by the fuse pass
    "transcode_ir.ops_training",   # losses and optimizer updates made by autodiff
    "transcode_ir.ops_sparsity",   # DynaProp prune ops
)


def _load_extensions() -> None:
    global _EXTENSIONS_LOADED
    if _EXTENSIONS_LOADED:
        return
    _EXTENSIONS_LOADED = True
    import importlib

    for mod in _EXTENSION_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:
            if err.name != mod:
                raise


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
    per_element = {"elementwise": 1, "nonlinear": 1, "reduce": 1}.get(opdef.category, 1)
    numel = sum(v.type.numel for v in op.results)
    if opdef.category == "reduce":
        numel = op.operands[0].type.numel
    return OpCost(0, per_element * numel, ins, outs)


# --------------------------------------------------------------------------- helpers


def _attrs(**specs: AttrSpec) -> dict[str, AttrSpec]:
    return dict(specs)


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


# --------------------------------------------------------------------------- erf


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise, to about 1.2e-7 relative error in
    erfc (Numerical Recipes' Chebyshev fit), computed in float64."""
    z = np.abs(x.astype(np.float64))
    t = 1.0 / (1.0 + 0.5 * z)
    poly = (-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277)))))))))
    erfc = t * np.exp(poly)
    result = np.where(x >= 0, 1.0 - erfc, erfc - 1.0)
    return result.astype(x.dtype if x.dtype.kind == "f" else np.float64)


# --------------------------------------------------------------------------- arith: elementwise


def _binary(name: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], doc: str,
            result_dtype: str | None = None, grad: GradFn | None = None,
            traits: tuple[Trait, ...] = ()) -> None:
    def infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
        if types[0].dtype != types[1].dtype:
            raise ShapeError(f"operand element types differ: {types[0].dtype} and {types[1].dtype}")
        return _broadcast(types, attrs, result_dtype)

    def evaluate(op: Op, inputs: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
        with np.errstate(all="ignore"):
            return [np.asarray(fn(inputs[0], inputs[1])).astype(_out_dtype(op), copy=False)]

    define(OpDef(f"arith.{name}", ("lhs", "rhs"), {}, infer, evaluate,
                 "elementwise", grad=grad, doc=doc, traits=traits))


def _grad_add(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    (g,), (x, y) = grads, op.operands
    return [reduce_to_shape(b, g, x.type.shape) if _needs(b, x) else None,
            reduce_to_shape(b, g, y.type.shape) if _needs(b, y) else None]


def _grad_sub(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    (g,), (x, y) = grads, op.operands
    return [reduce_to_shape(b, g, x.type.shape) if _needs(b, x) else None,
            reduce_to_shape(b, b.op("arith.neg", g), y.type.shape) if _needs(b, y) else None]


def _grad_mul(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    (g,), (x, y) = grads, op.operands
    return [reduce_to_shape(b, b.op("arith.mul", g, y), x.type.shape) if _needs(b, x) else None,
            reduce_to_shape(b, b.op("arith.mul", g, x), y.type.shape) if _needs(b, y) else None]


def _grad_div(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    (g,), (x, y) = grads, op.operands
    dx = reduce_to_shape(b, b.op("arith.div", g, y), x.type.shape) if _needs(b, x) else None
    dy = None
    if _needs(b, y):   # d(x/y)/dy = -(x/y)/y
        dy = b.op("arith.neg", b.op("arith.div", b.op("arith.mul", g, op.result), y))
        dy = reduce_to_shape(b, dy, y.type.shape)
    return [dx, dy]


def _grad_pow(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    (g,), (x, y) = grads, op.operands
    dx = dy = None
    if _needs(b, x):
        c = _constant_scalar(y)
        if c == 2.0:
            local = b.op("arith.mul", x, _scalar_like(b, 2.0, x))
        elif c is not None:
            local = b.op("arith.mul", b.op("arith.pow", x, _scalar_like(b, c - 1.0, x)),
                         _scalar_like(b, c, x))
        else:
            local = b.op("arith.mul", y, b.op("arith.pow", x, b.op("arith.sub", y, _scalar_like(b, 1.0, y))))
        dx = reduce_to_shape(b, b.op("arith.mul", g, local), x.type.shape)
    if _needs(b, y):
        dy = b.op("arith.mul", b.op("arith.mul", g, op.result), b.op("arith.log", x))
        dy = reduce_to_shape(b, dy, y.type.shape)
    return [dx, dy]


def _grad_select_between(b: Any, op: Op, grads: list[Any], first_wins: str) -> list[Any]:
    """max/min: the gradient goes to the operand that was chosen (to the
    first operand on ties)."""
    (g,), (x, y) = grads, op.operands
    other_wins = b.op(first_wins, x, y)        # arith.less for max, arith.greater for min
    zero = _scalar_like(b, 0.0, g)
    dx = reduce_to_shape(b, b.op("arith.select", other_wins, zero, g), x.type.shape) \
        if _needs(b, x) else None
    dy = reduce_to_shape(b, b.op("arith.select", other_wins, g, zero), y.type.shape) \
        if _needs(b, y) else None
    return [dx, dy]


def _grad_max(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    return _grad_select_between(b, op, grads, "arith.less")


def _grad_min(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    return _grad_select_between(b, op, grads, "arith.greater")


_binary("add", np.add, "Elementwise sum with numpy broadcasting.", grad=_grad_add, traits=(Commutative(),))
_binary("sub", np.subtract, "Elementwise difference with numpy broadcasting.", grad=_grad_sub)
_binary("mul", np.multiply, "Elementwise product with numpy broadcasting.", grad=_grad_mul, traits=(Commutative(),))


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "iu":
        # ONNX integer division truncates toward zero.
        return np.trunc(a / b).astype(a.dtype)
    return np.divide(a, b)


_binary("div", _divide, "Elementwise quotient (integer division truncates toward zero).", grad=_grad_div)
_binary("pow", np.power, "Elementwise power.", grad=_grad_pow)
_binary("max", np.maximum, "Elementwise maximum.", grad=_grad_max, traits=(Commutative(),))
_binary("min", np.minimum, "Elementwise minimum.", grad=_grad_min, traits=(Commutative(),))
_binary("equal", np.equal, "Elementwise equality, giving bool.", "bool", grad=_zero_grad, traits=(Commutative(),))
_binary("less", np.less, "Elementwise a < b, giving bool.", "bool", grad=_zero_grad)
_binary("greater", np.greater, "Elementwise a > b, giving bool.", "bool", grad=_zero_grad)
_binary("and", np.logical_and, "Elementwise logical and of bools.", grad=_zero_grad, traits=(Commutative(),))
_binary("or", np.logical_or, "Elementwise logical or of bools.", grad=_zero_grad, traits=(Commutative(),))


def _unary(name: str, fn: Callable[[np.ndarray], np.ndarray], doc: str,
           category: str = "elementwise", dialect: str = "arith",
           grad: GradFn | None = None, traits: tuple[Trait, ...] = ()) -> None:
    def evaluate(op: Op, inputs: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
        with np.errstate(all="ignore"):
            return [np.asarray(fn(inputs[0])).astype(_out_dtype(op), copy=False)]

    define(OpDef(f"{dialect}.{name}", ("x",), {}, _same, evaluate, category, grad=grad, doc=doc,
                 traits=traits))


def _unary_rule(local: Callable[[Any, Op, Any], Any]) -> GradFn:
    """A rule ``dx = local(b, op, g)`` for a one-operand op."""
    def rule(b: Any, op: Op, grads: list[Any]) -> list[Any]:
        return [local(b, op, grads[0]) if _needs(b, op.operands[0]) else None]
    return rule


def _mul_by(b: Any, g: Any, *factors: Any) -> Any:
    for f in factors:
        g = b.op("arith.mul", g, f)
    return g


_grad_neg = _unary_rule(lambda b, op, g: b.op("arith.neg", g))
_grad_abs = _unary_rule(lambda b, op, g: b.op(
    "arith.select", b.op("arith.less", op.operands[0], _scalar_like(b, 0.0, g)), b.op("arith.neg", g), g))
_grad_sqrt = _unary_rule(lambda b, op, g: b.op(
    "arith.div", b.op("arith.mul", g, _scalar_like(b, 0.5, g)), op.result))
_grad_reciprocal = _unary_rule(lambda b, op, g: b.op("arith.neg", _mul_by(b, g, op.result, op.result)))
_grad_exp = _unary_rule(lambda b, op, g: b.op("arith.mul", g, op.result))
_grad_log = _unary_rule(lambda b, op, g: b.op("arith.div", g, op.operands[0]))
_grad_erf = _unary_rule(lambda b, op, g: _mul_by(
    b, g, b.op("arith.exp", b.op("arith.neg", b.op("arith.mul", op.operands[0], op.operands[0]))),
    _scalar_like(b, 2.0 / math.sqrt(math.pi), g)))
_grad_tanh = _unary_rule(lambda b, op, g: b.op("arith.mul", g, b.op(
    "arith.sub", _scalar_like(b, 1.0, g), b.op("arith.mul", op.result, op.result))))
_grad_sigmoid = _unary_rule(lambda b, op, g: _mul_by(
    b, g, op.result, b.op("arith.sub", _scalar_like(b, 1.0, g), op.result)))
_grad_sin = _unary_rule(lambda b, op, g: b.op("arith.mul", g, b.op("arith.cos", op.operands[0])))
_grad_cos = _unary_rule(lambda b, op, g: b.op("arith.neg", b.op(
    "arith.mul", g, b.op("arith.sin", op.operands[0]))))


_unary("neg", np.negative, "Elementwise negation.", grad=_grad_neg)
_unary("abs", np.abs, "Elementwise absolute value.", grad=_grad_abs)
_unary("sqrt", np.sqrt, "Elementwise square root.", "nonlinear", grad=_grad_sqrt)
_unary("reciprocal", np.reciprocal, "Elementwise 1/x.", "nonlinear", grad=_grad_reciprocal)
_unary("exp", np.exp, "Elementwise exponential.", "nonlinear", grad=_grad_exp)
_unary("log", np.log, "Elementwise natural logarithm.", "nonlinear", grad=_grad_log)
_unary("erf", erf, "Elementwise error function.", "nonlinear", grad=_grad_erf)
_unary("tanh", np.tanh, "Elementwise hyperbolic tangent.", "nonlinear", grad=_grad_tanh,
       traits=(ZeroPreserving(),))
_unary("sigmoid", lambda x: 1.0 / (1.0 + np.exp(-x)), "Elementwise logistic sigmoid.", "nonlinear", grad=_grad_sigmoid)
_unary("sin", np.sin, "Elementwise sine.", "nonlinear", grad=_grad_sin)
_unary("cos", np.cos, "Elementwise cosine.", "nonlinear", grad=_grad_cos)
_unary("not", np.logical_not, "Elementwise logical not of bools.", grad=_zero_grad)


def _predicate_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    return [TensorType(types[0].shape, "bool")]


def isinf(x: np.ndarray, detect_positive: bool = True, detect_negative: bool = True) -> np.ndarray:
    """ONNX IsInf: true where ``x`` is +inf (if ``detect_positive``) or -inf
    (if ``detect_negative``); never for integers."""
    if x.dtype.kind != "f":
        return np.zeros(x.shape, dtype=bool)
    return (np.isposinf(x) & bool(detect_positive)) | (np.isneginf(x) & bool(detect_negative))


define(OpDef(
    "arith.isnan", ("x",), {}, _predicate_infer,
    lambda op, x, ctx: [np.isnan(x[0]) if x[0].dtype.kind == "f" else np.zeros(x[0].shape, bool)],
    "elementwise", grad=_zero_grad,
    doc="Elementwise test for NaN, giving bool (ONNX IsNaN; torch's SDPA export guards the "
        "attention probabilities with Where(IsNaN(p), 0, p))."))
define(OpDef(
    "arith.isinf", ("x",),
    _attrs(detect_positive=AttrSpec("bool", False, True), detect_negative=AttrSpec("bool", False, True)),
    _predicate_infer,
    lambda op, x, ctx: [isinf(x[0], op.attributes.get("detect_positive", True),
                              op.attributes.get("detect_negative", True))],
    "elementwise", grad=_zero_grad, doc="Elementwise test for +inf and/or -inf, giving bool (ONNX IsInf)."))


def _where_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    if types[0].dtype != "bool":
        raise ShapeError(f"condition must be bool, got {types[0].dtype}")
    if types[1].dtype != types[2].dtype:
        raise ShapeError(f"branches differ in element type: {types[1].dtype} and {types[2].dtype}")
    return [_broadcast(types, attrs, types[1].dtype)[0]]


def _grad_select(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    (g,), (cond, x, y) = grads, op.operands
    zero = _scalar_like(b, 0.0, g)
    return [None,
            reduce_to_shape(b, b.op("arith.select", cond, g, zero), x.type.shape) if _needs(b, x) else None,
            reduce_to_shape(b, b.op("arith.select", cond, zero, g), y.type.shape) if _needs(b, y) else None]


define(OpDef(
    "arith.select", ("condition", "on_true", "on_false"), {}, _where_infer,
    lambda op, x, ctx: [np.where(x[0], x[1], x[2]).astype(_out_dtype(op), copy=False)],
    "elementwise", grad=_grad_select, doc="Elementwise choice: condition ? on_true : on_false (ONNX Where)."))


def _cast_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    return [types[0].dense().with_dtype(attrs["to"])]


def _grad_cast(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    x = op.operands[0]
    if not _needs(b, x) or grads[0].type.dtype not in ("f16", "f32", "f64"):
        return [None]
    return [b.op("arith.cast", grads[0], to=x.type.dtype)]


define(OpDef(
    "arith.cast", ("x",), _attrs(to=AttrSpec("str", choices=("f16", "f32", "f64", "i8", "i32", "i64", "bool"))),
    _cast_infer, lambda op, x, ctx: [x[0].astype(_np(op.attributes["to"]))],
    "elementwise", grad=_grad_cast, doc="Convert the element type."))


# --------------------------------------------------------------------------- nn: activations


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    x64 = x.astype(np.float64)
    if approximate == "tanh":
        y = 0.5 * x64 * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x64 + 0.044715 * x64 ** 3)))
    else:
        y = 0.5 * x64 * (1.0 + erf(x64 / math.sqrt(2.0)))
    return y.astype(x.dtype)


def _grad_relu(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    g = grads[0]
    zero = _scalar_like(b, 0.0, g)
    return [b.op("arith.select", b.op("arith.greater", op.result, zero), g, zero)]


def _grad_gelu(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    return [b.op("grad.gelu", grads[0], op.operands[0],
                 approximate=op.attributes.get("approximate", "none"))]


define(OpDef(
    "nn.relu", ("x",), {}, _same,
    lambda op, x, ctx: [np.maximum(x[0], 0).astype(x[0].dtype)], "nonlinear",
    grad=_grad_relu, traits=(ZeroPreserving(),), doc="Rectified linear unit."))
define(OpDef(
    "nn.gelu", ("x",), _attrs(approximate=AttrSpec("str", False, "none", ("none", "tanh"))), _same,
    lambda op, x, ctx: [gelu(x[0], op.attributes.get("approximate", "none"))], "nonlinear",
    cost=lambda op: OpCost(0, 8 * op.results[0].type.numel, op.operands[0].type.nbytes,
                           op.results[0].type.nbytes),
    grad=_grad_gelu, traits=(ZeroPreserving(),), doc="Gaussian error linear unit (exact erf form, or the tanh approximation)."))


# --------------------------------------------------------------------------- nn: softmax, layer norm


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return (e / np.sum(e, axis=axis, keepdims=True)).astype(x.dtype)


def _softmax_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    _norm_axis(attrs["axis"], types[0].rank)
    return [types[0].dense()]


def _grad_softmax(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    return [b.op("grad.softmax", grads[0], op.result, axis=op.attributes.get("axis", -1))]


define(OpDef(
    "nn.softmax", ("x",), _attrs(axis=AttrSpec("int", False, -1)), _softmax_infer,
    lambda op, x, ctx: [softmax(x[0], op.attributes.get("axis", -1))], "softmax",
    cost=lambda op: OpCost(0, 5 * op.results[0].type.numel, op.operands[0].type.nbytes,
                           op.results[0].type.nbytes),
    grad=_grad_softmax, doc="Softmax along one axis (max-shifted): about 5 elementary ops per element."))


def layer_norm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray | None, axis: int,
               epsilon: float) -> np.ndarray:
    axes = tuple(range(axis % x.ndim, x.ndim))
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x64 - mean) / np.sqrt(var + epsilon) * scale
    if bias is not None:
        y = y + bias
    return y.astype(x.dtype)


def _layer_norm_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    x = types[0]
    axis = _norm_axis(attrs["axis"], x.rank)
    normalized = x.shape[axis:]
    for t in types[1:]:
        if np.broadcast_shapes(t.shape, normalized) != tuple(normalized):
            raise ShapeError(f"scale/bias shape {list(t.shape)} does not match the "
                             f"normalized shape {list(normalized)}")
    return [x.dense()]


def _grad_layer_norm(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    x, scale = op.operands[0], op.operands[1]
    bias = op.operands[2] if len(op.operands) > 2 else None
    dx, dscale, dbias = b.create(
        "grad.layer_norm", (grads[0], x, scale),
        {"axis": op.attributes.get("axis", -1), "epsilon": op.attributes.get("epsilon", 1e-5)}).results
    out = [dx if _needs(b, x) else None,
           reduce_to_shape(b, dscale, scale.type.shape) if _needs(b, scale) else None]
    if bias is not None:
        out.append(reduce_to_shape(b, dbias, bias.type.shape) if _needs(b, bias) else None)
    return out


define(OpDef(
    "nn.layer_norm", ("x", "scale", "bias?"),
    _attrs(axis=AttrSpec("int", False, -1), epsilon=AttrSpec("float", False, 1e-5)),
    _layer_norm_infer,
    lambda op, x, ctx: [layer_norm(x[0], x[1], x[2] if len(x) > 2 else None,
                                   op.attributes.get("axis", -1), op.attributes.get("epsilon", 1e-5))],
    "layernorm",
    cost=lambda op: OpCost(0, 8 * op.results[0].type.numel, _bytes([v.type for v in op.operands]),
                           op.results[0].type.nbytes),
    grad=_grad_layer_norm, doc="Layer normalisation over the trailing axes from 'axis': about 8 ops per element."))


# --------------------------------------------------------------------------- nn: conv1d


def _conv1d_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    x, w = types[0], types[1]
    if x.rank != 3 or w.rank != 3:
        raise ShapeError(f"conv1d takes x as [N, C, L] and weight as [M, C/groups, K], got "
                         f"{list(x.shape)} and {list(w.shape)}")
    n, c, length = x.shape
    m, cg, k = w.shape
    groups = attrs["groups"]
    if c % groups or m % groups or cg != c // groups:
        raise ShapeError(f"channels {c} and filters {m} do not fit groups={groups} "
                         f"with weight {list(w.shape)}")
    if len(types) > 2 and types[2].shape != (m,):
        raise ShapeError(f"bias must have shape [{m}], got {list(types[2].shape)}")
    pads = attrs["pads"]
    stride, dilation = attrs["stride"], attrs["dilation"]
    out_len = (length + pads[0] + pads[1] - dilation * (k - 1) - 1) // stride + 1
    if out_len <= 0:
        raise ShapeError("conv1d output length would be non-positive")
    return [TensorType((n, m, out_len), x.dtype)]


def conv1d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int, pads: tuple[int, int],
           dilation: int, groups: int) -> np.ndarray:
    n, c, _ = x.shape
    m, cg, k = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[1])))
    out_len = (xp.shape[2] - dilation * (k - 1) - 1) // stride + 1
    # windows: [N, C, out_len, K]
    idx = np.arange(out_len)[:, None] * stride + np.arange(k)[None, :] * dilation
    windows = xp[:, :, idx]
    mg = m // groups
    out = np.empty((n, m, out_len), dtype=np.float64)
    for g in range(groups):
        xs = windows[:, g * cg:(g + 1) * cg].astype(np.float64)       # N, cg, L, K
        ws = w[g * mg:(g + 1) * mg].astype(np.float64)                 # mg, cg, K
        out[:, g * mg:(g + 1) * mg] = np.einsum("nclk,mck->nml", xs, ws)
    if b is not None:
        out += b[None, :, None]
    return out.astype(x.dtype)


def _conv1d_products(op: Op) -> tuple[Dims, ...]:
    """im2col view: per group, [N*L_out, C/groups*K] windows by [C/groups*K, M/groups] filters."""
    n = op.operands[0].type.shape[0]
    m, cg, k = op.operands[1].type.shape
    groups = op.attr("groups")
    out_len = op.results[0].type.shape[2]
    return ((groups, n * out_len, cg * k, m // groups),)


def _conv1d_cost(op: Op) -> OpCost:
    out = op.results[0].type
    ((groups, rows, depth, cols),) = _conv1d_products(op)
    macs = groups * rows * depth * cols
    return OpCost(macs, out.numel if len(op.operands) > 2 else 0,
                  _bytes([v.type for v in op.operands]), out.nbytes)


def _grad_conv1d(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    g = grads[0]
    x, w = op.operands[0], op.operands[1]
    attrs = {k: op.attributes.get(k, d) for k, d in
             (("stride", 1), ("pads", (0, 0)), ("dilation", 1), ("groups", 1))}
    out = [b.op("grad.conv1d_input", g, w, length=x.type.shape[2], **attrs) if _needs(b, x) else None,
           b.op("grad.conv1d_weight", g, x, kernel=w.type.shape[2], **attrs) if _needs(b, w) else None]
    if len(op.operands) > 2:
        out.append(b.op("tensor.reduce_sum", g, axes=(0, 2), keepdims=False)
                   if _needs(b, op.operands[2]) else None)
    return out


define(OpDef(
    "nn.conv1d", ("x", "weight", "bias?"),
    _attrs(stride=AttrSpec("int", False, 1), pads=AttrSpec("ints", False, (0, 0)),
           dilation=AttrSpec("int", False, 1), groups=AttrSpec("int", False, 1)),
    _conv1d_infer,
    lambda op, x, ctx: [conv1d(x[0], x[1], x[2] if len(x) > 2 else None,
                               op.attributes.get("stride", 1), op.attributes.get("pads", (0, 0)),
                               op.attributes.get("dilation", 1), op.attributes.get("groups", 1))],
    "conv", cost=_conv1d_cost, traits=(Contraction(_conv1d_products, lambda op: ("bik", "bkj")),),
    grad=_grad_conv1d, doc="1-D convolution over [N, C, L] (ONNX Conv with one spatial axis)."))


# --------------------------------------------------------------------------- tensor: matmul


def _matmul_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    a, b = types
    if a.dtype != b.dtype:
        raise ShapeError(f"operand element types differ: {a.dtype} and {b.dtype}")
    if a.rank < 1 or b.rank < 1:
        raise ShapeError("matmul operands must have rank >= 1")
    a_shape = (1,) + a.shape if a.rank == 1 else a.shape
    b_shape = b.shape + (1,) if b.rank == 1 else b.shape
    if a_shape[-1] != b_shape[-2]:
        raise ShapeError(f"contracting dimensions differ: {list(a.shape)} @ {list(b.shape)}")
    try:
        batch = np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    except ValueError:
        raise ShapeError(f"batch dimensions do not broadcast: {list(a.shape)} @ {list(b.shape)}") from None
    shape = tuple(batch) + (a_shape[-2], b_shape[-1])
    if a.rank == 1:
        shape = shape[:-2] + shape[-1:]
    if b.rank == 1:
        shape = shape[:-1]
    return [TensorType(shape, a.dtype)]


def matmul_dims(op: Op) -> tuple[int, int, int, int]:
    """(batch, M, K, N) of a matmul-like op, batch being the product of the
    broadcast batch dimensions."""
    a, b = op.operands[0].type.shape, op.operands[1].type.shape
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    batch = math.prod(np.broadcast_shapes(a2[:-2], b2[:-2]))
    return batch, a2[-2], a2[-1], b2[-1]


def _matmul_loops(op: Op) -> tuple[str, str]:
    """An operand without batch dimensions is shared across the batch."""
    a, b = op.operands[0].type.rank, op.operands[1].type.rank
    return ("bik" if a > 2 else "ik"), ("bkj" if b > 2 else "kj")


#: The contraction of a (batched) matrix product: one product, numpy's rules.
MATMUL_CONTRACTION = Contraction(lambda op: (matmul_dims(op),), _matmul_loops)


def _matmul_cost(op: Op) -> OpCost:
    batch, m, k, n = matmul_dims(op)
    return OpCost(batch * m * k * n, 0, _bytes([v.type for v in op.operands]),
                  op.results[0].type.nbytes)


def _matmul_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    return [np.matmul(x[0], x[1]).astype(_out_dtype(op), copy=False)]


def _grad_matmul(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    return list(grad_matmul(b, op.operands[0], op.operands[1], grads[0]))


define(OpDef(
    "tensor.matmul", ("lhs", "rhs"), {}, _matmul_infer, _matmul_eval, "matmul", cost=_matmul_cost,
    grad=_grad_matmul, traits=(MATMUL_CONTRACTION,), doc="Matrix product with numpy semantics (batched, broadcasting batch dimensions)."))


# --------------------------------------------------------------------------- tensor: data movement


def _reshape_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    shape = tuple(attrs["shape"])
    if any(d < 0 for d in shape):
        raise ShapeError(f"reshape target {list(shape)} must be fully static (no -1 or 0 left)")
    if math.prod(shape) != types[0].numel:
        raise ShapeError(f"cannot reshape {list(types[0].shape)} ({types[0].numel} elements) "
                         f"to {list(shape)} ({math.prod(shape)} elements)")
    return [TensorType(shape, types[0].dtype)]


def _grad_reshape(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    return [b.op("tensor.reshape", grads[0], shape=op.operands[0].type.shape)]


define(OpDef(
    "tensor.reshape", ("x",), _attrs(shape=AttrSpec("ints")), _reshape_infer,
    lambda op, x, ctx: [x[0].reshape(op.attributes["shape"])], "view",
    grad=_grad_reshape, traits=(ZeroPreserving(), DensityPreserving()), doc="Reshape to a static shape (a view: moves no data)."))


def _transpose_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    perm = tuple(attrs["perm"])
    if sorted(perm) != list(range(types[0].rank)):
        raise ShapeError(f"perm {list(perm)} is not a permutation of the {types[0].rank} axes")
    return [TensorType(tuple(types[0].shape[p] for p in perm), types[0].dtype)]


def _grad_transpose(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    perm = op.attributes["perm"]
    inverse = tuple(sorted(range(len(perm)), key=lambda i: perm[i]))
    return [b.op("tensor.transpose", grads[0], perm=inverse)]


define(OpDef(
    "tensor.transpose", ("x",), _attrs(perm=AttrSpec("ints")), _transpose_infer,
    lambda op, x, ctx: [np.ascontiguousarray(np.transpose(x[0], op.attributes["perm"]))], "data",
    grad=_grad_transpose, traits=(ZeroPreserving(), DensityPreserving()), doc="Permute axes."))


def _gather_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    data, idx = types
    if idx.dtype not in ("i64", "i32"):
        raise ShapeError(f"indices must be integers, got {idx.dtype}")
    axis = _norm_axis(attrs["axis"], data.rank)
    return [TensorType(data.shape[:axis] + idx.shape + data.shape[axis + 1:], data.dtype)]


def _gather_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    data, idx = x
    axis = op.attributes.get("axis", 0) % data.ndim
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    return [np.take(data, idx, axis=axis)]


def _grad_gather(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    data, indices = op.operands
    if not _needs(b, data):
        return [None, None]
    axis = op.attributes.get("axis", 0) % data.type.rank
    return [b.op("grad.gather", grads[0], indices, axis=axis, size=data.type.shape[axis]), None]


define(OpDef(
    "tensor.gather", ("data", "indices"), _attrs(axis=AttrSpec("int", False, 0)), _gather_infer,
    _gather_eval, "data",
    cost=lambda op: OpCost(0, 0, op.operands[1].type.nbytes + op.results[0].type.nbytes,
                           op.results[0].type.nbytes),
    grad=_grad_gather, doc="Take slices of data along an axis by index (embedding lookup): reads only the "
        "gathered rows."))


def _concat_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    if not types:
        raise ShapeError("concat needs at least one operand")
    axis = _norm_axis(attrs["axis"], types[0].rank)
    first = types[0]
    total = 0
    for t in types:
        if t.rank != first.rank or t.dtype != first.dtype or \
                t.shape[:axis] + t.shape[axis + 1:] != first.shape[:axis] + first.shape[axis + 1:]:
            raise ShapeError("concat operands differ outside the concatenation axis: "
                             + ", ".join(str(list(t.shape)) for t in types))
        total += t.shape[axis]
    return [TensorType(first.shape[:axis] + (total,) + first.shape[axis + 1:], first.dtype)]


def _grad_concat(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    g = grads[0]
    axis = op.attributes["axis"] % g.type.rank
    out, offset = [], 0
    for x in op.operands:
        size = x.type.shape[axis]
        out.append(b.op("tensor.slice", g, starts=(offset,), ends=(offset + size,), axes=(axis,),
                        steps=(1,)) if _needs(b, x) else None)
        offset += size
    return out


define(OpDef(
    "tensor.concat", ("*inputs",), _attrs(axis=AttrSpec("int")), _concat_infer,
    lambda op, x, ctx: [np.concatenate(x, axis=op.attributes["axis"])], "data",
    grad=_grad_concat, doc="Concatenate along an axis."))


def _slice_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    x = types[0]
    starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs["axes"], attrs["steps"]
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ShapeError("starts, ends, axes and steps must have equal lengths")
    shape = list(x.shape)
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = _norm_axis(a, x.rank)
        if st == 0:
            raise ShapeError("slice step must not be zero")
        shape[a] = len(range(*slice(s, e, st).indices(x.shape[a])))
    return [TensorType(tuple(shape), x.dtype)]


def _slice_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    a = op.attributes
    index: list[Any] = [slice(None)] * x[0].ndim
    for s, e, ax, st in zip(a["starts"], a["ends"], a["axes"], a["steps"]):
        index[ax % x[0].ndim] = slice(s, e, st)
    return [np.ascontiguousarray(x[0][tuple(index)])]


def _grad_slice(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    a = op.attributes
    return [b.op("grad.slice", grads[0], starts=a["starts"], ends=a["ends"], axes=a["axes"],
                 steps=a["steps"], shape=op.operands[0].type.shape)]


define(OpDef(
    "tensor.slice", ("x",),
    _attrs(starts=AttrSpec("ints"), ends=AttrSpec("ints"), axes=AttrSpec("ints"), steps=AttrSpec("ints")),
    _slice_infer, _slice_eval, "data", grad=_grad_slice, traits=(DensityPreserving(),), doc="Static strided slice (Python slice semantics)."))


def _expand_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    try:
        shape = np.broadcast_shapes(types[0].shape, tuple(attrs["shape"]))
    except ValueError:
        raise ShapeError(f"cannot expand {list(types[0].shape)} to {list(attrs['shape'])}") from None
    return [TensorType(tuple(shape), types[0].dtype)]


def _grad_expand(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    return [reduce_to_shape(b, grads[0], op.operands[0].type.shape)]


define(OpDef(
    "tensor.expand", ("x",), _attrs(shape=AttrSpec("ints")), _expand_infer,
    lambda op, x, ctx: [np.ascontiguousarray(np.broadcast_to(x[0], op.results[0].type.shape))],
    "data", grad=_grad_expand, traits=(DensityPreserving(),), doc="Broadcast to a shape (ONNX Expand)."))


def cumsum(x: np.ndarray, axis: int, exclusive: bool = False, reverse: bool = False) -> np.ndarray:
    """Running sum along ``axis`` (ONNX CumSum): ``exclusive`` leaves each
    element out of its own sum, ``reverse`` sums from the end."""
    axis = axis % x.ndim
    data = np.flip(x, axis) if reverse else x
    out = np.cumsum(data, axis=axis, dtype=x.dtype)
    if exclusive:
        out = np.concatenate([np.zeros_like(np.take(out, [0], axis=axis)),
                              np.take(out, np.arange(out.shape[axis] - 1), axis=axis)], axis)
    return np.ascontiguousarray(np.flip(out, axis) if reverse else out)


def _cumsum_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    _norm_axis(attrs["axis"], types[0].rank)
    if types[0].dtype == "bool":
        raise ShapeError("cumsum of bool; cast to an integer or float type first")
    return [types[0].dense()]


def _grad_cumsum(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    """The gradient of a running sum is the running sum of the gradient the
    other way round (same exclusiveness)."""
    if not _needs(b, op.operands[0]):
        return [None]
    a = op.attributes
    return [b.op("tensor.cumsum", grads[0], axis=a["axis"], exclusive=a.get("exclusive", False),
                 reverse=not a.get("reverse", False))]


define(OpDef(
    "tensor.cumsum", ("x",),
    _attrs(axis=AttrSpec("int"), exclusive=AttrSpec("bool", False, False),
           reverse=AttrSpec("bool", False, False)),
    _cumsum_infer,
    lambda op, x, ctx: [cumsum(x[0], op.attributes["axis"], op.attributes.get("exclusive", False),
                               op.attributes.get("reverse", False))],
    "reduce",
    cost=lambda op: OpCost(0, op.operands[0].type.numel, op.operands[0].type.nbytes,
                           op.results[0].type.nbytes),
    grad=_grad_cumsum,
    doc="Running sum along an axis (ONNX CumSum; RoBERTa's position ids): one add per element."))


def _reduce_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    x = types[0]
    axes = tuple(_norm_axis(a, x.rank) for a in attrs["axes"])
    if len(set(axes)) != len(axes):
        raise ShapeError(f"repeated reduction axes {list(attrs['axes'])}")
    keep = attrs["keepdims"]
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keep or i not in axes)
    return [TensorType(shape, x.dtype)]


def _reduction(name: str, fn: Callable[..., np.ndarray], doc: str,
               grad: GradFn | None = None) -> None:
    def evaluate(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
        axes = tuple(op.attributes["axes"])
        keep = op.attributes.get("keepdims", True)
        acc = x[0].astype(np.float64) if x[0].dtype.kind == "f" else x[0]
        return [np.asarray(fn(acc, axis=axes, keepdims=keep)).astype(_out_dtype(op))]

    define(OpDef(f"tensor.{name}", ("x",),
                 _attrs(axes=AttrSpec("ints"), keepdims=AttrSpec("bool", False, True)),
                 _reduce_infer, evaluate, "reduce", grad=grad, doc=doc))


def _spread(b: Any, op: Op, g: Any) -> Any:
    """A reduction's result gradient, broadcast back over the reduced axes."""
    x = op.operands[0]
    axes = {a % x.type.rank for a in op.attributes["axes"]}
    kept = tuple(1 if i in axes else d for i, d in enumerate(x.type.shape))
    if g.type.shape != kept:
        g = b.op("tensor.reshape", g, shape=kept)
    return b.op("tensor.expand", g, shape=x.type.shape) if kept != x.type.shape else g


def _grad_reduce_sum(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    return [_spread(b, op, grads[0])]


def _grad_reduce_mean(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    x = op.operands[0]
    count = x.type.numel // max(op.result.type.numel, 1)
    return [_spread(b, op, b.op("arith.mul", grads[0], _scalar_like(b, 1.0 / count, grads[0])))]


def _grad_reduce_max(b: Any, op: Op, grads: list[Any]) -> list[Any]:
    """Every element equal to the maximum receives the gradient (torch's amax
    splits it evenly among ties; ties are rare in real activations)."""
    x = op.operands[0]
    hit = b.op("arith.equal", x, _spread(b, op, op.result))
    return [b.op("arith.select", hit, _spread(b, op, grads[0]), _scalar_like(b, 0.0, grads[0]))]


_reduction("reduce_sum", np.sum, "Sum over axes.", grad=_grad_reduce_sum)
_reduction("reduce_mean", np.mean, "Mean over axes.", grad=_grad_reduce_mean)
_reduction("reduce_max", np.max, "Maximum over axes.", grad=_grad_reduce_max)


# --------------------------------------------------------------------------- tensor: constants, params, control


def _constant_infer(types: list[TensorType], attrs: Attributes) -> list[TensorType]:
    return [attrs["value"].type]


define(OpDef(
    "tensor.constant", (), _attrs(value=AttrSpec("dense")), _constant_infer,
    lambda op, x, ctx: [op.attributes["value"].array()], "constant",
    grad=_zero_grad, doc="A small constant tensor kept inline (large ones are parameters)."))


def _param_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    return [ctx.param(op.attributes["name"])]


def _param_verify(op: Op) -> str | None:
    func = op.parent
    module = func.module if func is not None else None
    if module is None:
        return None
    name = op.attributes["name"]
    param = module.params.get(name)
    if param is None:
        return f"refers to parameter {name!r}, which the module does not declare"
    if param.type.dense() != op.results[0].type.dense():
        return f"declares {op.results[0].type} but parameter {name!r} is {param.type}"
    return None


define(OpDef(
    "tensor.param", (), _attrs(name=AttrSpec("str")), None, _param_eval, "constant",
    verify=_param_verify,
    grad=_zero_grad, doc="Read a module parameter.  Its memory traffic is charged to the ops that use it."))


def _assign_verify(op: Op) -> str | None:
    func = op.parent
    module = func.module if func is not None else None
    if module is None:
        return None
    name = op.attributes["name"]
    param = module.params.get(name)
    if param is None:
        return f"assigns parameter {name!r}, which the module does not declare"
    if param.type.dense() != op.operands[0].type.dense():
        return f"assigns a {op.operands[0].type} to parameter {name!r} of type {param.type}"
    return None


def _assign_eval(op: Op, x: list[np.ndarray], ctx: Any) -> list[np.ndarray]:
    ctx.assign(op.attributes["name"], x[0])
    return []


define(OpDef(
    "tensor.assign", ("value",), _attrs(name=AttrSpec("str")), lambda t, a: [], _assign_eval,
    "data", verify=_assign_verify, side_effects=True, num_results=0,
    cost=lambda op: OpCost(0, 0, 0, op.operands[0].type.nbytes),
    grad=_zero_grad, doc="Write a new value into a module parameter (optimizer updates); the write goes to "
        "main memory."))


define(OpDef(
    "func.return", ("*values",), {}, lambda t, a: [], lambda op, x, ctx: [], "control",
    side_effects=True, num_results=0, grad=_zero_grad, doc="Return values from the function (last op)."))
