"""`make demo`: start an agent on free loopback ports, talk to it as a console would, stop it.

Everything happens in a temporary state directory; nothing is left running afterwards.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from agent.cli.connection import LdmConnection
from agent.cli.pretty import indent_xml
from agent.testing import AgentProcess

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "requests"
DEMO_REQUESTS = ["reg-all-events", "list-domain", "list-bindings", "add-vcpu"]


def _request_text(action: str) -> bytes:
    sample = SAMPLES / f"{action}.xml"
    if sample.exists():
        return sample.read_bytes()
    # Outside a source checkout the samples are not installed; send the minimal form.
    return (f'<LDM_interface version="1.3"><cmd><action>{action}</action>'
            f'<data version="3.0"/></cmd></LDM_interface>').encode()


def main() -> int:
    state = Path(tempfile.mkdtemp(prefix="ldmx-demo-"))
    try:
        print(f"== starting ldmx-agent (state directory {state})")
        with AgentProcess(state, host_name="demo.ldmx") as agent:
            print(f"   {agent.ready_line}")
            agent.add_user("demo", "management", "demo-password")
            print(f"== connecting to {agent.listen[0]}:{agent.listen[1]} "
                  "(STARTTLS, then SASL PLAIN as user 'demo')")
            with LdmConnection.tcp(*agent.listen) as conn:
                conn.negotiate("demo", "demo-password")
                print(f"   session ready over {conn.tls_version}")
                for action in DEMO_REQUESTS:
                    print(f"\n== {action}")
                    print(indent_xml(conn.request(_request_text(action))))
            print("\n== stopping the agent (SIGTERM)")
        print(f"   agent exited with status {agent.returncode}")
        return 0 if agent.returncode == 0 else 1
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
