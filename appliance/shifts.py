"""A till's shifts: opening one with the counted float, closing it with its Z report.

Sales, refunds and hand-overs need an open shift (:func:`require_open`). The Z report
(:func:`z_report`) is read from the shift's totals projection; closing a shift writes it
into ``shift.closed``, so the report is in the log. :class:`appliance.till.Till` opens
the write transactions these record in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from appliance import events as ev
from appliance import projections, queries
from appliance.errors import RuleViolation, TillError
from appliance.formats.chain import Event
from appliance.money import format_minor

if TYPE_CHECKING:
    from appliance.log import EventLog, Transaction
    from appliance.till import Till

MAX_FLOAT_MINOR = 10_000_000  # 100,000.00: far above any stall's drawer, below any overflow


def require_open(till: Till) -> int:
    """The open shift's number; refuses, with the fix, when none is open."""
    shift = till.current_shift()
    if shift is None:
        raise RuleViolation(
            "no shift is open; open one first (`tillbox shift open` or the Shift screen)"
        )
    return shift


def check_opening_float(till: Till, opening_float_minor: int) -> None:
    """Refuse a float that is not a whole, plausible count of the drawer."""
    if isinstance(opening_float_minor, bool) or not isinstance(opening_float_minor, int):
        raise RuleViolation(
            f"opening float {opening_float_minor!r} must be a whole number of minor "
            "units (cents); count the drawer and give it again"
        )
    if not 0 <= opening_float_minor <= MAX_FLOAT_MINOR:
        currency = _currency(till)

        def money(minor: int) -> str:
            return format_minor(minor, currency).strip()

        raise RuleViolation(
            f"opening float {money(opening_float_minor)} must be between {money(0)} and "
            f"{money(MAX_FLOAT_MINOR)}; count the drawer and give it again"
        )


def _currency(till: Till) -> str:
    """The shop's currency, or "" before any catalog is applied (a message still reads)."""
    try:
        return till.profile().currency
    except TillError:
        return ""


def record_open(till: Till, tx: Transaction, opening_float_minor: int) -> Event:
    """``shift.opened`` with the next shift number, unless a shift is open already."""
    current = till.current_shift()
    if current is not None:
        raise RuleViolation(
            f"shift {current} is already open; close it first (`tillbox shift close`)"
        )
    return tx.append(
        ev.SHIFT_OPENED,
        {
            "shift_no": projections.last_shift_no(tx.conn) + 1,
            "opening_float_minor": opening_float_minor,
        },
    )


def record_close(till: Till, tx: Transaction) -> Event:
    """``shift.closed`` of the open shift, with its Z report."""
    shift = till.current_shift()
    if shift is None:
        raise RuleViolation("no shift is open; there is nothing to close")
    return tx.append(ev.SHIFT_CLOSED, {"shift_no": shift, "z_report": z_report(till.log, shift)})


def z_report(log: EventLog, shift_no: int) -> dict[str, Any]:
    """Shift ``shift_no``'s totals: sales and refunds by payment method, taxes by rate,
    cash rounding, the opening float and the cash the drawer should hold."""
    rows = queries.shift_totals(log, shift_no)
    taxes = [
        {"rate": k, "gross_minor": g, "tax_minor": t, "net_minor": n}
        for kind, k, _c, g, t, n in rows
        if kind == "tax"
    ]
    payments = [
        {"method": k, "count": c, "total_minor": g}
        for kind, k, c, g, _t, _n in rows
        if kind == "pay"
    ]
    refunds = [
        {"method": k, "count": c, "total_minor": g}
        for kind, k, c, g, _t, _n in rows
        if kind == "refund"
    ]
    rounding = sum(g for kind, _k, _c, g, _t, _n in rows if kind == "rounding")
    opening_float = queries.opening_float_minor(log, shift_no)
    # Cash takings are already net of cash refunds (a refund subtracts from "pay").
    cash = sum(p["total_minor"] for p in payments if p["method"] == "cash")
    extra: dict[str, Any] = {}
    events = [
        {"event_id": k, "sales_count": c, "gross_minor": g, "tax_minor": t, "net_minor": n}
        for kind, k, c, g, t, n in rows
        if kind == "event"
    ]
    if events:  # only a till that traded at scheduled events has these
        rest = {
            "event_id": "",
            "sales_count": sum(p["count"] for p in payments)
            - sum(e["sales_count"] for e in events),
        }
        for key in ("gross_minor", "tax_minor", "net_minor"):
            rest[key] = sum(t[key] for t in taxes) - sum(e[key] for e in events)
        if any(rest[k] for k in rest if k != "event_id"):
            events.append(rest)
        extra["events"] = events
    bookings = [
        {"payment": k, "count": c, "due_minor": g}
        for kind, k, c, g, _t, _n in rows
        if kind == "booking"
    ]
    if bookings:
        extra["bookings"] = bookings
    return {
        "shift_no": shift_no,
        "sales_count": sum(p["count"] for p in payments),
        "refunds_count": sum(r["count"] for r in refunds),
        "taxes": taxes,
        "payments": payments,
        "refunds": refunds,
        "gross_minor": sum(t["gross_minor"] for t in taxes),
        "tax_minor": sum(t["tax_minor"] for t in taxes),
        "cash_rounding_minor": rounding,
        "takings_minor": sum(p["total_minor"] for p in payments),
        "opening_float_minor": opening_float,
        "expected_cash_minor": opening_float + cash,
        **extra,
    }
