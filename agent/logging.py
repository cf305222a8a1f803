"""Log observers for twisted.logger: plain text, or JSON lines for log collectors.

``observer_for(format, stream, level)`` returns one observer that drops events below
``level`` and writes the rest to ``stream``: ``text`` is Twisted's usual line
(``2025-01-01T12:00:00+0000 [namespace#info] message``); ``json`` is one JSON object per
line with ``time`` (ISO 8601, UTC), ``level``, ``namespace``, ``message`` (the formatted
text) and, for a failure, ``traceback``. twistd can use the JSON form with
``--logger agent.logging.json_stderr_observer``.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import IO

from twisted.logger import (FilteringLogObserver, ILogObserver, LogLevel,
                            LogLevelFilterPredicate, formatEvent, textFileLogObserver)
from zope.interface import implementer


@implementer(ILogObserver)
class JsonLinesObserver:
    """Writes each event as one JSON object on one line, flushed at once."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def __call__(self, event: dict) -> None:
        self.stream.write(json.dumps(json_record(event), ensure_ascii=False) + "\n")
        self.stream.flush()


def json_record(event: dict) -> dict[str, str]:
    """The fields of one event that a log collector wants, all strings."""
    when = datetime.fromtimestamp(event.get("log_time", 0.0), timezone.utc)
    record = {
        "time": when.isoformat(timespec="milliseconds"),
        "level": getattr(event.get("log_level"), "name", "info"),
        "namespace": str(event.get("log_namespace", "")),
        "message": formatEvent(event),
    }
    failure = event.get("log_failure")
    if failure is not None:
        record["traceback"] = failure.getTraceback()
    return record


def observer_for(log_format: str, stream: IO[str], level: str = "info") -> ILogObserver:
    """The observer for ``log_format`` (``text`` or ``json``) that keeps ``level`` and above."""
    if log_format == "json":
        inner: ILogObserver = JsonLinesObserver(stream)
    elif log_format == "text":
        inner = textFileLogObserver(stream)
    else:
        raise ValueError(f"unknown log format {log_format!r}; expected text or json")
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))
    return FilteringLogObserver(inner, [predicate])


def json_stderr_observer() -> ILogObserver:
    """A factory for ``twistd --logger``: JSON lines on standard error."""
    return JsonLinesObserver(sys.stderr)
