"""Reconciling business intents into the region's stock and tax ledgers, as pure code.

:class:`LedgerDelta` folds events into additive changes. Ingest folds one
segment and writes the delta in the segment's transaction; :func:`recompute`
folds every stored event from scratch with the same code, which is what makes
"the ledgers equal a recomputation" a real check (the test suite and
``tillbox edge check`` both run it).

Rules: a sale takes its quantities out of stock and adds its per-rate taxes to
its tax profile's ledger; a refund does the reverse, under the profile of the
sale it refunds. A sale whose idempotency key was already seen (for the tenant)
is a duplicate: stored as an event, never counted twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

SALE = "sale.completed"
REFUND = "refund.issued"
TYPES = frozenset({SALE, REFUND})


@dataclass
class LedgerDelta:
    stock: dict[tuple[str, str], int] = field(default_factory=dict)
    tax: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)
    # new sales: idempotency key -> (sale_id, device, seq, tax profile)
    sales: dict[tuple[str, str], tuple[str, str, int, str]] = field(default_factory=dict)
    dups: dict[tuple[str, int], str] = field(default_factory=dict)  # (device, seq) -> idem key
    profiles: dict[tuple[str, str], str] = field(default_factory=dict)  # (tenant, sale_id)
    touched: dict[tuple[str, str], int] = field(default_factory=dict)  # (tenant, sku) -> seq

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
        """Add one event. ``known_key``/``sale_profile`` answer from earlier batches."""
        if type_ == SALE:
            key = payload["idempotency_key"]
            if (tenant, key) in self.sales or known_key(key):
                self.dups[(device, seq)] = key
                return
            profile = payload["tax_profile"]
            self.sales[(tenant, key)] = (payload["sale_id"], device, seq, profile)
            self.profiles[(tenant, payload["sale_id"])] = profile
            for line in payload["lines"]:
                self._stock(tenant, line["sku"], -int(line["qty"]), seq)
            for t in payload["taxes"]:
                self._tax(tenant, profile, t, 1, 1)
        elif type_ == REFUND:
            profile = (
                self.profiles.get((tenant, payload["sale_id"]))
                or sale_profile(payload["sale_id"])
                or "unknown"
            )
            for line in payload["lines"]:
                self._stock(tenant, line["sku"], int(line["qty"]), seq)
            for t in payload["taxes"]:
                self._tax(tenant, profile, t, 0, -1)

    def _stock(self, tenant: str, sku: str, delta: int, seq: int) -> None:
        self.stock[(tenant, sku)] = self.stock.get((tenant, sku), 0) + delta
        if delta < 0:
            self.touched[(tenant, sku)] = seq

    def _tax(self, tenant: str, profile: str, t: dict[str, Any], count: int, sign: int) -> None:
        row = self.tax.setdefault((tenant, profile, t["rate"]), [0, 0, 0, 0])
        row[0] += count
        row[1] += sign * int(t["gross_minor"])
        row[2] += sign * int(t["tax_minor"])
        row[3] += sign * int(t["net_minor"])


def validate(type_: str, payload: dict[str, Any]) -> None:
    """Raise KeyError/TypeError/ValueError when a sale or refund lacks what the ledger reads."""
    if type_ == SALE:
        str(payload["idempotency_key"]), str(payload["sale_id"]), str(payload["tax_profile"])
        lines, taxes = payload["lines"], payload["taxes"]
    elif type_ == REFUND:
        str(payload["sale_id"])
        lines, taxes = payload["lines"], payload["taxes"]
    else:
        return
    for line in lines:
        if not isinstance(line["sku"], str) or not isinstance(line["qty"], int):
            raise TypeError("line sku/qty")
    for t in taxes:
        for k in ("gross_minor", "tax_minor", "net_minor"):
            if not isinstance(t[k], int):
                raise TypeError(f"tax {k}")
        str(t["rate"])


def recompute(events: Iterable[tuple[str, str, int, str, dict[str, Any]]]) -> LedgerDelta:
    """Fold (tenant, device, seq, type, payload) in ingest order into fresh ledgers."""
    total = LedgerDelta()
    for tenant, device, seq, type_, payload in events:
        total.fold(tenant, device, seq, type_, payload, lambda _k: False, lambda _s: None)
    return total
