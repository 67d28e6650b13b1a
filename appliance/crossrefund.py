"""Refund at another till: a receipt of any till of the tenant's roster, offline.

A customer bought at till A and comes back to till B with the receipt; neither may be
online. B holds no record of A's sale, only the receipt's signed QR payload (TB2:
tenant, device, receipt number, gross per tax rate, payment method, the sale event's
hash) and the region's signed roster (each device's public key and stall). So:

* **authentic** (:func:`check_receipt`): a TB2 sale receipt of this till's tenant, from
  a device in the roster, whose signature verifies with that device's roster key (TB1
  receipts name no tenant or key: only the till that printed one refunds it);
* **bounded** (:func:`plan`): per tax rate, at most the gross the receipt states less
  what this till already refunded of that receipt. B cannot know what A or a third till
  refunded meanwhile: two tills refunding one receipt beyond what was sold is possible
  offline, and the region flags it (``edge/reconcile.py``), it never loses a refund;
* **linked**: the ``refund.issued`` names A's sale as ``sale_device``,
  ``sale_receipt_no`` and ``sale_event_ref`` (the receipt's 24-byte event hash prefix),
  with ``sale_id`` "" (B cannot know it); the region links it to A's stored sale.

With ``--item SKU:QTY`` the items are priced from this till's catalog under the tax
profile in force (the receipt lists no items) and come back into this till's stock;
without items the refund is what is left of the receipt, per rate, with no stock
movement. A receipt of this till itself goes the same-till way (``Till.refund``),
exactly as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from appliance.catalog import Catalog, TaxProfile
from appliance.errors import RuleViolation
from appliance.formats import receipt as receipt_sig
from appliance.formats.region import Roster
from appliance.money import div_round
from appliance.pricing import CartLine, price_cart, taxes_by_rate


@dataclass(frozen=True)
class ForeignSale:
    """What another till's verified sale receipt states."""

    device_id: str
    receipt_no: int
    event_ref: str  # hex: the first 24 bytes of the sale event's log hash
    unix_s: int
    currency: str
    method: str
    totals: tuple[tuple[int, int], ...]  # (rate_bp, gross_minor)

    def left(self, refunded: dict[int, int]) -> dict[int, int]:
        """rate_bp -> what this till may still refund of the receipt: the gross it states
        less ``refunded`` (rate_bp -> what this till refunded of it before)."""
        return {bp: gross - refunded.get(bp, 0) for bp, gross in self.totals}

    def ref(self) -> dict[str, Any]:
        return {
            "sale_device": self.device_id,
            "sale_receipt_no": self.receipt_no,
            "sale_event_ref": self.event_ref,
        }


def check_receipt(payload: str, tenant: str, roster: Roster | None) -> ForeignSale:
    """The sale another roster device's receipt states, once it is proved genuine."""
    try:
        fields, _sig, _signed = receipt_sig.parse_payload(payload)
    except ValueError as exc:
        raise RuleViolation(
            f"that QR code is not a tillbox receipt ({exc}); type the receipt number instead"
        ) from None
    if not isinstance(fields, receipt_sig.TB2Fields):
        raise RuleViolation(
            f"receipt {fields.receipt_no} of till {fields.device_id} is an old TB1 receipt "
            "(no tenant or key on it); refund it at the till that printed it"
        )
    if fields.tenant != tenant:
        raise RuleViolation(
            f"that receipt is from tenant {fields.tenant}, and this till belongs to {tenant}; "
            "refund it at one of that merchant's tills"
        )
    if roster is None:
        raise RuleViolation(
            f"this till holds no roster, so it cannot check till {fields.device_id}'s "
            "receipt; sync once (`tillbox sync --once`) or refund it at that till"
        )
    device = roster.device(fields.device_id)
    if device is None:
        raise RuleViolation(
            f"till {fields.device_id} is not in this tenant's roster; refund it at that "
            "till, or sync to get the current roster"
        )
    check = receipt_sig.verify_receipt_payload(payload, device.verify_key())
    if not check.ok:
        raise RuleViolation(
            f"receipt {fields.receipt_no} of till {fields.device_id} refused: its signature "
            "is not that till's (an altered or forged receipt); nothing was refunded"
        )
    if fields.kind != "S":
        raise RuleViolation(
            f"receipt {fields.receipt_no} is a refund receipt and cannot be refunded "
            "again; scan the sale's receipt"
        )
    return ForeignSale(
        fields.device_id,
        fields.receipt_no,
        fields.event_ref,
        fields.unix_s,
        fields.currency,
        fields.method,
        fields.totals,
    )


def rate_code(profile: TaxProfile, rate_bp: int) -> str:
    """The profile's name for a rate (the receipt states only basis points)."""
    codes = sorted(code for code, bp in profile.rates.items() if bp == rate_bp)
    return codes[0] if codes else f"bp{rate_bp}"


def plan(
    sale: ForeignSale,
    refunded: dict[int, int],
    catalog: Catalog,
    profile: TaxProfile,
    items: Sequence[tuple[str, int]] | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(lines, taxes) of the refund: per rate at most the receipt's gross less
    ``refunded`` (rate_bp -> what this till refunded of it before)."""
    where = f"receipt {sale.receipt_no} of till {sale.device_id}"
    if profile.currency != sale.currency:
        raise RuleViolation(
            f"{where} is in {sale.currency} and this till trades in {profile.currency}; "
            "refund it at a till of that currency"
        )
    left = sale.left(refunded)
    if items is None:
        taxes = []
        for bp, amount in sorted(left.items()):
            if amount <= 0:
                continue
            net = div_round(amount * 10000, 10000 + bp)  # a receipt's totals are gross
            taxes.append(
                {
                    "rate": rate_code(profile, bp),
                    "rate_bp": bp,
                    "net_minor": net,
                    "tax_minor": amount - net,
                    "gross_minor": amount,
                }
            )
        if not taxes:
            raise RuleViolation(f"{where} has nothing left to refund at this till")
        return [], taxes
    for sku, qty in items:
        if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
            raise RuleViolation(f"refund quantity for {sku} must be a whole number above zero")
        if catalog.item(sku).engravable:
            raise RuleViolation(
                f"{sku} is personalised and cannot be refunded (the customer approved the proof)"
            )
    quote = price_cart(catalog, profile, [CartLine(sku, qty) for sku, qty in items])
    lines = [
        {
            "line": 0,  # not a line of a sale this till holds
            "sku": ln.sku,
            "qty": ln.qty,
            "tax_rate": ln.tax_rate,
            "rate_bp": ln.rate_bp,
            "gross_minor": ln.gross_minor,
            "tax_minor": ln.tax_minor,
            "net_minor": ln.net_minor,
        }
        for ln in quote.lines
    ]
    wanted: dict[int, int] = {}
    for ln in lines:
        wanted[ln["rate_bp"]] = wanted.get(ln["rate_bp"], 0) + ln["gross_minor"]
    for bp, amount in sorted(wanted.items()):
        if bp not in left:
            raise RuleViolation(
                f"{where} sold nothing at {bp / 100:g} % tax, so those items are not on it; "
                "check the items"
            )
        if amount > left[bp]:
            raise RuleViolation(
                f"cannot refund {amount} (minor units) at {bp / 100:g} % from {where}: it "
                f"states {dict(sale.totals)[bp]} sold there and {max(left[bp], 0)} is left "
                "to refund at this till"
            )
    return lines, taxes_by_rate(lines)
