"""Virtual disk, network and console services and devices (C145–C147, C152, C156)."""

import pytest

from agent.ldm import LdmError
from tests.ldm.fakes import make_manager

G = 1 << 30


@pytest.fixture
def m():
    mgr = make_manager()
    mgr.set_vcpu("primary", 8)
    mgr.set_memory("primary", 16 * G)
    mgr.add_vcc("primary", "svc-vcc0", 5000, 5100)
    mgr.add_vds("primary", "svc-vds0")
    mgr.add_vsw("primary", "svc-vsw0", dev_path="net0")
    mgr.add_domain("web1")
    mgr.set_vcpu("web1", 2)
    mgr.set_memory("web1", 4 * G)
    return mgr


def test_a_control_domain_providing_services_shows_v(m):
    # C156
    assert m.summary("primary").flags == "-n-cv-"
    assert m.service_domains() == ["primary"]


def test_service_names_are_unique_on_the_host(m):
    with pytest.raises(LdmError, match="Service svc-vds0 already exists"):
        m.add_vsw("web1", "svc-vds0")


def test_disk_actions_create_and_remove_volumes_and_disks(m):
    # C145
    out = m.add_vdsdev("svc-vds0", "web1-root", "/images/web1.img", ["excl"])
    assert (out.events[0].domain, out.events[0].props) == (
        "primary", (("vol_name", "web1-root"), ("service_name", "svc-vds0")))
    m.add_vdisk("web1", "rootdisk", "svc-vds0", "web1-root", timeout=30)
    b = m.bindings("primary")
    vds, volumes, disks = b.vdss[0]
    assert [v.name for v in volumes] == ["web1-root"]
    assert disks == [("rootdisk", "web1", "web1-root")]
    assert m.bindings("web1").vdisks[0][0].id == 0


def test_a_server_with_volumes_or_a_used_volume_needs_force(m):
    # C145
    m.add_vdsdev("svc-vds0", "vol1", "/images/v1.img")
    m.add_vdisk("web1", "d0", "svc-vds0", "vol1")
    with pytest.raises(LdmError, match="still has volumes"):
        m.remove_vds("svc-vds0")
    with pytest.raises(LdmError, match="used by virtual disk d0 of domain web1"):
        m.remove_vdsdev("svc-vds0", "vol1")
    m.remove_vdsdev("svc-vds0", "vol1", force=True)
    m.remove_vds("svc-vds0", force=True)
    assert m.bindings("primary").vdss == []


def test_a_disk_whose_volume_was_forced_away_stops_bind_unless_forced(m):
    m.add_vdsdev("svc-vds0", "vol1", "/images/v1.img")
    m.add_vdisk("web1", "d0", "svc-vds0", "vol1")
    m.remove_vdsdev("svc-vds0", "vol1", force=True)
    with pytest.raises(LdmError, match="virtual disk d0 refers to vol1@svc-vds0"):
        m.bind_domain("web1")
    m.bind_domain("web1", force=True)


def test_back_ends_are_exported_once_unless_forced_and_validated_unless_quiet(m):
    m.add_vdsdev("svc-vds0", "vol1", "/images/v1.img")
    with pytest.raises(LdmError, match="already exported as vol1@svc-vds0"):
        m.add_vdsdev("svc-vds0", "vol2", "/images/v1.img")
    m.add_vdsdev("svc-vds0", "vol2", "/images/v1.img", force=True)
    with pytest.raises(LdmError, match="not an absolute path"):
        m.add_vdsdev("svc-vds0", "vol3", "relative.img")
    m.add_vdsdev("svc-vds0", "vol3", "relative.img", quiet=True)


def test_network_actions_create_change_move_and_remove(m):
    # C146
    m.add_vsw("primary", "svc-vsw1", mtu=9000, vid=[20, 10])
    m.add_vnet("web1", "vnet1", "svc-vsw0", pvid=5)
    net, mtu, owner = m.bindings("web1").vnets[0]
    assert (net.service, net.pvid, mtu, owner) == ("svc-vsw0", 5, 1500, "primary")
    m.set_vnet("web1", "vnet1", service="svc-vsw1")
    net, mtu, _ = m.bindings("web1").vnets[0]
    assert (net.service, mtu) == ("svc-vsw1", 9000)
    assert m.bindings("primary").vsws[1][1] == [("vnet1", "web1", net.mac)]
    with pytest.raises(LdmError, match="used by virtual network vnet1"):
        m.remove_vsw("svc-vsw1")
    m.remove_vnet("web1", "vnet1")
    m.remove_vsw("svc-vsw1")
    assert [s.name for s, _ in m.bindings("primary").vsws] == ["svc-vsw0"]


def test_switch_properties_are_checked_and_changed(m):
    with pytest.raises(LdmError, match="pvid"):
        m.set_vsw("svc-vsw0", pvid=5000)
    m.set_vsw("svc-vsw0", inter_vnet_link="off", vid=[3, 2])
    vsw = m.constraints("primary").vsws["svc-vsw0"]
    assert (vsw.inter_vnet_link, vsw.vid, vsw.dev_path) == ("off", [2, 3], "net0")


def test_vnet_macs_are_unique_among_all_macs(m):
    m.add_vnet("web1", "vnet1", "svc-vsw0", mac="00:14:4f:f9:00:09")
    with pytest.raises(LdmError, match="already in use"):
        m.add_vnet("web1", "vnet2", "svc-vsw0", mac="00:14:4f:f9:00:09")
    with pytest.raises(LdmError, match="already in use"):
        m.add_domain("x", mac="00:14:4f:f9:00:09")


def test_binding_a_domain_assigns_the_lowest_free_console_port(m):
    # C147
    m.bind_domain("web1")
    assert m.summary("web1").console == "5000"
    assert m.bindings("primary").vccs[0][1] == [("web1", 5000)]
    cons = m.bindings("web1").console
    assert (cons.port, cons.service, cons.group, cons.log, cons.service_domain) == (
        5000, "svc-vcc0", "web1", "on", "primary")


def test_set_vconsole_on_a_bound_domain_rebinds_its_port(m):
    # C147
    m.bind_domain("web1")
    out = m.set_vconsole("web1", port=5005)
    assert out.events[0].props == (("service_name", "svc-vcc0"), ("port", 5005))
    assert m.summary("web1").console == "5005"
    with pytest.raises(LdmError, match="outside the range"):
        m.set_vconsole("web1", port=6000)


def test_console_port_changes_are_refused_while_active_but_logging_is_not(m):
    m.bind_domain("web1")
    m.start_domain("web1")
    with pytest.raises(LdmError, match="requires it to be inactive or bound"):
        m.set_vconsole("web1", port=5001)
    m.set_vconsole("web1", log="off")
    assert m.bindings("web1").console.log == "off"


def test_console_groups_share_a_port(m):
    m.add_domain("web2")
    m.set_vcpu("web2", 1)
    m.set_memory("web2", 1 * G)
    m.set_vconsole("web1", group="web")
    m.set_vconsole("web2", group="web")
    m.bind_domain("web1")
    m.bind_domain("web2")
    assert m.summary("web1").console == m.summary("web2").console == "5000"


def test_vcc_changes_keep_bound_ports_inside_and_ranges_apart(m):
    # C147
    m.bind_domain("web1")
    with pytest.raises(LdmError, match="would be outside"):
        m.set_vcc("svc-vcc0", 5001, 5100)
    with pytest.raises(LdmError, match="overlaps svc-vcc0"):
        m.add_vcc("primary", "svc-vcc1", 5100, 5200)
    with pytest.raises(LdmError, match="used by domain web1"):
        m.remove_vcc("svc-vcc0")
    m.remove_vcc("svc-vcc0", force=True)
    assert m.summary("web1").console == ""


def test_remove_domain_refuses_while_its_services_are_used(m):
    m.add_domain("svc")
    m.add_vsw("svc", "sw9")
    m.add_vnet("web1", "n0", "sw9")
    with pytest.raises(LdmError, match="Domain svc provides sw9, used by domain web1"):
        m.remove_domain("svc")
