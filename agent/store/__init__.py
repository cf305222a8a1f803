"""Persistence: the manager's state in SQLite (``SqliteStore``) or in memory (``MemoryStore``)."""

from agent.store.memory import MemoryStore
from agent.store.sqlite import SqliteStore

__all__ = ["MemoryStore", "SqliteStore"]
