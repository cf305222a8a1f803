"""An in-memory store with the same contract as the SQLite one (rows kept as JSON text).

Keeping JSON text rather than the dicts proves that what the manager commits survives a
round trip through serialisation, exactly as it must for the real store.
"""

from __future__ import annotations

import json

RowKey = tuple[str, str]


class MemoryStore:
    """Rows in a dict; ``commits`` counts transactions and ``written`` the rows they wrote."""

    def __init__(self) -> None:
        self.rows: dict[RowKey, str] = {}
        self.commits = 0
        self.written = 0

    def load(self) -> dict[RowKey, dict]:
        return {key: json.loads(text) for key, text in self.rows.items()}

    def commit(self, upserts: dict[RowKey, dict], deletes: list[RowKey]) -> None:
        encoded = {key: json.dumps(row, sort_keys=True) for key, row in upserts.items()}
        for key in deletes:
            self.rows.pop(key, None)
        self.rows.update(encoded)
        self.commits += 1
        self.written += len(encoded) + len(deletes)
