"""Durability of what the actions change: a SIGKILLed agent restarted on the same state
directory lists exactly what it listed before (DESIGN "Nothing is lost"; C137, C155)."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from agent.cli.connection import LdmConnection
from agent.testing import AgentProcess

from .conftest import ADMIN, ADMIN_PW

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "requests"
LISTS = [("list-domain", ""), ("list-bindings", ""), ("list-constraints", ""),
         ("list-services", ""), ("list-variable", ""), ("list-spconfig", ""),
         ("list-spconfig", "-r"), ("list-devices", "-a")]
# Figures that move with time, not with state: blanked before comparing.
MOVING = {"util", "uptime"}


def list_request(action: str, options: str) -> bytes:
    opts = f"<options>{options}</options>" if options else ""
    return (f'<LDM_interface version="1.3"><cmd><action>{action}</action>{opts}'
            f'<data version="3.0"/></cmd></LDM_interface>').encode()


def snapshot(agent: AgentProcess) -> list[bytes]:
    with LdmConnection.tcp(*agent.listen) as conn:
        conn.negotiate(ADMIN, ADMIN_PW)
        out = []
        for action, options in LISTS:
            root = etree.fromstring(conn.request(list_request(action, options)))
            assert root.findtext("response/status") == "success", etree.tostring(root)
            for prop in root.iter("{./schemas/GenericProperty}GenericProperty"):
                if prop.get("key") in MOVING:
                    prop.text = "~"
            out.append(etree.tostring(root))
        return out


def story_until_running() -> list[str]:
    """The ORDER samples up to the saved SP configuration (ldg1 running, services in place)."""
    names = []
    for line in (SAMPLES / "ORDER").read_text().splitlines():
        name = line.split("#")[0].strip()
        names.append(name)
        if name == "add-spconfig.xml":
            return names
    raise AssertionError("ORDER has no add-spconfig.xml")


def test_state_survives_sigkill_and_restart(tmp_path):
    agent = AgentProcess(tmp_path, host_name="ctl1.example.com").start()
    try:
        agent.add_user(ADMIN, "management", ADMIN_PW)
        with LdmConnection.tcp(*agent.listen) as conn:
            conn.negotiate(ADMIN, ADMIN_PW)
            for name in story_until_running():
                root = etree.fromstring(conn.request((SAMPLES / name).read_bytes()))
                assert root.findtext("response/status") == "success", (name, etree.tostring(root))
        before = snapshot(agent)
        agent.kill()
        agent = AgentProcess(tmp_path, host_name="ctl1.example.com").start()
        after = snapshot(agent)
        assert after == before
        assert b'ovf:id="ldg1"' in before[0] and b">active<" in before[0].split(b'"ldg1"')[1]
    finally:
        # Stop the guest: guest processes outlive their agent by design.
        with LdmConnection.tcp(*agent.listen) as conn:
            conn.negotiate(ADMIN, ADMIN_PW)
            conn.request((SAMPLES / "stop-domain.xml").read_bytes())
        assert agent.stop() == 0, agent.log()
