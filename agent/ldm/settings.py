"""Firmware variables, DRM policies and service-processor configurations (§5.9, §5.10, §6.14).

SP configurations are kept as names, the selection for the next power-on and change
serials (to tell when an autosave copy is newer); their contents are not snapshotted,
because no action reads a saved configuration back.
"""

from __future__ import annotations

from agent.ldm import checks
from agent.ldm.errors import LdmError
from agent.ldm.events import Outcome, hardware_event, resource_event
from agent.ldm.lifecycle import Lifecycle
from agent.ldm.model import FACTORY_DEFAULT, SpConfig

MAX_SPCONFIGS = 8  # the service processor's capacity, factory-default included
POLICY_KEYS = (
    "policy_enable", "policy_priority", "policy_vcpu_min", "policy_vcpu_max",
    "policy_util_lower", "policy_util_upper", "policy_tod_begin", "policy_tod_end",
    "policy_sample_rate", "policy_elastic_margin", "policy_attack", "policy_decay",
)


class Settings(Lifecycle):
    """Variables, policies and SP configurations."""

    # -- variables ----------------------------------------------------------------------

    def _var_outcome(self, action: str, domain: str, names: list[str]) -> Outcome:
        return Outcome([resource_event(action, domain, "var", name=n) for n in names])

    def add_variables(self, domain: str, values: dict[str, str]) -> Outcome:
        """Add variables; an existing name is an error (and nothing is added)."""
        with self.transaction():
            dom = self._modify(domain)
            for name in values:
                if not name:
                    raise LdmError("A variable needs a name")
                if name in dom.variables:
                    raise LdmError(f"Variable {name} already exists in domain {domain}")
            dom.variables.update(values)
            return self._var_outcome("add-variable", domain, list(values))

    def set_variables(self, domain: str, values: dict[str, str]) -> Outcome:
        """Set variables, creating absent ones."""
        with self.transaction():
            dom = self._modify(domain)
            if any(not name for name in values):
                raise LdmError("A variable needs a name")
            dom.variables.update(values)
            return self._var_outcome("set-variable", domain, list(values))

    def remove_variables(self, domain: str, names: list[str]) -> Outcome:
        """Delete variables; an unknown name is an error (and nothing is removed)."""
        with self.transaction():
            dom = self._modify(domain)
            for name in names:
                if name not in dom.variables:
                    raise LdmError(f"Variable {name} does not exist in domain {domain}")
            for name in names:
                del dom.variables[name]
            return self._var_outcome("remove-variable", domain, list(names))

    # -- DRM policies -------------------------------------------------------------------

    def set_policy(self, domain: str, name: str, props: dict[str, str]) -> Outcome:
        """Create the policy ``name`` or update it (keys as in §6.14, values as text).

        Policies are recorded and listed; the simulated platform does not enforce them.
        """
        with self.transaction():
            dom = self._modify(domain)
            self._check_name(name, "policy")
            for key, value in props.items():
                if key not in POLICY_KEYS:
                    raise LdmError(f"Unknown property {key} for resource policy")
                if key == "policy_enable":
                    checks.on_off(key, value)
            policy = dom.policies.setdefault(name, {"policy_enable": "on"})
            policy.update(props)
            return Outcome()

    # -- SP configurations --------------------------------------------------------------

    def _spconfig(self, name: str) -> SpConfig:
        cfg = self.meta.spconfigs.get(name)
        if cfg is None:
            raise LdmError(f"SP configuration {name} does not exist")
        return cfg

    def add_spconfig(self, name: str) -> Outcome:
        """Save the current configuration under ``name``; it becomes current and next."""
        with self.transaction():
            self._check_name(name, "configuration")
            meta = self._edit_meta()
            if name in meta.spconfigs:
                raise LdmError(f"SP configuration {name} already exists")
            if len(meta.spconfigs) >= MAX_SPCONFIGS:
                raise LdmError(f"Could not save SP configuration {name}: the service processor "
                               f"holds at most {MAX_SPCONFIGS} configurations")
            meta.spconfigs[name] = SpConfig(name, meta.serial, meta.serial)
            meta.current_config = meta.next_config = name
            return Outcome([hardware_event("add-spconfig", name)])

    def restore_spconfig(self, name: str) -> Outcome:
        """``add-spconfig -r``: replace the saved configuration by its autosave copy."""
        with self.transaction():
            cfg = self._spconfig(name)
            if cfg.autosave_serial is None:
                raise LdmError(f"SP configuration {name} has no autosave copy")
            self._edit_meta().spconfigs[name].saved_serial = cfg.autosave_serial
            return Outcome([hardware_event("add-spconfig", name)])

    def set_spconfig(self, name: str) -> Outcome:
        """Select the configuration used at the next power-on."""
        with self.transaction():
            self._spconfig(name)
            self._edit_meta().next_config = name
            return Outcome([hardware_event("set-spconfig", name)])

    def remove_spconfig(self, name: str, autosave_only: bool = False) -> Outcome:
        """Delete a configuration, or (``autosave_only``) only its autosave copy."""
        with self.transaction():
            if name == FACTORY_DEFAULT:
                raise LdmError(f"SP configuration {FACTORY_DEFAULT} cannot be removed")
            cfg = self._spconfig(name)
            meta = self._edit_meta()
            if autosave_only:
                if cfg.autosave_serial is None:
                    raise LdmError(f"SP configuration {name} has no autosave copy")
                meta.spconfigs[name].autosave_serial = None
            else:
                del meta.spconfigs[name]
                if meta.next_config == name:
                    meta.next_config = FACTORY_DEFAULT
                if meta.current_config == name:
                    meta.current_config = ""
            return Outcome([hardware_event("remove-spconfig", name)])
