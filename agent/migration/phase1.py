"""The driver's view of phase 1 (spec migration.md §2.4, §3.1, §6): one place that calls the
phase-1 room's checks (``agent.migration.checks``, ``describe``, ``versions``).

The source describes its machine at ``mig-hello`` and its domain at ``mig-check``; the target
answers ``mig-check`` with its results as dicts; the source merges both lists in report order,
applies ``-f`` and turns them into the response lines. Nothing here changes any state.
"""

from __future__ import annotations

from agent.migration import checks, describe, versions

AGENT_VERSION_FALLBACK = "3.0.0.2"


def host(manager, server_name: str) -> dict:
    """This machine as ``mig-hello`` describes it (§1.2)."""
    version = manager.platform.raw.get("machine", {}).get("agent_version", AGENT_VERSION_FALLBACK)
    return describe.describe_host(manager, server_name, version)


def hello_refusal(local: dict, peer_range, peer_version: str) -> list[str]:
    """K01 part 1 at ``mig-hello`` (§3.1): the refusal lines, or none."""
    result = checks.protocol_check(local["protocol"], peer_range, host=local["server-name"],
                                   local_version=local["agent-version"],
                                   peer_version=peer_version)
    return list(result.lines) if result else []


def self_target(host_typed: str, local_id: str, peer_id: str) -> list[str]:
    result = checks.self_target_check(host_typed, local_id, peer_id)
    return list(result.lines) if result else []


def source_results(manager, domain: str, request, target_host: dict,
                   guest: dict | None = None) -> list:
    return checks.source_checks(manager, domain, request, target_host, guest=guest)


def description(manager, domain: str, local: dict, guest: dict | None = None) -> dict:
    return describe.describe_source(manager, domain, local, guest=guest)


def target_results(manager, description_: dict, request_view: dict) -> list[dict]:
    """What the target returns in ``mig-check`` (run on the target; changes nothing)."""
    return [r.to_dict() for r in checks.target_checks(manager, description_, request_view)]


def failed(results: list, force: bool) -> bool:
    return any(r.result == checks.FAIL for r in checks.apply_force(results, force))


def report(source: list, target: list[dict], domain: str, force: bool,
           dry_run: bool) -> tuple[bool, list[str], list[str]]:
    """(ok, failure lines, warning and notice lines) over both sides, in report order."""
    merged = checks.apply_force(
        checks.merge(source, [checks.CheckResult.from_dict(d) for d in target]), force)
    ok, lines = checks.report_lines(merged, domain, dry_run)
    notes = checks.report_lines([r for r in merged if r.result != checks.FAIL], domain, dry_run)[1]
    if ok:
        return True, [], notes
    # report_lines ends a failure with the summary line; the driver adds its own.
    failures = [ln for ln in lines[:-1] if ln not in notes]
    return False, failures, notes


PROTOCOL_RANGE = versions.protocol_range()
