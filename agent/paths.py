"""Where the agent finds the data files it ships (schemas) at run time.

An installed agent carries the XSDs as the package ``agent.schemas`` (setup.cfg maps the
top-level ``schemas/`` directory there); a source checkout has them beside ``agent/``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def schemas_dir() -> Path:
    """Return the directory holding the agent's XSD files."""
    spec = importlib.util.find_spec("agent.schemas")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(__file__).resolve().parent.parent / "schemas"
