"""The results store: SQLite in WAL mode, one row per evaluated point.

Schema (version 1)
==================

``results`` -- one row per evaluated point, written (and committed) the moment
its outcome arrives::

    key             TEXT PRIMARY KEY  SHA-256 of the point's identity (below)
    identity        TEXT   canonical JSON: model description, design DSL text,
                           schedule, pipeline, tool version, evaluator settings
    point           TEXT   the point as canonical JSON (JointSpace.decode reads it)
    description     TEXT   the readable one-line description
    model           TEXT   model description (canonical text form)
    hardware        TEXT   "<space>#<index>"
    schedule        TEXT   schedule as JSON
    pipeline        TEXT   exact pass pipeline before elector-map
    tool_version    TEXT
    evaluator       TEXT   evaluator settings as JSON (simulator, seq, accuracy source ...)
    status          TEXT   'ok' | 'failed'
    reason          TEXT   why it failed (NULL when ok)
    accuracy        REAL   (NULL: no accuracy source)
    accuracy_source TEXT   which source made the accuracy ("none", "table:f.csv", ...)
    simulator       TEXT   "analytical" | "event" | "synthetic"
    latency_cycles, latency_ms, dynamic_energy_nj, leakage_energy_nj,
    energy_nj, area_mm2     REAL
    metrics         TEXT   all metrics and details as JSON
    seconds         REAL   evaluation time
    worker          TEXT   host:pid that evaluated it
    created         REAL   unix time it was stored

``sweeps`` -- one row per sweep (a strategy run with its configuration)::

    id INTEGER PRIMARY KEY, name TEXT UNIQUE, config TEXT (JSON),
    config_hash TEXT, created REAL, updated REAL, state TEXT ('running'|'done')

``trials`` -- the order in which a sweep's strategy proposed points::

    sweep_id, seq (0, 1, ...), key, cached (1: answered from the store
    without evaluating), score REAL; PRIMARY KEY (sweep_id, seq)

``meta`` -- ``schema_version`` and the tool version that created the file.

``claims`` -- points being evaluated right now, so that sweeps sharing a
database share the work instead of each evaluating everything::

    key TEXT PRIMARY KEY, owner TEXT (machine:pid:start:run), machine TEXT
    (host name/boot id), pid INTEGER, start INTEGER (process start time),
    heartbeat REAL (unix time, refreshed every few seconds by the owner)

A sweep claims a point just before sending it to a worker (in one
transaction: not stored, not claimed by a live owner) and drops the claim in
the transaction that stores the result.  A claim is abandoned -- taken over
by the next sweep that wants the point -- when its owner no longer runs (same
machine: the pid is gone or runs another program, told by its start time) or,
for an owner on another machine, when its heartbeat is older than
:data:`STALE_AFTER` seconds.  The table is new in this version of schema 1:
older files get it the first time a sweep opens them.

Opening a file checks it before anything is written to it: it must be an
SQLite database (header), intact (``PRAGMA quick_check``), and either empty
or this tool's schema (``meta.schema_version`` and the tables and columns
above).  Anything else -- a truncated or overwritten file, another program's
database, a newer schema -- is a :class:`~transcode_ir.errors.UserError`
naming the file and what is wrong, and the file is left untouched.

A result is written in its own transaction (``INSERT OR IGNORE``: a key is
never stored twice).  After a crash or ``kill -9`` every committed row is
intact (WAL); the sweep driver replays its strategy deterministically and
finds the stored points, so nothing is evaluated twice.
"""

from __future__ import annotations

import json
import math
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transcode_ir.errors import UserError

__all__ = ["HEARTBEAT_SECONDS", "Claimer", "METRIC_COLUMNS", "SCHEMA_VERSION", "STALE_AFTER", "ResultsStore",
           "StoredResult", "damaged"]

SCHEMA_VERSION = 1
#: How often a sweep refreshes its claims' heartbeat, and after how long
#: without one a claim held from another machine is taken over.
HEARTBEAT_SECONDS = 5.0
STALE_AFTER = 60.0
METRIC_COLUMNS = ("latency_cycles", "latency_ms", "dynamic_energy_nj", "leakage_energy_nj",
                  "energy_nj", "area_mm2")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    point TEXT NOT NULL,
    description TEXT NOT NULL,
    model TEXT NOT NULL,
    hardware TEXT NOT NULL,
    schedule TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    tool_version TEXT NOT NULL,
    evaluator TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    reason TEXT,
    accuracy REAL,
    accuracy_source TEXT,
    simulator TEXT,
    latency_cycles REAL,
    latency_ms REAL,
    dynamic_energy_nj REAL,
    leakage_energy_nj REAL,
    energy_nj REAL,
    area_mm2 REAL,
    metrics TEXT NOT NULL,
    seconds REAL,
    worker TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sweeps (
    id INTEGER PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    config TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    sweep_id INTEGER NOT NULL REFERENCES sweeps(id),
    seq INTEGER NOT NULL,
    key TEXT NOT NULL,
    cached INTEGER NOT NULL,
    score REAL,
    PRIMARY KEY (sweep_id, seq)
);
CREATE INDEX IF NOT EXISTS results_status ON results(status);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    machine TEXT NOT NULL,
    pid INTEGER NOT NULL,
    start INTEGER NOT NULL,
    heartbeat REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS claims_owner ON claims(owner);
"""

#: The tables and columns a file must have to be read as a results database.
_REQUIRED = {
    "meta": {"key", "value"},
    "results": {"key", "identity", "point", "description", "model", "hardware", "schedule",
                "pipeline", "tool_version", "evaluator", "status", "reason", "accuracy",
                "accuracy_source", "simulator", "latency_cycles", "latency_ms",
                "dynamic_energy_nj", "leakage_energy_nj", "energy_nj", "area_mm2", "metrics",
                "seconds", "worker", "created"},
    "sweeps": {"id", "name", "config", "config_hash", "created", "updated", "state"},
    "trials": {"sweep_id", "seq", "key", "cached", "score"},
}
_SQLITE_MAGIC = b"SQLite format 3\x00"


def _while_locked(step: Any, seconds: float = 60.0) -> Any:
    """Run ``step``, again while SQLite says the database is locked.  Switching a
    new file to WAL while another process does the same can fail at once with
    "database is locked" (SQLite does not wait on its busy handler there): seen
    in 1 of 25 trials of three processes opening one new file together."""
    deadline = time.monotonic() + seconds
    delay = 0.01
    while True:
        try:
            return step()
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def damaged(path: str | Path, what: str) -> UserError:
    """The error for a file that is not a usable results database."""
    return UserError(f"{path}: {what}.  It is not a usable results database; it was left as "
                     "it is (nothing was written to it).  Give --db NEW.sqlite to start a new "
                     "results database (or restore this one from a copy).")


def _first_bytes(data: bytes) -> str:
    text = data[:16]
    if all(32 <= b < 127 or b in (9, 10, 13) for b in text):
        return repr(text.decode("ascii"))
    return text.hex(" ")


@dataclass(frozen=True)
class StoredResult:
    """One row of ``results`` (metrics decoded)."""

    key: str
    point: dict[str, Any]
    description: str
    status: str
    reason: str | None
    metrics: dict[str, Any]
    accuracy_source: str | None
    simulator: str | None
    seconds: float | None
    worker: str | None
    details: dict[str, Any]

    def outcome(self) -> Any:
        from tools.codesign.evaluation import Outcome

        return Outcome(self.status, dict(self.metrics), self.reason, self.accuracy_source,
                       self.simulator, self.seconds or 0.0, self.worker or "",
                       dict(self.details))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class ResultsStore:
    """A results database (see the module docstring).  One connection per
    process; safe to open from several processes at once (WAL, busy timeout)."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        """Open (``readonly``: only read, never create) or create a results
        database; see the module docstring for the checks."""
        self.path = Path(path)
        self.readonly = readonly
        if self.path.parent and not self.path.parent.exists():
            raise UserError(f"results database {self.path}: directory {self.path.parent} "
                            "does not exist")
        if self.path.is_dir():
            raise damaged(self.path, "this is a directory")
        exists = self.path.exists()
        if readonly and not exists:
            raise UserError(f"{self.path}: no such results database")
        if exists:
            self._check_file()
        try:
            if readonly:
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                self._connection = sqlite3.connect(uri, uri=True, timeout=60.0,
                                                   isolation_level=None,
                                                   check_same_thread=False)
            else:
                self._connection = sqlite3.connect(str(self.path), timeout=60.0,
                                                   isolation_level=None,
                                                   check_same_thread=False)
            self._connection.execute("PRAGMA busy_timeout=60000")
            tables = _while_locked(self._check_contents) if exists else set()
            if not readonly:
                _while_locked(lambda: self._connection.execute("PRAGMA journal_mode=WAL"))
                self._connection.execute("PRAGMA synchronous=NORMAL")
                _while_locked(self._create_schema)
            elif not tables:
                raise damaged(self.path, "an SQLite database with no tables (no sweep has "
                              "written to it)")
        except sqlite3.DatabaseError as error:
            with_connection = getattr(self, "_connection", None)
            if with_connection is not None:
                with_connection.close()
            raise self._sqlite_error(error) from None
        except UserError:
            self._connection.close()
            raise

    def _sqlite_error(self, error: sqlite3.DatabaseError) -> UserError:
        text = str(error)
        if "locked" in text or "busy" in text:
            return UserError(f"{self.path}: the results database stayed locked by another "
                             f"process for 60 s ({text}); try again when it is done")
        if "readonly" in text or "unable to open" in text or "permission" in text.lower():
            return UserError(f"{self.path}: cannot open the results database ({text})")
        return damaged(self.path, f"SQLite reports: {text}")

    def _check_file(self) -> None:
        """The header and size, before SQLite sees the file."""
        try:
            size = self.path.stat().st_size
            with open(self.path, "rb") as handle:
                header = handle.read(100)
        except OSError as error:
            raise UserError(f"{self.path}: cannot read the results database "
                            f"({error.strerror})") from None
        if size == 0:
            if self.readonly:
                raise damaged(self.path, "the file is empty (0 bytes; no sweep has written "
                              "to it)")
            return                                  # SQLite makes a new database in it
        if not header.startswith(_SQLITE_MAGIC):
            raise damaged(self.path, "not an SQLite database (it starts with "
                          f"{_first_bytes(header)}, not 'SQLite format 3')")
        if len(header) < 100:
            raise damaged(self.path, f"truncated: {size} bytes, shorter than an SQLite "
                          "header (100 bytes)")
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        pages = int.from_bytes(header[28:32], "big")
        valid = header[24:28] == header[92:96]       # the page count is current
        wal = self.path.with_name(self.path.name + "-wal")
        if valid and pages and size < pages * page_size and not (
                wal.exists() and wal.stat().st_size > 0):
            raise damaged(self.path, f"truncated: its header counts {pages} pages of "
                          f"{page_size} bytes ({pages * page_size} bytes) but the file has "
                          f"{size} bytes")

    def _check_contents(self) -> set[str]:
        """Integrity and schema of an existing file (nothing written yet)."""
        problems = [row[0] for row in self._connection.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise damaged(self.path, "SQLite's integrity check fails: "
                          + "; ".join(str(p) for p in problems))
        tables = {row[0] for row in self._connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return tables
        if "meta" not in tables:
            listed = ", ".join(sorted(tables)[:8]) + (", ..." if len(tables) > 8 else "")
            raise damaged(self.path, "an SQLite database, but not a TransCODE results "
                          f"database (no meta table; its tables: {listed})")
        row = self._connection.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            raise damaged(self.path, "an SQLite database, but not a TransCODE results "
                          "database (its meta table has no schema_version)")
        try:
            version = int(row[0])
        except (TypeError, ValueError):
            raise damaged(self.path, f"its schema_version is {row[0]!r}, not a number") from None
        if version != SCHEMA_VERSION:
            raise UserError(f"{self.path}: results schema version {version}; this tool reads "
                            f"version {SCHEMA_VERSION} (a newer or older tool wrote it).  Use "
                            "the tool that wrote it, or give --db NEW.sqlite to start a new "
                            "results database; this file was left as it is.")
        for table, columns in _REQUIRED.items():
            if table not in tables:
                raise damaged(self.path, f"its {table} table is missing")
            have = {r[1] for r in self._connection.execute(f"PRAGMA table_info({table})")}
            if not columns <= have:
                raise damaged(self.path, f"its {table} table lacks the columns "
                              + ", ".join(sorted(columns - have)))
        return tables

    def _create_schema(self) -> None:
        """Create what is missing, in one transaction (a sweep starting at the
        same moment on the same new file sees all of it or none of it)."""
        from tools.version import TOOL_VERSION

        created_by = f"tcc {TOOL_VERSION}".replace("'", "")
        try:
            self._create_schema_once(created_by)
        except sqlite3.Error:
            if self._connection.in_transaction:
                self._connection.execute("ROLLBACK")
            raise

    def _create_schema_once(self, created_by: str) -> None:
        self._connection.executescript(
            "BEGIN IMMEDIATE;\n" + _SCHEMA
            + f"INSERT OR IGNORE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');\n"
            + f"INSERT OR IGNORE INTO meta VALUES ('created_by', '{created_by}');\nCOMMIT;")

    def decoding(self) -> _Decoding:
        """A context in which content that does not decode (a row's JSON, a
        value of the wrong type) or an SQLite error is a UserError naming this
        file (for status and export, which read everything)."""
        return ResultsStore._Decoding(self)

    class _Decoding:
        def __init__(self, store: ResultsStore) -> None:
            self.store = store

        def __enter__(self) -> None:
            return None

        def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                     *rest: object) -> None:
            if kind is None or isinstance(error, UserError):
                return
            if isinstance(error, sqlite3.DatabaseError):
                raise self.store._sqlite_error(error) from None
            if isinstance(error, (ValueError, TypeError, KeyError, AttributeError)):
                raise damaged(self.store.path, "a row does not decode "
                              f"({type(error).__name__}: {error})") from None

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> ResultsStore:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    class _Transaction:
        def __init__(self, connection: sqlite3.Connection) -> None:
            self.connection = connection

        def __enter__(self) -> sqlite3.Connection:
            self.connection.execute("BEGIN IMMEDIATE")
            return self.connection

        def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
            self.connection.execute("COMMIT" if kind is None else "ROLLBACK")

    def transaction(self) -> ResultsStore._Transaction:
        return ResultsStore._Transaction(self._connection)

    # -- results -------------------------------------------------------------

    def put(self, key: str, identity: dict[str, Any], point: dict[str, Any], description: str,
            hardware_label: str, outcome: Any) -> bool:
        """Store one outcome (committed at once); False when ``key`` was
        already stored (the first result wins)."""
        metrics = outcome.metrics
        payload = {"metrics": metrics, "details": outcome.details}
        values = (
            key, json.dumps(identity, sort_keys=True), json.dumps(point, sort_keys=True),
            description, identity["point"]["model"], hardware_label,
            json.dumps(identity["point"]["schedule"], sort_keys=True), identity["pipeline"],
            identity["tool_version"], json.dumps(identity["evaluator"], sort_keys=True),
            outcome.status, outcome.reason, _finite(metrics.get("accuracy")),
            outcome.accuracy_source, outcome.simulator,
            *(_finite(metrics.get(c)) for c in METRIC_COLUMNS),
            json.dumps(payload, sort_keys=True, default=str), outcome.seconds, outcome.worker,
            time.time())
        with self.transaction() as connection:
            cursor = connection.execute(
                f"INSERT OR IGNORE INTO results VALUES ({', '.join('?' * len(values))})", values)
            connection.execute("DELETE FROM claims WHERE key = ?", (key,))
        return cursor.rowcount == 1

    def get(self, key: str) -> StoredResult | None:
        row = self._connection.execute(
            "SELECT key, point, description, status, reason, metrics, accuracy_source, "
            "simulator, seconds, worker FROM results WHERE key = ?", (key,)).fetchone()
        return None if row is None else _stored(row, self.path)

    def get_many(self, keys: Iterable[str]) -> dict[str, StoredResult]:
        keys = list(dict.fromkeys(keys))
        out: dict[str, StoredResult] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = self._connection.execute(
                "SELECT key, point, description, status, reason, metrics, accuracy_source, "
                f"simulator, seconds, worker FROM results WHERE key IN "
                f"({', '.join('?' * len(chunk))})", chunk).fetchall()
            out.update({row[0]: _stored(row, self.path) for row in rows})
        return out

    def __contains__(self, key: str) -> bool:
        return self._connection.execute("SELECT 1 FROM results WHERE key = ?",
                                        (key,)).fetchone() is not None

    def count(self, status: str | None = None) -> int:
        if status is None:
            return self._connection.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        return self._connection.execute("SELECT COUNT(*) FROM results WHERE status = ?",
                                        (status,)).fetchone()[0]

    def results(self, status: str | None = None) -> Iterator[StoredResult]:
        query = ("SELECT key, point, description, status, reason, metrics, accuracy_source, "
                 "simulator, seconds, worker FROM results")
        args: tuple[Any, ...] = ()
        if status is not None:
            query += " WHERE status = ?"
            args = (status,)
        for row in self._connection.execute(query + " ORDER BY created, key", args):
            yield _stored(row, self.path)

    def rows(self) -> list[dict[str, Any]]:
        """Every result row as a dict of the table's columns."""
        cursor = self._connection.execute("SELECT * FROM results ORDER BY created, key")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def claims(self) -> list[dict[str, Any]]:
        """The claims table (points being evaluated now), oldest first; empty
        for a file from before claims that was only opened to read."""
        if self._connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                    "name = 'claims'").fetchone() is None:
            return []
        cursor = self._connection.execute("SELECT * FROM claims ORDER BY heartbeat, key")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def claimer(self) -> Claimer:
        """This process's claims in this database for one sweep run."""
        return Claimer(self)

    # -- sweeps and trials ------------------------------------------------------

    def sweep(self, name: str, config: dict[str, Any], config_hash: str) -> int:
        """The id of sweep ``name`` (created when new).  An existing sweep of
        that name must have the same configuration."""
        row = self._connection.execute("SELECT id, config_hash FROM sweeps WHERE name = ?",
                                       (name,)).fetchone()
        if row is not None:
            if row[1] != config_hash:
                raise UserError(f"{self.path}: sweep {name!r} exists with a different "
                                "configuration; give another --name (or another database) "
                                "to start a new sweep")
            return int(row[0])
        now = time.time()
        with self.transaction() as connection:
            connection.execute("INSERT OR IGNORE INTO sweeps (name, config, config_hash, "
                               "created, updated, state) VALUES (?, ?, ?, ?, ?, 'running')",
                               (name, json.dumps(config, sort_keys=True), config_hash, now, now))
        return int(self._connection.execute("SELECT id FROM sweeps WHERE name = ?",
                                            (name,)).fetchone()[0])

    def set_sweep_state(self, sweep_id: int, state: str) -> None:
        with self.transaction() as connection:
            connection.execute("UPDATE sweeps SET state = ?, updated = ? WHERE id = ?",
                               (state, time.time(), sweep_id))

    def sweeps(self) -> list[dict[str, Any]]:
        rows = self._connection.execute(
            "SELECT id, name, config, created, updated, state, "
            "(SELECT COUNT(*) FROM trials t WHERE t.sweep_id = s.id), "
            "(SELECT COUNT(*) FROM trials t WHERE t.sweep_id = s.id AND t.cached = 0) "
            "FROM sweeps s ORDER BY id").fetchall()
        out = []
        for r in rows:
            try:
                config = json.loads(r[2])
                if not isinstance(config, dict):
                    raise ValueError("not a JSON object")
            except (TypeError, ValueError) as error:
                raise damaged(self.path, f"the configuration of sweep {r[1]!r} does not "
                              f"decode ({error})") from None
            out.append({"id": r[0], "name": r[1], "config": config, "created": r[3],
                        "updated": r[4], "state": r[5], "trials": r[6], "evaluated": r[7]})
        return out

    def trials(self, sweep_id: int) -> list[tuple[int, str, int, float | None]]:
        """``(seq, key, cached, score)`` of a sweep, in order."""
        return [tuple(r) for r in self._connection.execute(
            "SELECT seq, key, cached, score FROM trials WHERE sweep_id = ? ORDER BY seq",
            (sweep_id,))]

    def add_trials(self, sweep_id: int, rows: Iterable[tuple[int, str, int, float | None]]
                   ) -> None:
        with self.transaction() as connection:
            connection.executemany(
                "INSERT OR REPLACE INTO trials (sweep_id, seq, key, cached, score) "
                "VALUES (?, ?, ?, ?, ?)",
                [(sweep_id, seq, key, cached, _finite(score)) for seq, key, cached, score in rows])
            connection.execute("UPDATE sweeps SET updated = ? WHERE id = ?",
                               (time.time(), sweep_id))


def _stored(row: tuple[Any, ...], path: Path) -> StoredResult:
    try:
        payload = json.loads(row[5])
        point = json.loads(row[1])
        if not isinstance(payload, dict) or not isinstance(point, dict):
            raise ValueError("not a JSON object")
    except (TypeError, ValueError) as error:
        raise damaged(path, f"the stored result {str(row[0])[:16]}... does not decode "
                      f"({error})") from None
    return StoredResult(row[0], point, row[2], row[3], row[4],
                        dict(payload.get("metrics") or {}), row[6], row[7], row[8], row[9],
                        dict(payload.get("details") or {}))


class Claimer:
    """Claims on points for one sweep run (see the module docstring).

    ``claim(key)`` is True when this run may evaluate the point: it is not
    stored and nobody alive holds it (an abandoned claim is taken over and
    counted in ``taken_over``).  A daemon thread refreshes the run's
    heartbeat every :data:`HEARTBEAT_SECONDS` on its own connection;
    :meth:`close` stops it and drops the run's remaining claims."""

    def __init__(self, store: ResultsStore) -> None:
        from tools.codesign.lifetime import owner_identity

        self.store = store
        self.owner = owner_identity()
        self.label = f"{self.owner.label}:{secrets.token_hex(4)}"
        self.taken_over = 0
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="claims-heartbeat", daemon=True)
        self._thread.start()

    def claim(self, key: str) -> bool:
        now = time.time()
        with self.store.transaction() as connection:
            if connection.execute("SELECT 1 FROM results WHERE key = ?", (key,)).fetchone():
                return False
            row = connection.execute("SELECT owner, machine, pid, start, heartbeat FROM claims "
                                     "WHERE key = ?", (key,)).fetchone()
            if row is not None and row[0] != self.label:
                if not _abandoned(row, now):
                    self.refused += 1
                    return False
                self.taken_over += 1
            connection.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?, ?)",
                               (key, self.label, self.owner.machine, self.owner.pid,
                                self.owner.start, now))
        return True

    def _beat(self) -> None:
        connection = None
        try:
            while not self._stop.wait(HEARTBEAT_SECONDS):
                try:
                    if connection is None:
                        connection = sqlite3.connect(str(self.store.path), timeout=30.0,
                                                     isolation_level=None)
                    connection.execute("UPDATE claims SET heartbeat = ? WHERE owner = ?",
                                       (time.time(), self.label))
                except sqlite3.Error:
                    pass                            # next beat; a claim goes stale after a minute
        finally:
            if connection is not None:
                connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        try:
            with self.store.transaction() as connection:
                connection.execute("DELETE FROM claims WHERE owner = ?", (self.label,))
        except sqlite3.Error:
            pass                                    # abandoned claims are taken over anyway


def _abandoned(row: tuple[Any, ...], now: float) -> bool:
    """Whether a claim ``(owner, machine, pid, start, heartbeat)`` has no live owner."""
    from tools.codesign.lifetime import owner_alive

    _, machine, pid, start, heartbeat = row
    alive = owner_alive(machine, int(pid), int(start))
    if alive is False:
        return True
    if alive is None or not start:              # elsewhere, or this platform cannot tell
        return now - float(heartbeat) > STALE_AFTER
    return False
