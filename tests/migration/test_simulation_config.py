"""The configuration keys of the simulated platform that migration tests rely on:
``[migration] scrub_rate`` (migration.md Appendix B, §10.11) and ``[guests] os_capabilities``
(§1.4, §1.5)."""

from __future__ import annotations

import pytest

from agent.config import ConfigError, load


def write(tmp_path, text: str):
    path = tmp_path / "ldmx.toml"
    path.write_text(text)
    return path


def test_the_defaults_are_appendix_b_and_every_capability(tmp_path):
    cfg = load(write(tmp_path, ""))
    assert cfg.scrub_rate == int(1.2 * (1 << 30))
    assert set(cfg.guest_os_capabilities) == {"suspend", "migration-v2", "cpu-dr", "crypto-dr",
                                              "mem-dr"}


@pytest.mark.parametrize("text, rate", [("\"16M\"", 16 << 20), ("\"1.2G/s\"", int(1.2 * (1 << 30))),
                                        ("4096", 4096)])
def test_scrub_rate_takes_a_size_per_second(tmp_path, text, rate):
    assert load(write(tmp_path, f"[migration]\nscrub_rate = {text}\n")).scrub_rate == rate


@pytest.mark.parametrize("text", ["0", "\"fast\"", "true", "\"-1G\""])
def test_a_bad_scrub_rate_is_refused_naming_the_key(tmp_path, text):
    with pytest.raises(ConfigError, match="migration.scrub_rate"):
        load(write(tmp_path, f"[migration]\nscrub_rate = {text}\n"))


def test_os_capabilities_without_migration_v2(tmp_path):
    cfg = load(write(tmp_path, '[guests]\nos_capabilities = ["suspend", "cpu-dr"]\n'))
    assert cfg.guest_os_capabilities == ("suspend", "cpu-dr")


def test_an_unknown_capability_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="guests.os_capabilities"):
        load(write(tmp_path, '[guests]\nos_capabilities = ["teleport"]\n'))
