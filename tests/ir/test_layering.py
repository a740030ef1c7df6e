"""The core stays a core: what ``transcode_ir`` and ``dialects`` may import, where op
kinds are defined, and the core's line budget (stated in docs/ir.md)."""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Third-party packages the core may import (ARCHITECTURE: numpy, lark, networkx).
CORE_MAY_IMPORT = {"numpy", "lark", "networkx", "transcode_ir"}
#: Dialects sit on the core and beside each other, below passes, frontends and backends.
DIALECTS_MAY_IMPORT = {"numpy", "transcode_ir", "dialects"}
#: The core's budget in code lines (not blank, comment or docstring lines), all of
#: transcode_ir/: 3,377 when the op kinds moved out to dialects/ (issue 15); the rest
#: is room for the infrastructure to grow.  docs/ir.md states the same figures.
CORE_CODE_LINE_BUDGET = 3800


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out - set(sys.stdlib_module_names) - {"__future__"}


@pytest.mark.parametrize("package,allowed", [("transcode_ir", CORE_MAY_IMPORT),
                                             ("dialects", DIALECTS_MAY_IMPORT)])
def test_imports_stay_below_the_upper_layers(package: str, allowed: set[str]) -> None:
    offenders = {f"{p.relative_to(ROOT)}: {sorted(_imported_packages(p) - allowed)}"
                 for p in _sources(package) if _imported_packages(p) - allowed}
    assert not offenders, f"{package} imports outside {sorted(allowed)}: {sorted(offenders)}"


def test_op_kinds_live_in_dialects_not_in_the_core() -> None:
    from transcode_ir.opdefs import all_opdefs

    def defines_ops(path: Path) -> bool:
        return any(isinstance(n, ast.Call) and getattr(n.func, "id", "") == "OpDef"
                   for n in ast.walk(ast.parse(path.read_text())))

    assert not [p.name for p in _sources("transcode_ir") if defines_ops(p)]
    modules = {d.evaluate.__module__ for d in all_opdefs().values()}
    assert modules and all(m.startswith("dialects.") for m in modules), modules


def _code_lines(path: Path) -> int:
    source = path.read_text()
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) \
                and node.body and isinstance(node.body[0], ast.Expr) \
                and isinstance(node.body[0].value, ast.Constant) and isinstance(node.body[0].value.value, str):
            docstrings.update(range(node.body[0].lineno, node.body[0].end_lineno + 1))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENDMARKER}
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in skip:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines - docstrings)


def test_code_line_counter_skips_docstrings_and_comments(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('"""Doc\nstring."""\n\n# comment\ndef f(x):\n    """Doc."""\n'
                      '    return (x +\n            1)  # trailing\n')
    assert _code_lines(sample) == 3


def test_the_core_stays_within_its_line_budget() -> None:
    counts = {p.relative_to(ROOT).as_posix(): _code_lines(p) for p in _sources("transcode_ir")}
    total = sum(counts.values())
    largest = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:5])
    assert total <= CORE_CODE_LINE_BUDGET, (
        f"transcode_ir/ has {total} code lines, over its budget of {CORE_CODE_LINE_BUDGET} "
        f"(largest: {largest}); move features out to dialects/, passes/ or backends/")


def test_a_dialect_from_the_entry_point_group_is_found_on_lookup(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint, EntryPoints

    from transcode_ir import opdefs

    (tmp_path / "my_dialect.py").write_text(
        "from transcode_ir.opdefs import OpDef, Operand, define\n"
        "define(OpDef('mine.twice', operands=(Operand('x'),), infer=lambda t, a: [t[0]],\n"
        "             evaluate=lambda op, x, ctx: [x[0] * 2], category='elementwise'))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = EntryPoints([EntryPoint("mine", "my_dialect", opdefs.ENTRY_POINT_GROUP)])
    monkeypatch.setattr(opdefs, "_REGISTRY", dict(opdefs.all_opdefs()))
    monkeypatch.setattr(opdefs, "_all_entry_points", lambda: found)
    monkeypatch.setattr(opdefs, "_PLUGINS_LOADED", False)
    assert opdefs.get_opdef("tensor.matmul").name == "tensor.matmul"   # built-ins: no scan
    assert not opdefs._PLUGINS_LOADED
    assert opdefs.get_opdef("mine.twice").category == "elementwise"    # a miss scans the group
    with pytest.raises(KeyError):
        opdefs.get_opdef("mine.thrice")
