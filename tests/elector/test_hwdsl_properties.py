"""Property tests of the hardware DSL (hypothesis).

- Round trip: any valid accelerator prints to text that parses back equal.
- Robustness: mutated designs (deleted tokens, swapped units, huge numbers,
  random bytes, deep nesting, truncation) either parse to a valid design or
  raise a UserError; never any other exception.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backends.elector import (
    Accelerator,
    Buffer,
    LayerNormUnit,
    MainMemory,
    MappingDefaults,
    PEArray,
    SoftmaxUnits,
    SparsityUnits,
    format_design,
    list_library,
    load_technology,
    parse_design,
    parse_space,
    validate_design,
)
from backends.elector.hwdsl import UNITS, lark_reference_parse, parse_syntax
from transcode_ir.errors import UserError

TECHNOLOGY = load_technology("14nm")
MEMORIES = [(memory_type, config) for memory_type in TECHNOLOGY.main_memory_types()
            for config in TECHNOLOGY.main_memory_configs(memory_type)]
LIBRARY_TEXTS = [entry.path.read_text() for entry in list_library()]

single_line_text = st.text(
    alphabet=st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)),
    max_size=30)
positive_reals = st.floats(min_value=1e-3, max_value=1e15, allow_nan=False,
                           allow_infinity=False)
maybe = lambda strategy: st.none() | strategy  # noqa: E731


@st.composite
def accelerators(draw: st.DrawFn) -> Accelerator:
    memory_type, config = draw(st.sampled_from(MEMORIES))
    banks, ranks, channels = (int(part) for part in config.split("-"))

    def buffer(kind: str) -> Buffer:
        return Buffer(kind, draw(st.integers(1, 2**40)), 64, draw(maybe(positive_reals)))

    return Accelerator(
        name=draw(single_line_text.filter(lambda name: name.strip() != "")),
        description=draw(single_line_text),
        clock_hz=draw(st.floats(min_value=1.0, max_value=1e12, allow_nan=False)),
        pe_array=PEArray(draw(st.integers(1, 10**6)), draw(st.integers(1, 4096)),
                         draw(st.integers(1, 16)), draw(st.sampled_from(["gelu", "relu"]))),
        softmax=SoftmaxUnits(draw(st.integers(1, 1024)), draw(st.sampled_from([8, 16, 32]))),
        layer_norm=LayerNormUnit(draw(st.sampled_from([8, 16, 32]))),
        sparsity=SparsityUnits(draw(st.booleans()), draw(st.booleans()), draw(st.booleans())),
        activation_buffer=buffer("activation"),
        weight_buffer=buffer("weight"),
        mask_buffer=buffer("mask"),
        main_memory=MainMemory(memory_type, banks, ranks, channels,
                               draw(maybe(positive_reals)), draw(maybe(positive_reals))),
        mapping=MappingDefaults(draw(st.integers(1, 64)), draw(st.integers(1, 512)),
                                draw(st.integers(1, 512)), draw(st.integers(1, 4096))),
    )


@settings(max_examples=100, deadline=None)
@given(accelerators())
def test_any_valid_design_round_trips(design: Accelerator) -> None:
    validate_design(design)
    text = format_design(design)
    again = parse_design(text, "generated.hwdsl")
    assert again == design
    assert format_design(again) == text


# --------------------------------------------------------------------------- robustness

ALL_UNITS = sorted({unit for units in UNITS.values() for unit in units} | {"Mhz", "mb", "x"})
TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[^\s{}=,]+|[{}=,]')


def _mutate(draw: st.DrawFn, text: str) -> str:
    kind = draw(st.sampled_from(["delete", "unit", "number", "bytes", "nest", "truncate",
                                 "duplicate", "swap"]))
    tokens = [match for match in TOKEN.finditer(text)]
    if not tokens:
        return text + draw(st.text(max_size=5))
    if kind == "delete":
        token = draw(st.sampled_from(tokens))
        return text[:token.start()] + text[token.end():]
    if kind == "unit":
        units = [token for token in tokens if token.group() in ALL_UNITS]
        if units:
            token = draw(st.sampled_from(units))
            return text[:token.start()] + draw(st.sampled_from(ALL_UNITS)) + text[token.end():]
        return text
    if kind == "number":
        numbers = [token for token in tokens if token.group()[:1].isdigit()]
        if not numbers:
            return text
        token = draw(st.sampled_from(numbers))
        huge = draw(st.sampled_from(["9" * 5000, "1e999999999", "1e308", "-0", "0", "-7",
                                     "0.0000001", "1e-400", ".5", "4294967296",
                                     "1" + "0" * 31, "1x1x1x1", "1-2-3-4", "00x00x00"]))
        return text[:token.start()] + huge + text[token.end():]
    if kind == "bytes":
        position = draw(st.integers(0, len(text)))
        noise = draw(st.text(max_size=20) | st.binary(max_size=20).map(
            lambda data: data.decode("latin-1")))
        return text[:position] + noise + text[position:]
    if kind == "nest":
        depth = draw(st.integers(1, 3000))
        key = draw(st.sampled_from(["pe_array", "softmax", "x", "main_memory in {"]))
        braces = [token.end() for token in tokens if token.group() == "{"]
        position = draw(st.sampled_from(braces)) if braces else len(text)
        return text[:position] + f" {key} {{" * depth + "}" * depth + text[position:]
    if kind == "truncate":
        return text[:draw(st.integers(0, len(text)))]
    if kind == "duplicate":
        lines = text.split("\n")
        index = draw(st.integers(0, len(lines) - 1))
        return "\n".join(lines[:index + 1] + [lines[index]] + lines[index + 1:])
    first, second = sorted(draw(st.lists(st.integers(0, len(tokens) - 1), min_size=2,
                                         max_size=2)))
    if first == second:
        return text
    a, b = tokens[first], tokens[second]
    return (text[:a.start()] + b.group() + text[a.end():b.start()] + a.group()
            + text[b.end():])


@st.composite
def mutated_designs(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(LIBRARY_TEXTS))
    for _ in range(draw(st.integers(1, 3))):
        text = _mutate(draw, text)
    return text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_designs())
def test_mutated_designs_are_valid_or_user_errors(text: str) -> None:
    for parse in (parse_design, parse_space):
        try:
            result = parse(text, "mutated.hwdsl")
        except UserError as error:
            assert str(error)  # a message, never empty
        else:
            assert result is not None


def _flat(syntax) -> list | None:
    """The syntax tree as a flat list (iterative: deeply nested input must
    not make the comparison itself recurse)."""
    if syntax is None:
        return None
    out: list = [(syntax.header, syntax.name, syntax.header_line, syntax.name_column)]
    stack = [("entries", list(syntax.entries))]
    while stack:
        label, items = stack.pop()
        out.append((label, len(items)))
        for item in reversed(items):
            fields = {name: getattr(item, name) for name in item.__slots__}
            nested = [(name, value) for name, value in fields.items() if isinstance(value, list)]
            out.append(tuple((name, value) for name, value in fields.items()
                             if not isinstance(value, list)
                             and not hasattr(value, "__slots__")))
            if getattr(item, "value", None) is not None:
                value = item.value
                out.append(tuple(getattr(value, name) for name in value.__slots__))
            stack.extend(nested)
    return out


def _reference(text: str) -> list | None:
    from lark.exceptions import LarkError

    try:
        return _flat(lark_reference_parse(text))
    except LarkError:
        return None
    except RecursionError:  # Lark's tree building recurses on deep nesting
        return "too deep"


def _fast(text: str) -> list | None:
    try:
        return _flat(parse_syntax(text, "x.hwdsl"))
    except UserError:
        return None


def test_fast_parser_agrees_with_lark_on_the_library() -> None:
    for text in LIBRARY_TEXTS:
        assert _fast(text) is not None
        assert _fast(text) == _reference(text)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_designs())
def test_fast_parser_agrees_with_lark_on_mutations(text: str) -> None:
    """The hand-run LALR loop and lexer read hwdsl.lark's language exactly as
    Lark's own parser does: same syntax tree, or both reject."""
    reference = _reference(text)
    if reference != "too deep":
        assert _fast(text) == reference


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_is_a_user_error(text: str) -> None:
    try:
        parse_design(text, "random.hwdsl")
    except UserError:
        pass
