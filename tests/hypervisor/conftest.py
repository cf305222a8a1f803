"""Fixtures for the hypervisor tests: a simulated hypervisor on a fresh state directory
whose guests are all destroyed (processes killed, files removed) at the end of the test."""

from __future__ import annotations

import pytest

from agent.hypervisor.sim import SimHypervisor


@pytest.fixture
def state_dir(tmp_path):
    return tmp_path / "hv"


@pytest.fixture
def hv(state_dir):
    hypervisor = SimHypervisor(state_dir)
    yield hypervisor
    for name in SimHypervisor(state_dir).list():
        SimHypervisor(state_dir).destroy(name)
