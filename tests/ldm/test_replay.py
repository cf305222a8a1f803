"""C137: a domain's constraints, replayed through the public calls after removing it,
recreate identical constraints (what add-domain with a list-constraints Content does)."""

from agent.ldm.model import Domain
from tests.ldm.fakes import make_manager

G = 1 << 30


def replay(m, c: Domain) -> None:
    """Apply constraints in the add-domain order of ldm-xml §5.2, in one transaction."""
    with m.transaction():
        m.add_domain(c.name, uuid=c.uuid, mac=c.mac, hostid=c.hostid, master=c.master,
                     failure_policy=c.failure_policy, cpu_arch=c.cpu_arch,
                     extended_mapin_space=c.extended_mapin_space,
                     rc_add_policy=c.rc_add_policy, perf_counters=c.perf_counters)
        r = c.resources
        if r.wcore:
            m.set_vcpu(c.name, r.vcpus, wcore=r.wcore)
        elif r.vcpus:
            m.set_vcpu(c.name, r.vcpus)
        if r.mau:
            m.set_mau(c.name, r.mau)
        if r.memory:
            m.set_memory(c.name, r.memory)
        for dev in r.io:
            m.add_io(c.name, dev)
        if c.variables:
            m.add_variables(c.name, c.variables)
        for vcc in c.vccs.values():
            m.add_vcc(c.name, vcc.name, vcc.min_port, vcc.max_port)
        for vds in c.vdss.values():
            m.add_vds(c.name, vds.name)
            for vol in vds.volumes.values():
                m.add_vdsdev(vds.name, vol.name, vol.block_dev, vol.options, vol.mpgroup)
        for s in c.vsws.values():
            m.add_vsw(c.name, s.name, mac=s.mac, id=s.id, dev_path=s.dev_path,
                      default_vlan_id=s.default_vlan_id, inter_vnet_link=s.inter_vnet_link,
                      linkprop=s.linkprop, mode=s.mode, pvid=s.pvid, mtu=s.mtu, vid=s.vid)
        for n in c.vnets.values():
            m.add_vnet(c.name, n.name, n.service, mac=n.mac, id=n.id, linkprop=n.linkprop,
                       pvid=n.pvid, vid=n.vid, mode=n.mode, mtu=n.mtu)
        for d in c.vdisks.values():
            m.add_vdisk(c.name, d.name, d.service, d.volume, timeout=d.timeout, id=d.id)
        if c.console.explicit:
            m.set_vconsole(c.name, port=c.console.port, service=c.console.service,
                           group=c.console.group, log=c.console.log)
        for name, props in c.policies.items():
            m.set_policy(c.name, name, props)


def test_constraints_survive_remove_and_replay():
    m = make_manager()
    m.set_vcpu("primary", 8)
    m.set_memory("primary", 16 * G)
    m.add_vcc("primary", "vcc0", 5000, 5100)
    m.remove_io("primary", "/SYS/MB/PCIE2")
    m.guest_reset("primary")
    m.add_domain("svc", failure_policy="panic", perf_counters=["global"])
    m.set_vcpu("svc", None, wcore=1)
    m.set_mau("svc", 1)
    m.set_memory("svc", 3 * G)
    m.add_io("svc", "/SYS/MB/PCIE2")
    m.add_variables("svc", {"auto-boot?": "false", "boot-device": "disk1 net"})
    m.add_vds("svc", "vds9")
    m.add_vdsdev("vds9", "vol1", "/img/one", ["ro", "excl"], "mp1")
    m.add_vsw("svc", "vsw9", dev_path="net1", vid=[7, 3], mtu=9000, pvid=2)
    m.add_vnet("svc", "vnet3", "vsw9", vid=[5], mode="hybrid", id=4)
    m.add_vdisk("svc", "root", "vds9", "vol1", timeout=30, id=2)
    m.set_vconsole("svc", port=5007, group="g1", log="off")
    m.set_policy("svc", "p1", {"policy_vcpu_min": "2"})
    before = m.constraints("svc")
    m.remove_domain("svc")
    replay(m, before)
    assert m.constraints("svc") == before
