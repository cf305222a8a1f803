"""The installed package (non-editable, as `make test` installs it) carries its data files."""

import subprocess
import sys

PROBE = """
import agent, sys
from agent.paths import schemas_dir
from agent.xmlapi.schema import request_schema, event_schema
from agent.ldm.platform import default_platform
request_schema(); event_schema()
names = sorted(p.name for p in schemas_dir().glob('*.xsd'))
print(agent.__file__)
print(len(names))
print(default_platform().raw is not None)
"""


def test_installed_agent_finds_its_schemas_and_platform(tmp_path):
    """C177/C178 from an install: the ten XSDs ship as agent.schemas and load offline; the
    embedded platform ships too. Run from an empty directory so the checkout is not used."""
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    location, count, platform_ok = proc.stdout.split()
    assert "site-packages" in location, f"agent imported from {location}, not from an install"
    assert count == "10"
    assert platform_ok == "True"
