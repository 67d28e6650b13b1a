"""What a promoter sees of their events: footfall per hour, promo codes, takings.

A promoter's :class:`console.scope.Scope` names their events; every statement keeps
only those (:meth:`Scope.event_filter`), across every tenant trading at the event.

* **Footfall** is the number of completed sales per hour, a proxy: the tills count
  receipts, not people (a group paying once is one; a visitor who buys twice is two).
  Hours are UTC, of the tills' wall clocks.
* **Promo-code redemptions**: per code, how many sales used it and the discount given,
  with the promoter who owns the code (the catalog's ``promoter``, as each sale names
  it; "" for a merchant's own code), and the totals per promoter.
* **Takings**: the event's aggregate (every tenant together) always; per stall only
  for the tenants whose merchant opted in (``share_stall_takings``, default off,
  console.reports.settings). A stall is the ``stall`` of the till's device profile,
  or the till itself when it has none. Takings are gross sales minus refunds (the
  taxes' gross, before cash rounding, as the tax ledger counts them).

All amounts are integer minor units, per currency.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from console.reports import store as db
from console.reports.period import Period, ReportInputError, check_ident
from console.scope import Scope
from edge.store import Store

PROMOTER_ROLES = ("promoter",)


@dataclass(frozen=True)
class HourCount:
    day: str
    hour: int
    sales: int

    def to_json(self) -> dict[str, Any]:
        return {"day": self.day, "hour": self.hour, "sales": self.sales}


@dataclass(frozen=True)
class PromoRow:
    code: str
    promoter: str  # the code's owner; "" for a merchant's own code
    redemptions: int
    discount_minor: int

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "promoter": self.promoter,
            "redemptions": self.redemptions,
            "discount_minor": self.discount_minor,
        }


@dataclass(frozen=True)
class PromoterTotal:
    promoter: str
    redemptions: int
    discount_minor: int

    def to_json(self) -> dict[str, Any]:
        return {
            "promoter": self.promoter,
            "redemptions": self.redemptions,
            "discount_minor": self.discount_minor,
        }


def per_promoter(promos: tuple[PromoRow, ...]) -> tuple[PromoterTotal, ...]:
    """The redemptions of the promoters' own codes, per promoter (merchants' codes left
    out): what a promoter is credited with at the event."""
    totals: dict[str, list[int]] = {}
    for p in promos:
        if p.promoter:
            t = totals.setdefault(p.promoter, [0, 0])
            t[0] += p.redemptions
            t[1] += p.discount_minor
    return tuple(PromoterTotal(name, n, d) for name, (n, d) in sorted(totals.items()))


@dataclass(frozen=True)
class Takings:
    currency: str
    sales: int
    gross_minor: int
    refunds: int
    refund_minor: int
    tenant: str = ""  # "" for the event's aggregate
    stall: str = ""

    @property
    def takings_minor(self) -> int:
        return self.gross_minor - self.refund_minor

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tenant": self.tenant, "stall": self.stall} if self.stall else {}
        return {
            **out,
            "currency": self.currency,
            "sales": self.sales,
            "gross_minor": self.gross_minor,
            "refunds": self.refunds,
            "refund_minor": self.refund_minor,
            "takings_minor": self.takings_minor,
        }


@dataclass(frozen=True)
class EventReport:
    event_id: str
    start: str | None
    end: str | None
    footfall: tuple[HourCount, ...]  # every hour from the first sale's to the last's
    promos: tuple[PromoRow, ...]
    takings: tuple[Takings, ...]  # the event's aggregate, per currency
    stalls: tuple[Takings, ...]  # only the opted-in tenants' stalls

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "from": self.start,
            "to": self.end,
            "footfall": [h.to_json() for h in self.footfall],
            "promos": [p.to_json() for p in self.promos],
            "promoters": [t.to_json() for t in per_promoter(self.promos)],
            "takings": [t.to_json() for t in self.takings],
            "stalls": [s.to_json() for s in self.stalls],
        }


def _args(
    scope: Scope, event_id: str, start: str | None, end: str | None
) -> tuple[str, str | None, str | None]:
    """The checked event and days (both or neither: none is the whole event)."""
    scope.require(*PROMOTER_ROLES)
    scope.check_event(check_ident(event_id, "event"))
    start, end = start or None, end or None
    if start is None and end is None:
        return event_id, None, None
    if start is None or end is None:
        raise ReportInputError("give both from and to, or neither for the whole event")
    period = Period.days(start, end)
    return event_id, period.start, period.end


def _dense(counts: list[tuple[str, int, int]]) -> tuple[HourCount, ...]:
    """Every hour from the first counted to the last, the quiet ones as 0 (a chart of
    footfall must show the lull, not join its neighbours)."""
    if not counts:
        return ()
    seen = {(day, hour): n for day, hour, n in counts}
    first = dt.datetime.fromisoformat(f"{counts[0][0]}T{counts[0][1]:02d}:00")
    last = dt.datetime.fromisoformat(f"{counts[-1][0]}T{counts[-1][1]:02d}:00")
    out = []
    at = first
    while at <= last:
        key = (at.date().isoformat(), at.hour)
        out.append(HourCount(key[0], key[1], seen.get(key, 0)))
        at += dt.timedelta(hours=1)
    return tuple(out)


def footfall_per_hour(
    store: Store, scope: Scope, event_id: str, start: str | None = None, end: str | None = None
) -> tuple[HourCount, ...]:
    event_id, start, end = _args(scope, event_id, start, end)
    return _dense(db.footfall(store, scope, event_id, start, end))


def promo_redemptions(
    store: Store, scope: Scope, event_id: str, start: str | None = None, end: str | None = None
) -> tuple[PromoRow, ...]:
    event_id, start, end = _args(scope, event_id, start, end)
    return tuple(PromoRow(*r) for r in db.promo_redemptions(store, scope, event_id, start, end))


def event_takings(
    store: Store, scope: Scope, event_id: str, start: str | None = None, end: str | None = None
) -> tuple[tuple[Takings, ...], tuple[Takings, ...]]:
    """(the event's aggregate per currency, the opted-in tenants' stalls)."""
    event_id, start, end = _args(scope, event_id, start, end)
    total = tuple(Takings(*r) for r in db.event_takings(store, scope, event_id, start, end))
    stalls = tuple(
        Takings(c, s, g, r, rm, tenant, stall)
        for tenant, stall, c, s, g, r, rm in db.shared_stall_takings(
            store, scope, event_id, start, end
        )
    )
    return total, stalls


def event_report(
    store: Store, scope: Scope, event_id: str, start: str | None = None, end: str | None = None
) -> EventReport:
    """Everything the promoter's event page shows."""
    event_id, start, end = _args(scope, event_id, start, end)
    takings, stalls = event_takings(store, scope, event_id, start, end)
    return EventReport(
        event_id,
        start,
        end,
        footfall_per_hour(store, scope, event_id, start, end),
        promo_redemptions(store, scope, event_id, start, end),
        takings,
        stalls,
    )


def promoter_events(scope: Scope) -> tuple[str, ...]:
    """The events a promoter may open, in order (the page's list)."""
    scope.require(*PROMOTER_ROLES)
    return tuple(sorted(scope.events))
