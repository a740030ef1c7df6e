"""A results database opened while another process is creating it.

Switching a new file to WAL while another connection holds a pending write
on it fails at once with "database is locked" (SQLite does not wait on its
busy handler there).  Before the retry in ``ResultsStore`` this refused a
sweep in 1 of 25 trials of three sweeps started together on one new file
(and stalled a concurrent-sweep test once); here the other connection is
made to hold its write for half a second, deterministically.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from tools.codesign.store import ResultsStore


def test_opening_a_new_database_waits_for_another_writer(tmp_path: Path) -> None:
    db = tmp_path / "new.sqlite"
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")               # a pending write on the new, empty file
    release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    try:
        with ResultsStore(db) as store:
            assert store.count() == 0
            assert store.claims() == []
    finally:
        release.join()
        other.close()
    assert time.monotonic() - started >= 0.4        # it waited for the writer
