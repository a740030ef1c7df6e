"""Damaged, truncated, garbage or foreign results databases: one-paragraph errors, files untouched.

Issue 13 found tracebacks for 22 such files in ``tcc sweep status``,
``tcc sweep export`` and resuming a sweep.  Each case below makes a file
from a real results database (or from scratch), runs the three commands on
it, and checks: a non-zero exit, no traceback, the file named and what is
wrong with it said, ``--db`` suggested for a new database when a sweep is
refused, and the file's bytes unchanged.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tools.cli import main

SWEEP = ["transcode-space", "--model", "zoo:bert-tiny", "--synthetic", "--executor", "inline",
         "--budget", "6", "--round-size", "3", "--quiet", "--no-report"]


@pytest.fixture(scope="module")
def valid_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real results database (six synthetic results), checkpointed into one file."""
    db = tmp_path_factory.mktemp("valid") / "valid.sqlite"
    assert main(["sweep", *SWEEP, "--db", str(db)]) == 0
    assert not Path(f"{db}-wal").exists()
    return db


def _sql(statements: str) -> Callable[[Path, Path], None]:
    def make(path: Path, valid: Path) -> None:
        shutil.copy(valid, path)
        connection = sqlite3.connect(path)
        connection.executescript(statements)
        connection.commit()
        connection.close()
    return make


def _bytes(transform: Callable[[bytes], bytes]) -> Callable[[Path, Path], None]:
    def make(path: Path, valid: Path) -> None:
        path.write_bytes(transform(valid.read_bytes()))
    return make


def _foreign(statements: str) -> Callable[[Path, Path], None]:
    def make(path: Path, valid: Path) -> None:
        connection = sqlite3.connect(path)
        connection.executescript(statements)
        connection.commit()
        connection.close()
    return make


def _page(data: bytes, index: int, filler: bytes) -> bytes:
    size = int.from_bytes(data[16:18], "big")
    return data[:index * size] + (filler * size)[:size] + data[(index + 1) * size:]


ALL = ("status", "export", "sweep")
# name: (make the file, what the message must say, commands that must refuse it)
CASES: dict[str, tuple[Callable[[Path, Path], None], str, tuple[str, ...]]] = {
    "text file": (lambda p, v: p.write_text("hello, not a database\n"), "not an SQLite", ALL),
    "random bytes": (_bytes(lambda d: os.urandom(4096)), "not an SQLite", ALL),
    "csv export": (lambda p, v: p.write_text("key,status\nabc,ok\n"), "not an SQLite", ALL),
    "json export": (lambda p, v: p.write_text(json.dumps({"results": []})), "not an SQLite",
                    ALL),
    "gzip of a database": (_bytes(gzip.compress), "not an SQLite", ALL),
    "zeros": (_bytes(lambda d: bytes(len(d))), "not an SQLite", ALL),
    "shorter than the header": (_bytes(lambda d: d[:50]), "truncated", ALL),
    "header only": (_bytes(lambda d: d[:100]), "truncated", ALL),
    "truncated to one page": (_bytes(lambda d: d[:int.from_bytes(d[16:18], "big")]),
                              "truncated", ALL),
    "truncated in half": (_bytes(lambda d: d[:len(d) // 2]), "truncated", ALL),
    "last page missing": (_bytes(lambda d: d[:len(d) - int.from_bytes(d[16:18], "big")]),
                          "truncated", ALL),
    "header then garbage": (_bytes(lambda d: d[:100] + os.urandom(len(d) - 100)), "SQLite",
                            ALL),
    "a page overwritten": (_bytes(lambda d: _page(d, 2, b"\xde\xad\xbe\xef")), "SQLite", ALL),
    "schema page overwritten": (_bytes(lambda d: d[:100] + b"\xff" * 3996 + d[4096:]),
                                "SQLite", ALL),
    "another program's database": (_foreign("CREATE TABLE users (id INTEGER, name TEXT);"
                                            "INSERT INTO users VALUES (1, 'a');"),
                                   "not a TransCODE results database", ALL),
    "a foreign results table": (_foreign("CREATE TABLE results (id INTEGER, score REAL);"),
                                "not a TransCODE results database", ALL),
    "meta without a version": (_sql("DELETE FROM meta WHERE key = 'schema_version';"),
                               "schema_version", ALL),
    "version not a number": (_sql("UPDATE meta SET value = 'one' WHERE "
                                  "key = 'schema_version';"), "schema_version", ALL),
    "newer schema": (_sql("UPDATE meta SET value = '99' WHERE key = 'schema_version';"),
                     "schema version 99", ALL),
    "trials table missing": (_sql("DROP TABLE trials;"), "trials table is missing", ALL),
    "results column missing": (_sql("ALTER TABLE results DROP COLUMN energy_nj;"),
                               "lacks the columns energy_nj", ALL),
    "garbage metrics JSON": (_sql("UPDATE results SET metrics = '{not json';"),
                             "does not decode", ("status", "sweep")),
    "garbage sweep config": (_sql("UPDATE sweeps SET config = 'garbage';"), "does not decode",
                             ("status",)),
    "a directory": (lambda p, v: p.mkdir(), "directory", ALL),
    "empty file": (lambda p, v: p.touch(), "empty", ("status", "export")),
    "an SQLite database with no tables": (_foreign("VACUUM;"), "no tables",
                                          ("status", "export")),
}


def _digest(path: Path) -> str:
    return "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("case", sorted(CASES))
def test_damaged_database(case: str, valid_db: Path, tmp_path: Path, capsys) -> None:
    make, says, refused = CASES[case]
    db = tmp_path / "damaged.sqlite"
    make(db, valid_db)
    before = _digest(db)
    commands = {"status": ["sweep", "status", str(db)],
                "export": ["sweep", "export", str(db), "--json", str(tmp_path / "out.json")],
                "sweep": ["sweep", *SWEEP, "--db", str(db)]}
    for label in sorted(commands, key=lambda c: c not in refused):   # refused ones first
        code = main(commands[label])
        err = capsys.readouterr().err
        assert "Traceback" not in err, (label, err)
        if label in refused:
            assert code != 0, (label, err)
            assert str(db) in err and says in err, (label, err)
            if label == "sweep" and "schema version" not in err:
                assert "--db NEW.sqlite" in err, err
            assert _digest(db) == before, f"{label} changed the file"
