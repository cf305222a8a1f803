"""The control-message encoding (migration.md §2.14) and progress reporting (§7.2, §7.5)."""

from agent.migration import control
from agent.migration.progress import Progress
from agent.xmlapi.decode import decode_request
from agent.xmlapi.encode import encode_response
from agent.xmlapi.model import CommandResult, Response


def test_control_request_decodes_as_an_ldm_request_with_its_body():
    """A control message passes the agent's own decoder and schema unchanged."""
    doc = control.encode_request("mig-prepare", "mid-1", {"tdomain": "ldg-web", "n": [1, 2],
                                                          "text": "<&>"})
    decoded = decode_request(doc)
    cmd = decoded.commands[0]
    assert (decoded.version, cmd.action, cmd.error) == ("1.7", "mig-prepare", None)
    assert control.request_body(cmd.data[0].envelope) == (
        "mid-1", {"tdomain": "ldg-web", "n": [1, 2], "text": "<&>"})


def test_reply_round_trip_success_and_refusal():
    cmd = decode_request(control.encode_request("mig-commit", "m", {})).commands[0]
    ok = encode_response(Response("1.7", [CommandResult(cmd, [control.answer("m", {"answer": "committed"})])]))
    assert control.decode_reply(ok) == control.Reply(True, {"answer": "committed"})
    refused = encode_response(Response("1.7", [CommandResult(cmd, [control.refusal(["no", "way"])])]))
    assert control.decode_reply(refused) == control.Reply(False, lines=["no", "way"])
    level = encode_response(Response("1.7", [CommandResult(cmd, error="Not authorized")]))
    assert control.decode_reply(level).lines == ["Not authorized"]


def test_only_control_messages_are_encoded():
    import pytest
    with pytest.raises(ValueError):
        control.encode_request("list-domain", "m", {})


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def make_progress():
    events, clock = [], Clock()
    progress = Progress(events.append, "system1", role="source", domain="ldg1", peer="system2",
                        peer_ldom="ldg-web", mid="m1", clock=clock)
    return progress, events, clock


def props(event):
    item = event.envelope.contents[0].items()[0]
    return dict(item.props), [k for k, _ in item.props]


def test_progress_events_start_at_zero_and_carry_the_product_keys_first():
    """M85: progress, status, source first; the series starts with 0% ongoing."""
    progress, events, _ = make_progress()
    progress.start()
    values, keys = props(events[0])
    assert keys[:3] == ["progress", "status", "source"]
    assert (values["progress"], values["status"], values["source"]) == ("0%", "ongoing", "system1")
    assert events[0].action == "migration-process" and events[0].category == "hardware"


def test_progress_never_decreases_and_reaches_100_only_when_done():
    """M84."""
    progress, events, clock = make_progress()
    progress.start()
    for value in (40, 30, 100, 95):
        clock.now += 1
        progress.update(percent=value)
    assert [props(e)[0]["progress"] for e in events] == ["0%", "40%", "40%", "99%", "99%"]
    progress.final(True, "completed")
    final, _ = props(events[-1])
    assert (final["progress"], final["status"], final["outcome"]) == ("100%", "done", "completed")


def test_progress_events_are_rate_limited_but_phase_changes_and_the_end_always_go_out():
    """M85: never more than 10 events a second for one migration."""
    progress, events, clock = make_progress()
    progress.start()
    for step in range(50):
        clock.now += 0.01
        progress.update(percent=step)
    assert len(events) <= 1 + 10 * 0.5 + 1
    before = len(events)
    progress.update(phase=3)
    progress.final(False, "aborted", "boom")
    assert len(events) == before + 2
    assert props(events[-1])[0]["error"] == "boom"
