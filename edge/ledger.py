"""Reconciling business intents into the region's stock and tax ledgers, as pure code.

Two steps. :func:`extract` reads what the ledgers need from one event's payload
(and refuses a payload that lacks it: ingest rejects such a segment as
``malformed`` before its transaction). :meth:`LedgerDelta.add` folds extracted
events into additive changes. Ingest folds one segment and writes the delta in
the segment's transaction; :func:`recompute` folds every stored event from
scratch with the same code, which is what makes "the ledgers equal a
recomputation" a real check (the test suite and ``tillbox edge check`` run it).

Rules: a sale takes its quantities out of stock and adds its per-rate taxes to
its tax profile's ledger; a refund does the reverse, under the profile of the
sale it refunds. A sale whose idempotency key was already seen (for the tenant)
is a duplicate: stored as an event, never counted twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from appliance import events

SALE = events.SALE_COMPLETED
REFUND = events.REFUND_ISSUED
TYPES = frozenset({SALE, REFUND})


class Intent(NamedTuple):
    """What one sale or refund means for the ledgers."""

    type: str
    idem_key: str  # "" for refunds
    sale_id: str
    tax_profile: str  # "" for refunds (they take the refunded sale's)
    stock: list[tuple[str, int]]  # (sku, signed quantity)
    tax: list[tuple[str, int, int, int]]  # (rate, gross, tax, net), signed


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
        )
    if type_ == REFUND:
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
        )
    return None


@dataclass
class LedgerDelta:
    stock: dict[tuple[str, str], int] = field(default_factory=dict)
    tax: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)
    # new sales: (tenant, idempotency key) -> (sale_id, device, seq, tax profile)
    sales: dict[tuple[str, str], tuple[str, str, int, str]] = field(default_factory=dict)
    dups: dict[tuple[str, int], str] = field(default_factory=dict)  # (device, seq) -> idem key
    profiles: dict[tuple[str, str], str] = field(default_factory=dict)  # (tenant, sale_id)
    touched: dict[tuple[str, str], int] = field(default_factory=dict)  # (tenant, sku) -> seq

    def add(
        self,
        tenant: str,
        device: str,
        seq: int,
        intent: Intent,
        known_key: Callable[[str], bool],
        sale_profile: Callable[[str], str | None],
    ) -> str | None:
        """Fold one intent. ``known_key``/``sale_profile`` answer from earlier batches.

        Returns the tax profile it was booked under, None for a duplicate sale (not
        counted): the rollups (:mod:`edge.rollups`) follow this decision."""
        if intent.type == SALE:
            key = intent.idem_key
            if (tenant, key) in self.sales or known_key(key):
                self.dups[(device, seq)] = key
                return None
            profile = intent.tax_profile
            self.sales[(tenant, key)] = (intent.sale_id, device, seq, profile)
            self.profiles[(tenant, intent.sale_id)] = profile
            count = 1
        else:
            profile = (
                self.profiles.get((tenant, intent.sale_id))
                or sale_profile(intent.sale_id)
                or "unknown"
            )
            count = 0
        stock = self.stock
        for sku, qty in intent.stock:
            stock[(tenant, sku)] = stock.get((tenant, sku), 0) + qty
            if qty < 0:
                self.touched[(tenant, sku)] = seq
        for rate, gross, tax, net in intent.tax:
            row = self.tax.get((tenant, profile, rate))
            if row is None:
                row = self.tax[(tenant, profile, rate)] = [0, 0, 0, 0]
            row[0] += count
            row[1] += gross
            row[2] += tax
            row[3] += net
        return profile

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
    """Fold (tenant, device, seq, type, payload) in ingest order into fresh ledgers."""
    total = LedgerDelta()
    for tenant, device, seq, type_, payload in events:
        total.fold(tenant, device, seq, type_, payload, lambda _k: False, lambda _s: None)
    return total
