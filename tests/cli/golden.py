"""Golden files for human output: compare, or rewrite them with LDMX_UPDATE_GOLDEN=1."""

import os
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"
FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def assert_golden(name: str, text: str) -> None:
    """``text`` must equal the golden file ``name`` (written when LDMX_UPDATE_GOLDEN=1)."""
    path = GOLDEN / name
    if os.environ.get("LDMX_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    expected = path.read_text()
    assert text == expected, f"output differs from golden/{name}:\n{text}"
