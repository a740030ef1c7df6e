"""Pattern rewriting: declarative patterns (tinygrad's ``PatternMatcher``,
MLIR's DRR), a :class:`Rewriter` that edits the IR and tracks changes, and a
greedy driver that applies patterns until nothing matches (MLIR's greedy
rewrite driver, kept small).

Declarative patterns
====================

A pattern describes the op to match and, nested, the ops producing its
operands; a replacement builder receives the :class:`Match` (the bound names
as attributes) and returns the value that replaces the matched op::

    x = Var("x")
    patterns = PatternSet()
    patterns.add(OpPattern("arith.neg", OpPattern("arith.neg", x)), lambda m: m.x)
    patterns.add(OpPattern("arith.mul", x, Constant(1.0)), lambda m: m.x)
    changed = apply_patterns(module, patterns)

The pieces (each matches a :class:`~transcode_ir.core.Value`):

* ``OpPattern(names, *operands, trait=, attrs=, name=, one_use=, commutative=)``:
  a value produced by an op named ``names`` (a name or a tuple of names;
  None: any op) or having the op trait ``trait``, whose operands match the
  nested patterns in order (a trailing ``...`` accepts more operands; with
  ``commutative=True`` two operands may match in either order) and whose
  attributes pass ``attrs`` (``{"perm": (1, 0)}`` compares, a callable is a
  predicate on the value, with the op definition's default for an absent
  attribute).  ``name`` binds the *op*.
* ``Var(name, where=, one_use=)``: any value, bound to ``name``; ``where``
  is a predicate on the value.  A name bound twice must be the same value
  (``OpPattern("arith.mul", x, x)`` is a square).
* ``Constant(value, name=, scalar=, rel_tol=)``: a value a
  ``tensor.constant`` produces; with ``value``, every element equals it
  (within ``rel_tol``); ``scalar=True`` also asks for one element.
* ``OneOf(*patterns)``: the first alternative that matches.

``one_use=True`` asks the matched value to have exactly one use.  The rule
may carry a predicate over the whole match (``where=lambda m: ...``), run on
the first structural match (a commutative op's given operand order first);
when it declines, other matchings are not tried.  The
builder returns a value (or a list, one per result) to replace the matched
op with; ``None`` to decline; ``True`` when it edited the IR itself through
``m.rw`` (``m.set_operands(...)`` rewires the matched op in place).  A
replacement by an *existing* value of a different type (shape, element
type) is declined rather than applied: ``x + 0`` with a broadcasting zero
stays, which is what every identity rule wants.  ``m.op(name, *operands,
**attributes)`` creates an op before the matched one (types inferred).

Function patterns
=================

Rules that do not fit one line are functions ``(rewriter, op) -> bool``
registered for op names, returning True when they rewrote the op.  They may
only edit the IR through the rewriter, which inserts new ops before the op
being rewritten and puts every op it touches back on the worklist::

    @patterns.rule("arith.mul")
    def raise_gelu(rw: Rewriter, op: Op) -> bool:
        ...

Both kinds live in one :class:`PatternSet`, are tried in the order they were
added, and sets combine with ``+``.  The driver also erases ops that have
become dead (no side effects, no uses), as MLIR's does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from transcode_ir.core import Attributes, DenseAttr, Function, Module, Op, Value
from transcode_ir.opdefs import get_opdef
from transcode_ir.types import TensorType

__all__ = [
    "Constant",
    "Match",
    "OneOf",
    "OpPattern",
    "Pattern",
    "PatternSet",
    "RewriteFn",
    "Rewriter",
    "ValuePattern",
    "Var",
    "apply_patterns",
    "constant_array",
    "has_one_use",
    "has_side_effects",
    "has_trait",
    "is_dead",
    "producer",
    "splat_value",
]

RewriteFn = Callable[["Rewriter", Op], bool]


@dataclass(frozen=True)
class Pattern:
    """A rewrite function and the ops it applies to: those named in
    ``op_names`` or having ``trait`` (neither: any op)."""

    op_names: tuple[str, ...]
    fn: RewriteFn
    name: str
    trait: Any = None

    def applies_to(self, op_name: str) -> bool:
        if self.trait is not None and not has_trait(op_name, self.trait):
            return False
        return not self.op_names or op_name in self.op_names


class PatternSet:
    """An ordered collection of patterns, indexed by op name."""

    def __init__(self, patterns: Iterable[Pattern] = ()) -> None:
        self.patterns: list[Pattern] = list(patterns)
        self._index: dict[str, list[Pattern]] | None = None

    def add(self, what: OpPattern | str | Sequence[str], build: Callable[..., Any],
            name: str | None = None, *, where: Callable[[Match], bool] | None = None) -> Any:
        """Add a rule: ``add(op_pattern, build, where=...)`` (declarative: ``build(match)``
        returns the replacement) or ``add(op_names, fn)`` (a function pattern)."""
        if isinstance(what, OpPattern):
            fn = _declarative(what, build, where)
            self.patterns.append(Pattern(what.names, fn, name or _rule_name(what, build),
                                         what.trait))
        else:
            if where is not None:
                raise TypeError("where= is for declarative patterns (an OpPattern)")
            names = (what,) if isinstance(what, str) else tuple(what)
            self.patterns.append(Pattern(names, build, name or build.__name__))
        self._index = None
        return build

    def rule(self, *what: Any, name: str | None = None,
             where: Callable[[Match], bool] | None = None) -> Callable[[Any], Any]:
        """Decorator: ``@rule("arith.mul")`` registers a function pattern for ops of those
        names (none: every op); ``@rule(OpPattern(...))`` registers the decorated function
        as the replacement builder of a declarative pattern."""
        def decorate(fn: Any) -> Any:
            if len(what) == 1 and isinstance(what[0], OpPattern):
                return self.add(what[0], fn, name or fn.__name__, where=where)
            return self.add(what, fn, name)
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
            found = [p for p in self.patterns if p.applies_to(name)]
            self._index[name] = found
        return found


# --------------------------------------------------------------------------- declarative patterns


def has_trait(op_name: str, trait: Any) -> bool:
    """Whether the op definition of ``op_name`` declares ``trait`` (a
    :class:`transcode_ir.opdefs.Trait` subclass); False for unknown ops."""
    try:
        opdef = get_opdef(op_name)
    except KeyError:
        return False
    return opdef.has_trait(trait)


class Match:
    """What a declarative pattern bound, handed to the rule's ``where`` and builder.

    ``m.root`` is the matched op, ``m.rw`` the rewriter; every name a pattern
    bound is an attribute (``m.x``: a value, ``m.inner``: an op bound by
    ``OpPattern(..., name="inner")``).
    """

    def __init__(self, rw: Rewriter, root: Op) -> None:
        self.rw = rw
        self.root = root
        self.bindings: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["bindings"][name]
        except KeyError:
            raise AttributeError(f"the pattern binds no {name!r}") from None

    def bind(self, name: str | None, obj: Any) -> bool:
        """Bind ``name`` to ``obj``; False when it is bound to something else already."""
        if name is None:
            return True
        bound = self.bindings.get(name)
        if bound is None:
            self.bindings[name] = obj
            return True
        return bound is obj

    def array(self, name: str) -> np.ndarray:
        """The data of the constant bound to ``name``."""
        data = constant_array(self.bindings[name])
        if data is None:
            raise ValueError(f"{name!r} is not bound to a constant")
        return data

    def op(self, name: str, *operands: Value, **attributes: Any) -> Value:
        """Create a single-result op before the matched one and return its result."""
        return self.rw.op(name, *operands, **attributes)

    def set_operands(self, *values: Value) -> bool:
        """Rewire the matched op's operands in place (same op, same attributes)."""
        for index, value in enumerate(values):
            if self.root.operands[index] is not value:
                self.rw.set_operand(self.root, index, value)
        return True


class ValuePattern:
    """Base of the declarative patterns: each matches one value."""

    def match(self, value: Value, m: Match) -> bool:
        raise NotImplementedError


class Var(ValuePattern):
    """Any value (satisfying ``where``), bound to ``name``."""

    def __init__(self, name: str | None = None, *, where: Callable[[Value], bool] | None = None,
                 one_use: bool = False) -> None:
        self.name, self.where, self.one_use = name, where, one_use

    def match(self, value: Value, m: Match) -> bool:
        if self.one_use and not has_one_use(value):
            return False
        if self.where is not None and not self.where(value):
            return False
        return m.bind(self.name, value)

    def __repr__(self) -> str:
        return self.name or "_"


class Constant(ValuePattern):
    """A value a ``tensor.constant`` produces; with ``value``, every element equals it."""

    def __init__(self, value: float | None = None, *, name: str | None = None,
                 scalar: bool = False, rel_tol: float = 0.0, one_use: bool = False) -> None:
        self.value, self.name, self.scalar = value, name, scalar
        self.rel_tol, self.one_use = rel_tol, one_use

    def match(self, value: Value, m: Match) -> bool:
        if producer(value, "tensor.constant") is None:
            return False
        if self.scalar and value.type.numel != 1:
            return False
        if self.one_use and not has_one_use(value):
            return False
        if self.value is not None:
            splat = splat_value(value)
            if splat is None:
                return False
            if self.rel_tol:
                if not math.isclose(splat, self.value, rel_tol=self.rel_tol):
                    return False
            elif splat != self.value:
                return False
        return m.bind(self.name, value)

    def __repr__(self) -> str:
        return "const" + ("" if self.value is None else f"({self.value:g})")


class OpPattern(ValuePattern):
    """A value produced by a matching op (or, at the root of a rule, the op itself)."""

    def __init__(self, names: str | Sequence[str] | None = None, *operands: Any,
                 trait: Any = None, attrs: Mapping[str, Any] | None = None,
                 name: str | None = None, one_use: bool = False,
                 commutative: bool = False) -> None:
        self.names: tuple[str, ...] = () if names is None else \
            ((names,) if isinstance(names, str) else tuple(names))
        self.variadic = bool(operands) and operands[-1] is Ellipsis
        self.operands: tuple[ValuePattern, ...] = tuple(
            operands[:-1] if self.variadic else operands)
        for operand in self.operands:
            if not isinstance(operand, ValuePattern):
                raise TypeError("an operand pattern must be an OpPattern, Var, Constant or OneOf, "
                                f"got {operand!r}")
        if commutative and len(self.operands) != 2:
            raise ValueError("commutative=True needs exactly two operand patterns")
        self.trait, self.attrs, self.name = trait, dict(attrs or {}), name
        self.one_use, self.commutative = one_use, commutative

    def match(self, value: Value, m: Match) -> bool:
        op = producer(value)
        if op is None or (self.one_use and not has_one_use(value)):
            return False
        return self.match_op(op, m)

    def match_op(self, op: Op, m: Match, kind_checked: bool = False) -> bool:
        """Match ``op`` itself (``kind_checked``: its name and trait are known to fit)."""
        if not kind_checked:
            if self.names and op.name not in self.names:
                return False
            if self.trait is not None and not has_trait(op.name, self.trait):
                return False
        for key, want in self.attrs.items():
            got = _attribute(op, key)
            if callable(want):
                if not want(got):
                    return False
            elif _normalised(got) != _normalised(want):
                return False
        if self.operands:
            n = len(op.operands)
            if n < len(self.operands) or (n > len(self.operands) and not self.variadic):
                return False
            if not self.commutative:
                # a failed match fails the whole rule (or a OneOf, which restores bindings)
                if not all(p.match(v, m) for p, v in zip(self.operands, op.operands)):
                    return False
            else:
                for order in ((0, 1), (1, 0)):
                    saved = dict(m.bindings)
                    if all(p.match(op.operands[i], m) for p, i in zip(self.operands, order)):
                        break
                    m.bindings = saved
                else:
                    return False
        return m.bind(self.name, op)

    def __repr__(self) -> str:
        head = "|".join(self.names) if self.names else (f"<{self.trait}>" if self.trait else "op")
        args = [repr(p) for p in self.operands] + (["..."] if self.variadic else [])
        return f"{head}({', '.join(args)})"


class OneOf(ValuePattern):
    """The first of ``alternatives`` that matches (its bindings, not the others')."""

    def __init__(self, *alternatives: ValuePattern) -> None:
        self.alternatives = alternatives

    def match(self, value: Value, m: Match) -> bool:
        for alternative in self.alternatives:
            saved = dict(m.bindings)
            if alternative.match(value, m):
                return True
            m.bindings = saved
        return False

    def __repr__(self) -> str:
        return " | ".join(repr(a) for a in self.alternatives)


def _attribute(op: Op, key: str) -> Any:
    """An attribute of ``op``, or its definition's default when absent (None when the
    op kind does not declare it)."""
    try:
        return op.attr(key)
    except KeyError:
        return None


def _normalised(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _rule_name(pattern: OpPattern, build: Callable[..., Any]) -> str:
    name = getattr(build, "__name__", "")
    return name if name and name != "<lambda>" else repr(pattern)


def _declarative(pattern: OpPattern, build: Callable[[Match], Any],
                 where: Callable[[Match], bool] | None) -> RewriteFn:
    """The function pattern that matches ``pattern`` and applies ``build``."""
    def rewrite(rw: Rewriter, op: Op) -> bool:
        m = Match(rw, op)
        # the driver offers only ops of the pattern's names or trait (PatternSet.for_op)
        if not pattern.match_op(op, m, kind_checked=True) or (where is not None and not where(m)):
            return False
        created = rw.created
        result = build(m)
        if result is None or result is False:
            return False
        if result is True:
            return True
        values = [result] if isinstance(result, Value) else list(result)
        if rw.created == created and (len(values) != len(op.results) or any(
                old.type.dense() != new.type.dense() for old, new in zip(op.results, values))):
            return False          # an existing value of another type: the rule declines
        rw.replace_op(op, values)
        return True
    return rewrite


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
        self.created = 0          # ops created so far

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
        self.created += 1
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
