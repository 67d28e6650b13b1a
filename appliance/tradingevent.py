"""The event this till trades at, read from its log, and the tax profile it sets.

:mod:`appliance.schedule` holds the rule, pure; this module feeds it this till's
projections (the region's schedule and roster, the event in progress, the cashier's
last choice, the clock's last check) and records what follows, inside the caller's
write transaction: the cashier's choice (``event.chosen``) and the switch
(``event.started`` / ``event.ended``) right before what is recorded now.
:class:`appliance.till.Till` opens the transactions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from appliance import events as ev
from appliance import log as eventlog
from appliance import projections, region
from appliance import schedule as sched
from appliance.catalog import Catalog, TaxProfile
from appliance.errors import NotFound, RuleViolation
from appliance.formats.chain import Event

if TYPE_CHECKING:
    from appliance.log import Transaction
    from appliance.till import Till


def context(till: Till, conn: Any, now_ms: int) -> tuple[sched.Pick, dict[str, Any] | None, int]:
    """(the pick for ``now_ms``, the event in progress's ``event.started`` payload,
    the schedule's version); cheap when no schedule was ever applied."""
    schedule = till.lists.schedule(conn)
    if schedule is None:  # never had one (a schedule is replaced, never removed)
        return sched.Pick(sched.NO_SCHEDULE), None, 0
    current, choice = projections.event_state(conn)
    result, boot, last_ms = projections.clock_state(conn)
    confirmed = sched.clock_confirmed(result, boot, eventlog.current_boot_id(), last_ms, now_ms)
    stall = till.lists.stall(conn, till.device_id)
    pick = sched.pick(schedule, stall, now_ms, confirmed, sched.Choice.from_payload(choice))
    return pick, current, region.version(conn, "schedule")


def profile_for(till: Till, catalog: Catalog, pick: sched.Pick) -> TaxProfile:
    """The tax profile of what is sold under ``pick``: its event's, else the shop's
    (``[shop] tax_profile``)."""
    if pick.event is None:
        return catalog.profile(till.config.section("shop")["tax_profile"])
    profile = catalog.tax_profiles.get(pick.event.tax_profile)
    if profile is None:
        raise RuleViolation(
            f"event {pick.event.id}'s tax profile {pick.event.tax_profile!r} is not in "
            "this till's catalog; apply the region's catalog that defines it"
        )
    return profile


def choose(till: Till, tx: Transaction, event_id: str) -> Event:
    """Record the cashier's answer when asked: an event of the schedule, or "" for none."""
    pick, current, version = context(till, tx.conn, eventlog.now_ms())
    if pick.how == sched.NO_SCHEDULE:
        raise RuleViolation(
            "no event schedule has been applied to this till; there is nothing to "
            "choose (apply one with `tillbox event apply FILE`)"
        )
    if pick.how == sched.CLOCK:
        raise RuleViolation(
            f"the confirmed clock says event {pick.event_id} is current; there is nothing to choose"
        )
    assert pick.question is not None
    schedule = till.lists.schedule(tx.conn)
    assert schedule is not None
    chosen = schedule.event(event_id) if event_id else None
    stall = till.lists.stall(tx.conn, till.device_id)
    if event_id and (chosen is None or not chosen.for_stall(stall)):
        known = ", ".join(e.id for e in schedule.for_stall(stall)) or "none"
        raise NotFound(
            f"event {event_id!r} is not in this stall's schedule (known: {known}); "
            "choose one of them or --none"
        )
    event = tx.append(
        ev.EVENT_CHOSEN,
        {
            "event_id": event_id,
            "question": pick.question.to_json(),
            "schedule_version": version,
        },
    )
    sched.observe(tx, sched.Pick(sched.CHOSEN, chosen, pick.question), current, version)
    return event


def for_record(till: Till, tx: Transaction, *, ask: bool = True) -> sched.Pick:
    """The pick for something recorded now, with the switch recorded before it.

    ``ask``: an open question refuses (a sale must know its tax profile). Without
    it (refunds: money back is never refused for this) the event in progress stays.
    """
    pick, current, version = context(till, tx.conn, eventlog.now_ms())
    if pick.how == sched.ASK:
        if ask:
            raise RuleViolation(ask_message(pick))
        if current is None:
            return sched.Pick(sched.ASK, None, pick.question)
        schedule = till.lists.schedule(tx.conn)
        ongoing = schedule.event(current["event_id"]) if schedule else None
        return sched.Pick(sched.ASK, ongoing, pick.question)
    sched.observe(tx, pick, current, version)
    return pick


def ask_message(pick: sched.Pick) -> str:
    """The one line that tells the cashier to choose the event (and from what)."""
    assert pick.question is not None
    why = {
        sched.CLOCK_UNCONFIRMED: "the clock is not confirmed (no time source since boot)",
        sched.OVERLAP: "two events of the schedule are on now",
        sched.NONE_CURRENT: "no event of the schedule is on now",
    }[pick.question.reason]
    offer = ", ".join(e.id for e in pick.candidates) or "no events"
    return (
        f"which event is this sale at? {why}; choose one with `tillbox event choose ID` "
        f"({offer}) or `tillbox event choose --none`"
    )
