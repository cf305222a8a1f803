"""Logs through twisted.logger: text lines or JSON lines, filtered by level; the agent writes
them where the configuration says."""

import io
import json

from twisted.logger import Logger, LogPublisher

from agent.logging import observer_for
from agent.testing import AgentProcess


def publish(log_format: str, level: str = "info") -> list[str]:
    stream = io.StringIO()
    publisher = LogPublisher(observer_for(log_format, stream, level))
    log = Logger(namespace="ldmx.test", observer=publisher)
    log.debug("hidden {n}", n=1)
    log.info("domain {name} started", name="ldg1")
    try:
        raise ValueError("boom")
    except ValueError:
        log.failure("handler crashed")
    return stream.getvalue().splitlines()


def test_json_format_writes_one_object_per_line_with_the_formatted_message():
    lines = publish("json")
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert [r["message"] for r in records] == ["domain ldg1 started", "handler crashed"]
    assert records[0]["level"] == "info" and records[0]["namespace"] == "ldmx.test"
    assert records[0]["time"].endswith("+00:00")
    assert "ValueError: boom" in records[1]["traceback"]
    assert len(records) == len(lines)  # nothing else on the stream


def test_text_format_writes_twisted_lines():
    lines = publish("text")
    assert "[ldmx.test#info] domain ldg1 started" in lines[0]
    assert not any(line.startswith("{") for line in lines)


def test_level_filter_drops_lower_levels_and_keeps_higher_ones():
    assert not any("hidden" in line for line in publish("json", "info"))
    assert any("hidden 1" in line for line in publish("json", "debug"))
    # log.failure logs at critical: the only event at that level
    assert [json.loads(line)["message"] for line in publish("json", "critical")] == [
        "handler crashed"]


def test_agent_with_json_log_file_writes_json_lines_there(tmp_path):
    """--log-format json --log-file: the file holds only JSON lines, among them the listeners;
    the ready line still goes to standard error (the contract of the ready line)."""
    log_file = tmp_path / "agent.log"
    agent = AgentProcess(tmp_path / "state", extra_args=(
        "--log-format", "json", "--log-file", str(log_file)))
    with agent:
        assert agent.ready_line
    assert agent.returncode == 0
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert any("starting on" in r["message"] for r in records)
    assert {r["level"] for r in records} <= {"info", "warn", "error", "critical"}
