"""SQLite persistence of the manager state: one JSON row per domain plus host rows.

WAL journal with ``synchronous=FULL``: a commit that returned is on disk. Each
:meth:`SqliteStore.commit` is one transaction, so a crash leaves the old rows or the new
ones, never a mix; only the rows a change touched are written.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

RowKey = tuple[str, str]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state_rows (
    kind TEXT NOT NULL,
    key  TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID
"""


class SqliteStore:
    """The manager's rows in an SQLite database file."""

    def __init__(self, path: str | Path) -> None:
        # Autocommit mode: transactions are opened explicitly in commit().
        self.conn = sqlite3.connect(str(path), isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute(_SCHEMA)

    def load(self) -> dict[RowKey, dict]:
        """Every stored row, decoded."""
        cur = self.conn.execute("SELECT kind, key, body FROM state_rows")
        return {(kind, key): json.loads(body) for kind, key, body in cur}

    def commit(self, upserts: dict[RowKey, dict], deletes: list[RowKey]) -> None:
        """Write ``upserts`` and remove ``deletes`` in one transaction."""
        encoded = [(k, key, json.dumps(row, sort_keys=True)) for (k, key), row in upserts.items()]
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany("DELETE FROM state_rows WHERE kind = ? AND key = ?", deletes)
            self.conn.executemany(
                "INSERT OR REPLACE INTO state_rows (kind, key, body) VALUES (?, ?, ?)", encoded)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()
