"""Checklist items that need two real agents (migration.md §4.3)."""

from __future__ import annotations

from tests.migration import docs
from tests.migration.hosts import make_guest, two_hosts


def test_m35_a_target_user_without_write_is_refused(tmp_path):
    """M35: a target user with the review role only gets `User <user> is not authorized to
    migrate domains to <host>`; the source domain stays as it was."""
    with two_hosts(tmp_path) as (src, dst):
        dst.agent.add_user("viewer", "review", "look0nly!")
        make_guest(src, "ldg1", "bound")
        before = src.domains()["ldg1"]
        answer = src.request(docs.migrate("ldg1", dst.target, "viewer", "look0nly!"))
        assert docs.status(answer) != "success"
        lines = docs.lines(answer)
        assert lines[0] == f"User viewer is not authorized to migrate domains to {dst.listen[0]}", \
            lines
        assert lines[-1] == "Domain Migration of LDom ldg1 failed"
        after = src.domains()["ldg1"]
        for key in ("state", "flags", "uuid", "ncpu", "memory", "Address", "hostid"):
            assert after[key] == before[key], key
        assert "ldg1" not in dst.domains()
