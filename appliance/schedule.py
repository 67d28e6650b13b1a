"""Which event the till trades at: the schedule's, by the clock, or the cashier's choice.

:func:`pick` is the rule, pure (no clock, no database: tested with plain values):

* no schedule applied: no event (a till without events trades as it always has);
* the clock is not confirmed (no passing ``clock`` self-test in this boot, or the clock
  is behind an event the log recorded since that check: it jumped back): **ask**;
* exactly one of the stall's events covers the clock: that event;
* two or more cover it (**overlap**) or none does (**none current**): **ask**.

When asked, the cashier's answer (``event.chosen``: an event id, or "" for no event)
holds for as long as the question stays the same: the same reason and the same events
covering the clock. A change (an event starts or ends, the clock becomes confirmed, a
new schedule) asks again, unless the clock alone now names one event, which then wins.

The till records what it trades at as ``event.started`` / ``event.ended`` when the pick
changes: in the transaction of the next sale, refund, redemption or choice
(:func:`observe`), so the log shows the switch right before the first receipt that
carries the new ``event_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from appliance import events as ev
from appliance.formats.region import Schedule, ScheduledEvent

if TYPE_CHECKING:
    from appliance.log import Transaction

CLOCK_UNCONFIRMED = "clock_unconfirmed"
OVERLAP = "overlap"
NONE_CURRENT = "none_current"
MAX_CANDIDATES = 10  # what the cashier is offered when no event covers the clock

# How a pick came about.
NO_SCHEDULE = "no_schedule"
CLOCK = "clock"
CHOSEN = "chosen"
ASK = "ask"


@dataclass(frozen=True)
class Question:
    """What the till asks: why, and which events cover the clock (none when unconfirmed)."""

    reason: str
    active: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason, "active": list(self.active)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Question:
        return cls(str(data.get("reason", "")), tuple(data.get("active", ())))


@dataclass(frozen=True)
class Choice:
    """The cashier's answer to a question: an event id, or "" for no event."""

    event_id: str
    question: Question

    @classmethod
    def from_payload(cls, payload: dict[str, Any] | None) -> Choice | None:
        if payload is None:
            return None
        return cls(str(payload["event_id"]), Question.from_json(payload["question"]))


@dataclass(frozen=True)
class Pick:
    how: str  # NO_SCHEDULE | CLOCK | CHOSEN | ASK
    event: ScheduledEvent | None = None
    question: Question | None = None  # ASK: what to ask; CHOSEN: what the choice answered
    candidates: tuple[ScheduledEvent, ...] = field(default=())

    @property
    def event_id(self) -> str:
        return self.event.id if self.event else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "how": self.how,
            "event_id": self.event_id,
            "event": self.event.to_json() if self.event else None,
            "question": self.question.to_json() if self.question else None,
            "candidates": [e.to_json() for e in self.candidates],
        }


def question_for(
    events: tuple[ScheduledEvent, ...], now_ms: int, clock_confirmed: bool
) -> tuple[Question | None, tuple[ScheduledEvent, ...]]:
    """(None, (the event,)) when the clock names one event; else (the question, the
    events the cashier may choose from)."""
    if not clock_confirmed:
        return Question(CLOCK_UNCONFIRMED), events
    active = tuple(e for e in events if e.covers(now_ms))
    if len(active) == 1:
        return None, active
    if active:
        return Question(OVERLAP, tuple(e.id for e in active)), active

    def distance(e: ScheduledEvent) -> int:
        return e.start_ms - now_ms if e.start_ms > now_ms else now_ms - e.end_ms

    nearest = tuple(sorted(events, key=lambda e: (distance(e), e.start_ms))[:MAX_CANDIDATES])
    return Question(NONE_CURRENT), nearest


def pick(
    schedule: Schedule | None,
    stall: str,
    now_ms: int,
    clock_confirmed: bool,
    choice: Choice | None = None,
) -> Pick:
    """The event a sale at ``now_ms`` belongs to (see the module's rules)."""
    if schedule is None:
        return Pick(NO_SCHEDULE)
    events = schedule.for_stall(stall)
    question, candidates = question_for(events, now_ms, clock_confirmed)
    if question is None:
        return Pick(CLOCK, candidates[0])
    if choice is not None and choice.question == question:
        if choice.event_id == "":
            return Pick(CHOSEN, None, question)
        chosen = next((e for e in events if e.id == choice.event_id), None)
        if chosen is not None:  # a newer schedule may have dropped it: then ask again
            return Pick(CHOSEN, chosen, question)
    return Pick(ASK, None, question, candidates)


def clock_confirmed(
    result: str | None, recorded_boot: str | None, boot: str, last_ms: int, now_ms: int
) -> bool:
    """The clock is trusted when this boot's latest ``clock`` self-test passed (a time
    source confirmed it) and it is not behind ``last_ms``, the latest wall clock the log
    recorded since that check (no jump back, however many events came after it)."""
    return result == "pass" and recorded_boot == boot and now_ms >= last_ms


def observe(
    tx: Transaction, chosen: Pick, current: dict[str, Any] | None, schedule_version: int
) -> None:
    """Record ``event.ended`` / ``event.started`` when ``chosen`` differs from the event in
    progress (``current``: its ``event.started`` payload). An unanswered question
    changes nothing: the event in progress stays until the cashier answers."""
    if chosen.how == ASK:
        return
    was = current["event_id"] if current else ""
    now = chosen.event_id
    if was == now:
        return
    if was:
        tx.append(ev.EVENT_ENDED, {"event_id": was, "how": chosen.how})
    if chosen.event is not None:
        e = chosen.event
        tx.append(
            ev.EVENT_STARTED,
            {
                "event_id": e.id,
                "name": e.name,
                "tax_profile": e.tax_profile,
                "jurisdiction": e.jurisdiction,
                "permit": e.permit,
                "start_ms": e.start_ms,
                "end_ms": e.end_ms,
                "how": chosen.how,
                "schedule_version": schedule_version,
            },
        )
