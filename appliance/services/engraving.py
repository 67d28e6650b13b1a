"""The engraving job of a personalised sale line: what the log records, and when.

``engraving.started {sale_id, receipt_no, line, text, gcode_lines, estimated_ms}`` is
recorded only once the engraver has accepted the job: the driver checks it (ready,
inside the machine's travel) before a byte is sent, so a refused job is recorded as
``engraving.failed`` alone, never as started then failed. The outcome is
``engraving.completed``, ``engraving.cancelled`` or ``engraving.failed`` with the
driver's result; each job records at most one outcome. A booking's job also names its
``booking_id`` (a paid booking has no sale: ``sale_id`` "" and ``receipt_no`` 0).
"""

from __future__ import annotations

from typing import Any

from appliance import events as ev
from appliance.formats.chain import Event
from appliance.till import Till

OUTCOMES = {"completed": ev.ENGRAVING_COMPLETED, "cancelled": ev.ENGRAVING_CANCELLED}


def engraving_queue(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The personalised lines to engrave, in order, of a ``sale.completed`` or a
    ``booking.redeemed`` payload (a paid booking's lines carry their engraving text the
    same way: ``personalisation.text``). The kiosk's engrave screen works from these;
    each becomes an :class:`EngravingJob` with the payload as its ``sale``."""
    return [ln for ln in payload["lines"] if ln.get("personalisation")]


class EngravingJob:
    """One attempt at engraving one sale line (a retry after a cancel is a new job)."""

    def __init__(
        self,
        till: Till,
        sale: dict[str, Any],
        line: int,
        *,
        text: str,
        gcode_lines: int,
        estimated_ms: int,
    ) -> None:
        self.till = till
        self._ref = {"sale_id": sale["sale_id"], "receipt_no": sale["receipt_no"], "line": line}
        if sale.get("booking_id"):  # a booking's personalised item (appliance.bookings)
            self._ref["booking_id"] = sale["booking_id"]
        self._plan = {"text": text, "gcode_lines": gcode_lines, "estimated_ms": estimated_ms}
        self.started: Event | None = None
        self.outcome: Event | None = None

    def accepted(self) -> Event:
        """The engraver checked the job and began it: ``engraving.started`` (once)."""
        if self.started is None:
            self.started = self.till.record(ev.ENGRAVING_STARTED, {**self._ref, **self._plan})
        return self.started

    def finished(self, outcome: str, result: dict[str, Any]) -> Event | None:
        """The driver's result: completed, cancelled, or anything else is a failure."""
        if self.outcome is not None:
            return None
        self.accepted()  # a result means the job ran, even if its start came back late
        kind = OUTCOMES.get(outcome, ev.ENGRAVING_FAILED)
        self.outcome = self.till.record(kind, {**self._ref, **result})
        return self.outcome

    def refused(self, message: str) -> Event | None:
        """The engraver would not take the job (or could not be reached): failed, not started."""
        if self.outcome is not None:
            return None
        self.outcome = self.till.record(ev.ENGRAVING_FAILED, {**self._ref, "message": message})
        return self.outcome
