"""The region's rollups (what the console's pages read instead of the events), as pure code.

The same pattern as :mod:`edge.ledger`: :func:`extract` reads what the rollups need
from one event (ingest rejects a sale or refund that lacks it as ``malformed``, before
its transaction); :meth:`RollupDelta.add` folds it into additive rows; ingest writes
one segment's delta in the segment's transaction, and :func:`recompute` folds every
stored event from scratch with the same code (``tillbox edge check`` compares).

What counts is decided by the ledger's fold, never here: a sale whose idempotency key
was seen before (a duplicate) is in no rollup, and a refund goes under the tax profile
of the sale it refunds (``unknown`` while that sale is not stored; when it arrives the
refund's rows move to its profile, :meth:`RollupDelta.move`, as in the tax ledger); a
booking handed over is in none (it is stock only). So the rollups add up to the
ledger: Σ ``rollup_tax`` per (tenant, profile, rate) is its ``tax_ledger`` row, and
Σ ``rollup_sales.gross_minor`` − Σ ``refund_minor`` is Σ ``tax_ledger.gross_minor``.

Keys (day and hour are UTC, of the event's wall clock; ``event_id`` is the payload's
``event_id`` or ""):

* ``rollup_sales`` (tenant, device, event_id, day, hour, currency): sales, their gross
  (Σ of the sale's ``taxes[].gross_minor`` = ``total_minor``, before cash rounding),
  refunds, their gross (positive);
* ``rollup_tax`` (tenant, tax profile, rate, rate_bp, day, event_id): sales, gross,
  tax, net; a refund's amounts are negative, on the refund's own day and event;
* ``rollup_items`` (tenant, day, sku): quantity and gross sold, with the line's name
  (the newest name wins); refunds are not taken off here (they are in rollup_sales);
* ``rollup_promos`` (tenant, event_id, day, code, promoter): redemptions (sales a
  promotion with that code discounted) and their discount; ``promoter`` is the code's
  owner as the sale's promotion names it ("" for the merchant's own code), so a
  promoter's redemptions add up across events and tenants. Promotions without a code
  (automatic ones) are not code redemptions and are not rolled up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from edge import ledger

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
# A till's clock can be wrong, never its sale: a wall clock outside 1970-9999 is counted
# on the nearest day of that range (day and hour must be a date the console can show).
_MAX_WALL_MS = (dt.date(9999, 12, 31) - dt.date(1970, 1, 1)).days * DAY_MS + DAY_MS - 1
_EPOCH = dt.date(1970, 1, 1)


class Fact(NamedTuple):
    """What one sale or refund means for the rollups, beyond its ledger intent (the SKUs,
    quantities, rates and amounts are the intent's: read once, by ledger.extract)."""

    day: str  # YYYY-MM-DD, UTC
    hour: int  # 0-23, UTC
    event_id: str
    currency: str
    rate_bps: list[int]  # taxes[].rate_bp, in the order of the intent's tax rows
    names: list[str]  # sales: lines[].name, in the order of the intent's stock rows
    line_gross: list[int]  # sales: lines[].gross_minor, likewise
    promos: list[tuple[str, str, int]]  # sales: (code, promoter, discount) of coded promotions


def _s(value: Any) -> str:
    if type(value) is not str:
        raise TypeError("expected a string")
    return value


def _i(value: Any) -> int:
    if type(value) is not int:
        raise TypeError("expected a whole number")
    return value


_days: dict[int, str] = {}


def day_hour(wall_ms: int) -> tuple[str, int]:
    """The UTC day (YYYY-MM-DD) and hour of a wall clock in ms (clamped to 1970-9999)."""
    if type(wall_ms) is not int:
        raise TypeError("wall_ms is not a whole number")
    if not 0 <= wall_ms <= _MAX_WALL_MS:
        wall_ms = 0 if wall_ms < 0 else _MAX_WALL_MS
    days, rest = divmod(wall_ms, DAY_MS)
    day = _days.get(days)
    if day is None:
        if len(_days) > 100_000:  # a cache of the days seen, not a leak
            _days.clear()
        day = _days[days] = (_EPOCH + dt.timedelta(days=days)).isoformat()
    return day, rest // HOUR_MS


def extract(intent: ledger.Intent, p: dict[str, Any], wall_ms: int) -> Fact | None:
    """The rest of a sale's or refund's rollup view (its ledger ``intent`` has the rest);
    None for a redemption. Raises KeyError/TypeError for a payload that lacks it."""
    if intent.type not in (ledger.SALE, ledger.REFUND):
        return None
    day, hour = day_hour(wall_ms)
    # On ingest's hot path: the type checks are written out (a call each costs more).
    rate_bps = [t["rate_bp"] for t in p["taxes"]]
    names: list[str] = []
    line_gross: list[int] = []
    promos: list[tuple[str, str, int]] = []
    if intent.type == ledger.SALE:
        for ln in p["lines"]:
            name, gross = ln["name"], ln["gross_minor"]
            if type(name) is not str or type(gross) is not int:
                raise TypeError("a line's name or gross has the wrong type")
            names.append(name)
            line_gross.append(gross)
        for promo in p["promotions"]:
            code = promo["code"]
            if code is not None:
                promoter = _s(promo.get("promoter", ""))
                promos.append((_s(code), promoter, _i(promo["discount_minor"])))
    for bp in rate_bps:
        if type(bp) is not int:
            raise TypeError("a tax row's rate_bp is not a whole number")
    return Fact(
        day, hour, _s(p.get("event_id", "")), _s(p["currency"]), rate_bps, names, line_gross, promos
    )


@dataclass
class RollupDelta:
    sales: dict[tuple[str, str, str, str, int, str], list[int]] = field(default_factory=dict)
    tax: dict[tuple[str, str, str, int, str, str], list[int]] = field(default_factory=dict)
    items: dict[tuple[str, str, str], list[Any]] = field(default_factory=dict)  # name, qty, gross
    promos: dict[tuple[str, str, str, str, str], list[int]] = field(default_factory=dict)

    def add(
        self, tenant: str, device: str, intent: ledger.Intent, fact: Fact, profile: str
    ) -> None:
        """Fold one counted sale or refund; ``profile`` is the one the ledger booked it to."""
        is_sale = intent.type == ledger.SALE
        day, event_id = fact.day, fact.event_id
        key = (tenant, device, event_id, day, fact.hour, fact.currency)
        row = self.sales.get(key)
        if row is None:
            row = self.sales[key] = [0, 0, 0, 0]
        gross_total = 0
        tax_rows = self.tax
        for (rate, gross, tax, net), rate_bp in zip(intent.tax, fact.rate_bps, strict=True):
            gross_total += gross
            tkey = (tenant, profile, rate, rate_bp, day, event_id)
            trow = tax_rows.get(tkey)
            if trow is None:
                trow = tax_rows[tkey] = [0, 0, 0, 0]
            trow[0] += is_sale
            trow[1] += gross
            trow[2] += tax
            trow[3] += net
        if is_sale:
            row[0] += 1
            row[1] += gross_total
        else:
            row[2] += 1
            row[3] -= gross_total  # the refund's amounts are negative in the intent
        if not is_sale:
            return  # refunds are not taken off the items, and carry no promotions
        items = self.items
        for (sku, qty), name, gross in zip(intent.stock, fact.names, fact.line_gross, strict=True):
            ikey = (tenant, day, sku)
            irow = items.get(ikey)
            if irow is None:
                items[ikey] = [name, -qty, gross]  # a sale takes its quantity out of stock
            else:
                irow[0], irow[1], irow[2] = name, irow[1] - qty, irow[2] + gross
        for code, promoter, discount in fact.promos:
            pkey = (tenant, event_id, day, code, promoter)
            prow = self.promos.get(pkey)
            if prow is None:
                prow = self.promos[pkey] = [0, 0]
            prow[0] += 1
            prow[1] += discount

    def move(self, tenant: str, intent: ledger.Intent, fact: Fact, profile: str) -> None:
        """A refund booked under ``unknown`` found its sale: its tax rows go to the
        sale's ``profile`` (same day and event); the ledger decided it (``relinked``)."""
        for (rate, gross, tax, net), rate_bp in zip(intent.tax, fact.rate_bps, strict=True):
            for where, sign in ((ledger.UNKNOWN, -1), (profile, 1)):
                key = (tenant, where, rate, rate_bp, fact.day, fact.event_id)
                row = self.tax.get(key)
                if row is None:
                    row = self.tax[key] = [0, 0, 0, 0]
                row[1] += sign * gross
                row[2] += sign * tax
                row[3] += sign * net
                if where == ledger.UNKNOWN and row == [0, 0, 0, 0]:
                    del self.tax[key]

    def __bool__(self) -> bool:
        return bool(self.sales or self.tax)


def recompute_with_ledger(
    events: Iterable[tuple[str, str, int, str, int, dict[str, Any]]],
) -> tuple[ledger.LedgerDelta, RollupDelta]:
    """Fold (tenant, device, seq, type, wall_ms, payload) in ingest order into fresh
    ledgers and rollups, the ledger deciding duplicates and refund profiles as ingest
    does."""
    books = ledger.LedgerDelta()
    total = RollupDelta()
    for tenant, device, seq, type_, wall_ms, payload in events:
        intent = ledger.extract(type_, payload)
        if intent is None:
            continue
        fact = extract(intent, payload, wall_ms)
        profile = books.add(tenant, device, seq, intent, _never, _nothing, extra=fact)
        if profile is not None and fact is not None:
            total.add(tenant, device, intent, fact, profile)
        for where, refund, to in books.relinked:
            total.move(where, refund.intent, refund.extra, to)
        books.relinked.clear()
    return books, total


def _never(_key: str) -> bool:
    return False


def _nothing(_sale_id: str) -> str | None:
    return None


def recompute(events: Iterable[tuple[str, str, int, str, int, dict[str, Any]]]) -> RollupDelta:
    """The rollups alone of :func:`recompute_with_ledger`."""
    return recompute_with_ledger(events)[1]
