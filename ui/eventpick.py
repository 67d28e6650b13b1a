"""What the kiosk shows of the event the till trades at, without Kivy.

The pick is the core's (:meth:`appliance.till.Till.current_event`, the rule in
:mod:`appliance.schedule`): the event the confirmed clock names, the cashier's answer,
or a question (the clock is unconfirmed, two events are on, none is). The status bar
shows the event's name or "choose event"; the chooser offers what the core offers and
records the answer through :meth:`~appliance.till.Till.choose_event`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from appliance import schedule as sched
from appliance.formats.chain import Event
from appliance.formats.region import ScheduledEvent
from appliance.log import now_ms
from appliance.till import Till


@dataclass(frozen=True)
class EventStatus:
    scheduled: bool  # a schedule is applied: only then is there an event to show
    asking: bool  # the till must ask the cashier before the next sale
    how: str  # appliance.schedule: no_schedule | clock | chosen | ask
    event: ScheduledEvent | None
    reason: str  # the question's reason (asked, or answered by the choice); "" otherwise


def status(till: Till) -> EventStatus:
    pick = till.current_event()
    return EventStatus(
        pick.how != sched.NO_SCHEDULE,
        pick.how == sched.ASK,
        pick.how,
        pick.event,
        pick.question.reason if pick.question else "",
    )


def choices(till: Till) -> tuple[ScheduledEvent, ...]:
    """The events the cashier may choose from: the core's candidates when it asks; when
    a choice answers the question, the same question's (so a wrong tap can be undone)."""
    pick = till.current_event()
    if pick.how == sched.ASK:
        return pick.candidates
    if pick.how != sched.CHOSEN or pick.question is None:
        return ()  # the clock names the event, or there is no schedule: nothing to choose
    conn = till.log.conn
    schedule = till.lists.schedule(conn)
    if schedule is None:
        return ()
    events = schedule.for_stall(till.lists.stall(conn, till.device_id))
    confirmed = pick.question.reason != sched.CLOCK_UNCONFIRMED
    return sched.question_for(events, now_ms(), confirmed)[1]


def choose(till: Till, event_id: str) -> Event:
    """Record the cashier's answer: an event of the schedule, or "" for no event."""
    return till.choose_event(event_id)


def when(event: ScheduledEvent) -> str:
    """``09:00-17:00`` on one day, else ``Sat 09:00 - Sun 17:00`` (the till's local time)."""
    start = datetime.fromtimestamp(event.start_ms / 1000)
    end = datetime.fromtimestamp(event.end_ms / 1000)
    if start.date() == end.date():
        return f"{start:%a %H:%M}-{end:%H:%M}"
    return f"{start:%a %d %b %H:%M} - {end:%a %d %b %H:%M}"
