"""Defaults of the agent's endpoints (spec ldm-xml §1.1, issue 2's ldmx-agent contract)."""

from agent.config import load


def test_default_endpoints_are_loopback_only(tmp_path, monkeypatch):
    """C1: by default the XML interface listens on 127.0.0.1:6482 and migration data on
    127.0.0.1:8101; the socket lives in the state directory; all of it is configurable."""
    monkeypatch.setenv("LDMX_STATE_DIR", str(tmp_path))
    cfg = load(None)
    assert cfg.listen == ("127.0.0.1", 6482)
    assert cfg.migration_listen == ("127.0.0.1", 8101)
    assert cfg.state_dir == tmp_path and cfg.socket == tmp_path / "ldmx.sock"
    moved = load(None, listen="0.0.0.0:16482", migration_listen="[::1]:0")
    assert moved.listen == ("0.0.0.0", 16482) and moved.migration_listen == ("::1", 0)
