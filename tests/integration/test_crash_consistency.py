"""Issue 4 item 6: a crash between the commit and the answer leaves the new state, whole."""

import os

import pytest
from lxml import etree

from agent.cli.connection import LdmClientError, LdmConnection
from agent.faults import CRASH_STATUS
from agent.testing import AgentProcess, wait_for

ADD = (b'<LDM_interface version="1.3"><cmd><action>add-domain</action><data version="3.0">'
       b'<Envelope><References/><Content xsi:type="ovf:VirtualSystem_Type" ovf:id="crashy">'
       b'<Section xsi:type="ovf:VirtualHardwareSection_Type"><Item>'
       b'<rasd:OtherResourceType>cpu</rasd:OtherResourceType>'
       b'<rasd:AllocationUnits>2</rasd:AllocationUnits></Item><Item>'
       b'<rasd:OtherResourceType>memory</rasd:OtherResourceType>'
       b'<rasd:AllocationUnits>1G</rasd:AllocationUnits></Item></Section></Content></Envelope>'
       b'</data></cmd></LDM_interface>')
CONSTRAINTS = (b'<LDM_interface version="1.3"><cmd><action>list-constraints</action>'
               b'<data version="3.0"><Envelope><References/><Content ovf:id="crashy"/></Envelope>'
               b'</data></cmd></LDM_interface>')


def test_crash_after_commit_before_answer_keeps_the_whole_change(tmp_path):
    env = dict(os.environ, LDMX_CRASH_AT="after-apply:add-domain")
    agent = AgentProcess(tmp_path, env=env).start()
    try:
        with LdmConnection.unix(agent.socket_path) as conn:
            conn.negotiate()
            with pytest.raises(LdmClientError, match="closed"):
                conn.request(ADD)
        assert wait_for(lambda: agent.proc.poll() is not None)
        assert agent.returncode == CRASH_STATUS
    finally:
        agent.stop()
    with AgentProcess(tmp_path) as again:
        with LdmConnection.unix(again.socket_path) as conn:
            conn.negotiate()
            root = etree.fromstring(conn.request(CONSTRAINTS))
    assert root.findtext("response/status") == "success"
    items = {i.findtext("{./schemas/CIM_ResourceAllocationSettingData}OtherResourceType"): i
             for i in root.iter("Item")}
    units = {k: v.findtext("{./schemas/CIM_ResourceAllocationSettingData}AllocationUnits")
             for k, v in items.items()}
    assert units["cpu"] == "2" and units["memory"] == "1G"
