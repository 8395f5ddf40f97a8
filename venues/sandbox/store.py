"""A tiny document store on SQLite for sandbox state.

The sandboxes stand in for remote systems, so their state deliberately does not live in the
Django database: a rolled-back Django transaction must not roll back what the "venue" did.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    collection TEXT NOT NULL,
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (collection, key)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class StoreTx:
    """Operations inside one write transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, collection: str, key: str) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT data FROM docs WHERE collection = ? AND key = ?", (collection, key)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, collection: str, key: str, data: dict[str, Any]) -> None:
        self._conn.execute(
            "INSERT INTO docs (collection, key, seq, data) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (collection, key) DO UPDATE SET data = excluded.data",
            (collection, key, self.next_id(f"seq:{collection}"), json.dumps(data, sort_keys=True)),
        )

    def delete(self, collection: str, key: str) -> None:
        self._conn.execute("DELETE FROM docs WHERE collection = ? AND key = ?", (collection, key))

    def all(self, collection: str) -> list[dict[str, Any]]:
        """Every document of a collection, oldest first."""
        rows = self._conn.execute(
            "SELECT data FROM docs WHERE collection = ? ORDER BY seq", (collection,)
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def next_id(self, name: str) -> int:
        self._conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, 1) "
            "ON CONFLICT (name) DO UPDATE SET value = value + 1",
            (name,),
        )
        return self._conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[
            0
        ]


class SandboxStore:
    def __init__(self, path: str) -> None:
        self.path = path
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @contextmanager
    def tx(self) -> Iterator[StoreTx]:
        """One serialised write transaction (BEGIN IMMEDIATE), committed on success."""
        conn = self._connect()
        try:
            for attempt in range(50):
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError:
                    if attempt == 49:
                        raise
                    time.sleep(0.05)
            try:
                yield StoreTx(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()
