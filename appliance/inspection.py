"""What the kiosk's read-only inspection screen shows, read from the log (no Kivy, no UI).

The queries the inspection screen needs live here, beside the log, so no SQL is written
in the view: today's events, the latest enrollment's permits, the self-test history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from appliance.log import EventLog

SELFTEST_TYPES = ("selftest.recorded", "selftest.override")


@dataclass(frozen=True)
class LoggedEvent:
    seq: int
    type: str
    wall_ms: int
    payload: dict[str, Any]


def events_since(log: EventLog, wall_ms: int, limit: int = 200) -> list[LoggedEvent]:
    """Events written at or after ``wall_ms``, newest first (payloads are not read)."""
    rows = log.conn.execute(
        "SELECT seq, type, wall_ms FROM events WHERE wall_ms >= ? ORDER BY seq DESC LIMIT ?",
        (wall_ms, limit),
    )
    return [LoggedEvent(seq, etype, when, {}) for seq, etype, when in rows]


def latest_enrollment_manifest(log: EventLog) -> dict[str, Any] | None:
    """The manifest of the newest ``enrollment.signed`` event, or None if never enrolled."""
    row = log.conn.execute(
        "SELECT payload FROM events WHERE type = 'enrollment.signed' ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    return json.loads(row[0]).get("manifest", {})


def selftest_history(log: EventLog, limit: int = 50) -> list[LoggedEvent]:
    """Recorded self-tests and technician overrides, newest first."""
    rows = log.conn.execute(
        "SELECT seq, type, wall_ms, payload FROM events WHERE type IN (?, ?) "
        "ORDER BY seq DESC LIMIT ?",
        (*SELFTEST_TYPES, limit),
    )
    return [LoggedEvent(seq, etype, when, json.loads(p)) for seq, etype, when, p in rows]
