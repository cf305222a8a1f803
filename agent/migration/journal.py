"""Migration outcome records (spec migration.md §2.14): one durable row per migration and role.

Each agent keeps its records in ``<state-dir>/migrations.db`` (SQLite, WAL, ``synchronous=FULL``:
a write that returned is on disk). A record's state only moves forward along its role's order
(:data:`SOURCE_ORDER`, :data:`TARGET_ORDER`); :meth:`Journal.advance` refuses a backward step,
so a replayed or late input can never undo a decision. The source's resolution token is kept
in a separate file of mode 0600 (``<state-dir>/migration-tokens/<id>``), never in the row, so
that dumping the database shows no secret; the target keeps only its SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

SOURCE = "source"
TARGET = "target"

# Source states in the order they may be reached (final states share the last rank).
SOURCE_ORDER = ("intake", "prepared", "suspended", "commit-sent", "unresolved", "final")
SOURCE_FINAL = ("completed", "aborted", "resolved-completed", "resolved-aborted", "forced",
                "split-brain")
FORCED_TO_SPLIT = ("forced", "split-brain")
TARGET_ORDER = ("greeted", "prepared", "committing", "final")
TARGET_FINAL = ("committed", "aborted")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS migrations (
    id    TEXT NOT NULL,
    role  TEXT NOT NULL,
    state TEXT NOT NULL,
    body  TEXT NOT NULL,
    PRIMARY KEY (id, role)
)
"""


class JournalError(Exception):
    """A state change the journal refuses (backward step, unknown record)."""


@dataclass
class Record:
    """One migration as one agent sees it; ``data`` holds the role's own fields."""

    id: str
    role: str
    state: str
    data: dict = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.state in (SOURCE_FINAL if self.role == SOURCE else TARGET_FINAL)


def rank(role: str, state: str) -> int:
    """The position of ``state`` in its role's order (final states share the last rank)."""
    order, finals = (SOURCE_ORDER, SOURCE_FINAL) if role == SOURCE else (TARGET_ORDER, TARGET_FINAL)
    if state in finals:
        return len(order) - 1
    if state not in order[:-1]:
        raise JournalError(f"unknown {role} state {state!r}")
    return order.index(state)


class Journal:
    """The outcome records of one agent."""

    def __init__(self, state_dir: str | Path, wall_clock: Callable[[], float] = time.time) -> None:
        self.dir = Path(state_dir)
        # Wall-clock seconds: when a record ended, for the retention (§2.14). A wall clock,
        # unlike the monotonic one, still means something after a restart.
        self.wall_clock = wall_clock
        # The authenticator checks resolution tokens off the reactor thread, hence the lock.
        self.conn = sqlite3.connect(str(self.dir / "migrations.db"), isolation_level=None,
                                    check_same_thread=False)
        self._lock = threading.RLock()
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute(_SCHEMA)

    # -- records --------------------------------------------------------------------------
    def create(self, record: Record) -> Record:
        rank(record.role, record.state)
        with self._lock:
            self.conn.execute("INSERT INTO migrations (id, role, state, body) VALUES (?, ?, ?, ?)",
                              (record.id, record.role, record.state, json.dumps(record.data)))
        return record

    def get(self, mid: str, role: str) -> Record | None:
        with self._lock:
            row = self.conn.execute("SELECT state, body FROM migrations WHERE id = ? AND role = ?",
                                    (mid, role)).fetchone()
        return None if row is None else Record(mid, role, row[0], json.loads(row[1]))

    def advance(self, record: Record, state: str, **fields) -> Record:
        """Move ``record`` to ``state`` (same or later rank) and merge ``fields``; durable on return.

        A final record never changes state again (the target's decision is final, §2.10).
        """
        with self._lock:
            return self._advance(record, state, fields)

    def _advance(self, record: Record, state: str, fields: dict) -> Record:
        stored = self.get(record.id, record.role)
        if stored is None:
            raise JournalError(f"no {record.role} record for migration {record.id}")
        # The one change of a final state: a forced recovery found to be a split brain (§9.4).
        if stored.final and state != stored.state and (stored.state, state) != FORCED_TO_SPLIT:
            raise JournalError(f"migration {record.id} already ended as {stored.state}")
        if rank(record.role, state) < rank(record.role, stored.state):
            raise JournalError(f"migration {record.id}: {stored.state} cannot go back to {state}")
        record.state = state
        record.data = {**stored.data, **fields}
        if record.final and "ended_at" not in record.data:
            record.data["ended_at"] = self.wall_clock()
        self.conn.execute("UPDATE migrations SET state = ?, body = ? WHERE id = ? AND role = ?",
                          (state, json.dumps(record.data), record.id, record.role))
        return record

    def open_records(self, role: str | None = None) -> list[Record]:
        """Records that are not final (what an agent must finish at start)."""
        return [r for r in self.all_records() if not r.final and (role is None or r.role == role)]

    def all_records(self) -> list[Record]:
        with self._lock:
            rows = self.conn.execute("SELECT id, role, state, body FROM migrations").fetchall()
        return [Record(i, r, s, json.loads(b)) for i, r, s, b in rows]

    def expire(self, retention: float, keep: Callable[[Record], bool] = lambda r: False) -> list[str]:
        """Drop the final records that ended more than ``retention`` seconds ago, except those
        ``keep`` still needs; returns the dropped ids. Open records are never dropped, nor a
        final record without an end time (one written before end times were kept). A dropped
        record's resolution token goes with it, so it stops working (§2.14)."""
        horizon = self.wall_clock() - retention
        dropped = []
        with self._lock:
            for record in self.all_records():
                ended = record.data.get("ended_at")
                if not record.final or ended is None or ended > horizon or keep(record):
                    continue
                self.conn.execute("DELETE FROM migrations WHERE id = ? AND role = ?",
                                  (record.id, record.role))
                if record.role == SOURCE:
                    self.drop_token(record.id)
                dropped.append(record.id)
        return dropped

    # -- resolution tokens ----------------------------------------------------------------
    def _token_path(self, mid: str) -> Path:
        return self.dir / "migration-tokens" / mid

    def store_token(self, mid: str, token: str) -> None:
        """Keep the source's copy of a resolution token, readable by the agent only."""
        directory = self.dir / "migration-tokens"
        directory.mkdir(mode=0o700, exist_ok=True)
        path = self._token_path(mid)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token)
            f.flush()
            os.fsync(f.fileno())

    def load_token(self, mid: str) -> str | None:
        try:
            return self._token_path(mid).read_text().strip()
        except OSError:
            return None

    def drop_token(self, mid: str) -> None:
        try:
            self._token_path(mid).unlink()
        except OSError:
            pass

    def close(self) -> None:
        self.conn.close()


def token_digest(token: str) -> str:
    """What the target stores of a resolution token."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, digest: str) -> bool:
    """Constant-time comparison of a presented token with a stored digest (§4.2)."""
    return hmac.compare_digest(token_digest(token), digest)
