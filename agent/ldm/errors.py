"""The one exception the manager raises: its message is the text an operator reads."""

from __future__ import annotations


class LdmError(Exception):
    """A refused or failed manager operation; ``str(err)`` names the object and the reason."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""
