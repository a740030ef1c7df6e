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

A result is written in its own transaction (``INSERT OR IGNORE``: a key is
never stored twice).  After a crash or ``kill -9`` every committed row is
intact (WAL); the sweep driver replays its strategy deterministically and
finds the stored points, so nothing is evaluated twice.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transcode_ir.errors import UserError

__all__ = ["METRIC_COLUMNS", "SCHEMA_VERSION", "ResultsStore", "StoredResult"]

SCHEMA_VERSION = 1
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
"""


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

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            raise UserError(f"results database {self.path}: directory {self.path.parent} "
                            "does not exist")
        self._connection = sqlite3.connect(str(self.path), timeout=60.0,
                                           isolation_level=None, check_same_thread=False)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.execute("PRAGMA busy_timeout=60000")
        self._connection.executescript(_SCHEMA)
        self._check_version()

    def _check_version(self) -> None:
        from tools.version import TOOL_VERSION

        row = self._connection.execute(
            "SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            with self.transaction():
                self._connection.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                                         (str(SCHEMA_VERSION),))
                self._connection.execute("INSERT OR IGNORE INTO meta VALUES ('created_by', ?)",
                                         (f"tcc {TOOL_VERSION}",))
        elif int(row[0]) != SCHEMA_VERSION:
            raise UserError(f"{self.path}: results schema version {row[0]}; this tool reads "
                            f"version {SCHEMA_VERSION}")

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
        return cursor.rowcount == 1

    def get(self, key: str) -> StoredResult | None:
        row = self._connection.execute(
            "SELECT key, point, description, status, reason, metrics, accuracy_source, "
            "simulator, seconds, worker FROM results WHERE key = ?", (key,)).fetchone()
        return None if row is None else _stored(row)

    def get_many(self, keys: Iterable[str]) -> dict[str, StoredResult]:
        keys = list(dict.fromkeys(keys))
        out: dict[str, StoredResult] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = self._connection.execute(
                "SELECT key, point, description, status, reason, metrics, accuracy_source, "
                f"simulator, seconds, worker FROM results WHERE key IN "
                f"({', '.join('?' * len(chunk))})", chunk).fetchall()
            out.update({row[0]: _stored(row) for row in rows})
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
            yield _stored(row)

    def rows(self) -> list[dict[str, Any]]:
        """Every result row as a dict of the table's columns."""
        cursor = self._connection.execute("SELECT * FROM results ORDER BY created, key")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

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
        return [{"id": r[0], "name": r[1], "config": json.loads(r[2]), "created": r[3],
                 "updated": r[4], "state": r[5], "trials": r[6], "evaluated": r[7]}
                for r in rows]

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


def _stored(row: tuple[Any, ...]) -> StoredResult:
    payload = json.loads(row[5])
    return StoredResult(row[0], json.loads(row[1]), row[2], row[3], row[4],
                        dict(payload.get("metrics") or {}), row[6], row[7], row[8], row[9],
                        dict(payload.get("details") or {}))
