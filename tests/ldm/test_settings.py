"""Variables, DRM policies and SP configurations (C149, C150, C162–C164)."""

import pytest

from agent.ldm import LdmError
from tests.ldm.fakes import make_manager


def test_variables_add_set_remove():
    # C150
    m = make_manager()
    m.add_domain("web1")
    out = m.add_variables("web1", {"auto-boot?": "true", "boot-device": "disk net"})
    assert [(e.action, e.props) for e in out.events] == [
        ("add-variable", (("name", "auto-boot?"),)), ("add-variable", (("name", "boot-device"),))]
    with pytest.raises(LdmError, match="Variable auto-boot\\? already exists"):
        m.add_variables("web1", {"new": "1", "auto-boot?": "false"})
    assert m.variables("web1") == [("auto-boot?", "true"), ("boot-device", "disk net")]
    m.set_variables("web1", {"auto-boot?": "false", "x": "multi\nline"})
    with pytest.raises(LdmError, match="Variable nope does not exist"):
        m.remove_variables("web1", ["x", "nope"])
    assert m.variables("web1", ["x"]) == [("x", "multi\nline")]  # C164
    m.remove_variables("web1", ["x"])
    with pytest.raises(LdmError, match="Variable x does not exist"):
        m.variables("web1", ["x"])


def test_policies_are_created_then_updated_by_name():
    # C163
    m = make_manager()
    m.add_domain("web1")
    m.set_policy("web1", "high", {"policy_util_upper": "80", "policy_vcpu_max": "16"})
    m.set_policy("web1", "high", {"policy_util_upper": "70", "policy_enable": "off"})
    assert m.constraints("web1").policies == {
        "high": {"policy_enable": "off", "policy_util_upper": "70", "policy_vcpu_max": "16"}}
    with pytest.raises(LdmError, match="Unknown property"):
        m.set_policy("web1", "high", {"bogus": "1"})


def test_spconfig_add_select_remove_and_status():
    # C149, C162
    m = make_manager()
    out = m.add_spconfig("two-guests")
    assert (out.events[0].category, out.events[0].action, out.events[0].props) == (
        "hardware", "add-spconfig", (("spconfig_name", "two-guests"),))
    assert m.spconfigs() == [("factory-default", None), ("two-guests", "current")]
    m.set_spconfig("factory-default")
    assert m.spconfigs() == [("factory-default", "next"), ("two-guests", "current")]
    with pytest.raises(LdmError, match="already exists"):
        m.add_spconfig("two-guests")
    with pytest.raises(LdmError, match="cannot be removed"):
        m.remove_spconfig("factory-default")
    m.remove_spconfig("two-guests")
    assert m.spconfigs() == [("factory-default", "next")]


def test_autosave_copy_is_newer_after_a_change_and_restore_catches_up():
    # C149, C162
    m = make_manager()
    m.add_spconfig("cfg")
    assert m.spconfigs(autosave=True) == [("cfg", None)]
    m.add_domain("web1")
    assert m.spconfigs(autosave=True) == [("cfg", "newer")]
    m.restore_spconfig("cfg")
    assert m.spconfigs(autosave=True) == [("cfg", None)]
    m.remove_spconfig("cfg", autosave_only=True)
    assert m.spconfigs(autosave=True) == []
    assert m.spconfigs() == [("factory-default", None), ("cfg", "current")]


def test_the_service_processor_holds_eight_configurations():
    m = make_manager()
    for i in range(7):
        m.add_spconfig(f"c{i}")
    with pytest.raises(LdmError, match="at most 8"):
        m.add_spconfig("c7")
