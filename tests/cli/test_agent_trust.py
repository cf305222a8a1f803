"""``ldmx-agent certificate`` and ``ldmx-agent trust add|remove|list`` (migration.md §4.1)."""

from __future__ import annotations

import stat

from agent.auth.truststore import TrustStore
from agent.cli.agent import main


def test_certificate_then_trust_add_list_remove(tmp_path, capsys):
    """The operator's round trip: print one agent's certificate, trust it on another agent
    under its host name, list it with its fingerprint, remove it."""
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["--state-dir", str(one), "--host-name", "system1", "certificate"]) == 0
    pem = capsys.readouterr().out
    assert pem.startswith("-----BEGIN CERTIFICATE-----") and "PRIVATE" not in pem
    (tmp_path / "system1.pem").write_text(pem)
    assert main(["--state-dir", str(two), "trust", "add", "system1",
                 str(tmp_path / "system1.pem")]) == 0
    added = capsys.readouterr().out.split()
    assert added[0] == "system1" and len(added[1]) == 64 and added[2] == "CN=system1"
    assert main(["--state-dir", str(two), "trust", "list"]) == 0
    assert capsys.readouterr().out.split() == added
    entry = two / "trusted" / "system1.pem"
    assert stat.S_IMODE(entry.stat().st_mode) == 0o644
    assert main(["--state-dir", str(two), "trust", "remove", "system1"]) == 0
    assert TrustStore(two).entries() == []


def test_errors_name_the_problem_and_exit_2(tmp_path, capsys):
    key_file = tmp_path / "key.pem"
    main(["--state-dir", str(tmp_path / "one"), "--host-name", "system1", "certificate"])
    capsys.readouterr()
    key_file.write_bytes((tmp_path / "one" / "xmpp-key.pem").read_bytes())
    state = str(tmp_path / "two")
    assert main(["--state-dir", state, "trust", "add", "system1", str(key_file)]) == 2
    assert "holds a private key" in capsys.readouterr().err
    assert main(["--state-dir", state, "trust", "add", "system1", str(tmp_path / "nope")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["--state-dir", state, "trust", "remove", "system9"]) == 2
    assert "No trusted certificate is named system9" in capsys.readouterr().err
