"""Pattern rewriting: patterns matched on op names, a :class:`Rewriter` that
edits the IR and tracks changes, and a greedy driver that applies patterns
until nothing matches (tinygrad's ``PatternMatcher`` and MLIR's greedy
rewrite driver, kept small).

A pattern is a function ``(rewriter, op) -> bool`` registered for one or
more op names; it returns True when it rewrote the op.  It may only edit the
IR through the rewriter, which inserts new ops before the op being rewritten
and puts every op it touches back on the worklist::

    patterns = PatternSet()

    @patterns.rule("arith.mul")
    def multiply_by_one(rw: Rewriter, op: Op) -> bool:
        if splat_value(op.operands[1]) == 1.0 and op.result.type == op.operands[0].type:
            rw.replace_op(op, op.operands[0])
            return True
        return False

    changed = apply_patterns(module, patterns)

Pattern sets combine with ``+``.  The driver also erases ops that have
become dead (no side effects, no uses), as MLIR's does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from transcode_ir.core import Attributes, DenseAttr, Function, Module, Op, Value
from transcode_ir.opdefs import get_opdef
from transcode_ir.types import TensorType

__all__ = [
    "Pattern",
    "PatternSet",
    "RewriteFn",
    "Rewriter",
    "apply_patterns",
    "constant_array",
    "has_one_use",
    "has_side_effects",
    "is_dead",
    "producer",
    "splat_value",
]

RewriteFn = Callable[["Rewriter", Op], bool]


@dataclass(frozen=True)
class Pattern:
    """A rewrite function and the op names it applies to (empty: any op)."""

    op_names: tuple[str, ...]
    fn: RewriteFn
    name: str


class PatternSet:
    """An ordered collection of patterns, indexed by op name."""

    def __init__(self, patterns: Iterable[Pattern] = ()) -> None:
        self.patterns: list[Pattern] = list(patterns)
        self._index: dict[str, list[Pattern]] | None = None

    def add(self, op_names: str | Sequence[str], fn: RewriteFn,
            name: str | None = None) -> RewriteFn:
        names = (op_names,) if isinstance(op_names, str) else tuple(op_names)
        self.patterns.append(Pattern(names, fn, name or fn.__name__))
        self._index = None
        return fn

    def rule(self, *op_names: str, name: str | None = None) -> Callable[[RewriteFn], RewriteFn]:
        """Decorator: register ``fn`` for ops named ``op_names`` (none: every op)."""
        def decorate(fn: RewriteFn) -> RewriteFn:
            return self.add(op_names, fn, name)
        return decorate

    def __add__(self, other: PatternSet) -> PatternSet:
        return PatternSet(self.patterns + other.patterns)

    def __len__(self) -> int:
        return len(self.patterns)

    def for_op(self, name: str) -> list[Pattern]:
        if self._index is None:
            self._index = {}
        found = self._index.get(name)
        if found is None:
            found = [p for p in self.patterns if not p.op_names or name in p.op_names]
            self._index[name] = found
        return found


# --------------------------------------------------------------------------- matching helpers


def producer(value: Value, names: str | Sequence[str] | None = None) -> Op | None:
    """The op producing ``value`` if it is one of ``names`` (any op when None)."""
    op = value.owner if isinstance(value.owner, Op) else None
    if op is None or names is None:
        return op
    if isinstance(names, str):
        return op if op.name == names else None
    return op if op.name in names else None


def constant_array(value: Value) -> np.ndarray | None:
    """The data of ``value`` when a ``tensor.constant`` produces it."""
    op = producer(value, "tensor.constant")
    return op.attributes["value"].array() if op is not None else None


def splat_value(value: Value) -> float | None:
    """The one number every element of a constant ``value`` holds, or None."""
    arr = constant_array(value)
    if arr is None or arr.size == 0:
        return None
    first = arr.reshape(-1)[0]
    if arr.size > 1 and not np.all(arr == first):
        return None
    return float(first)


def has_one_use(value: Value) -> bool:
    return len(value.uses) == 1


_SIDE_EFFECTS: dict[str, bool] = {}


def has_side_effects(name: str) -> bool:
    known = _SIDE_EFFECTS.get(name)
    if known is None:
        try:
            known = get_opdef(name).side_effects
        except KeyError:
            known = True          # unknown ops are kept
        _SIDE_EFFECTS[name] = known
    return known


def is_dead(op: Op) -> bool:
    """True when ``op`` has no side effects and none of its results is used."""
    if has_side_effects(op.name):
        return False
    for r in op.results:
        if r.uses:
            return False
    return True


# --------------------------------------------------------------------------- the rewriter


class Rewriter:
    """Edits one function on behalf of patterns and records what changed.

    New ops go before ``insertion_point`` (the op being rewritten, in the
    greedy driver).  Every op created, modified, or whose operands lose a
    use is reported to ``on_touch`` (the driver's worklist).
    """

    def __init__(self, func: Function, on_touch: Callable[[Op], None] | None = None) -> None:
        self.func = func
        self.changed = False
        self.insertion_point: Op | None = func.return_op
        self.on_touch = on_touch
        self.loc: str | None = None

    def _touch(self, op: Op | None) -> None:
        if op is not None and self.on_touch is not None:
            self.on_touch(op)

    def _touch_users(self, value: Value) -> None:
        for use in value.uses:
            self._touch(use.op)

    # -- creating ops
    def create(self, name: str, operands: Sequence[Value] = (),
               attributes: Mapping[str, Any] | Attributes | None = None,
               result_types: Sequence[TensorType] | None = None, loc: str | None = None,
               before: Op | None = None) -> Op:
        """Create an op before ``before`` (default: the insertion point),
        inferring result types from its definition when not given."""
        attrs = attributes if isinstance(attributes, Attributes) else Attributes(attributes or {})
        if result_types is None:
            inferred = get_opdef(name).infer_types([v.type for v in operands], attrs)
            if inferred is None:
                raise ValueError(f"{name} cannot infer its result types; pass result_types")
            result_types = inferred
        op = Op(name, operands, result_types, attrs, loc if loc is not None else self.loc)
        self.func.insert_before(op, before if before is not None else self.insertion_point)
        self.changed = True
        self._touch(op)
        return op

    def op(self, name: str, *operands: Value, loc: str | None = None, **attributes: Any) -> Value:
        """Create a single-result op and return its result."""
        return self.create(name, operands, attributes, loc=loc).result

    def constant(self, array: Any, dtype: str | None = None) -> Value:
        attrs = {"value": DenseAttr.from_array(array, dtype)}
        return self.create("tensor.constant", (), attrs).result

    # -- changing ops
    def replace_all_uses(self, old: Value, new: Value) -> None:
        if old is new:
            return
        users = [u.op for u in old.uses]
        old.replace_all_uses_with(new)
        for user in users:
            self._touch(user)
        self._touch(producer(new))
        self.changed = True

    def replace_op(self, op: Op, new: Value | Sequence[Value]) -> None:
        """Replace every use of ``op``'s results by ``new`` and erase ``op``."""
        values = [new] if isinstance(new, Value) else list(new)
        if len(values) != len(op.results):
            raise ValueError(f"replacing {op.name} needs {len(op.results)} value(s), "
                             f"got {len(values)}")
        for old, value in zip(op.results, values):
            if old.type.dense() != value.type.dense():
                raise ValueError(f"replacing a result of {op.name} of type {old.type} by a "
                                 f"value of type {value.type}")
            self.replace_all_uses(old, value)
        self.erase_op(op)

    def erase_op(self, op: Op) -> None:
        """Erase ``op`` (its results must be unused); its operands' producers
        go back on the worklist, since they may now be dead."""
        operands = list(op.operands)
        if op is self.insertion_point:
            self.insertion_point = op.next
        op.erase()
        for v in operands:
            self._touch(producer(v))
        self.changed = True

    def set_operand(self, op: Op, index: int, value: Value) -> None:
        old = op.operands[index]
        op.set_operand(index, value)
        self._touch(op)
        self._touch(producer(old))
        self.changed = True

    def set_attr(self, op: Op, key: str, value: Any) -> None:
        op.set_attr(key, value)
        self._touch(op)
        self.changed = True

    def modified(self, op: Op) -> None:
        """Tell the rewriter ``op`` was changed in place by other means."""
        self._touch(op)
        self.changed = True


# --------------------------------------------------------------------------- the greedy driver


class RewriteDidNotConverge(RuntimeError):
    """The greedy driver hit its rewrite limit (patterns that undo each other)."""


def apply_patterns(target: Module | Function, patterns: PatternSet, *, erase_dead: bool = True,
                   max_rewrites_per_op: int = 20) -> bool:
    """Apply ``patterns`` greedily to every function of ``target`` until none
    matches; return whether anything changed.

    The worklist starts with every op in program order; an op a pattern
    creates, modifies or makes the user of a replaced value is visited again.
    With ``erase_dead`` ops without side effects whose results are unused are
    erased as they are met.  The number of rewrites is bounded
    (``max_rewrites_per_op`` times the number of ops) so patterns that undo
    each other fail loudly instead of looping.
    """
    funcs = list(target.functions.values()) if isinstance(target, Module) else [target]
    changed = False
    for func in funcs:
        changed |= _apply_to_function(func, patterns, erase_dead, max_rewrites_per_op)
    return changed


def _apply_to_function(func: Function, patterns: PatternSet, erase_dead: bool,
                       max_rewrites_per_op: int) -> bool:
    worklist: list[Op] = []
    queued: set[int] = set()

    def push(op: Op) -> None:
        if id(op) not in queued:
            queued.add(id(op))
            worklist.append(op)

    for op in reversed(func.ops):
        push(op)
    rewriter = Rewriter(func, push)
    budget = max_rewrites_per_op * max(len(func), 1) + 1000
    last_pattern = ""
    while worklist:
        op = worklist.pop()
        queued.discard(id(op))
        if op.parent is not func:
            continue                      # erased meanwhile
        if erase_dead and op.results and is_dead(op):
            rewriter.erase_op(op)
            continue
        for pattern in patterns.for_op(op.name):
            rewriter.insertion_point = op
            rewriter.loc = op.loc
            if pattern.fn(rewriter, op):
                rewriter.changed = True
                budget -= 1
                last_pattern = pattern.name
                if op.parent is func:
                    push(op)
                break
        if budget < 0:
            raise RewriteDidNotConverge(
                f"pattern rewriting of @{func.name} did not converge (last pattern applied: "
                f"{last_pattern}); some patterns undo each other")
    rewriter.loc = None
    return rewriter.changed
