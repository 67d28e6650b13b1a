"""Reconciling business intents into the region's stock and tax ledgers, as pure code.

Two steps. :func:`extract` reads what the ledgers need from one event's payload
(and refuses a payload that lacks it: ingest rejects such a segment as
``malformed`` before its transaction). :meth:`LedgerDelta.add` folds extracted
events into additive changes. Ingest folds one segment and writes the delta in
the segment's transaction; :func:`recompute` folds every stored event from
scratch with the same code, which is what makes "the ledgers equal a
recomputation" a real check (the test suite and ``tillbox edge check`` run it).

Rules:

* a sale takes its quantities out of stock and adds its per-rate taxes to its tax
  profile's ledger. A sale whose idempotency key was already seen (for the tenant) is
  a duplicate: stored as an event, never counted twice;
* a refund does the reverse, under the profile of the sale it refunds: found by
  ``sale_id`` (a refund at the selling till), or by the selling till and its receipt
  number (``sale_device``, ``sale_receipt_no``: a refund at another till, whose
  ``sale_id`` is ""). A refund whose sale is not stored (yet) is booked under
  ``unknown`` and kept *pending*; when that sale arrives, its tax moves from
  ``unknown`` to the sale's profile. So the ledgers do not depend on which till's
  segments came first: whatever the order, every refund whose sale is stored is under
  that sale's profile, and ``unknown`` holds only refunds still waiting for theirs;
* a booking handed over paid online (``booking.redeemed``, ``payment``
  ``paid_online``) takes its items out of stock (no sale does); one paid at pickup
  moves nothing itself (its sale does) and neither touches the tax ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from appliance import events

SALE = events.SALE_COMPLETED
REFUND = events.REFUND_ISSUED
REDEEMED = events.BOOKING_REDEEMED
TYPES = frozenset({SALE, REFUND, REDEEMED})
UNKNOWN = "unknown"  # the profile of a refund whose sale is not stored (yet)


class Intent(NamedTuple):
    """What one sale, refund or redemption means for the ledgers."""

    type: str
    idem_key: str  # "" for refunds and redemptions
    sale_id: str
    tax_profile: str  # "" for refunds (they take the refunded sale's)
    stock: list[tuple[str, int]]  # (sku, signed quantity)
    tax: list[tuple[str, int, int, int]]  # (rate, gross, tax, net), signed
    sale_device: str = ""  # a refund of another till's receipt: the selling till
    receipt_no: int = 0  # a sale: its receipt number; a cross-till refund: the refunded one


class Pending(NamedTuple):
    """A refund booked under ``unknown`` until its sale is stored; ``extra`` is the
    caller's (the rollups keep their view of the refund there)."""

    device: str
    seq: int
    intent: Intent
    extra: Any = None


def _no_receipt(_device: str, _receipt_no: int) -> str | None:
    return None


def _no_pending(_device: str, _receipt_no: int) -> list[Pending]:
    return []


def _s(value: Any) -> str:
    if type(value) is not str:
        raise TypeError("expected a string")
    return value


def _i(value: Any) -> int:
    if type(value) is not int:
        raise TypeError("expected a whole number")
    return value


def extract(type_: str, p: dict[str, Any]) -> Intent | None:
    """The ledger view of an event; None for other types. Raises KeyError/TypeError."""
    if type_ == SALE:
        return Intent(
            SALE,
            _s(p["idempotency_key"]),
            _s(p["sale_id"]),
            _s(p["tax_profile"]),
            [(_s(ln["sku"]), -_i(ln["qty"])) for ln in p["lines"]],
            [
                (_s(t["rate"]), _i(t["gross_minor"]), _i(t["tax_minor"]), _i(t["net_minor"]))
                for t in p["taxes"]
            ],
            "",
            _i(p.get("receipt_no", 0)),
        )
    if type_ == REFUND:
        foreign = "sale_device" in p
        return Intent(
            REFUND,
            "",
            _s(p["sale_id"]),
            "",
            [(_s(ln["sku"]), _i(ln["qty"])) for ln in p["lines"]],
            [
                (_s(t["rate"]), -_i(t["gross_minor"]), -_i(t["tax_minor"]), -_i(t["net_minor"]))
                for t in p["taxes"]
            ],
            _s(p["sale_device"]) if foreign else "",
            _i(p["sale_receipt_no"]) if foreign else 0,
        )
    if type_ == REDEEMED:
        paid = _s(p["payment"]) == "paid_online"  # at pickup, the sale moves the stock
        lines = [(_s(ln["sku"]), -_i(ln["qty"])) for ln in p["lines"]]
        return Intent(REDEEMED, "", "", "", lines if paid else [], [])
    return None


@dataclass
class LedgerDelta:
    stock: dict[tuple[str, str], int] = field(default_factory=dict)
    tax: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)
    # new sales: (tenant, idempotency key) -> (sale_id, device, seq, tax profile, receipt no)
    sales: dict[tuple[str, str], tuple[str, str, int, str, int]] = field(default_factory=dict)
    dups: dict[tuple[str, int], str] = field(default_factory=dict)  # (device, seq) -> idem key
    profiles: dict[tuple[str, str], str] = field(default_factory=dict)  # (tenant, sale_id)
    # (tenant, device, receipt no) -> profile, of the sales folded here
    receipts: dict[tuple[str, str, int], str] = field(default_factory=dict)
    touched: dict[tuple[str, str], int] = field(default_factory=dict)  # (tenant, sku) -> seq
    # each till's own movements: (tenant, device, sku) -> net quantity (the stall's stock)
    by_device: dict[tuple[str, str, str], int] = field(default_factory=dict)
    # refunds folded here whose sale is not known: (tenant, sale device, receipt no) -> them
    pending: dict[tuple[str, str, int], list[Pending]] = field(default_factory=dict)
    # refunds moved from ``unknown`` to their sale's profile: (tenant, refund, profile)
    relinked: list[tuple[str, Pending, str]] = field(default_factory=list)
    resolved: list[tuple[str, int]] = field(default_factory=list)  # (device, seq): stored ones

    def add(
        self,
        tenant: str,
        device: str,
        seq: int,
        intent: Intent,
        known_key: Callable[[str], bool],
        sale_profile: Callable[[str], str | None],
        receipt_profile: Callable[[str, int], str | None] = _no_receipt,
        stored_pending: Callable[[str, int], list[Pending]] = _no_pending,
        extra: Any = None,
    ) -> str | None:
        """Fold one intent. The callables answer from earlier batches: whether the
        tenant already holds an idempotency key; the profile of a stored sale by id, and
        by (device, receipt no); the stored refunds pending on (device, receipt no).

        Returns the tax profile it was booked under ("" for a redemption), None for a
        duplicate sale (not counted): the rollups (:mod:`edge.rollups`) follow this
        decision, and :attr:`relinked` says which earlier refunds a sale moved."""
        count = 0
        if intent.type == SALE:
            key = intent.idem_key
            if (tenant, key) in self.sales or known_key(key):
                self.dups[(device, seq)] = key
                return None
            profile = intent.tax_profile
            self.sales[(tenant, key)] = (intent.sale_id, device, seq, profile, intent.receipt_no)
            self.profiles[(tenant, intent.sale_id)] = profile
            self.receipts[(tenant, device, intent.receipt_no)] = profile
            self._link(tenant, device, intent.receipt_no, profile, stored_pending)
            count = 1
        elif intent.type == REFUND and intent.sale_device:
            where = (tenant, intent.sale_device, intent.receipt_no)
            found = self.receipts.get(where) or receipt_profile(
                intent.sale_device, intent.receipt_no
            )
            if found is None:
                self.pending.setdefault(where, []).append(Pending(device, seq, intent, extra))
            profile = found or UNKNOWN
        elif intent.type == REFUND:
            profile = (
                self.profiles.get((tenant, intent.sale_id))
                or sale_profile(intent.sale_id)
                or UNKNOWN
            )
        else:
            profile = ""  # a redemption: stock only
        stock, mine = self.stock, self.by_device
        for sku, qty in intent.stock:
            stock[(tenant, sku)] = stock.get((tenant, sku), 0) + qty
            mine[(tenant, device, sku)] = mine.get((tenant, device, sku), 0) + qty
            if qty < 0:
                self.touched[(tenant, sku)] = seq
        for rate, gross, tax, net in intent.tax:
            self._tax(tenant, profile, rate, count, gross, tax, net)
        return profile

    def _tax(self, tenant: str, profile: str, rate: str, *values: int) -> None:
        row = self.tax.get((tenant, profile, rate))
        if row is None:
            row = self.tax[(tenant, profile, rate)] = [0, 0, 0, 0]
        for i, v in enumerate(values):
            row[i] += v
        if profile == UNKNOWN and row == [0, 0, 0, 0]:
            del self.tax[(tenant, profile, rate)]  # every refund there found its sale

    def _link(
        self,
        tenant: str,
        device: str,
        receipt_no: int,
        profile: str,
        stored_pending: Callable[[str, int], list[Pending]],
    ) -> None:
        """The sale (device, receipt_no) arrived: its refunds booked under ``unknown``
        (folded here, or stored earlier) move to its profile."""
        found = self.pending.pop((tenant, device, receipt_no), [])
        for refund in stored_pending(device, receipt_no):
            found.append(refund)
            self.resolved.append((refund.device, refund.seq))
        for refund in found:
            for rate, gross, tax, net in refund.intent.tax:
                self._tax(tenant, UNKNOWN, rate, 0, -gross, -tax, -net)
                self._tax(tenant, profile, rate, 0, gross, tax, net)
            self.relinked.append((tenant, refund, profile))

    def fold(
        self,
        tenant: str,
        device: str,
        seq: int,
        type_: str,
        payload: dict[str, Any],
        known_key: Callable[[str], bool],
        sale_profile: Callable[[str], str | None],
    ) -> None:
        """Extract and add one event (used where payloads are at hand)."""
        intent = extract(type_, payload)
        if intent is not None:
            self.add(tenant, device, seq, intent, known_key, sale_profile)


def recompute(events: Iterable[tuple[str, str, int, str, dict[str, Any]]]) -> LedgerDelta:
    """Fold (tenant, device, seq, type, payload) in ingest order into fresh ledgers (any
    order gives the same stock and tax: refunds find their sale whichever comes first)."""
    total = LedgerDelta()
    for tenant, device, seq, type_, payload in events:
        total.fold(tenant, device, seq, type_, payload, lambda _k: False, lambda _s: None)
    return total
