"""Progress reporting of one migration on one agent (spec migration.md §7.2, §7.4, §7.5; ldm-xml §4.6).

:class:`Progress` keeps the percentage monotonic, remembers the latest statistics, and builds
``migration-process`` events: ``progress``, ``status`` and ``source`` first, then the
migration statistics. It never emits more than 10 events a second (the final event always
goes out). The Twisted driver calls :meth:`Progress.tick` at least once a second.
The same keys serve the ``list-domain`` migration keys (§7.4) through :meth:`listing`.
"""

from __future__ import annotations

from typing import Callable

from agent.xmlapi.model import (HARDWARE, RESOURCE_ALLOCATION, Content, Envelope, Event, Item,
                                Section)
from agent.xmlapi.resources import EVENT, LIST_DOMAIN, output_keys

_MIN_GAP_S = 0.1
# Statistics only the source computes; it sends them with mig-transfer-done so that the
# target's block shows them too (§10.10: the target shows the last value it received).
SHARED_STATISTICS = ("downtime-budget", "expected-downtime")


class Progress:
    """The progress series of one migration on this agent."""

    def __init__(self, publish: Callable[[Event], None], server_name: str, *, role: str,
                 domain: str, peer: str, peer_ldom: str, mid: str,
                 clock: Callable[[], float]) -> None:
        self.publish = publish
        self.server_name = server_name
        self.role, self.domain, self.peer, self.peer_ldom, self.mid = role, domain, peer, peer_ldom, mid
        self.clock = clock
        self.percent = 0
        self.phase = 1
        self.status = "ongoing"
        self.stats: dict[str, object] = {}
        self.outcome: str | None = None
        self.error: str | None = None
        self.started = False
        self.events = 0
        self._last_emit = float("-inf")

    def start(self) -> None:
        """The first event of the series: 0% ongoing (§7.5)."""
        self.started = True
        self._emit(force=True)

    def update(self, phase: int | None = None, percent: int | None = None,
               stats: dict | None = None) -> None:
        changed_phase = phase is not None and phase != self.phase
        if phase is not None:
            self.phase = phase
        if percent is not None and percent > self.percent:
            self.percent = min(percent, 99)  # 100 only at completion (§7.2)
        if stats:
            self.stats.update(stats)
        if self.started:
            self._emit(force=changed_phase)

    def tick(self) -> None:
        if self.started and self.status == "ongoing":
            self._emit()

    def final(self, ok: bool, outcome: str, error: str | None = None) -> None:
        """The one final event: 100% done, or failed at the last percentage."""
        self.status = "done" if ok else "failed"
        if ok:
            self.percent = 100
        self.outcome, self.error = outcome, error
        self._emit(force=True, final=True)

    def _emit(self, force: bool = False, final: bool = False) -> None:
        now = self.clock()
        if not force and now - self._last_emit < _MIN_GAP_S:
            return
        self._last_emit = now
        self.events += 1
        item = Item("ldom_info", self.properties(final))
        envelope = Envelope([Content(self.domain, [Section(RESOURCE_ALLOCATION, [item])])])
        self.publish(Event(HARDWARE, "migration-process", envelope))

    def properties(self, final: bool = False, view: str = EVENT) -> list[tuple[str, str]]:
        """``progress``, ``status``, ``source``, our identity keys, then every statistic that
        ``view`` carries (the resource table says which: events carry a few, list-domain all
        of §10.10), in the table's order."""
        props = [("progress", f"{self.percent}%"), ("status", self.status),
                 ("source", self.server_name), ("migration-id", self.mid), ("role", self.role),
                 ("peer", self.peer), ("peer-ldom", self.peer_ldom), ("phase", str(self.phase))]
        if final:
            props.append(("outcome", self.outcome or ""))
        have = {k for k, _ in props}
        if final and self.error:
            stats = {**self.stats, "error": self.error}
        else:
            stats = {k: v for k, v in self.stats.items() if k != "error"}
        if not final:
            stats.pop("downtime", None)  # measured at the switch-over; reported with the end
        for key in output_keys("ldom_info", view):
            if key in have:
                continue
            value = stats.get(key)
            if value is not None and value != "":
                props.append((key, _text(value)))
        return props

    def listing(self) -> list[tuple[str, str]]:
        """The list-domain migration keys (§7.4): progress, status, source, then all ours."""
        return self.properties(final=self.status != "ongoing", view=LIST_DOMAIN)


def _text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if value < 100 and value != int(value) else str(int(value))
    return str(value)
