"""Reconciliation by intent: what the tills' stored events mean together, and its flags.

Every till logs business intents (a sale completed, a refund issued, a booking handed
over) and the region stores them all, because they happened. Tills that were offline
cannot have known of each other, so the merge is decided by the intents, not by any
one till's view. :func:`reconcile` is pure (events in, a report out), run over every
stored event by ``tillbox edge reconcile`` (and by the tests, against the tills' own
logs as the oracle):

* **links**: every refund to the sale it refunds. A refund at the selling till names
  the sale by ``sale_id``; one at another till (offline, from the receipt's QR) by
  ``sale_device`` + ``sale_receipt_no``, checked against the stored sale's hash with
  ``sale_event_ref``. A refund whose sale is not stored yet is *pending* (its till's
  segments may still be on their way), not a flag.
* **over-refund** flag: a sale whose refunds, from all tills together, give back more
  than it took at some tax rate (two tills refunding the same receipt while offline).
  Both refunds stay stored; the flag names the sale, every refund of it and the amount
  over (the sum over rates of what the refunds exceed the sale by), and any SKU
  refunded in more units than were sold.
* **ref-mismatch** flag: a refund naming another till's receipt whose event hash is not
  that of the stored sale with that number (should never happen: the receipt was
  verified with the selling till's key).
* **double redemption** flag: one booking handed over more than once (on two tills
  offline; one till refuses a second time itself), with every redemption.
* **negative stock**: the flags ingest already keeps (two tills sold the last one).

Ingest checks only the fields its ledgers read; an event lacking one that is read here
is listed as *unreadable* (device, seq, type) and left out, never a crash.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from appliance import events

SALE = events.SALE_COMPLETED
REFUND = events.REFUND_ISSUED
REDEEMED = events.BOOKING_REDEEMED
TYPES = (SALE, REFUND, REDEEMED)
EVENT_REF_HEX = 48  # the receipt's event hash prefix: 24 bytes


@dataclass(frozen=True)
class Stored:
    """One stored event, as reconciliation reads it."""

    tenant: str
    device: str
    seq: int
    type: str
    hash: str
    payload: dict[str, Any]
    dup_of: str | None = None


@dataclass
class Report:
    links: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    over_refunds: list[dict[str, Any]] = field(default_factory=list)
    ref_mismatches: list[dict[str, Any]] = field(default_factory=list)
    double_redemptions: list[dict[str, Any]] = field(default_factory=list)
    negative_stock: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[dict[str, Any]] = field(default_factory=list)

    @property
    def flags(self) -> int:
        return (
            len(self.over_refunds)
            + len(self.ref_mismatches)
            + len(self.double_redemptions)
            + len(self.negative_stock)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "flags": self.flags,
            "refunds_linked": len(self.links),
            "refunds_pending": len(self.pending),
            "links": self.links,
            "pending": self.pending,
            "over_refunds": self.over_refunds,
            "ref_mismatches": self.ref_mismatches,
            "double_redemptions": self.double_redemptions,
            "negative_stock": self.negative_stock,
            "unreadable": self.unreadable,
        }


def _is(value: Any, kind: type) -> bool:
    return type(value) is kind


def _amounts_ok(p: dict[str, Any]) -> bool:
    taxes, lines = p.get("taxes"), p.get("lines")
    return (
        _is(taxes, list)
        and _is(lines, list)
        and all(
            _is(t, dict) and _is(t.get("rate_bp"), int) and _is(t.get("gross_minor"), int)
            for t in taxes
        )
        and all(
            _is(ln, dict) and _is(ln.get("sku"), str) and _is(ln.get("qty"), int) for ln in lines
        )
    )


def readable(e: Stored) -> bool:
    """Whether ``e`` holds every field reconciliation reads, with its type."""
    p = e.payload
    if not _is(p, dict):
        return False
    if e.type == SALE:
        return _is(p.get("sale_id"), str) and _is(p.get("receipt_no"), int) and _amounts_ok(p)
    if e.type == REFUND:
        foreign = "sale_device" in p
        return (
            all(_is(p.get(k), str) for k in ("refund_id", "sale_id"))
            and all(_is(p.get(k), int) for k in ("receipt_no", "total_minor"))
            and _amounts_ok(p)
            and (
                not foreign
                or (
                    _is(p["sale_device"], str)
                    and _is(p.get("sale_receipt_no"), int)
                    and _is(p.get("sale_event_ref"), str)
                    and len(p["sale_event_ref"]) == EVENT_REF_HEX
                )
            )
        )
    if e.type == REDEEMED:
        return all(_is(p.get(k), str) for k in ("booking_id", "redemption_id", "payment")) and all(
            _is(p.get(k), int) for k in ("booking_number", "due_minor", "receipt_no")
        )
    return False


def _per_rate(taxes: list[dict[str, Any]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for t in taxes:
        out[t["rate_bp"]] = out.get(t["rate_bp"], 0) + t["gross_minor"]
    return out


def _per_sku(lines: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for ln in lines:
        out[ln["sku"]] = out.get(ln["sku"], 0) + ln["qty"]
    return out


def _sale_ref(e: Stored) -> dict[str, Any]:
    p = e.payload
    return {
        "tenant": e.tenant,
        "device": e.device,
        "seq": e.seq,
        "sale_id": p["sale_id"],
        "receipt_no": p["receipt_no"],
        "gross_minor": sum(t["gross_minor"] for t in p["taxes"]),
        "event_id": p.get("event_id", ""),
    }


def _refund_ref(e: Stored) -> dict[str, Any]:
    p = e.payload
    return {
        "device": e.device,
        "seq": e.seq,
        "refund_id": p["refund_id"],
        "receipt_no": p["receipt_no"],
        "gross_minor": sum(t["gross_minor"] for t in p["taxes"]),
        "total_minor": p["total_minor"],
        "cross_till": "sale_device" in p,
    }


def reconcile(stored: Iterable[Stored], negative_stock: Iterable[dict[str, Any]] = ()) -> Report:
    """Link, check and flag (see the module's rules); order of ``stored`` is irrelevant."""
    rows, report = [], Report()
    for e in stored:
        if readable(e):
            rows.append(e)
        else:
            report.unreadable.append({"device": e.device, "seq": e.seq, "type": e.type})
    sales_by_id: dict[tuple[str, str], Stored] = {}
    sales_by_receipt: dict[tuple[str, str, int], Stored] = {}
    for e in rows:
        if e.type == SALE:
            sales_by_id.setdefault((e.tenant, e.payload["sale_id"]), e)
            sales_by_receipt.setdefault((e.tenant, e.device, e.payload["receipt_no"]), e)
    refunds_of: dict[tuple[str, int], list[Stored]] = {}  # (device, seq) of the sale
    for e in sorted((r for r in rows if r.type == REFUND), key=lambda r: (r.device, r.seq)):
        p = e.payload
        if "sale_device" in p:
            sale = sales_by_receipt.get((e.tenant, p["sale_device"], p["sale_receipt_no"]))
            how = "receipt"
            if sale is not None and not sale.hash.startswith(str(p.get("sale_event_ref", ""))):
                report.ref_mismatches.append({"refund": _refund_ref(e), "sale": _sale_ref(sale)})
                continue
        else:
            sale = sales_by_id.get((e.tenant, p["sale_id"]))
            how = "sale_id"
        if sale is None:
            named = (
                {"device": p["sale_device"], "receipt_no": p["sale_receipt_no"]}
                if "sale_device" in p
                else {"sale_id": p["sale_id"], "device": e.device}
            )
            report.pending.append({"refund": _refund_ref(e), "sale": named})
            continue
        report.links.append({"refund": _refund_ref(e), "sale": _sale_ref(sale), "by": how})
        refunds_of.setdefault((sale.device, sale.seq), []).append(e)
    by_key = {(e.device, e.seq): e for e in rows if e.type == SALE}
    for key, refunds in sorted(refunds_of.items()):
        sale = by_key[key]
        sold = _per_rate(sale.payload["taxes"])
        back: dict[int, int] = {}
        for r in refunds:
            for bp, gross in _per_rate(r.payload["taxes"]).items():
                back[bp] = back.get(bp, 0) + gross
        over = sum(max(0, gross - sold.get(bp, 0)) for bp, gross in back.items())
        sold_qty = _per_sku(sale.payload["lines"])
        back_qty: dict[str, int] = {}
        for r in refunds:
            for sku, qty in _per_sku(r.payload["lines"]).items():
                back_qty[sku] = back_qty.get(sku, 0) + qty
        over_qty = {
            sku: qty - sold_qty.get(sku, 0)
            for sku, qty in sorted(back_qty.items())
            if qty > sold_qty.get(sku, 0)
        }
        if over or over_qty:
            report.over_refunds.append(
                {
                    "sale": _sale_ref(sale),
                    "refunds": [_refund_ref(r) for r in refunds],
                    "sold_minor": sum(sold.values()),
                    "refunded_minor": sum(back.values()),
                    "over_minor": over,
                    "over_qty": over_qty,
                }
            )
    redemptions: dict[tuple[str, str], list[Stored]] = {}
    for e in rows:
        if e.type == REDEEMED:
            redemptions.setdefault((e.tenant, e.payload["booking_id"]), []).append(e)
    for (tenant, booking_id), found in sorted(redemptions.items()):
        if len(found) < 2:
            continue
        found.sort(key=lambda r: (r.device, r.seq))
        report.double_redemptions.append(
            {
                "tenant": tenant,
                "booking_id": booking_id,
                "booking_number": found[0].payload["booking_number"],
                "redemptions": [
                    {
                        "device": r.device,
                        "seq": r.seq,
                        "redemption_id": r.payload["redemption_id"],
                        "payment": r.payload["payment"],
                        "due_minor": r.payload["due_minor"],
                        "receipt_no": r.payload["receipt_no"],
                    }
                    for r in found
                ],
            }
        )
    report.negative_stock = list(negative_stock)
    return report


def from_store(store: Any) -> Report:
    """Reconcile every sale, refund and redemption the region stores (``edge.store.Store``)."""
    stored = []
    for tenant, device, seq, type_, body, dup_of in store.events_of_types(TYPES):
        event = json.loads(body)
        stored.append(
            Stored(tenant, device, int(seq), type_, event["hash"], event["payload"], dup_of)
        )
    flags = [
        {"tenant": t, "sku": sku, "device_id": d, "seq": int(seq), "qty_after": int(q)}
        for t, sku, d, seq, q in store.stock_flags()
    ]
    return reconcile(stored, flags)
