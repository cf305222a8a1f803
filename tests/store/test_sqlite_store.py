"""Persistence: every change committed, reopen shows the same state, one row per change."""

import json
import time

import pytest

from agent.ldm import LdmError
from agent.store.memory import MemoryStore
from agent.store.sqlite import SqliteStore
from tests.ldm.fakes import make_manager

G = 1 << 30
M = 1 << 20


def state_of(m):
    """Everything the list actions can see, as comparable values."""
    names = m.domain_names()
    return {
        "names": names,
        "bindings": [m.bindings(n) for n in names],
        "constraints": [m.constraints(n) for n in names],
        "spconfigs": (m.spconfigs(), m.spconfigs(autosave=True)),
        "devices": [m.devices(c, include_bound=True) for c in
                    ("cpu", "core", "mau", "memory", "physio_device")],
    }


def build(m):
    m.set_vcpu("primary", 8)
    m.set_memory("primary", 8 * G)
    m.add_vcc("primary", "vcc0", 5000, 5100)
    m.add_vds("primary", "vds0")
    m.add_vdsdev("vds0", "vol1", "/img/v1")
    m.add_vsw("primary", "vsw0")
    m.add_domain("web1", failure_policy="stop")
    m.set_vcpu("web1", 4)
    m.set_memory("web1", 2 * G)
    m.add_vnet("web1", "vnet0", "vsw0")
    m.add_vdisk("web1", "d0", "vds0", "vol1")
    m.set_variables("web1", {"auto-boot?": "true"})
    m.bind_domain("web1")
    m.start_domain("web1")
    m.add_spconfig("cfg1")
    m.remove_io("primary", "pci_1")


def test_a_reopened_manager_shows_exactly_the_same_state(tmp_path):
    db = tmp_path / "ldm.db"
    m1 = make_manager(store=SqliteStore(db))
    build(m1)
    before = state_of(m1)
    m1.store.close()
    m2 = make_manager(store=SqliteStore(db), seed=99)
    assert state_of(m2) == before
    assert m2.summary("primary").flags == "-ndcv-"


def test_the_database_uses_wal_and_full_sync(tmp_path):
    store = SqliteStore(tmp_path / "ldm.db")
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_change_writes_only_the_rows_it_touched():
    store = MemoryStore()
    m = make_manager(store=store)
    for i in range(50):
        m.add_domain(f"d{i}")
    written = store.written
    m.set_variables("d7", {"a": "b"})
    assert store.written - written == 2  # the domain's row and the host row


def test_a_refused_change_writes_nothing():
    store = MemoryStore()
    m = make_manager(store=store)
    commits = store.commits
    with pytest.raises(LdmError):
        m.add_domain("primary")
    assert store.commits == commits


class FailingStore(MemoryStore):
    """Fails the next commit, as a disk error or a crash before the write would."""

    fail_next = False

    def commit(self, upserts, deletes):
        if self.fail_next:
            self.fail_next = False
            raise OSError("disk full")
        super().commit(upserts, deletes)


def test_a_failed_commit_leaves_both_memory_and_disk_in_the_old_state():
    store = FailingStore()
    m = make_manager(store=store)
    m.add_domain("web1")
    before_rows = dict(store.rows)
    before = state_of(m)
    store.fail_next = True
    with pytest.raises(LdmError, match="Could not save the domain configuration: disk full"):
        m.set_vcpu("primary", 8)
    assert store.rows == before_rows
    assert state_of(m) == before


def test_a_group_of_calls_commits_once_or_not_at_all():
    store = MemoryStore()
    m = make_manager(store=store)
    commits = store.commits
    with pytest.raises(LdmError):
        with m.transaction():
            m.add_domain("web1")
            m.set_vcpu("web1", 2)
            m.set_vcpu("nosuch", 2)
    assert m.domain_names() == ["primary"] and store.commits == commits
    with m.transaction():
        m.add_domain("web1")
        m.set_vcpu("web1", 2)
    assert store.commits == commits + 1


def test_an_interrupted_transaction_on_disk_is_rolled_back(tmp_path):
    # A crash between the write and the commit: SQLite must give back the old state.
    db = tmp_path / "ldm.db"
    m1 = make_manager(store=SqliteStore(db))
    m1.add_domain("web1")
    conn = m1.store.conn
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("DELETE FROM state_rows WHERE kind = 'domain' AND key = 'web1'")
    conn.execute("INSERT OR REPLACE INTO state_rows VALUES ('domain', 'half', ?)",
                 (json.dumps({"broken": True}),))
    conn.close()  # no COMMIT: the process died here
    m2 = make_manager(store=SqliteStore(db))
    assert m2.domain_names() == ["primary", "web1"]


def test_a_thousand_domains_load_well_under_a_second(tmp_path):
    db = tmp_path / "ldm.db"
    store = SqliteStore(db)
    m = make_manager(store=store)
    m.set_vcpu("primary", 8)
    m.set_memory("primary", 8 * G)
    m.add_vcc("primary", "vcc0", 5000, 6100)
    with m.transaction():
        for i in range(1000):
            name = f"dom{i:04d}"
            m.add_domain(name)
            m.set_vcpu(name, 1)
            m.set_memory(name, 64 * M)
            m.set_variables(name, {"auto-boot?": "false"})
            if i < 100:
                m.bind_domain(name)
    store.close()
    start = time.perf_counter()
    m2 = make_manager(store=SqliteStore(db))
    elapsed = time.perf_counter() - start
    assert len(m2.domain_names()) == 1001
    assert m2.summary("dom0050").console == "5050"
    assert elapsed < 0.5, f"loading 1000 domains took {elapsed:.3f}s"


def test_a_failed_call_inside_a_group_is_undone_while_the_group_goes_on():
    store = MemoryStore()
    m = make_manager(store=store)
    with m.transaction():
        m.add_domain("web1")
        with pytest.raises(LdmError):
            m.add_domain("web2", failure_policy="bogus")  # inserted, then refused
        m.set_vcpu("web1", 2)
    assert m.domain_names() == ["primary", "web1"]
    reopened = make_manager(store=store)
    assert reopened.domain_names() == ["primary", "web1"]
    assert reopened.constraints("web1").resources.vcpus == 2
