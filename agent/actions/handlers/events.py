"""Manager events → ``LDM_event`` values (spec ldm-xml §4.3–§4.5; C125–C129).

The manager reports plain :class:`agent.ldm.events.Event` values already named as on the
wire (``add-crypto`` for ``add-mau``); the Envelopes come from the event builders of
``agent.xmlapi.resources``. Variables are the one resource whose event holds several Items
(§4.4: one ``var`` Item per variable changed), so consecutive variable events of one action
and domain are merged into one event.
"""

from __future__ import annotations

from agent.ldm import events as ldm_events
from agent.xmlapi import model, resources

# The request action behind each resource event name (the builder takes the request name).
_REQUEST_ACTION = {event: action for action, event in resources.RESOURCE_EVENTS.items()}


def translate(events: list[ldm_events.Event]) -> list[model.Event]:
    """The wire events for the manager events of one successful object, in order."""
    out: list[model.Event] = []
    pending_vars: list[ldm_events.Event] = []

    def flush() -> None:
        if pending_vars:
            first = pending_vars[0]
            out.append(resources.resource_event(
                _REQUEST_ACTION[first.action], first.domain, "var",
                [dict(ev.props) for ev in pending_vars]))
            pending_vars.clear()

    for ev in events:
        if ev.category == ldm_events.RESOURCE and ev.rtype == "var":
            if pending_vars and (pending_vars[0].action, pending_vars[0].domain) != (
                    ev.action, ev.domain):
                flush()
            pending_vars.append(ev)
            continue
        flush()
        out.append(_one(ev))
    flush()
    return out


def _one(ev: ldm_events.Event) -> model.Event:
    if ev.category == ldm_events.DOMAIN:
        assert ev.domain is not None
        return resources.domain_event(ev.action, ev.domain)
    if ev.category == ldm_events.HARDWARE:
        return resources.hardware_event(ev.action, str(dict(ev.props)["spconfig_name"]))
    assert ev.rtype is not None
    return resources.resource_event(_REQUEST_ACTION[ev.action], ev.domain, ev.rtype,
                                    dict(ev.props))
