"""The hardware DSL (``.hwdsl``): parse, check and print accelerators.

Reading a file happens in three steps, each with errors a user can act on:

1. **Syntax** (Lark, LALR(1), grammar in ``hwdsl.lark``): the text becomes a
   small syntax tree of entries with their ``line:col``.
2. **Settings**: each entry is checked against the schema below (known key,
   not given twice, a value of the right kind with a unit of the right
   dimension) and converted to a plain Python value in fixed units (Hz, bytes,
   bytes/s, nJ).  The result is a flat map ``("pe_array", "pes") -> 64``.
3. **Design**: the settings become an :class:`~backends.elector.design.Accelerator`
   (whose dataclasses check types and signs) that is then validated against
   the technology it names (:func:`~backends.elector.design.validate_design`).

Any problem in any step raises :class:`~transcode_ir.errors.ParseError` with
``file:line:col``, the source line with a caret under the place, and what is
accepted.  :func:`format_design` prints the normalised form (every default
written out), which parses back to an equal accelerator.

Design spaces (:mod:`backends.elector.space`) reuse steps 1 and 2: a choice set
``pes in {64, 128}`` becomes a parameter whose alternatives are settings.
"""

from __future__ import annotations

import difflib
import functools
import gc
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from backends.elector.design import (
    OPERAND_CLASSES,
    POWER_GATING_MODES,
    Accelerator,
    Buffer,
    DesignFieldError,
    LayerNormUnit,
    MainMemory,
    MappingDefaults,
    PEArray,
    PEBuffer,
    SoftmaxUnits,
    SparsityUnits,
    validate_design,
)
from backends.elector.technology import TechnologyError, load_technology
from transcode_ir.errors import ParseError, SourceLocation, UserError, caret_snippet

__all__ = [
    "BLOCK_SCHEMAS",
    "TOP_LEVEL_FIELDS",
    "UNITS",
    "FieldSpec",
    "BlockSpec",
    "register_block",
    "unregister_block",
    "format_design",
    "load_design",
    "parse_design",
]

Path_ = tuple[str, ...]
Location = tuple[int, int]

# =========================================================================== schema

#: Units accepted by each dimension, with their factor to the stored unit
#: (Hz, bytes, bytes/s, nJ, bits).  Decimal prefixes are powers of 1000 and
#: binary ones (KiB, MiB, GiB) powers of 1024.
UNITS: Mapping[str, Mapping[str, Fraction]] = {
    "frequency": {"Hz": Fraction(1), "kHz": Fraction(10**3), "MHz": Fraction(10**6),
                  "GHz": Fraction(10**9)},
    "size": {"B": Fraction(1), "byte": Fraction(1), "bytes": Fraction(1),
             "KiB": Fraction(2**10), "MiB": Fraction(2**20), "GiB": Fraction(2**30),
             "KB": Fraction(10**3), "MB": Fraction(10**6), "GB": Fraction(10**9)},
    "bandwidth": {"B/s": Fraction(1), "KB/s": Fraction(10**3), "MB/s": Fraction(10**6),
                  "GB/s": Fraction(10**9), "TB/s": Fraction(10**12),
                  "KiB/s": Fraction(2**10), "MiB/s": Fraction(2**20), "GiB/s": Fraction(2**30)},
    "energy": {"pJ": Fraction(1, 1000), "nJ": Fraction(1), "uJ": Fraction(1000)},
    "bits": {"bit": Fraction(1), "bits": Fraction(1)},
}

#: The units a printer prefers, largest first.
_PRINT_UNITS: Mapping[str, tuple[str, ...]] = {
    "frequency": ("GHz", "MHz", "kHz", "Hz"),
    "size": ("GiB", "MiB", "KiB", "GB", "MB", "KB", "bytes"),
    "bandwidth": ("TB/s", "GB/s", "MB/s", "KB/s", "B/s"),
    "energy": ("nJ", "pJ"),
    "bits": ("bits",),
}

# Integral factors as ints, so that whole numbers stay ints (fast, exact).
UNITS = {dimension: {unit: int(factor) if factor.denominator == 1 else factor
                     for unit, factor in units.items()}
         for dimension, units in UNITS.items()}

_UNIT_DIMENSION = {unit: dimension for dimension, units in UNITS.items() for unit in units}

_KIND_DESCRIPTIONS = {
    "count": "a whole number",
    "frequency": "a frequency (" + ", ".join(UNITS["frequency"]) + ")",
    "size": "a size (" + ", ".join(UNITS["size"]) + ")",
    "bandwidth": "a bandwidth (" + ", ".join(UNITS["bandwidth"]) + ")",
    "energy": "an energy (" + ", ".join(UNITS["energy"]) + ")",
    "bits": "a number of bits (e.g. 20 bits)",
    "word": "a word",
    "switch": "on or off",
    "config": "a banks-ranks-channels configuration such as 32-2-1",
    "dims": "tile dimensions b x x x y such as 1x16x16",
    "text": 'a quoted string such as "14nm"',
    "operands": "a list of operand classes such as [weight] or [weight, activation] "
                "(accepted: activation, weight, mask)",
}


@dataclass(frozen=True)
class FieldSpec:
    """One key of the DSL: what kind of value it takes and its default.

    ``default`` is ``None`` for required keys and for keys whose default is
    not a constant (a softmax tile follows the mapping tile; a bandwidth
    override falls back to the technology); ``required`` says which.
    """

    kind: str
    help: str
    required: bool = False
    default: Any = None
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class BlockSpec:
    """A block of the DSL (``pe_array { ... }``) and its keys."""

    help: str
    fields: Mapping[str, FieldSpec]
    required: bool = True


def _buffer_block(kind: str) -> BlockSpec:
    return BlockSpec(
        help=f"the {kind} buffer (on-chip storage level)",
        fields={
            "size": FieldSpec("size", "capacity", required=True),
            "block": FieldSpec("size", "block (access) size", default=64),
            "bandwidth": FieldSpec("bandwidth", "bandwidth of the whole buffer (split evenly "
                                   "over its banks); default: banks x the technology's port"),
            "banks": FieldSpec("count", "banks (independent ports); default: the technology's "
                               "banking rule, ceil(size / bank size)"),
            "bank_bandwidth": FieldSpec("bandwidth", "bandwidth of one bank's port; default: "
                                        "the technology's port figure"),
            "multicast": FieldSpec("switch", "one read can feed every PE and lane that needs "
                                   "the same tile", default=True),
        },
    )


#: Keys at the top level of an ``accelerator`` block.
TOP_LEVEL_FIELDS: Mapping[str, FieldSpec] = {
    "description": FieldSpec("text", "one line saying what the design is", default=""),
    "technology": FieldSpec("text", "built-in technology name or JSON file path",
                            default="14nm"),
    "clock": FieldSpec("frequency", "clock frequency", required=True),
    "data_width": FieldSpec("bits", "fixed-point data width", default=20),
    "power_gating": FieldSpec("word", "none (every module leaks all run) or idle (idle modules "
                              "are gated)", default="none", words=POWER_GATING_MODES),
}

#: Blocks of an ``accelerator``, in the order the printer writes them.
BLOCK_SCHEMAS: Mapping[str, BlockSpec] = {
    "pe_array": BlockSpec("the processing elements", {
        "pes": FieldSpec("count", "processing elements", required=True),
        "lanes": FieldSpec("count", "MAC lanes per PE", required=True),
        "macs_per_lane": FieldSpec("count", "multipliers per MAC lane", required=True),
        "nonlinearity": FieldSpec("word", "non-linearity of each lane", default="gelu",
                                  words=("gelu", "relu")),
        "fifo_depth": FieldSpec("count", "depth of each lane's FIFO", default=32),
    }),
    "softmax": BlockSpec("the softmax modules of each PE", {
        "per_pe": FieldSpec("count", "softmax modules per PE", required=True),
        "tile": FieldSpec("count", "tile size; default: the mapping tile's x"),
    }),
    "layer_norm": BlockSpec("the layer-norm module of each PE", {
        "tile": FieldSpec("count", "tile size; default: the mapping tile's x"),
    }, required=False),
    "sparsity": BlockSpec("the sparsity units of each MAC lane", {
        "pre": FieldSpec("switch", "pre-sparsity unit", default=True),
        "post": FieldSpec("switch", "post-sparsity unit", default=True),
        "stochastic_rounding": FieldSpec("switch", "stochastic-rounding unit (training)",
                                         default=False),
    }, required=False),
    "activation_buffer": _buffer_block("activation"),
    "weight_buffer": _buffer_block("weight"),
    "mask_buffer": _buffer_block("mask"),
    "pe_buffer": BlockSpec("an optional buffer in every PE (a per-PE storage level) that "
                           "keeps the operands it holds for the PE's lanes", {
        "size": FieldSpec("size", "capacity of one PE's buffer", required=True),
        "holds": FieldSpec("operands", "the operand classes it holds, e.g. [weight]",
                           required=True),
        "block": FieldSpec("size", "block (access) size", default=64),
        "banks": FieldSpec("count", "banks (independent ports) of one PE's buffer; default: "
                           "the technology's banking rule, ceil(size / bank size)"),
        "bank_bandwidth": FieldSpec("bandwidth", "bandwidth of one bank's port; default: "
                                    "the technology's port figure"),
        "multicast": FieldSpec("switch", "one read can feed every lane of the PE that needs "
                               "the same tile", default=True),
    }, required=False),
    "main_memory": BlockSpec("the off-chip main memory", {
        "type": FieldSpec("word", "memory type", required=True, words=("dram", "rram", "hbm")),
        "config": FieldSpec("config", "banks-ranks-channels", required=True),
        "bandwidth": FieldSpec("bandwidth", "bandwidth; default: the technology's"),
        "energy_per_access": FieldSpec("energy", "energy per access; default: the technology's"),
    }),
    "mapping": BlockSpec("default mapping: matmul tile (b x x x y) and batch size", {
        "tiles": FieldSpec("dims", "default tile b x x x y", default=(1, 16, 16)),
        "batch": FieldSpec("count", "default batch size", default=1),
    }, required=False),
}

#: The blocks the DSL itself defines; others come from registered module kinds.
BUILTIN_BLOCKS: frozenset[str] = frozenset(BLOCK_SCHEMAS)


def register_block(name: str, help_text: str, fields: Mapping[str, FieldSpec]) -> None:
    """Add an optional block (a registered module kind's settings,
    :func:`backends.elector.kinds.register_module_kind`).  Its values reach
    the design as :meth:`Accelerator.block_settings` and print back."""
    if not name.isidentifier() or name in TOP_LEVEL_FIELDS:
        raise ValueError(f"block name {name!r} must be a word that is not a top-level key")
    if name in BLOCK_SCHEMAS:
        raise ValueError(f"the DSL already has a block {name!r}")
    for key, spec in fields.items():
        if not isinstance(spec, FieldSpec) or spec.required:
            raise ValueError(f"{name}.{key}: give a FieldSpec with a default "
                             "(a registered block is optional, so are its keys)")
    BLOCK_SCHEMAS[name] = BlockSpec(help_text, dict(fields), required=False)  # type: ignore[index]


def unregister_block(name: str) -> None:
    """Remove a block added by :func:`register_block`."""
    if name in BUILTIN_BLOCKS or name not in BLOCK_SCHEMAS:
        raise ValueError(f"{name!r} is not a registered block")
    del BLOCK_SCHEMAS[name]  # type: ignore[attr-defined]


HEADERS = ("accelerator", "design_space")

# =========================================================================== syntax


@dataclass(slots=True)
class SyntaxValue:
    """A value as written: ``kind`` is number, string, word, config, dims or
    list (``[weight, activation]``: ``items`` holds each word with its
    ``(text, line, column)``)."""

    kind: str
    text: str
    line: int
    column: int
    unit: str | None = None
    unit_line: int = 0
    unit_column: int = 0
    items: tuple[tuple[str, int, int], ...] = ()


@dataclass(slots=True)
class SyntaxBlockAlternative:
    """``{ entries }`` inside a choice set."""

    entries: list[SyntaxEntry]
    line: int
    column: int


@dataclass(slots=True)
class SyntaxEntry:
    """``key = value``, ``key in {...}`` or ``key { entries }``."""

    key: str
    line: int
    column: int
    form: str  # "assign", "choice" or "block"
    value: SyntaxValue | None = None
    alternatives: list[SyntaxValue | SyntaxBlockAlternative] = field(default_factory=list)
    entries: list[SyntaxEntry] = field(default_factory=list)


@dataclass(slots=True)
class SyntaxFile:
    header: str
    header_line: int
    header_column: int
    name: str
    name_line: int
    name_column: int
    entries: list[SyntaxEntry]


def _unquote(text: str) -> str:
    body = text[1:-1]
    if "\\" not in body:
        return body
    return re.sub(r"\\(.)", lambda match: match.group(1), body)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --------------------------------------------------------------------------- reductions
#
# One builder per named rule (or alias) of hwdsl.lark.  Each takes the rule's
# children (tokens and already-built values) and returns a syntax node.  The
# same builders serve the fast parser below and Lark's own parser (used by the
# tests as a reference), so the two cannot drift apart.


def _build_start(children: list) -> SyntaxFile:
    header, name = children[0], children[1]
    return SyntaxFile(header.value, header.line, header.column, _unquote(name.value),
                      name.line, name.column, list(children[3:-1]))


def _build_assignment(children: list) -> SyntaxEntry:
    key, _, value = children
    return SyntaxEntry(key.value, key.line, key.column, "assign", value=value)


def _build_choice_set(children: list) -> SyntaxEntry:
    key = children[0]
    alternatives = [child for child in children[3:-1]
                    if isinstance(child, (SyntaxValue, SyntaxBlockAlternative))]
    return SyntaxEntry(key.value, key.line, key.column, "choice", alternatives=alternatives)


def _build_block(children: list) -> SyntaxEntry:
    key = children[0]
    return SyntaxEntry(key.value, key.line, key.column, "block", entries=list(children[2:-1]))


def _build_alternative_block(children: list) -> SyntaxBlockAlternative:
    brace = children[0]
    return SyntaxBlockAlternative(list(children[1:-1]), brace.line, brace.column)


def _build_number(children: list) -> SyntaxValue:
    token = children[0]
    value = SyntaxValue("number", token.value, token.line, token.column)
    if len(children) > 1:
        unit = children[1]
        value.unit, value.unit_line, value.unit_column = unit.value, unit.line, unit.column
    return value


def _simple_value(kind: str) -> Callable[[list], SyntaxValue]:
    def build(children: list) -> SyntaxValue:
        token = children[0]
        return SyntaxValue(kind, token.value, token.line, token.column)
    return build


def _build_word_list(children: list) -> SyntaxValue:
    bracket = children[0]
    items = tuple((token.value, token.line, token.column) for token in children
                  if token.type == "WORD")
    text = "[" + ", ".join(item[0] for item in items) + "]"
    return SyntaxValue("list", text, bracket.line, bracket.column, items=items)


_BUILDERS: Mapping[str, Callable[[list], Any]] = {
    "start": _build_start,
    "assignment": _build_assignment,
    "choice_set": _build_choice_set,
    "block": _build_block,
    "alternative_block": _build_alternative_block,
    "number": _build_number,
    "string": _simple_value("string"),
    "word": _simple_value("word"),
    "config": _simple_value("config"),
    "dims": _simple_value("dims"),
    "word_list": _build_word_list,
}


# --------------------------------------------------------------------------- the parser
#
# The grammar in hwdsl.lark is the definition of the language: Lark builds the
# LALR(1) tables and the terminals from it.  Running the tables is done here,
# in a loop written for this grammar, because Lark's general driver and
# contextual lexer cost about 3x more per design (see bench/bench_hwdsl.py).


class _Token:
    """A lexed token: terminal name, text, 1-based line and column."""

    __slots__ = ("type", "value", "line", "column")

    def __init__(self, kind: str, value: str, line: int, column: int) -> None:
        self.type, self.value, self.line, self.column = kind, value, line, column


class _Splice(list):
    """Children of a rule Lark generated for ``x*`` or an inlined ``_rule``;
    spliced into the parent's children."""


class _SyntaxError(Exception):
    """Internal: what went wrong at line:column; parse_syntax formats it."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line, self.column, self.message = line, column, message


@dataclass(frozen=True)
class _Rule:
    """What the parser needs of one grammar rule (from Lark, or the table file)."""

    origin: str
    alias: str | None
    expand1: bool
    expansion: tuple[tuple[bool, str], ...]   # (is a terminal, name) per symbol


#: The LALR tables of hwdsl.lark as data, so that reading a design does not
#: import Lark and build them (about 0.15 s of CPU per process).  Used only
#: when its ``grammar_sha256`` matches the grammar; otherwise the tables are
#: built with Lark as before.  tests/elector/test_hwdsl_tables.py checks that
#: the file is current; regenerate it with
#: ``python -c 'from backends.elector.hwdsl import write_tables; write_tables()'``.
TABLES_FILE = Path(__file__).with_name("hwdsl_tables.json")
_GRAMMAR_FILE = Path(__file__).with_name("hwdsl.lark")


def _grammar_digest(grammar: str) -> str:
    import hashlib

    return hashlib.sha256(grammar.encode("utf-8")).hexdigest()


def build_table_data() -> dict[str, Any]:
    """The LALR tables and token patterns of hwdsl.lark, built with Lark, as
    JSON-able data (what :data:`TABLES_FILE` holds)."""
    from lark import Lark
    from lark.parsers.lalr_analysis import Shift

    grammar = _GRAMMAR_FILE.read_text(encoding="utf-8")
    lark = Lark(grammar, parser="lalr", lexer="basic")
    table = lark.parser.parser.parser.parse_table
    # actions[state][terminal] is the next state (an int: shift) or
    # ["reduce", rule index]; goto[state][rule name] is the state after a
    # reduction.
    rules: list[dict[str, Any]] = []
    index: dict[Any, int] = {}
    actions: dict[str, dict[str, Any]] = {}
    goto: dict[str, dict[str, int]] = {}
    for state, table_actions in table.states.items():
        state_actions, state_goto = {}, {}
        for symbol, (action, argument) in table_actions.items():
            symbol = str(symbol)
            if action is Shift:
                target = state_actions if symbol.isupper() or symbol == "$END" else state_goto
                target[symbol] = int(argument)
            else:
                if argument not in index:
                    index[argument] = len(rules)
                    rules.append({
                        "origin": str(argument.origin.name),
                        "alias": None if argument.alias is None else str(argument.alias),
                        "expand1": bool(argument.options.expand1),
                        "expansion": [[bool(symbol.is_term), str(symbol.name)]
                                      for symbol in argument.expansion]})
                state_actions[symbol] = ["reduce", index[argument]]
        actions[str(state)], goto[str(state)] = state_actions, state_goto
    ignored = set(lark.lexer_conf.ignore)
    contextual = {"HEADER", "IN"}  # decided by position, in _Tables.tokens
    terminals = sorted((terminal for terminal in lark.lexer_conf.terminals
                        if terminal.name not in ignored | contextual),
                       key=lambda terminal: -terminal.priority)
    skip = "|".join(terminal.pattern.to_regexp() for terminal in lark.lexer_conf.terminals
                    if terminal.name in ignored)
    # One match = any skipped text (whitespace, comments) then one token.
    tokens = "|".join(f"(?P<{terminal.name}>{terminal.pattern.to_regexp()})"
                      for terminal in terminals)
    # The skipped text is matched inside a lookahead and then consumed by a
    # back-reference: that makes it atomic, so a failing token never
    # backtracks into a comment to find a "token" there.
    skipped = f"(?=(?P<_SKIP>(?:{skip})*))(?P=_SKIP)"
    return {"grammar_sha256": _grammar_digest(grammar), "rules": rules, "actions": actions,
            "goto": goto, "start_state": int(table.start_states["start"]),
            "end_state": int(table.end_states["start"]),
            "pattern": f"{skipped}(?:{tokens})", "skip": skipped}


def write_tables(path: Path = TABLES_FILE) -> None:
    """Write :data:`TABLES_FILE` from the grammar (after editing hwdsl.lark)."""
    import json

    path.write_text(json.dumps(build_table_data(), indent=1, sort_keys=True) + "\n",
                    encoding="utf-8")


def _table_data() -> dict[str, Any]:
    """The shipped tables when they are those of the current grammar, else built."""
    import json

    try:
        data = json.loads(TABLES_FILE.read_text(encoding="utf-8"))
        current = data.get("grammar_sha256") == _grammar_digest(
            _GRAMMAR_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError, AttributeError):
        current = False
    return data if current else build_table_data()


class _Tables:
    """The LALR tables and terminals of hwdsl.lark, loaded once."""

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        data = _table_data() if data is None else data
        rules = [_Rule(rule["origin"], rule["alias"], rule["expand1"],
                       tuple((bool(term), name) for term, name in rule["expansion"]))
                 for rule in data["rules"]]
        reductions = [(len(rule.expansion), rule.origin, self._reducer(rule)) for rule in rules]
        self.actions: dict[int, dict[str, Any]] = {}
        self.goto: dict[int, dict[str, int]] = {}
        for state, state_actions in data["actions"].items():
            self.actions[int(state)] = {
                symbol: reductions[action[1]] if isinstance(action, list) else action
                for symbol, action in state_actions.items()}
        for state, state_goto in data["goto"].items():
            self.goto[int(state)] = dict(state_goto)
        self.start_state = data["start_state"]
        self.end_state = data["end_state"]
        self.pattern = re.compile(data["pattern"])
        self.skip = re.compile(data["skip"])

    @staticmethod
    def _reducer(rule: _Rule) -> Callable[[list], Any]:
        """The reduction of one grammar rule, with Lark's tree-shaping rules:
        rules Lark generated (``x*`` lists, named ``_...``) are spliced into
        their parent, ``?rule`` with one child is that child, and every other
        rule goes to its builder."""
        name = rule.alias or rule.origin
        builder = _BUILDERS.get(name)
        expand_single = rule.expand1
        inline = rule.origin.startswith("_") and rule.alias is None
        spliced = frozenset(position for position, (is_term, symbol) in enumerate(rule.expansion)
                            if not is_term and symbol.startswith("_"))
        if not inline and builder is None and not expand_single:
            raise AssertionError(f"hwdsl.lark rule {name!r} has no builder")

        def reduce(children: list) -> Any:
            if inline and spliced == {0} and type(children[0]) is _Splice:
                # A left-recursive list rule (``x*``: ``list -> list x``):
                # grow the list in place.  Copying it at every entry made a
                # block of n entries cost n^2/2 (issue 13: 100k entries took
                # minutes); the old list is off the stack, nobody else sees it.
                flat = children[0]
                flat.extend(children[1:])
                return flat
            if spliced:
                flat = []
                for position, child in enumerate(children):
                    if position in spliced:
                        flat.extend(child)
                    else:
                        flat.append(child)
                children = flat
            if inline:
                return _Splice(children)
            if expand_single and len(children) == 1:
                return children[0]
            return builder(children)

        return reduce

    def tokens(self, text: str) -> list[_Token]:
        """Split ``text`` into tokens.  The first word is the HEADER and
        ``in`` right after a KEY is IN; everything else is the grammar's."""
        tokens: list[_Token] = []
        line, line_start, position = 1, 0, 0
        previous = None
        count, rfind, match = text.count, text.rfind, self.pattern.match
        while True:
            found = match(text, position)  # anchored: garbage is found in linear time
            if found is None:
                break
            kind = found.lastgroup
            start = found.start(kind)
            newlines = count("\n", position, start)
            if newlines:
                line += newlines
                line_start = rfind("\n", position, start) + 1
            value = found.group(kind)
            position = found.end()
            if previous is None and value in HEADERS:
                kind = "HEADER"
            elif previous == "KEY" and value == "in":
                kind = "IN"
            previous = kind
            tokens.append(_Token(kind, value, line, start - line_start + 1))
        end = self.skip.match(text, position).end()
        if end != len(text):
            newlines = count("\n", position, end)
            if newlines:
                line += newlines
                line_start = rfind("\n", position, end) + 1
            found = text[end]
            message = f"unexpected character {found!r}"
            if found == '"':
                message = "unterminated string (a string ends with \" on the same line)"
            raise _SyntaxError(line, end - line_start + 1, message)
        return tokens

    def parse(self, text: str) -> SyntaxFile:
        actions_of, goto_of = self.actions, self.goto
        state_stack = [self.start_state]
        value_stack: list = []
        for token in self.tokens(text):
            kind = token.type
            while True:
                actions = actions_of[state_stack[-1]]
                step = actions.get(kind)
                if type(step) is int:  # shift
                    state_stack.append(step)
                    value_stack.append(token)
                    break
                if step is None:
                    raise _unexpected(token, actions)
                size, origin, reduce = step
                if size:
                    children = value_stack[-size:]
                    del state_stack[-size:]
                    del value_stack[-size:]
                else:
                    children = []
                value_stack.append(reduce(children))
                state_stack.append(goto_of[state_stack[-1]][origin])
        while True:  # end of input: reduce until accepted
            actions = actions_of[state_stack[-1]]
            step = actions.get("$END")
            if step is None or type(step) is int:
                line, column = _end_location(text)
                raise _SyntaxError(line, column, "unexpected end of file; expected "
                                   f"{_expected(_terminals(actions))} (is a '}}' missing?)")
            size, origin, reduce = step
            if size:
                children = value_stack[-size:]
                del state_stack[-size:]
                del value_stack[-size:]
            else:
                children = []
            value = reduce(children)
            goto = goto_of[state_stack[-1]][origin]
            if goto == self.end_state:
                return value
            state_stack.append(goto)
            value_stack.append(value)


def _terminals(actions: Mapping[str, Any]) -> list[str]:
    return [name for name in actions if name.isupper() and name != "$END"]


def _unexpected(token: _Token, actions: Mapping[str, Any]) -> _SyntaxError:
    expected = _terminals(actions)
    value = token.value
    if token.type == "WORD" and "KEY" in expected:
        message = (f"{value!r} is not followed by '=', 'in' or '{{'; write "
                   f"`{value} = VALUE`, `{value} in {{...}}` or `{value} {{ ... }}`")
    elif token.type == "KEY" and "KEY" not in expected:
        message = (f"unexpected key {value!r}; expected {_expected(expected)}"
                   " (keys go inside the accelerator's braces)")
    elif token.type in _PUNCTUATION:
        message = f"unexpected {value!r}; expected {_expected(expected)}"
    else:
        shown = value if len(value) <= 40 else value[:37] + "..."
        message = (f"unexpected {_TERMINAL_NAMES.get(token.type, token.type)} {shown!r}; "
                   f"expected {_expected(expected)}")
    return _SyntaxError(token.line, token.column, message)


@functools.cache
def _tables() -> _Tables:
    return _Tables()


def lark_reference_parse(text: str) -> SyntaxFile:
    """Parse with Lark's own LALR driver and lexer and the same builders.

    Slower; used by the tests to check that the fast parser reads the
    grammar's language exactly as Lark does.
    """
    return _lark_reference_parser().parse(text)


@functools.cache
def _lark_reference_parser() -> Any:
    from lark import Lark, Transformer

    class Builders(Transformer):
        pass

    for name, builder in _BUILDERS.items():
        setattr(Builders, name, staticmethod(builder))
    grammar = Path(__file__).with_name("hwdsl.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", transformer=Builders())


_TERMINAL_NAMES = {
    "KEY": "a key", "WORD": "a word", "NUMBER": "a number", "STRING": "a quoted string",
    "CONFIG": "a memory configuration such as 32-2-1", "DIMS": "tiles such as 1x16x16",
    "EQUAL": "'='", "IN": "'in'", "LBRACE": "'{'", "RBRACE": "'}'", "COMMA": "','",
    "LSQB": "'['", "RSQB": "']'",
    "HEADER": "'accelerator' or 'design_space'", "$END": "the end of the file",
}

_PUNCTUATION = {"EQUAL", "IN", "LBRACE", "RBRACE", "COMMA", "LSQB", "RSQB"}

_ODD_LINE_BREAKS = re.compile("[\r\t\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def _snippet(text: str, line: int, column: int) -> str:
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        return ""
    source_line = _ODD_LINE_BREAKS.sub(" ", lines[line - 1])
    if len(source_line) > 200:  # keep messages readable on minified input
        start = max(0, column - 100)
        source_line = source_line[start:start + 200]
        column -= start
    return caret_snippet(source_line, 1, column)


def _error(filename: str, text: str, location: Location, message: str) -> ParseError:
    line, column = location
    return ParseError(message, SourceLocation(filename, line, column),
                      _snippet(text, line, column))


def _expected(names: Iterable[str]) -> str:
    described = sorted({_TERMINAL_NAMES.get(name, name) for name in names})
    if not described:
        # Only the end of input may follow (e.g. a stray '}' after the design).
        return "the end of the file"
    if len(described) == 1:
        return described[0]
    return ", ".join(described[:-1]) + " or " + described[-1]


def _end_location(text: str) -> Location:
    lines = text.split("\n")
    while len(lines) > 1 and not lines[-1].strip():
        lines.pop()
    return len(lines), len(lines[-1]) + 1


_LOOKS_LIKE_DSL = re.compile(r"(?:\s|#[^\n]*|//[^\n]*)*(?:accelerator|design_space)\b")


def parse_syntax(text: str, filename: str = "<string>") -> SyntaxFile:
    """Parse ``text`` into the syntax tree (step 1); no schema checks yet."""
    if not isinstance(text, str):
        raise UserError(f"{filename}: hardware description must be text, got {type(text).__name__}")
    tables = _tables()
    # The parse allocates a few objects per token and frees none: with the
    # cyclic collector on, a 1 MB file spent a third of its time in
    # collections that find nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return tables.parse(text)
    except _SyntaxError as err:
        if not _LOOKS_LIKE_DSL.match(text):
            # Not a hardware description at all (a binary, /etc/passwd, a
            # design JSON): say so, and do not quote the file's lines.
            raise ParseError("not a hardware description: the file does not begin with "
                             '`accelerator "NAME" {` or `design_space "NAME" {` (after '
                             "comments)", SourceLocation(filename, 1, 1)) from None
        raise _error(filename, text, (err.line, err.column), err.message) from None
    finally:
        if collecting:
            gc.enable()


# =========================================================================== settings

_NUMBER_SHAPE = re.compile(r"[+-]?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\Z")
_MAX_MAGNITUDE = 30  # numbers must lie within 1e-30 .. 1e30 (exponent guard)


class _SettingError(Exception):
    """Internal: a problem at a location; turned into a ParseError by the caller."""

    def __init__(self, location: Location, message: str) -> None:
        super().__init__(message)
        self.location = location
        self.message = message


_SMALLEST = Fraction(1, 10**_MAX_MAGNITUDE)


def _exact_number(value: SyntaxValue, key: str) -> int | Fraction:
    """The exact value of a number as written (an int when it has no point or
    exponent), refusing numbers so large or long that they cannot be meant."""
    text = value.text
    if text.isdigit() and len(text) <= _MAX_MAGNITUDE:
        return int(text)
    match = _NUMBER_SHAPE.match(text)
    exponent_text = match.group(3) if match else None
    digits = len(match.group(1) or "") + len(match.group(2) or "") if match else 0
    out_of_range = (match is None or digits > 40
                    or (exponent_text is not None
                        and (len(exponent_text) > 6
                             or abs(int(exponent_text)) > 2 * _MAX_MAGNITUDE)))
    if not out_of_range:
        number = Fraction(text)
        out_of_range = bool(number) and not _SMALLEST <= abs(number) <= 10**_MAX_MAGNITUDE
    if out_of_range:
        raise _SettingError((value.line, value.column),
                            f"{key}: number {text!r} is out of range "
                            f"(numbers must lie within 1e-{_MAX_MAGNITUDE} .. 1e{_MAX_MAGNITUDE})")
    return number


def _describe_syntax(value: SyntaxValue) -> str:
    if value.kind == "number":
        return f"the number {value.text}" + (f" {value.unit}" if value.unit else "")
    return {"string": "the string", "word": "the word", "config": "the configuration",
            "dims": "the tiles", "list": "the list"}[value.kind] + f" {value.text}"


def _convert(spec: FieldSpec, value: SyntaxValue, key: str) -> Any:
    """Convert one written value to its stored Python value, or raise _SettingError."""
    here = (value.line, value.column)
    kind = spec.kind
    wanted = _KIND_DESCRIPTIONS[kind]

    if kind in ("count", "frequency", "size", "bandwidth", "energy", "bits"):
        if value.kind != "number":
            raise _SettingError(here, f"{key} takes {wanted}; got {_describe_syntax(value)}")
        number = _exact_number(value, key)
        if kind == "count":
            if value.unit is not None:
                raise _SettingError((value.unit_line, value.unit_column),
                                    f"{key} is a plain count and takes no unit; "
                                    f"remove {value.unit!r}")
            scaled = number
        else:
            units = UNITS[kind]
            if value.unit is None:
                raise _SettingError(here, f"{key} needs a unit: {', '.join(units)}")
            if value.unit not in units:
                unit_here = (value.unit_line, value.unit_column)
                dimension = _UNIT_DIMENSION.get(value.unit)
                if dimension is not None:
                    raise _SettingError(unit_here,
                                        f"{key} takes {wanted}; {value.unit!r} is a "
                                        f"{dimension} unit")
                close = difflib.get_close_matches(value.unit, list(units), n=1, cutoff=0.5)
                close = close or [unit for unit in units if unit.lower() == value.unit.lower()]
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise _SettingError(unit_here, f"unknown unit {value.unit!r} for {key}{hint}; "
                                    f"accepted: {', '.join(units)}")
            scaled = number * units[value.unit]
        if scaled <= 0:
            raise _SettingError(here, f"{key} must be positive, got {value.text}"
                                + (f" {value.unit}" if value.unit else ""))
        if kind in ("count", "size", "bits"):
            if not isinstance(scaled, int) and scaled.denominator != 1:
                what = "a whole number of bytes" if kind == "size" else "a whole number"
                raise _SettingError(here, f"{key} must be {what}, got {value.text}"
                                    + (f" {value.unit}" if value.unit else ""))
            return int(scaled)
        return float(scaled)  # correctly rounded: int or Fraction to float

    if kind in ("word", "switch"):
        if value.kind != "word":
            raise _SettingError(here, f"{key} takes {wanted}; got {_describe_syntax(value)}")
        if kind == "switch":
            if value.text not in ("on", "off"):
                raise _SettingError(here, f"{key} takes on or off; got {value.text!r}")
            return value.text == "on"
        return value.text

    if kind == "text":
        if value.kind != "string":
            raise _SettingError(here, f"{key} takes {wanted}; got {_describe_syntax(value)}")
        return _unquote(value.text)

    if kind == "operands":
        return _convert_operands(value, key)

    if kind in ("config", "dims"):
        separator, parts_wanted = ("-", 3) if kind == "config" else ("x", 3)
        if value.kind != kind:
            raise _SettingError(here, f"{key} takes {wanted}; got {_describe_syntax(value)}")
        parts = value.text.split(separator)
        if len(parts) != parts_wanted or any(len(part) > 12 for part in parts):
            raise _SettingError(here, f"{key} takes {wanted} (three numbers); got {value.text}")
        numbers = tuple(int(part) for part in parts)
        if min(numbers) <= 0:
            raise _SettingError(here, f"{key}: every part must be positive, got {value.text}")
        return numbers

    raise AssertionError(f"unknown field kind {kind!r}")  # schema bug, not user input


def _convert_operands(value: SyntaxValue, key: str) -> tuple[str, ...]:
    """``[weight, activation]`` (or one word) to operand classes in
    :data:`~backends.elector.design.OPERAND_CLASSES` order."""
    here = (value.line, value.column)
    if value.kind == "word":
        items = ((value.text, value.line, value.column),)
    elif value.kind == "list":
        items = value.items
    else:
        raise _SettingError(here, f"{key} takes {_KIND_DESCRIPTIONS['operands']}; got "
                            f"{_describe_syntax(value)}")
    seen: dict[str, tuple[int, int]] = {}
    for text, line, column in items:
        if text not in OPERAND_CLASSES:
            close = difflib.get_close_matches(text, OPERAND_CLASSES, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _SettingError((line, column), f"{key}: unknown operand {text!r}{hint}; "
                                f"accepted: {', '.join(OPERAND_CLASSES)}")
        if text in seen:
            raise _SettingError((line, column), f"{key}: {text!r} is listed twice (first at "
                                f"line {seen[text][0]}, column {seen[text][1]}); list each "
                                "operand once")
        seen[text] = (line, column)
    return tuple(operand for operand in OPERAND_CLASSES if operand in seen)


@dataclass
class Settings:
    """Step 2's result: converted values by path, plus where each was written.

    ``values`` maps a path such as ``("pe_array", "pes")`` to its converted
    value; ``locations`` maps value paths and block paths (``("pe_array",)``)
    and the empty path (the header) to ``(line, column)``.
    """

    values: dict[Path_, Any] = field(default_factory=dict)
    locations: dict[Path_, Location] = field(default_factory=dict)
    blocks: set[str] = field(default_factory=set)

    def merged(self, *others: Settings) -> Settings:
        merged = Settings(dict(self.values), dict(self.locations), set(self.blocks))
        for other in others:
            merged.values.update(other.values)
            merged.locations.update(other.locations)
            merged.blocks |= other.blocks
        return merged


@dataclass
class RawParameter:
    """A choice set found in step 2 (used by design spaces)."""

    path: Path_
    location: Location
    alternatives: list[Settings]


def _unknown_key(key: str, accepted: Iterable[str], where: str, location: Location
                 ) -> _SettingError:
    accepted = list(accepted)
    close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return _SettingError(location, f"unknown key {key!r} in {where}{hint}; "
                                   f"accepted: {', '.join(accepted)}")


def collect_settings(syntax: SyntaxFile, allow_choices: bool
                     ) -> tuple[Settings, list[RawParameter]]:
    """Step 2: check entries against the schema and convert their values.

    Raises ``_SettingError``; the public functions turn it into a ParseError.
    """
    settings = Settings()
    settings.locations[()] = (syntax.header_line, syntax.header_column)
    settings.locations[("name",)] = (syntax.name_line, syntax.name_column)
    parameters: list[RawParameter] = []
    seen: dict[str, SyntaxEntry] = {}
    top_keys = list(TOP_LEVEL_FIELDS) + list(BLOCK_SCHEMAS)
    for entry in syntax.entries:
        _check_duplicate(seen, entry, "the accelerator")
        if entry.key in TOP_LEVEL_FIELDS:
            spec = TOP_LEVEL_FIELDS[entry.key]
            _collect_value(settings, parameters, (entry.key,), spec, entry, allow_choices)
        elif entry.key in BLOCK_SCHEMAS:
            _collect_block(settings, parameters, entry, allow_choices)
        else:
            raise _unknown_key(entry.key, top_keys, "the accelerator", (entry.line, entry.column))
    return settings, parameters


def _check_duplicate(seen: dict[str, SyntaxEntry], entry: SyntaxEntry, where: str) -> None:
    first = seen.get(entry.key)
    if first is not None:
        raise _SettingError((entry.line, entry.column),
                            f"duplicate key {entry.key!r} in {where} (first given at line "
                            f"{first.line}, column {first.column}); give each key once")
    seen[entry.key] = entry


def _choice_hint(path: Path_) -> str:
    return (f"choice sets ('{path[-1]} in {{...}}') make a design space, but a design gives "
            f"one value: write `{path[-1]} = VALUE`, or load the file as a design space")


def _collect_value(settings: Settings, parameters: list[RawParameter], path: Path_,
                   spec: FieldSpec, entry: SyntaxEntry, allow_choices: bool) -> None:
    key = ".".join(path)
    here = (entry.line, entry.column)
    if entry.form == "block":
        raise _SettingError(here, f"{key} is a single value, not a block: write "
                            f"`{entry.key} = ...` ({_KIND_DESCRIPTIONS[spec.kind]})")
    if entry.form == "assign":
        settings.values[path] = _convert(spec, entry.value, key)
        settings.locations[path] = (entry.value.line, entry.value.column)
        return
    if not allow_choices:
        raise _SettingError(here, _choice_hint(path))
    alternatives: list[Settings] = []
    for alternative in entry.alternatives:
        if isinstance(alternative, SyntaxBlockAlternative):
            raise _SettingError((alternative.line, alternative.column),
                                f"{key} takes values, so its choices are values such as "
                                f"{_KIND_DESCRIPTIONS[spec.kind]}, not {{ ... }} blocks")
        converted = _convert(spec, alternative, key)
        for earlier in alternatives:
            if earlier.values[path] == converted:
                raise _SettingError((alternative.line, alternative.column),
                                    f"{key}: {alternative.text}"
                                    + (f" {alternative.unit}" if alternative.unit else "")
                                    + " appears twice in the choice set")
        alternatives.append(Settings({path: converted},
                                     {path: (alternative.line, alternative.column)}))
    parameters.append(RawParameter(path, here, alternatives))


def _collect_block(settings: Settings, parameters: list[RawParameter], entry: SyntaxEntry,
                   allow_choices: bool) -> None:
    name = entry.key
    schema = BLOCK_SCHEMAS[name]
    here = (entry.line, entry.column)
    if entry.form == "assign":
        raise _SettingError(here, f"{name} is a block: write `{name} {{ ... }}` with keys "
                            f"{', '.join(schema.fields)}")
    if entry.form == "block":
        settings.blocks.add(name)
        settings.locations[(name,)] = here
        _collect_block_entries(settings, parameters, name, entry.entries, allow_choices,
                               inside_alternative=False)
        return
    if not allow_choices:
        raise _SettingError(here, _choice_hint((name,)))
    alternatives: list[Settings] = []
    for alternative in entry.alternatives:
        if not isinstance(alternative, SyntaxBlockAlternative):
            raise _SettingError((alternative.line, alternative.column),
                                f"{name} is a block, so its choices are blocks: "
                                f"`{name} in {{ {{ ... }}, {{ ... }} }}`")
        chosen = Settings()
        chosen.blocks.add(name)
        chosen.locations[(name,)] = (alternative.line, alternative.column)
        _collect_block_entries(chosen, parameters, name, alternative.entries, allow_choices,
                               inside_alternative=True)
        for earlier in alternatives:
            if earlier.values == chosen.values:
                raise _SettingError((alternative.line, alternative.column),
                                    f"{name}: this alternative appears twice in the choice set")
        alternatives.append(chosen)
    parameters.append(RawParameter((name,), here, alternatives))


def _collect_block_entries(settings: Settings, parameters: list[RawParameter], name: str,
                           entries: list[SyntaxEntry], allow_choices: bool,
                           inside_alternative: bool) -> None:
    schema = BLOCK_SCHEMAS[name]
    seen: dict[str, SyntaxEntry] = {}
    for entry in entries:
        _check_duplicate(seen, entry, name)
        spec = schema.fields.get(entry.key)
        if spec is None:
            raise _unknown_key(entry.key, schema.fields, name, (entry.line, entry.column))
        if inside_alternative and entry.form == "choice":
            raise _SettingError((entry.line, entry.column),
                                "choice sets cannot nest inside an alternative block; "
                                "list each combination as its own alternative")
        _collect_value(settings, parameters, (name, entry.key), spec, entry, allow_choices)


# =========================================================================== design


def _missing(settings: Settings, path: Path_, where: str) -> _SettingError:
    block = path[:-1]
    location = settings.locations.get(block, settings.locations[()])
    spec = (BLOCK_SCHEMAS[block[0]].fields[path[-1]] if block else TOP_LEVEL_FIELDS[path[-1]])
    return _SettingError(location, f"missing required key {path[-1]!r} in {where} "
                         f"({spec.help}: {_KIND_DESCRIPTIONS[spec.kind]})")


def build_accelerator(name: str, settings: Settings, technology_base: Path | None) -> Accelerator:
    """Step 3: settings to an Accelerator; raises _SettingError, DesignFieldError
    or TechnologyError (the callers attach locations)."""
    values = settings.values
    for block_name, block in BLOCK_SCHEMAS.items():
        if block.required and block_name not in settings.blocks:
            raise _SettingError(settings.locations[()],
                                f"missing required block {block_name!r} ({block.help}); "
                                f"add `{block_name} {{ {_example_keys(block)} }}`")
        if block_name not in settings.blocks:
            continue
        for key, spec in block.fields.items():
            if spec.required and (block_name, key) not in values:
                raise _missing(settings, (block_name, key), block_name)
    for key, spec in TOP_LEVEL_FIELDS.items():
        if spec.required and (key,) not in values:
            raise _missing(settings, (key,), "the accelerator")

    def get(*path: str) -> Any:
        if path in values:
            return values[path]
        spec = (BLOCK_SCHEMAS[path[0]].fields[path[1]] if len(path) == 2
                else TOP_LEVEL_FIELDS[path[0]])
        return spec.default

    tile_b, tile_x, tile_y = get("mapping", "tiles")
    mapping = MappingDefaults(tile_b, tile_x, tile_y, batch=get("mapping", "batch"))
    softmax_tile = get("softmax", "tile") or tile_x
    layer_norm_tile = get("layer_norm", "tile") or tile_x
    banks, ranks, channels = get("main_memory", "config")
    technology = load_technology(get("technology"), relative_to=technology_base)
    return Accelerator(
        name=name,
        description=get("description"),
        technology=technology,
        clock_hz=get("clock"),
        data_width_bits=get("data_width"),
        pe_array=PEArray(get("pe_array", "pes"), get("pe_array", "lanes"),
                         get("pe_array", "macs_per_lane"), get("pe_array", "nonlinearity"),
                         get("pe_array", "fifo_depth")),
        softmax=SoftmaxUnits(get("softmax", "per_pe"), softmax_tile),
        layer_norm=LayerNormUnit(layer_norm_tile),
        sparsity=SparsityUnits(get("sparsity", "pre"), get("sparsity", "post"),
                               get("sparsity", "stochastic_rounding")),
        activation_buffer=_buffer("activation", get),
        weight_buffer=_buffer("weight", get),
        mask_buffer=_buffer("mask", get),
        main_memory=MainMemory(get("main_memory", "type"), banks, ranks, channels,
                               get("main_memory", "bandwidth"),
                               get("main_memory", "energy_per_access")),
        mapping=mapping,
        power_gating=get("power_gating"),
        pe_buffer=_pe_buffer(get) if "pe_buffer" in settings.blocks else None,
        extensions=tuple(
            (block_name, tuple((key, get(block_name, key)) for key in block.fields))
            for block_name, block in sorted(BLOCK_SCHEMAS.items())
            if block_name not in BUILTIN_BLOCKS and block_name in settings.blocks),
    )


def _buffer(kind: str, get: Callable[..., Any]) -> Buffer:
    block = f"{kind}_buffer"
    return Buffer(kind, get(block, "size"), get(block, "block"), get(block, "bandwidth"),
                  banks=get(block, "banks"), bank_bandwidth_bytes_per_s=get(block, "bank_bandwidth"),
                  multicast=get(block, "multicast"))


def _pe_buffer(get: Callable[..., Any]) -> PEBuffer:
    return PEBuffer(get("pe_buffer", "size"), get("pe_buffer", "holds"),
                    block_bytes=get("pe_buffer", "block"), banks=get("pe_buffer", "banks"),
                    bank_bandwidth_bytes_per_s=get("pe_buffer", "bank_bandwidth"),
                    multicast=get("pe_buffer", "multicast"))


def _example_keys(block: BlockSpec) -> str:
    return "  ".join(f"{key} = ..." for key, spec in block.fields.items() if spec.required)


def _design_field_location(settings: Settings, path: Path_) -> Location:
    while path:
        if path in settings.locations:
            return settings.locations[path]
        path = path[:-1]
    return settings.locations[()]


def materialise(name: str, settings: Settings, filename: str, text: str) -> Accelerator:
    """Steps 3 and validation with every error located in ``filename``."""
    base = _design_folder(filename)
    try:
        accelerator = build_accelerator(name, settings, base)
        return validate_design(accelerator)
    except _SettingError as err:
        raise _error(filename, text, err.location, err.message) from None
    except DesignFieldError as err:
        location = _design_field_location(settings, err.path)
        raise _error(filename, text, location, str(err)) from None
    except TechnologyError as err:
        location = settings.locations.get(("technology",), settings.locations[()])
        raise _error(filename, text, location, str(err)) from None


def _design_folder(filename: str) -> Path | None:
    if filename.startswith("<"):
        return None
    return Path(filename).expanduser().resolve().parent


def _syntax_and_settings(text: str, filename: str, allow_choices: bool
                         ) -> tuple[SyntaxFile, Settings, list[RawParameter]]:
    syntax = parse_syntax(text, filename)
    try:
        if not syntax.name.strip():
            raise _SettingError((syntax.name_line, syntax.name_column),
                                f"the {syntax.header} needs a name, e.g. "
                                f'{syntax.header} "my-design" {{ ... }}')
        settings, parameters = collect_settings(syntax, allow_choices)
    except _SettingError as err:
        raise _error(filename, text, err.location, err.message) from None
    return syntax, settings, parameters


def parse_design(text: str, filename: str = "<string>") -> Accelerator:
    """Parse and validate one accelerator written in the hardware DSL.

    ``filename`` is used in messages and to resolve a technology file named
    by a relative path.  Raises :class:`~transcode_ir.errors.ParseError`.
    """
    syntax, settings, _ = _syntax_and_settings(text, filename, allow_choices=False)
    if syntax.header != "accelerator":
        raise _error(filename, text, (syntax.header_line, syntax.header_column),
                     f"this file describes a {syntax.header}, not one accelerator; load it "
                     "with load_space / resolve_space (or `tcc hw show`), or write "
                     f'`accelerator "{syntax.name}" {{ ... }}`')
    return materialise(syntax.name, settings, filename, text)


def read_text(path: str | Path) -> str:
    """Read a DSL file as UTF-8, turning I/O problems into UserErrors."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a hardware description") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read: {err.strerror or err}") from None


def load_design(path: str | Path) -> Accelerator:
    """Read, parse and validate a ``.hwdsl`` file holding one accelerator."""
    return parse_design(read_text(path), str(path))


# =========================================================================== printing


def _format_number(value: Fraction | int | float) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Fraction):
        if value.denominator == 1:
            return str(value.numerator)
        value = float(value)
    if value == int(value) and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


@functools.lru_cache(maxsize=4096, typed=True)
def format_quantity(value: float | int, dimension: str) -> str:
    """Write ``value`` (in the stored unit) with the largest unit that reads
    back exactly, e.g. ``700000000.0`` Hz -> ``700 MHz``, ``4194304`` bytes ->
    ``4 MiB``.  (Cached: a design space prints the same few values over and
    over, in every result key.)"""
    units = UNITS[dimension]
    for unit in _PRINT_UNITS[dimension]:
        factor = units[unit]
        if isinstance(value, int):
            scaled = Fraction(value) / factor
            if scaled >= 1 and scaled.denominator == 1:
                return f"{scaled.numerator} {unit}"
            continue
        scaled = value / float(factor)
        if scaled < 1:
            continue
        text = _format_number(scaled)
        if float(Fraction(text) * factor) == value:
            return f"{text} {unit}"
    base = next(unit for unit in _PRINT_UNITS[dimension] if units[unit] == 1)
    return f"{_format_number(value)} {base}"


def format_value(spec: FieldSpec, value: Any) -> str:
    """Write one stored value the way the DSL reads it."""
    kind = spec.kind
    if kind == "count":
        return str(value)
    if kind in UNITS:
        return format_quantity(value, kind)
    if kind == "switch":
        return "on" if value else "off"
    if kind == "word":
        return value
    if kind == "text":
        return _quote(value)
    if kind == "config":
        return "-".join(str(part) for part in value)
    if kind == "dims":
        return "x".join(str(part) for part in value)
    if kind == "operands":
        return "[" + ", ".join(value) + "]"
    raise AssertionError(f"unknown field kind {kind!r}")


def settings_of(accelerator: Accelerator) -> dict[Path_, Any]:
    """The normalised settings of an accelerator (every value written out;
    overrides that are not set are absent), as step 2 would produce them.

    The storage options added with the hierarchy (``banks``,
    ``bank_bandwidth``, ``multicast = off``, ``power_gating = idle``, the
    ``pe_buffer`` block) are written only when they differ from the default
    (a design has no PE buffer by default), so the normalised text --
    and the design hash reports and result databases key on -- of every
    design written before them is unchanged."""
    pe, memory, mapping = accelerator.pe_array, accelerator.main_memory, accelerator.mapping
    values: dict[Path_, Any] = {
        ("description",): accelerator.description,
        ("technology",): accelerator.technology.reference,
        ("clock",): accelerator.clock_hz,
        ("data_width",): accelerator.data_width_bits,
        **({("power_gating",): accelerator.power_gating}
           if accelerator.power_gating != "none" else {}),
        ("pe_array", "pes"): pe.pes,
        ("pe_array", "lanes"): pe.lanes,
        ("pe_array", "macs_per_lane"): pe.macs_per_lane,
        ("pe_array", "nonlinearity"): pe.nonlinearity,
        ("pe_array", "fifo_depth"): pe.fifo_depth,
        ("softmax", "per_pe"): accelerator.softmax.per_pe,
        ("softmax", "tile"): accelerator.softmax.tile,
        ("layer_norm", "tile"): accelerator.layer_norm.tile,
        ("sparsity", "pre"): accelerator.sparsity.pre,
        ("sparsity", "post"): accelerator.sparsity.post,
        ("sparsity", "stochastic_rounding"): accelerator.sparsity.stochastic_rounding,
    }
    for buffer in accelerator.buffers:
        values[(buffer.block_name, "size")] = buffer.size_bytes
        values[(buffer.block_name, "block")] = buffer.block_bytes
        if buffer.bandwidth_bytes_per_s is not None:
            values[(buffer.block_name, "bandwidth")] = buffer.bandwidth_bytes_per_s
        if buffer.banks is not None:
            values[(buffer.block_name, "banks")] = buffer.banks
        if buffer.bank_bandwidth_bytes_per_s is not None:
            values[(buffer.block_name, "bank_bandwidth")] = buffer.bank_bandwidth_bytes_per_s
        if not buffer.multicast:
            values[(buffer.block_name, "multicast")] = False
    pe_buffer = accelerator.pe_buffer
    if pe_buffer is not None:   # printed only when the design has one
        values[("pe_buffer", "size")] = pe_buffer.size_bytes
        values[("pe_buffer", "holds")] = pe_buffer.holds
        values[("pe_buffer", "block")] = pe_buffer.block_bytes
        if pe_buffer.banks is not None:
            values[("pe_buffer", "banks")] = pe_buffer.banks
        if pe_buffer.bank_bandwidth_bytes_per_s is not None:
            values[("pe_buffer", "bank_bandwidth")] = pe_buffer.bank_bandwidth_bytes_per_s
        if not pe_buffer.multicast:
            values[("pe_buffer", "multicast")] = False
    values[("main_memory", "type")] = memory.type
    values[("main_memory", "config")] = (memory.banks, memory.ranks, memory.channels)
    if memory.bandwidth_bytes_per_s is not None:
        values[("main_memory", "bandwidth")] = memory.bandwidth_bytes_per_s
    if memory.energy_per_access_nj is not None:
        values[("main_memory", "energy_per_access")] = memory.energy_per_access_nj
    values[("mapping", "tiles")] = mapping.tiles
    values[("mapping", "batch")] = mapping.batch
    for block_name, block_values in accelerator.extensions:
        for key, value in block_values:
            values[(block_name, key)] = value
    return values


def spec_of(path: Path_) -> FieldSpec:
    """The schema entry of a value path such as ``("pe_array", "pes")``."""
    if len(path) == 1:
        return TOP_LEVEL_FIELDS[path[0]]
    return BLOCK_SCHEMAS[path[0]].fields[path[1]]


def format_settings(header: str, name: str, values: Mapping[Path_, Any],
                    choices: Mapping[Path_, list[str]] | None = None,
                    block_choices: Mapping[str, list[Mapping[Path_, Any]]] | None = None,
                    comments: Mapping[Path_, str] | None = None) -> str:
    """Print settings (and, for design spaces, choice sets) in schema order."""
    choices = choices or {}
    block_choices = block_choices or {}
    comments = comments or {}
    lines = [f"{header} {_quote(name)} {{"]

    def line_for(path: Path_, indent: str) -> str | None:
        key = path[-1]
        if path in choices:
            text = f"{indent}{key} in {{{', '.join(choices[path])}}}"
        elif path in values:
            text = f"{indent}{key} = {format_value(spec_of(path), values[path])}"
        else:
            return None
        if path in comments:
            text += f"  # {comments[path]}"
        return text

    for key in TOP_LEVEL_FIELDS:
        text = line_for((key,), "  ")
        if text is not None and not (key == "description" and values.get((key,)) == ""
                                     and (key,) not in choices):
            lines.append(text)
    for block_name, block in BLOCK_SCHEMAS.items():
        if block_name in block_choices:
            lines.append("")
            lines.append(f"  {block_name} in {{")
            alternatives = block_choices[block_name]
            for index, alternative in enumerate(alternatives):
                inner = "  ".join(f"{path[-1]} = {format_value(spec_of(path), value)}"
                                  for path, value in alternative.items())
                comma = "," if index < len(alternatives) - 1 else ""
                lines.append(f"    {{ {inner} }}{comma}")
            lines.append("  }")
            continue
        body = [line_for((block_name, key), "    ") for key in block.fields]
        body = [text for text in body if text is not None]
        if body or (block_name,) in comments:
            lines.append("")
            opening = f"  {block_name} {{"
            if (block_name,) in comments:
                opening += f"  # {comments[(block_name,)]}"
            lines.append(opening)
            lines.extend(body)
            lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def format_design(accelerator: Accelerator) -> str:
    """The normalised DSL text of ``accelerator``: every setting written out
    (defaults included; technology overrides only when set).  Parsing it gives
    back an equal accelerator.  A user technology is written as its absolute
    path, so the text parses back from any folder."""
    return format_settings("accelerator", accelerator.name, settings_of(accelerator))
