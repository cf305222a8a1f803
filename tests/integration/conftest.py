"""Fixtures that start real agents as subprocesses on free loopback ports."""

import pytest

from agent.testing import AgentProcess

ADMIN, ADMIN_PW = "admin", "s3cret!"
VIEWER, VIEWER_PW = "viewer", "look-only"


@pytest.fixture(scope="module")
def live_agent(tmp_path_factory):
    """One agent with a management user and a review user, shared by a test module."""
    state = tmp_path_factory.mktemp("agent")
    agent = AgentProcess(state, host_name="ctl1.example.com").start()
    try:
        agent.add_user(ADMIN, "management", ADMIN_PW)
        agent.add_user(VIEWER, "review", VIEWER_PW)
        yield agent
    finally:
        code = agent.stop()
        agent.destroy_guests()
        assert code == 0, "agent did not exit cleanly:\n" + agent.log()
