"""What the ZigZag and Timeloop converters share: located YAML, the embedded
design block, the PE-array split rule and the import procedure.

**Located YAML.**  :func:`load_yaml` reads a file with PyYAML's safe loader
into :class:`YamlMap` / :class:`YamlList` (a dict / list that remembers the
``line:col`` of itself and of each key or item).  A key written twice in one
mapping is an error (ZigZag's own ``tpu_like.yaml`` defines ``ports:`` twice
and its loader keeps the last one silently; we say where both are).  Tags
(Timeloop's ``!Container``, ``!Component``, ``!Parallel``, ``!Nothing``) are
kept as :attr:`YamlMap.tag`.

**The embedded design.**  Neither tool models softmax, layer-norm or
sparsity units, FIFO depths, the mapping defaults or our technology tables,
and ZigZag rejects keys it does not know.  An exported file therefore carries
the whole design as ``.hwdsl`` text in a YAML *comment* block (both tools
ignore comments) between :data:`BLOCK_BEGIN` and :data:`BLOCK_END`;
:func:`read_embedded` reads it back with the one ``.hwdsl`` parser.

**Import** (:func:`import_native`): the design starts from the embedded block
(or, for a foreign file, from the defaults of :data:`DEFAULT_BASE`, each named
in a note); the converter then reads the *native* keys of the file (those the
tool itself uses: array sizes, memory sizes, bandwidths, ...) into
``.hwdsl`` settings.  A native value overrides the embedded one only when it
differs from what exporting the embedded design would write, so an untouched
export comes back exactly and a value the user edited in the tool's file
wins (and is named in a note).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.elector.design import Accelerator
from transcode_ir.errors import ParseError, UserError

__all__ = [
    "BLOCK_BEGIN",
    "BLOCK_END",
    "DEFAULT_BASE",
    "ImportResult",
    "InteropError",
    "Native",
    "YamlList",
    "YamlMap",
    "embed_design",
    "import_native",
    "load_yaml",
    "read_embedded",
    "split_array",
    "tool_operands",
    "where",
]

#: First and last line of the comment block that carries the ``.hwdsl`` design.
BLOCK_BEGIN = "# --- transcode hwdsl: read back by `tcc hw import`; the tool ignores comments ---"
BLOCK_END = "# --- end transcode hwdsl ---"

#: The library design whose settings fill what a foreign file does not say.
DEFAULT_BASE = "acceltran-edge"

Path_ = tuple[str, ...]


class InteropError(UserError):
    """A foreign hardware file we cannot read: damaged, or outside the subset
    the model represents.  The message names the file, the key path, the
    ``line:col`` where known, and what is accepted."""


# --------------------------------------------------------------------------- located YAML


class YamlMap(dict):
    """A YAML mapping with its place: ``line``/``col`` (1-based) of the
    mapping, ``key_places[key]`` of each key, ``tag`` (``"Container"`` for
    ``!Container``, ``""`` for none) and ``path`` (the key path from the root)."""

    line: int = 0
    col: int = 0
    tag: str = ""
    path: str = ""
    key_places: dict[str, tuple[int, int]]


class YamlList(list):
    """A YAML sequence with its place and the place of each item."""

    line: int = 0
    col: int = 0
    tag: str = ""
    path: str = ""
    item_places: list[tuple[int, int]]


def _place(node: Any) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def load_yaml(text: str, filename: str) -> Any:
    """Parse ``text`` into located maps and lists (scalars stay plain)."""
    import yaml

    # libyaml's parser when PyYAML has it (about 10x faster; same marks), else PyYAML's own
    base_loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base_loader):  # type: ignore[valid-type, misc]
        pass

    def construct(loader: Loader, node: Any, path: str) -> Any:
        if isinstance(node, yaml.MappingNode):
            loader.flatten_mapping(node)
            result = YamlMap()
            result.line, result.col = _place(node)
            result.tag = node.tag[1:] if node.tag.startswith("!") and not \
                node.tag.startswith("tag:yaml.org") else ""
            result.path = path
            result.key_places = {}
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node, deep=True) \
                    if not isinstance(key_node, yaml.ScalarNode) else key_node.value
                key = str(key)
                if key in result:
                    first = result.key_places[key]
                    raise InteropError(
                        f"{filename}:{key_node.start_mark.line + 1}:"
                        f"{key_node.start_mark.column + 1}: {_join_path(path, key)}: the key "
                        f"{key!r} is given twice in one mapping (first at line {first[0]}); "
                        "a loader would keep only one of them silently. Accepted: each key "
                        "once per mapping (merge the two entries).")
                result.key_places[key] = _place(key_node)
                result[key] = construct(loader, value_node, _join_path(path, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            items = YamlList()
            items.line, items.col = _place(node)
            items.tag = node.tag[1:] if node.tag.startswith("!") else ""
            items.path = path
            items.item_places = []
            for index, item in enumerate(node.value):
                items.item_places.append(_place(item))
                items.append(construct(loader, item, f"{path}[{index}]"))
            return items
        if node.tag.startswith("!"):  # a tagged scalar (e.g. `!Nothing`): its text
            return node.value
        return loader.construct_object(node, deep=True)

    for number, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0]
        for mark in ("{{", "{%"):
            if mark in code:
                raise InteropError(
                    f"{filename}:{number}:{code.index(mark) + 1}: the file uses Jinja templating "
                    f"({mark}...); render it first (timeloopfe does) and import the rendered "
                    "YAML; accepted: a ZigZag accelerator or a Timeloop v0.4 architecture in "
                    "plain YAML")
    try:
        loader = Loader(text)
        try:
            root = loader.get_single_node()
            if root is None:
                raise InteropError(f"{filename}: the file is empty; accepted: a ZigZag "
                                   "accelerator or a Timeloop v0.4 architecture in YAML")
            return construct(loader, root, "")
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        at = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        problem = " ".join(part for part in (err.context, err.problem) if part)
        raise InteropError(f"{at}: not valid YAML: {problem}; accepted: a ZigZag accelerator "
                           "or a Timeloop v0.4 architecture in YAML") from None
    except yaml.YAMLError as err:
        raise InteropError(f"{filename}: not valid YAML: {err}") from None


def _join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def where(filename: str, container: YamlMap | YamlList, key: str | int | None = None) -> str:
    """``file:line:col: key.path`` of ``container[key]`` (or of the container)."""
    if isinstance(container, YamlMap) and isinstance(key, str) and key in container.key_places:
        line, col = container.key_places[key]
        return f"{filename}:{line}:{col}: {_join_path(container.path, key)}"
    if isinstance(container, YamlList) and isinstance(key, int) \
            and 0 <= key < len(container.item_places):
        line, col = container.item_places[key]
        return f"{filename}:{line}:{col}: {container.path}[{key}]"
    path = container.path if key is None else _join_path(container.path, str(key))
    return f"{filename}:{container.line}:{container.col}: {path or '(top level)'}"


# --------------------------------------------------------------------------- typed access


class Reader:
    """Typed access to a located YAML tree with errors that say where and
    what is accepted.  ``accepted`` is the one-line description of the format
    that every error ends with."""

    def __init__(self, filename: str, accepted: str) -> None:
        self.filename = filename
        self.accepted = accepted

    def fail(self, container: YamlMap | YamlList, key: str | int | None, message: str) -> None:
        raise InteropError(f"{where(self.filename, container, key)}: {message}; "
                           f"{self.accepted}")

    def mapping(self, parent: YamlMap, key: str, required: bool = True) -> YamlMap | None:
        if key not in parent:
            if required:
                self.fail(parent, None, f"the key {key!r} is missing (a mapping)")
            return None
        value = parent[key]
        if not isinstance(value, YamlMap):
            self.fail(parent, key, f"must be a mapping, got {_kind(value)}")
        return value

    def sequence(self, parent: YamlMap, key: str, required: bool = True) -> YamlList | None:
        if key not in parent:
            if required:
                self.fail(parent, None, f"the key {key!r} is missing (a list)")
            return None
        value = parent[key]
        if not isinstance(value, YamlList):
            self.fail(parent, key, f"must be a list, got {_kind(value)}")
        return value

    def number(self, parent: YamlMap, key: str, required: bool = True, positive: bool = True,
               whole: bool = False) -> float | int | None:
        if key not in parent or parent[key] is None:
            if required:
                self.fail(parent, None, f"the key {key!r} is missing (a number)")
            return None
        value = parent[key]
        if isinstance(value, str):
            value = _evaluate(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            self.fail(parent, key, f"must be a number, got {parent[key]!r}")
        if whole and value != int(value):
            self.fail(parent, key, f"must be a whole number, got {value!r}")
        if positive and value <= 0:
            self.fail(parent, key, f"must be positive, got {value!r}")
        return int(value) if whole or isinstance(value, int) else float(value)

    def item_number(self, items: YamlList, index: int) -> int:
        """A positive whole number at ``items[index]``."""
        value = items[index]
        if isinstance(value, str):
            value = _evaluate(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or value != int(value) or value <= 0:
            self.fail(items, index, f"must be a positive whole number, got {items[index]!r}")
        return int(value)

    def text(self, parent: YamlMap, key: str, required: bool = True) -> str | None:
        if key not in parent or parent[key] is None:
            if required:
                self.fail(parent, None, f"the key {key!r} is missing (text)")
            return None
        value = parent[key]
        if isinstance(value, (YamlMap, YamlList)):
            self.fail(parent, key, f"must be text, got {_kind(value)}")
        return str(value)

    def words(self, parent: YamlMap, key: str, required: bool = True) -> list[str]:
        items = self.sequence(parent, key, required)
        if items is None:
            return []
        for index, item in enumerate(items):
            if isinstance(item, (YamlMap, YamlList)):
                self.fail(items, index, f"must be a word, got {_kind(item)}")
        return [str(item) for item in items]


def _evaluate(text: str) -> Any:
    """A numeric expression as Timeloop's front end allows (``12 * 34``,
    ``2**20``); anything else comes back unchanged."""
    import ast
    import operator

    ops = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Pow: operator.pow, ast.FloorDiv: operator.floordiv,
           ast.USub: operator.neg, ast.UAdd: operator.pos}

    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            return ops[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in ops:
            return ops[type(node.op)](walk(node.operand))
        raise ValueError(text)

    try:
        return walk(ast.parse(text.strip(), mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError):
        return text


def _kind(value: Any) -> str:
    if isinstance(value, YamlMap):
        return "a mapping"
    if isinstance(value, YamlList):
        return "a list"
    return repr(value)


# --------------------------------------------------------------------------- embedded design


def embed_design(accelerator: Accelerator) -> str:
    """The comment block carrying ``accelerator`` as ``.hwdsl`` text."""
    from backends.elector.hwdsl import format_design

    body = "\n".join(f"# {line}" if line else "#" for line in
                     format_design(accelerator).rstrip("\n").split("\n"))
    return f"{BLOCK_BEGIN}\n{body}\n{BLOCK_END}\n"


def read_embedded(text: str, filename: str) -> Accelerator | None:
    """The design in the file's comment block, or None when there is none.
    An error in the block is reported with the file's own line numbers."""
    from backends.elector.hwdsl import parse_design

    lines = text.splitlines()
    try:
        begin = next(i for i, line in enumerate(lines) if line.strip() == BLOCK_BEGIN)
    except StopIteration:
        return None
    body: list[str] = []
    for line in lines[begin + 1:]:
        stripped = line.strip()
        if stripped == BLOCK_END:
            break
        if not stripped.startswith("#"):
            raise InteropError(
                f"{filename}:{begin + 1}:1: the embedded transcode hwdsl block is not closed "
                f"(every line starts with '# ' until {BLOCK_END!r}); accepted: the block as "
                "`tcc hw export` writes it, or no block at all (then defaults are assumed)")
        body.append(stripped[2:] if stripped.startswith("# ") else stripped[1:])
    else:
        raise InteropError(f"{filename}:{begin + 1}:1: the embedded transcode hwdsl block has "
                           f"no end line {BLOCK_END!r}")
    try:
        return parse_design("\n".join(body) + "\n", f"{filename} (embedded block)")
    except ParseError as err:
        if err.location is None:
            raise InteropError(f"{filename}: embedded hwdsl block: {err.bare_message}") from None
        line = begin + 1 + err.location.line
        column = err.location.column + 2
        raise InteropError(f"{filename}:{line}:{column}: embedded hwdsl block: "
                           f"{err.bare_message}") from None


# --------------------------------------------------------------------------- operands


def tool_operands(operands: Iterable[str], sharing: str) -> tuple[bool, bool, bool]:
    """Which of the tools' three operands a storage level holds: (input, weight,
    output).  ``activation`` is the input and, above the lanes, the output too
    (a lane FIFO feeds the multipliers and holds no results); ``weight`` the
    weight; ``mask`` none of them (sparsity masks are no operand in either
    tool).  ZigZag calls them I1, I2, O; Timeloop Inputs, Weights, Outputs."""
    held = set(operands)
    activation = "activation" in held
    return activation, "weight" in held, activation and sharing != "lane"


# --------------------------------------------------------------------------- PE array split


def split_array(factors: Iterable[int], max_macs_per_lane: int) -> tuple[int, int, int]:
    """(pes, lanes, macs_per_lane) from a foreign array's spatial factors,
    outermost first (factors of 1 ignored): the last factor is the MACs of a
    lane when there are three or more and it is within what the technology
    characterises (else 1), the one before it the lanes of a PE, and the
    product of the rest the PEs.  Two factors are PEs x lanes (one MAC per
    lane); one factor is PEs of one lane of one MAC."""
    sizes = [int(f) for f in factors if int(f) != 1]
    if not sizes:
        return 1, 1, 1
    macs = 1
    if len(sizes) >= 3 and sizes[-1] <= max_macs_per_lane:
        macs = sizes.pop()
    if len(sizes) == 1:
        return sizes[0], 1, macs
    lanes = sizes.pop()
    return math.prod(sizes), lanes, macs


# --------------------------------------------------------------------------- import


@dataclass
class Native:
    """What a converter read from the tool's own keys: ``.hwdsl`` settings
    with where each came from, and notes on what was dropped or assumed."""

    settings: dict[Path_, Any] = field(default_factory=dict)
    places: dict[Path_, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)

    def set(self, path: Path_, value: Any, place: str) -> None:
        self.settings[path] = value
        self.places[path] = place

    def drop(self, note: str) -> None:
        if note not in self.dropped:
            self.dropped.append(note)


@dataclass(frozen=True)
class ImportResult:
    """The imported design and the notes to show the user (what was taken
    from the file, dropped or assumed)."""

    accelerator: Accelerator
    notes: tuple[str, ...]
    embedded: bool


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return a == b


def _describe(path: Path_, value: Any) -> str:
    from backends.elector.hwdsl import format_value, spec_of

    try:
        text = format_value(spec_of(path), value)
    except Exception:  # noqa: BLE001 - a value the schema cannot print: show it raw
        text = repr(value)
    return f"{'.'.join(path)} = {text}"


def import_native(text: str, filename: str, tool: str,
                  read_native: Callable[[Any, str, Accelerator], Native],
                  export: Callable[[Accelerator], str], tree: Any = None) -> ImportResult:
    """The import procedure (module docstring): embedded design or defaults,
    then the native keys that differ from a re-export of that design."""
    from backends.elector.design_library import resolve_design
    from backends.elector.hwdsl import settings_of

    if tree is None:
        tree = load_yaml(text, filename)
    embedded = read_embedded(text, filename)
    base = embedded if embedded is not None else resolve_design(DEFAULT_BASE)
    native = read_native(tree, filename, base)
    # what the tool's keys say for the embedded design as exported: the yardstick of edits
    reference = read_native(load_yaml(export(base), "<re-export>"), "<re-export>", base) \
        if embedded is not None else Native()

    notes: list[str] = []
    values = settings_of(base)
    changed: dict[Path_, Any] = {}
    for path, value in native.settings.items():
        if embedded is not None and path in reference.settings \
                and _same(reference.settings[path], value):
            continue
        if not _same(values.get(path), value) or embedded is None:
            changed[path] = value
        values[path] = value
    if embedded is not None:
        for path, value in changed.items():
            notes.append(f"{native.places[path]}: differs from the embedded design; the "
                         f"{tool} value wins: {_describe(path, value)}")
        reference_drops = set(_strip_places(reference.dropped))
        notes.extend(note for note in native.dropped
                     if _strip_place(note) not in reference_drops)
    else:
        notes.extend(native.dropped)
    name = native.settings.get(("name",), base.name) if embedded is None else base.name
    values.pop(("name",), None)
    if embedded is None:
        notes.extend(_foreign_defaults(values, native, tool, filename))
    return ImportResult(_build(name, values, native, filename), tuple(notes), embedded is not None)


#: Settings a foreign file never gives that are not worth a note each.
_QUIET = {("description",), ("mapping", "tiles"), ("mapping", "batch")}


def _foreign_defaults(values: dict[Path_, Any], native: Native, tool: str,
                      filename: str) -> list[str]:
    """Fill what a foreign file does not say; one note per assumption."""
    notes: list[str] = []
    values[("description",)] = f"imported from {tool} file {Path(filename).name}"
    if ("mask_buffer", "size") not in native.settings:
        block = values[("mask_buffer", "block")]
        size = max(block, values[("activation_buffer", "size")] // 4 // block * block)
        values[("mask_buffer", "size")] = size
        notes.append(f"assumed: mask_buffer.size = {size:,} bytes, a quarter of the activation "
                     f"buffer (the ratio of both AccelTran reference designs, 4/1 MiB and "
                     f"32/8 MiB); {tool} has no operand for DynaProp's sparsity masks")
    assumed = [_describe(path, value) for path, value in values.items()
               if path not in native.settings and path not in _QUIET
               and path != ("mask_buffer", "size") and len(path) <= 2]
    if assumed:
        notes.append(f"assumed (the file does not say; taken from library design "
                     f"{DEFAULT_BASE!r}): " + "; ".join(assumed))
    return notes


def _strip_place(note: str) -> str:
    """A note without its leading ``file:line:col: `` (to compare notes of two files)."""
    head, sep, rest = note.partition(": ")
    return rest if sep and head.count(":") >= 2 else note


def _strip_places(notes: Iterable[str]) -> list[str]:
    return [_strip_place(note) for note in notes]


def _build(name: str, values: Mapping[Path_, Any], native: Native, filename: str
           ) -> Accelerator:
    """An accelerator from settings, through the one ``.hwdsl`` printer and
    parser (so every check of the DSL applies); an error names the foreign
    file's place of the offending value."""
    from backends.elector.hwdsl import format_settings, parse_design

    text = format_settings("accelerator", name, values)
    try:
        return parse_design(text, "<imported>")
    except ParseError as err:
        path = _path_at_line(text, err.location.line) if err.location else None
        place = native.places.get(path) if path else None
        detail = err.bare_message
        if place is None:
            raise InteropError(f"{filename}: the imported design is not valid: {detail}") \
                from None
        raise InteropError(f"{place}: the value read from here gives an invalid design: "
                           f"{detail}") from None


def _path_at_line(text: str, line: int) -> Path_ | None:
    """The settings path written on ``line`` (1-based) of printed ``.hwdsl``."""
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        return None
    current = lines[line - 1].strip()
    key = current.split("=")[0].strip() if "=" in current else None
    if key is None:
        return None
    for previous in reversed(lines[:line - 1]):
        stripped = previous.strip()
        if stripped.endswith("{") and not stripped.startswith("accelerator"):
            return (stripped[:-1].strip(), key)
        if stripped.startswith("accelerator") or stripped == "}":
            break
    return (key,)


def read_file(path: str | Path) -> str:
    """The text of a foreign file, with an error a user can act on."""
    from transcode_ir.fileio import describe_os_error

    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InteropError(f"{path}: not a text file ({err.reason} at byte {err.start}); "
                           "accepted: a ZigZag or Timeloop v0.4 YAML file") from None
    except OSError as err:
        raise InteropError(describe_os_error(err, str(path), "read")) from None
