"""The simulator passes the hypervisor conformance suite (``conformance.check_hypervisor``)."""

from __future__ import annotations

import pytest

from agent.hypervisor.sim import SimHypervisor
from tests.hypervisor import conformance


@pytest.mark.parametrize("check", conformance.CHECKS, ids=lambda c: c.__name__)
def test_simulator_conforms(check, hv, state_dir):
    check(lambda: SimHypervisor(state_dir))
