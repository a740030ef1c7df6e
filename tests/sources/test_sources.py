"""Published facts live in the project with their sources (docs/sources.md).

* The technology tables' values listed in docs/sources.md equal the JSON's
  (one source of truth, and the page cannot drift from it).
* Every ``source`` field of a technology file that cites docs/sources.md
  names a section that exists there.
* No file in the repository points at a path that does not exist in it (the
  compiled reference outside the repository is gone from comments).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = REPO / "docs" / "sources.md"
TECHNOLOGIES = REPO / "backends" / "elector" / "technologies"


def _sections() -> dict[str, str]:
    """Section title -> its text."""
    parts = re.split(r"^## (.+)$", SOURCES.read_text(encoding="utf-8"), flags=re.M)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2])}


def _rows(section: str) -> list[list[str]]:
    """The rows of the first table in a section (header and rule left out)."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in _sections()[section].splitlines() if line.startswith("|")]
    return rows[2:]


def _number(cell: str) -> float:
    return float(re.match(r"[0-9.]+", cell.replace(",", "")).group())


def test_module_table_equals_the_technology_file() -> None:
    modules = json.loads((TECHNOLOGIES / "14nm.json").read_text())["modules"]
    listed = set()
    for key, parameters, area, dynamic, leakage in _rows("Module characteristics"):
        wanted = {}
        for item in parameters.split(","):
            if "=" in item:
                name, value = (s.strip() for s in item.split("="))
                wanted[name] = int(value) if value.isdigit() else value
        points = [p for p in modules[key]["points"]
                  if all(p.get(name) == value for name, value in wanted.items())]
        assert len(points) == 1, (key, parameters)
        point = points[0]
        assert (point["area_um2"], point["dynamic_mw"], point["leakage_mw"]) == (
            _number(area), _number(dynamic), _number(leakage)), (key, parameters)
        listed.add((key, tuple(sorted(wanted.items()))))
    every = {(key, tuple(sorted((k, v) for k, v in p.items() if k in m["parameters"])))
             for key, m in modules.items() for p in m["points"]}
    assert listed == every, every ^ listed


def test_buffer_and_main_memory_tables_equal_the_technology_file() -> None:
    table = json.loads((TECHNOLOGIES / "14nm.json").read_text())
    kinds = table["buffers"]["kinds"]
    rows = _rows("Buffers")
    assert {row[0] for row in rows} == set(kinds)
    for key, area, leakage, energy in rows:
        assert kinds[key]["area_um2_per_mb"] == _number(area)
        assert kinds[key]["leakage_mw_per_mb"] == _number(leakage)
        assert kinds[key]["energy_per_access_nj"]["coefficient_nj"] == _number(energy)
    assert table["buffers"]["bandwidth_bytes_per_s"] == 370e9
    assert "370 GB/s" in _sections()["Buffers"]
    configs = {(kind, name): config["energy_per_access_nj"]
               for kind, memory in table["main_memory"]["types"].items()
               for name, config in memory["configs"].items()}
    assert {(kind, name): _number(nj) for kind, name, nj in _rows("Main memory")} == configs


def _source_fields(value: object) -> list[str]:
    if isinstance(value, dict):
        return [v for k, v in value.items() if k == "source" and isinstance(v, str)] + [
            s for v in value.values() for s in _source_fields(v)]
    if isinstance(value, list):
        return [s for v in value for s in _source_fields(v)]
    return []


@pytest.mark.parametrize("path", sorted(TECHNOLOGIES.glob("*.json")), ids=lambda p: p.name)
def test_technology_sources_name_sections_that_exist(path: Path) -> None:
    sections = _sections()
    cited = 0
    for text in _source_fields(json.loads(path.read_text())):
        if "docs/sources.md" in text:
            names = re.findall(r"'([^']+)'", text.split("docs/sources.md", 1)[1])
            assert names, text
            for name in names:
                assert name in sections, f"{path.name}: {text!r} names no section of docs/sources.md"
            cited += 1
    assert cited, f"{path.name} cites nothing in docs/sources.md"
#: Top-level folders whose paths comments and docs name, and the folder of
#: the compiled reference that is not part of the repository.
_PATH = re.compile(r"(?<![\w./-])((?:backends|frontends|passes|tools|transcode_ir|docs|tests|bench"
                   r"|shared|reference)/[\w./-]*\w\.(?:py|md|json|hwdsl|lark|toml|csv|tir|yaml"
                   r"|txt|sh))")


def _repository_files() -> list[str]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                                check=True).stdout.decode().split("\0")
        return [f for f in listed if f and (REPO / f).is_file()]
    except (OSError, subprocess.CalledProcessError):      # not a git checkout
        return [os.path.relpath(os.path.join(d, f), REPO) for d, dirs, files in os.walk(REPO)
                if not any(part.startswith(".") for part in Path(d).relative_to(REPO).parts)
                for f in files]


def test_no_file_points_at_a_path_outside_the_repository() -> None:
    missing = []
    for name in _repository_files():
        if not name.endswith((".py", ".md", ".json", ".hwdsl", ".toml", ".lark",
                                               ".tir", ".txt", ".cfg", ".yaml", ".sh")):
            continue
        text = (REPO / name).read_text(encoding="utf-8", errors="replace")
        for match in _PATH.finditer(text):
            path = match.group(1)
            if re.search(r"/[A-Z_]+\.", path):       # a placeholder such as library/NAME.hwdsl
                continue
            if not (REPO / path).exists():
                line = text.count("\n", 0, match.start()) + 1
                missing.append(f"{name}:{line}: {path}")
    assert not missing, "paths that do not exist in the repository:\n" + "\n".join(missing)
