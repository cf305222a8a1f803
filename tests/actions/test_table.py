"""The action table holds exactly the 63 action strings of the spec with their authorizations."""

from agent.actions.table import ACTIONS
from agent.auth.identity import READ, WRITE

# The alphabetical index of spec ldm-xml §5.14.
SPEC_INDEX = """
add-domain add-io add-mau add-memory add-spconfig add-variable add-vconscon add-vcpu add-vdisk
add-vdiskserver add-vdiskserverdevice add-vdpcc add-vdpcs add-vnet add-vswitch bind-domain
cancel-operation list-bindings list-constraints list-devices list-domain list-services
list-spconfig list-variable migrate-domain reg-all-events reg-domain-events reg-hardware-events
reg-resource-events remove-domain remove-io remove-mau remove-memory remove-reconf
remove-spconfig remove-variable remove-vconscon remove-vcpu remove-vdisk remove-vdiskserver
remove-vdiskserverdevice remove-vdpcc remove-vdpcs remove-vnet remove-vswitch set-domain set-io
set-mau set-memory set-spconfig set-variable set-vconscon set-vconsole set-vcpu set-vnet
set-vswitch start-domain stop-domain unbind-domain unreg-all-events unreg-domain-events
unreg-hardware-events unreg-resource-events
""".split()


def test_table_lists_exactly_the_63_spec_actions():
    """C134: every action string of §5.14 is in the table, and nothing else."""
    assert len(SPEC_INDEX) == 63
    assert sorted(ACTIONS) == sorted(SPEC_INDEX)


def test_read_actions_are_the_lists_and_registrations():
    """§1.11: read grants every list-* and every (un)reg-*-events action; the rest need write."""
    for name, row in ACTIONS.items():
        expected = READ if name.startswith(("list-", "reg-", "unreg-")) else WRITE
        assert row.auth == expected, name
