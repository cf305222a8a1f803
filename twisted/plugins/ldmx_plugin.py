"""twistd plugin: run the ldmx agent under twistd.

    twistd -n ldmx [--config FILE] [--state-dir DIR] [--listen ADDR:PORT] ...

The options are those of ``ldmx-agent`` (minus the ``user`` sub-commands), with the same
precedence: command line, then the config file, then the defaults. twistd owns logging
(``--logfile``, ``--logger``); the ``[logging]`` section and the ``--log-*`` options apply to
``ldmx-agent`` only. For JSON lines under twistd use
``twistd --logger agent.logging.json_stderr_observer -n ldmx``.

This module is imported whenever twistd lists its plugins, so it imports the agent lazily.
"""

from __future__ import annotations

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from twisted.python import usage
from zope.interface import implementer

# ldmx-agent's options that make sense under twistd (logging is twistd's own).
_FLAGS = ("state-dir", "host-name", "listen", "socket", "migration-listen", "platform",
          "guest-workload")


class Options(usage.Options):
    """The ldmx-agent options, for ``twistd ldmx``."""

    optParameters = [["config", "c", None, "configuration file (TOML)"]] + [
        [flag, None, None, f"as ldmx-agent --{flag}"] for flag in _FLAGS]

    def postOptions(self) -> None:
        from pathlib import Path

        from agent import config

        overrides = {config.FLAG_KEYS[f"--{flag}"][0]: self[flag] for flag in _FLAGS}
        try:
            self.cfg = config.load(Path(self["config"]) if self["config"] else None,
                                   **overrides)
        except config.ConfigError as e:
            raise usage.UsageError(str(e)) from None


@implementer(IServiceMaker, IPlugin)
class LdmxServiceMaker:
    """Makes the agent's service from the parsed options."""

    tapname = "ldmx"
    description = "The ldmx agent (Logical Domains Manager XML interface, live migration)."
    options = Options

    def makeService(self, options: Options):
        from agent.cli.agent import ensure_state_dir
        from agent.config import ConfigError
        from agent.daemon import AgentService

        try:
            ensure_state_dir(options.cfg.state_dir)
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None
        return AgentService(options.cfg)


serviceMaker = LdmxServiceMaker()
