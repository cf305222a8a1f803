"""Property test: random valid and invalid command sequences never break the invariants.

After every command: no strand, crypto unit, memory byte, MAC address or console port is
held twice; totals are conserved; states agree with bindings; and a manager reopened on the
same store shows exactly the live state.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.ldm import LdmError
from agent.ldm.model import ACTIVE, BOUND, INACTIVE
from agent.store.memory import MemoryStore
from tests.ldm.fakes import make_manager, tiny
from tests.store.test_sqlite_store import state_of

M = 1 << 20
NAMES = st.sampled_from(["primary", "a", "b", "c"])
GUESTS = st.sampled_from(["a", "b"])
SERVICES = st.sampled_from(["vcc0", "vcc1", "sw0", "sw1"])
SIZES = st.sampled_from([0, 4 * M, 63 * M, 128 * M, 256 * M, 700 * M])
SMALL = st.integers(min_value=-1, max_value=5)

LIFECYCLE = st.one_of(
    st.tuples(st.just("bind_domain"), GUESTS, st.booleans()),
    st.tuples(st.just("unbind_domain"), GUESTS),
    st.tuples(st.just("start_domain"), GUESTS),
    st.tuples(st.just("stop_domain"), GUESTS, st.booleans()),
    st.tuples(st.just("add_vnet"), GUESTS, st.sampled_from(["n0", "n1"]), st.just("sw0")),
)
# Lifecycle commands are drawn as often as all others together, so that guests get bound.
COMMANDS = st.one_of(
    LIFECYCLE, LIFECYCLE, LIFECYCLE, LIFECYCLE, LIFECYCLE, LIFECYCLE, LIFECYCLE, LIFECYCLE,
    st.tuples(st.just("add_domain"), NAMES),
    st.tuples(st.just("remove_domain"), NAMES),
    st.tuples(st.just("guest_halted"), NAMES),
    st.tuples(st.just("guest_reset"), NAMES),
    st.tuples(st.sampled_from(["add_vcpu", "set_vcpu", "remove_vcpu"]), NAMES, SMALL),
    st.tuples(st.just("set_vcpu"), NAMES, st.none(), st.integers(0, 2)),
    st.tuples(st.sampled_from(["add_mau", "set_mau", "remove_mau"]), NAMES, SMALL),
    st.tuples(st.sampled_from(["add_memory", "set_memory", "remove_memory"]), NAMES, SIZES),
    st.tuples(st.sampled_from(["add_io", "remove_io"]), NAMES,
              st.sampled_from(["pci_0", "/SYS/MB/PCIE1"])),
    st.tuples(st.just("cancel_reconf"), NAMES),
    st.tuples(st.just("add_vcc"), NAMES, SERVICES, st.integers(5000, 5003),
              st.integers(5000, 5004)),
    st.tuples(st.just("remove_vcc"), SERVICES, st.booleans()),
    st.tuples(st.just("set_vconsole"), NAMES, st.sampled_from([None, 5000, 5001, 5004])),
    st.tuples(st.just("add_vsw"), NAMES, SERVICES),
    st.tuples(st.just("remove_vsw"), SERVICES, st.booleans()),
    st.tuples(st.just("add_vnet"), NAMES, st.sampled_from(["n0", "n1"]), SERVICES),
    st.tuples(st.just("remove_vnet"), NAMES, st.sampled_from(["n0", "n1"])),
    st.tuples(st.just("set_domain_mac"), NAMES, st.sampled_from(
        ["00:14:4f:f9:00:01", "00:14:4f:f9:00:02"])),
    st.tuples(st.just("add_spconfig"), st.sampled_from(["s1", "s2"])),
)


def run(m, cmd):
    op, *args = cmd
    if op == "set_vconsole":
        return m.set_vconsole(args[0], port=args[1])
    if op == "set_domain_mac":
        return m.set_domain(args[0], mac=args[1])
    if op in ("add_vcpu", "set_vcpu", "remove_vcpu") and len(args) == 2:
        return getattr(m, op)(args[0], args[1])
    return getattr(m, op)(*args)


def fresh(store):
    """The tiny machine with room for guests: primary shrunk, two guests defined."""
    m = make_manager(tiny(), store=store)
    m.set_vcpu("primary", 2)
    m.set_mau("primary", 1)
    m.set_memory("primary", 256 * M)
    m.add_vcc("primary", "vcc0", 5000, 5001)
    for name in ("a", "b"):
        m.add_domain(name)
        m.set_vcpu(name, 2)
        m.set_memory(name, 128 * M)
    return m


def check_invariants(m):
    plat = m.platform
    strands, units, macs, hostids, ports = [], [], [], [], {}
    spans = []
    for dom in m.domains.values():
        macs.append(dom.mac)
        macs += [n.mac for n in dom.vnets.values()] + [s.mac for s in dom.vsws.values()]
        hostids.append(dom.hostid)
        b = dom.binding
        if dom.state == INACTIVE:
            assert b is None, dom.name
            continue
        assert dom.state in (BOUND, ACTIVE) and b is not None
        res = dom.resources
        assert len(b.strands) == res.vcpus >= 1, dom.name
        assert len(b.mau) == res.mau, dom.name
        assert sum(blk.size for blk in b.memory) == res.memory > 0, dom.name
        if res.wcore:
            cores = {plat.core_of_strand(s) for s in b.strands}
            assert len(cores) == res.wcore
        strands += b.strands
        units += b.mau
        for blk in b.memory:
            assert blk.pa % plat.granule == 0 and blk.size % plat.granule == 0
            assert any(r.pa <= blk.pa and blk.pa + blk.size <= r.end
                       for r in plat.usable_memory()), blk
            spans.append((blk.pa, blk.pa + blk.size))
        ras = sorted((blk.ra, blk.ra + blk.size) for blk in b.memory)
        assert all(x[1] <= y[0] for x, y in zip(ras, ras[1:]))
        if b.console_port is not None:
            key = (b.console_service, b.console_port)
            group = dom.console.group or dom.name
            assert ports.setdefault(key, group) == group, "console port bound twice"
            _, vcc = m._vcc(b.console_service)
            assert vcc.min_port <= b.console_port <= vcc.max_port
    assert len(strands) == len(set(strands)), "strand bound twice"
    assert set(strands) <= set(plat.usable_strands())
    assert len(units) == len(set(units)), "crypto unit bound twice"
    assert len(macs) == len(set(macs)), "MAC address used twice"
    assert len(hostids) == len(set(hostids))
    spans.sort()
    assert all(x[1] <= y[0] for x, y in zip(spans, spans[1:])), "memory bound twice"
    # Totals are conserved: free plus bound is what the platform has.
    assert len(m.devices("cpu")) + len(strands) == len(plat.usable_strands())
    assert len(m.devices("mau")) + len(units) == len(plat.crypto_units())
    free_mem = sum(dict(i.props)["size"] for i in m.devices("memory"))
    assert free_mem + sum(e - s for s, e in spans) == sum(r.size for r in plat.usable_memory())
    owners = [name for d in m.domains.values()
              for name in set(d.resources.io) | set(d.pending.io if d.pending else [])]
    assert len(owners) == len(set(owners)), "I/O device owned twice"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(COMMANDS, min_size=10, max_size=50))
def test_random_command_sequences_keep_the_invariants(commands):
    store = MemoryStore()
    m = fresh(store)
    for cmd in commands:
        before = state_of(m)
        try:
            run(m, cmd)
        except LdmError:
            assert state_of(m) == before, f"refused {cmd} changed the state"
        check_invariants(m)
    assert state_of(make_manager(tiny(), store=store, seed=1234)) == state_of(m)
