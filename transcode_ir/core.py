"""The in-memory IR: attributes, values, ops, functions and modules.

Ownership, as in xDSL and onnx-ir:

* A :class:`Value` is produced by exactly one op (its ``owner``) or is an
  argument of exactly one :class:`Function`.  It keeps a use-list of
  ``(op, operand index)`` pairs, so :meth:`Value.replace_all_uses_with` is cheap.
* An :class:`Op` is owned by at most one function, where it sits in a doubly
  linked list; inserting and erasing are O(1).  Operands and attributes are
  mutable through the API only (``set_operand``), which keeps use-lists right.
* Attributes are frozen: ints, floats, strings, bools, tuples of those, and
  :class:`DenseAttr` for small constant tensors.  Large tensors never live in
  attributes: they are module parameters, saved beside the text as ``.npz``.
* A :class:`Module` holds named :class:`Parameter` s and named functions
  (``forward``; after autodiff also ``backward`` and ``train_step``).

Every function ends with a ``func.return`` op whose operands are the results.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transcode_ir.types import TensorType, dtype_of_numpy, numpy_dtype

__all__ = [
    "Attributes",
    "Builder",
    "DenseAttr",
    "Function",
    "Module",
    "Op",
    "Parameter",
    "Use",
    "Value",
    "normalize_attribute",
]


_UNSET: Any = object()   # "no default given" for Op.attr

# --------------------------------------------------------------------------- attributes


@dataclass(frozen=True, eq=False)
class DenseAttr:
    """A small constant tensor kept inline in an attribute.

    Equality and hashing are by element type, shape and contents.  The array
    is read-only; use :meth:`array` to get it.
    """

    dtype: str
    shape: tuple[int, ...]
    data: np.ndarray = field(repr=False)

    @staticmethod
    def from_array(array: Any, dtype: str | None = None) -> DenseAttr:
        arr = np.asarray(array)
        if dtype is not None:
            arr = arr.astype(numpy_dtype(dtype))
        name = dtype_of_numpy(arr.dtype)
        arr = np.array(arr, order="C", copy=True)  # keeps 0-d arrays 0-d (ascontiguousarray would not)
        arr.flags.writeable = False
        return DenseAttr(name, tuple(int(d) for d in arr.shape), arr)

    def array(self) -> np.ndarray:
        return self.data

    @property
    def type(self) -> TensorType:
        return TensorType(self.shape, self.dtype)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DenseAttr):
            return NotImplemented
        return (self.dtype == other.dtype and self.shape == other.shape
                and self.data.tobytes() == other.data.tobytes())

    def __hash__(self) -> int:
        return hash((self.dtype, self.shape, self.data.tobytes()))


def normalize_attribute(value: Any) -> Any:
    """Turn a Python value into a frozen attribute value, or raise ValueError."""
    if isinstance(value, (bool, str, DenseAttr)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return tuple(normalize_attribute(v) for v in value)
    if isinstance(value, np.ndarray):
        return DenseAttr.from_array(value)
    raise ValueError(f"unsupported attribute value {value!r} of type {type(value).__name__}")


class Attributes(Mapping[str, Any]):
    """A frozen, hashable mapping of attribute names to frozen values."""

    __slots__ = ("_items", "_hash")

    def __init__(self, items: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items: dict[str, Any] = {k: normalize_attribute(v) for k, v in pairs}
        self._hash: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(sorted(self._items.items(), key=lambda kv: kv[0])))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Attributes):
            return self._items == other._items
        if isinstance(other, Mapping):
            return self._items == dict(other)
        return NotImplemented

    def with_(self, **changes: Any) -> Attributes:
        """A copy with some entries changed (``None`` removes an entry)."""
        items = dict(self._items)
        for key, value in changes.items():
            if value is None:
                items.pop(key, None)
            else:
                items[key] = value
        return Attributes(items)

    def __repr__(self) -> str:
        return f"Attributes({self._items!r})"


# --------------------------------------------------------------------------- values and ops


@dataclass(frozen=True)
class Use:
    op: Op
    index: int


class Value:
    """An SSA value: an op result or a function argument."""

    __slots__ = ("type", "owner", "index", "uses", "name")

    def __init__(self, type: TensorType, owner: Op | Function, index: int,
                 name: str | None = None) -> None:
        self.type = type
        self.owner = owner
        self.index = index
        self.uses: list[Use] = []
        self.name = name

    @property
    def producer(self) -> Op | None:
        """The op that produces this value, or None for a function argument."""
        return self.owner if isinstance(self.owner, Op) else None

    @property
    def is_argument(self) -> bool:
        return isinstance(self.owner, Function)

    @property
    def users(self) -> list[Op]:
        seen: dict[int, Op] = {}
        for use in self.uses:
            seen.setdefault(id(use.op), use.op)
        return list(seen.values())

    def replace_all_uses_with(self, other: Value) -> None:
        if other is self:
            return
        for use in list(self.uses):
            use.op.set_operand(use.index, other)

    def __repr__(self) -> str:
        where = self.owner.name if isinstance(self.owner, Op) else "arg"
        return f"<Value {self.name or ''}#{self.index} of {where}: {self.type.shape} {self.type.dtype}>"


class Op:
    """An operation: a dotted name, operands, results and frozen attributes.

    ``loc`` is the source name that the op came from (for imported models, the
    module path such as ``encoder.layer.0.attention.self.query``); reports
    aggregate per layer by it.
    """

    __slots__ = ("name", "operands", "results", "attributes", "loc", "parent", "prev", "next")

    def __init__(self, name: str, operands: Sequence[Value], result_types: Sequence[TensorType],
                 attributes: Mapping[str, Any] | Attributes | None = None,
                 loc: str | None = None) -> None:
        self.name = name
        self.operands: list[Value] = []
        self.results = [Value(t, self, i) for i, t in enumerate(result_types)]
        self.attributes = attributes if isinstance(attributes, Attributes) else Attributes(attributes or {})
        self.loc = loc
        self.parent: Function | None = None
        self.prev: Op | None = None
        self.next: Op | None = None
        for value in operands:
            self._add_operand(value)

    # -- operands
    def _add_operand(self, value: Value) -> None:
        if not isinstance(value, Value):
            raise TypeError(f"operand of {self.name} must be a Value, got {type(value).__name__}")
        value.uses.append(Use(self, len(self.operands)))
        self.operands.append(value)

    def set_operand(self, index: int, value: Value) -> None:
        old = self.operands[index]
        old.uses = [u for u in old.uses if not (u.op is self and u.index == index)]
        self.operands[index] = value
        value.uses.append(Use(self, index))

    def set_operands(self, values: Sequence[Value]) -> None:
        self.drop_operands()
        for value in values:
            self._add_operand(value)

    def drop_operands(self) -> None:
        for i, old in enumerate(self.operands):
            old.uses = [u for u in old.uses if not (u.op is self and u.index == i)]
        self.operands = []

    # -- convenience
    @property
    def result(self) -> Value:
        if len(self.results) != 1:
            raise ValueError(f"{self.name} has {len(self.results)} results, not one")
        return self.results[0]

    @property
    def definition(self):  # -> OpDef
        from transcode_ir.opdefs import get_opdef

        return get_opdef(self.name)

    opdef = definition

    def has_trait(self, trait: type) -> bool:
        """Whether this op's kind declares ``trait`` (see :mod:`transcode_ir.opdefs`)."""
        return self.definition.has_trait(trait)

    def operand(self, name: str) -> Any:
        """The operand its op kind declares as ``name`` (None when an optional
        one is absent; a list for a variadic one)."""
        return self.definition.operand(self, name)

    def attr(self, key: str, default: Any = _UNSET) -> Any:
        """Attribute ``key``: the op's own value, else ``default`` when given,
        else the default its op kind declares (a KeyError for an attribute the
        kind does not declare).  Readers never restate a declared default."""
        if key in self.attributes:
            return self.attributes[key]
        if default is not _UNSET:
            return default
        return self.definition.attribute(self, key)

    def set_attr(self, key: str, value: Any) -> None:
        self.attributes = self.attributes.with_(**{key: value})

    def erase(self) -> None:
        """Remove this op from its function; its results must be unused."""
        for res in self.results:
            if res.uses:
                raise ValueError(f"cannot erase {self.name}: result {res.index} still has "
                                 f"{len(res.uses)} use(s)")
        self.drop_operands()
        if self.parent is not None:
            self.parent._unlink(self)

    def __repr__(self) -> str:
        return f"<Op {self.name} loc={self.loc!r}>"


# --------------------------------------------------------------------------- functions


class Function:
    """A function: named arguments, a straight-line list of ops ending in
    ``func.return``, and named results."""

    def __init__(self, name: str, arg_types: Sequence[TensorType] = (),
                 arg_names: Sequence[str] | None = None,
                 result_names: Sequence[str] | None = None) -> None:
        self.name = name
        names = list(arg_names) if arg_names is not None else [f"arg{i}" for i in range(len(arg_types))]
        if len(names) != len(arg_types):
            raise ValueError("arg_names and arg_types differ in length")
        self.args = [Value(t, self, i, n) for i, (t, n) in enumerate(zip(arg_types, names))]
        self.result_names: list[str] = list(result_names or [])
        self.first: Op | None = None
        self.last: Op | None = None
        self._count = 0
        self.module: Module | None = None

    # -- list of ops
    def __iter__(self) -> Iterator[Op]:
        """Iterate over ops; erasing the current op while iterating is safe."""
        op = self.first
        while op is not None:
            nxt = op.next
            yield op
            op = nxt

    @property
    def ops(self) -> list[Op]:
        return list(self)

    def __len__(self) -> int:
        return self._count

    def append(self, op: Op) -> Op:
        return self.insert_before(op, None)

    def insert_before(self, op: Op, anchor: Op | None) -> Op:
        """Insert ``op`` before ``anchor`` (at the end when ``anchor`` is None)."""
        if op.parent is not None:
            raise ValueError(f"{op.name} already belongs to a function")
        op.parent = self
        if anchor is None:
            op.prev, op.next = self.last, None
            if self.last is not None:
                self.last.next = op
            else:
                self.first = op
            self.last = op
        else:
            if anchor.parent is not self:
                raise ValueError("anchor op is not in this function")
            op.prev, op.next = anchor.prev, anchor
            if anchor.prev is not None:
                anchor.prev.next = op
            else:
                self.first = op
            anchor.prev = op
        self._count += 1
        return op

    def insert_after(self, op: Op, anchor: Op) -> Op:
        return self.insert_before(op, anchor.next)

    def _unlink(self, op: Op) -> None:
        if op.prev is not None:
            op.prev.next = op.next
        else:
            self.first = op.next
        if op.next is not None:
            op.next.prev = op.prev
        else:
            self.last = op.prev
        op.parent = op.prev = op.next = None
        self._count -= 1

    # -- results
    @property
    def return_op(self) -> Op | None:
        last = self.last
        return last if last is not None and last.name == "func.return" else None

    @property
    def outputs(self) -> list[Value]:
        ret = self.return_op
        return list(ret.operands) if ret is not None else []

    @property
    def result_types(self) -> list[TensorType]:
        return [v.type for v in self.outputs]

    def set_outputs(self, values: Sequence[Value], names: Sequence[str] | None = None) -> None:
        """Set (or replace) the ``func.return`` of this function."""
        ret = self.return_op
        if ret is not None:
            ret.set_operands(values)
        else:
            self.append(Op("func.return", values, ()))
        if names is not None:
            self.result_names = list(names)
        elif len(self.result_names) != len(values):
            self.result_names = [f"out{i}" for i in range(len(values))]

    def arg(self, name: str) -> Value:
        for a in self.args:
            if a.name == name:
                return a
        raise KeyError(f"function @{self.name} has no argument %{name}")

    def __repr__(self) -> str:
        return f"<Function @{self.name}: {len(self.args)} args, {self._count} ops>"


# --------------------------------------------------------------------------- module


PARAMETER_KINDS = ("weight", "constant", "state")


@dataclass
class Parameter:
    """A named tensor of the module: a weight, a folded constant, or optimizer
    state (Adam moments).  ``data`` may be None for a module loaded without
    its ``.npz`` (costing needs shapes only)."""

    name: str
    type: TensorType
    data: np.ndarray | None = None
    kind: str = "weight"

    def __post_init__(self) -> None:
        if self.kind not in PARAMETER_KINDS:
            raise ValueError(f"parameter kind must be one of {PARAMETER_KINDS}, got {self.kind!r}")
        if self.data is not None:
            if tuple(self.data.shape) != self.type.shape:
                raise ValueError(f"parameter {self.name}: data shape {self.data.shape} "
                                 f"differs from its type {self.type.shape}")


class Module:
    """The top-level IR object: parameters and functions."""

    def __init__(self, name: str = "module", attributes: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.params: dict[str, Parameter] = {}
        self.functions: dict[str, Function] = {}
        self.attributes = Attributes(attributes or {})

    def add_param(self, name: str, data: np.ndarray | None = None, *,
                  type: TensorType | None = None, kind: str = "weight") -> Parameter:
        if name in self.params:
            raise ValueError(f"parameter {name!r} already exists")
        if type is None:
            if data is None:
                raise ValueError("add_param needs data or a type")
            type = TensorType(tuple(data.shape), dtype_of_numpy(data.dtype))
        param = Parameter(name, type, data, kind)
        self.params[name] = param
        return param

    def add_function(self, func: Function) -> Function:
        if func.name in self.functions:
            raise ValueError(f"function @{func.name} already exists")
        func.module = self
        self.functions[func.name] = func
        return func

    def function(self, name: str) -> Function:
        try:
            return self.functions[name]
        except KeyError:
            raise KeyError(f"module has no function @{name}; it has "
                           f"{', '.join('@' + f for f in self.functions) or 'none'}") from None

    def __getitem__(self, name: str) -> Function:
        return self.function(name)

    @property
    def num_parameters(self) -> int:
        return sum(p.type.numel for p in self.params.values() if p.kind == "weight")

    def clone(self) -> Module:
        """A deep copy of the IR (parameter arrays are shared, not copied)."""
        from transcode_ir.parser import parse_module
        from transcode_ir.printer import print_module

        copy = parse_module(print_module(self), params={n: p.data for n, p in self.params.items()})
        return copy

    def __repr__(self) -> str:
        return (f"<Module @{self.name}: {len(self.params)} params, "
                f"functions {list(self.functions)}>")


# --------------------------------------------------------------------------- builder


class Builder:
    """Creates ops at an insertion point, inferring result types from the op
    definitions.

    >>> b = Builder(func)                  # appends before func.return if any
    >>> y = b.op("tensor.matmul", x, w, loc="encoder.layer.0.attention.self.query")
    """

    def __init__(self, func: Function, before: Op | None = None, loc: str | None = None) -> None:
        self.func = func
        self.anchor = before if before is not None else func.return_op
        self.loc = loc

    def create(self, name: str, operands: Sequence[Value] = (), attributes: Mapping[str, Any] | None = None,
               result_types: Sequence[TensorType] | None = None, loc: str | None = None) -> Op:
        from transcode_ir.opdefs import get_opdef

        attrs = Attributes(attributes or {})
        if result_types is None:
            opdef = get_opdef(name)
            inferred = opdef.infer_types([v.type for v in operands], attrs, module=self.func.module)
            if inferred is None:
                raise ValueError(f"{name} cannot infer its result types; pass result_types")
            result_types = inferred
        op = Op(name, operands, result_types, attrs, loc if loc is not None else self.loc)
        self.func.insert_before(op, self.anchor)
        return op

    def op(self, name: str, *operands: Value, loc: str | None = None, **attributes: Any) -> Value:
        """Create a single-result op and return its result."""
        return self.create(name, operands, attributes, loc=loc).result

    def param(self, name: str, loc: str | None = None) -> Value:
        module = self.func.module
        if module is None or name not in module.params:
            raise KeyError(f"no parameter {name!r} in the module")
        return self.create("tensor.param", (), {"name": name}, [module.params[name].type], loc=loc).result

    def constant(self, array: Any, dtype: str | None = None, loc: str | None = None) -> Value:
        return self.create("tensor.constant", (), {"value": DenseAttr.from_array(array, dtype)},
                           loc=loc).result


def prod(shape: Iterable[int]) -> int:
    return math.prod(shape)
