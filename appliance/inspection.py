"""What the kiosk's read-only inspection screen shows, read from the log (no Kivy, no UI).

What the inspection screen needs, beside the log, so no SQL is written in the view:
today's events, the latest enrollment's permits, the self-test history (the SQL itself
is in :mod:`appliance.queries`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance import events, queries
from appliance.log import EventLog

SELFTEST_TYPES = (events.SELFTEST_RECORDED, events.SELFTEST_OVERRIDE)


@dataclass(frozen=True)
class LoggedEvent:
    seq: int
    type: str
    wall_ms: int
    payload: dict[str, Any]


def events_since(log: EventLog, wall_ms: int, limit: int = 200) -> list[LoggedEvent]:
    """Events written at or after ``wall_ms``, newest first (payloads are not read)."""
    rows = queries.recent_events(log, wall_ms, limit)
    return [LoggedEvent(seq, etype, when, {}) for seq, etype, when in rows]


def latest_enrollment_manifest(log: EventLog) -> dict[str, Any] | None:
    """The manifest of the newest ``enrollment.signed`` event, or None if never enrolled."""
    payload = queries.latest_payload(log, events.ENROLLMENT_SIGNED)
    if payload is None:
        return None
    return payload.get("manifest", {})


def selftest_history(log: EventLog, limit: int = 50) -> list[LoggedEvent]:
    """Recorded self-tests and technician overrides, newest first."""
    rows = queries.latest_of_types(log, SELFTEST_TYPES, limit)
    return [LoggedEvent(*row) for row in rows]
