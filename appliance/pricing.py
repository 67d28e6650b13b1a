"""Pricing a cart: promotions, tax per rate, totals, cash rounding.

One function, :func:`price_cart`, used by the CLI and the kiosk alike, so
the screen's running total is the receipt's total. All arithmetic is in
integer minor units; see ``appliance.money`` for the rounding rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from appliance.catalog import Catalog, Item, Promotion, TaxProfile
from appliance.errors import RuleViolation
from appliance.money import allocate, div_round, round_to_step

MAX_QTY = 9999


@dataclass(frozen=True)
class CartLine:
    sku: str
    qty: int
    personalisation: dict[str, Any] | None = None  # e.g. {"text": ..., "order_id": ...}


@dataclass
class PricedLine:
    line: int
    sku: str
    name: str
    qty: int
    unit_price_minor: int
    amount_minor: int  # unit price x qty, in the price list's terms
    discount_minor: int
    tax_rate: str
    rate_bp: int
    net_minor: int = 0
    tax_minor: int = 0
    gross_minor: int = 0
    refundable: bool = True
    promos: list[str] = field(default_factory=list)
    personalisation: dict[str, Any] | None = None

    @property
    def basis_minor(self) -> int:
        return self.amount_minor - self.discount_minor

    def to_json(self) -> dict[str, Any]:
        # Written out (not dataclasses.asdict, which deep-copies): this is on the sale path.
        data = {
            "line": self.line,
            "sku": self.sku,
            "name": self.name,
            "qty": self.qty,
            "unit_price_minor": self.unit_price_minor,
            "amount_minor": self.amount_minor,
            "discount_minor": self.discount_minor,
            "tax_rate": self.tax_rate,
            "rate_bp": self.rate_bp,
            "net_minor": self.net_minor,
            "tax_minor": self.tax_minor,
            "gross_minor": self.gross_minor,
            "refundable": self.refundable,
            "promos": list(self.promos),
        }
        if self.personalisation is not None:
            data["personalisation"] = self.personalisation
        return data


@dataclass
class Quote:
    profile: TaxProfile
    lines: list[PricedLine]
    promotions: list[dict[str, Any]]
    taxes: list[dict[str, Any]]

    @property
    def subtotal_minor(self) -> int:
        return sum(line.amount_minor for line in self.lines)

    @property
    def discount_minor(self) -> int:
        return sum(line.discount_minor for line in self.lines)

    @property
    def net_minor(self) -> int:
        return sum(t["net_minor"] for t in self.taxes)

    @property
    def tax_minor(self) -> int:
        return sum(t["tax_minor"] for t in self.taxes)

    @property
    def total_minor(self) -> int:
        return sum(t["gross_minor"] for t in self.taxes)

    def due_minor(self, method: str) -> int:
        """What the customer pays: cash may be rounded to the profile's coin step."""
        if method == "cash":
            return round_to_step(self.total_minor, self.profile.cash_rounding_minor)
        return self.total_minor

    def to_json(self) -> dict[str, Any]:
        return {
            "tax_profile": self.profile.id,
            "currency": self.profile.currency,
            "prices_include_tax": self.profile.prices_include_tax,
            "tax_rounding": self.profile.rounding,
            "cash_rounding_minor": self.profile.cash_rounding_minor,
            "lines": [line.to_json() for line in self.lines],
            "promotions": self.promotions,
            "taxes": self.taxes,
            "subtotal_minor": self.subtotal_minor,
            "discount_minor": self.discount_minor,
            "net_minor": self.net_minor,
            "tax_minor": self.tax_minor,
            "total_minor": self.total_minor,
        }


def _merge(cart: Sequence[CartLine]) -> list[CartLine]:
    """Same SKU twice becomes one line; personalised lines always stay separate."""
    merged: list[CartLine] = []
    index: dict[str, int] = {}
    for entry in cart:
        if isinstance(entry.qty, bool) or not isinstance(entry.qty, int) or entry.qty <= 0:
            raise RuleViolation(
                f"quantity for {entry.sku} must be a whole number above zero "
                f"(got {entry.qty!r}); use SKU:QTY such as {entry.sku}:2"
            )
        if entry.personalisation is None and entry.sku in index:
            at = index[entry.sku]
            merged[at] = CartLine(entry.sku, merged[at].qty + entry.qty)
        else:
            if entry.personalisation is None:
                index[entry.sku] = len(merged)
            merged.append(entry)
    for entry in merged:
        if entry.qty > MAX_QTY:
            raise RuleViolation(
                f"quantity {entry.qty} of {entry.sku} is above {MAX_QTY}; "
                "split it into several sales"
            )
    return merged


def _active_promotions(
    catalog: Catalog, promo_code: str | None, event_id: str = ""
) -> list[Promotion]:
    active = [p for p in catalog.promotions if p.code is None and p.at_event(event_id)]
    if promo_code:
        wanted = promo_code.strip().upper()
        matched = [p for p in catalog.promotions if p.code and p.code.upper() == wanted]
        if not matched:
            raise RuleViolation(
                f"promo code {promo_code!r} is not valid at this till; check "
                "the spelling or sell without it"
            )
        here = [p for p in matched if p.at_event(event_id)]
        if not here:
            scope = ", ".join(sorted({e for p in matched for e in p.events}))
            where = f"event {event_id}" if event_id else "no scheduled event"
            raise RuleViolation(
                f"promo code {promo_code!r} is valid only at event {scope}, and this till "
                f"trades at {where}; sell without it"
            )
        active.extend(here)
    order = {"bundle": 0, "percent": 1, "amount": 2}
    return sorted(active, key=lambda p: order[p.kind])


def _apply_promotions(
    lines: list[PricedLine], items: list[Item], promos: list[Promotion]
) -> list[dict[str, Any]]:
    """Apply each promotion in turn; what each took off (with its promoter, when owned)."""
    applied = []
    for promo in promos:
        in_scope = [i for i, item in enumerate(items) if promo.applies_to(item)]
        discounts = [0] * len(lines)
        if promo.kind == "bundle":
            for i in in_scope:
                groups = lines[i].qty // promo.bundle_qty
                saving = promo.bundle_qty * lines[i].unit_price_minor - promo.value
                discounts[i] = max(0, groups * saving)
        elif promo.kind == "percent":
            for i in in_scope:
                discounts[i] = div_round(lines[i].basis_minor * promo.value, 10000)
        else:  # amount off the receipt, spread over the lines in scope
            remaining = [lines[i].basis_minor for i in in_scope]
            total = min(promo.value, sum(remaining))
            for i, part in zip(in_scope, allocate(total, remaining), strict=True):
                discounts[i] = part
        total_discount = sum(discounts)
        if total_discount <= 0:
            continue
        for i, amount in enumerate(discounts):
            if amount:
                lines[i].discount_minor += amount
                lines[i].promos.append(promo.id)
        entry = {
            "id": promo.id,
            "kind": promo.kind,
            "code": promo.code,
            "discount_minor": total_discount,
        }
        if promo.promoter:
            entry["promoter"] = promo.promoter
        applied.append(entry)
    return applied


def _split(basis: int, rate_bp: int, include_tax: bool) -> tuple[int, int]:
    """(net, tax) of a basis amount that is gross (tax-inclusive) or net (exclusive)."""
    if include_tax:
        net = div_round(basis * 10000, 10000 + rate_bp)
        return net, basis - net
    return basis, div_round(basis * rate_bp, 10000)


def _apply_tax(lines: list[PricedLine], profile: TaxProfile) -> list[dict[str, Any]]:
    by_rate: dict[str, list[PricedLine]] = {}
    for line in lines:
        by_rate.setdefault(line.tax_rate, []).append(line)
    taxes = []
    for code in sorted(by_rate):
        group = by_rate[code]
        rate_bp = group[0].rate_bp
        if profile.rounding == "line":
            for line in group:
                line.net_minor, line.tax_minor = _split(
                    line.basis_minor, rate_bp, profile.prices_include_tax
                )
        else:  # round once per rate, then spread the tax over the lines by their basis
            _net, group_tax = _split(
                sum(x.basis_minor for x in group), rate_bp, profile.prices_include_tax
            )
            shares = allocate(group_tax, [x.basis_minor for x in group])
            for line, share in zip(group, shares, strict=True):
                line.tax_minor = share
                line.net_minor = (
                    line.basis_minor - share if profile.prices_include_tax else line.basis_minor
                )
        for line in group:
            line.gross_minor = line.net_minor + line.tax_minor
        taxes.append(
            {
                "rate": code,
                "rate_bp": rate_bp,
                "net_minor": sum(x.net_minor for x in group),
                "tax_minor": sum(x.tax_minor for x in group),
                "gross_minor": sum(x.gross_minor for x in group),
            }
        )
    return taxes


def price_cart(
    catalog: Catalog,
    profile: TaxProfile,
    cart: Sequence[CartLine],
    promo_code: str | None = None,
    *,
    event_id: str = "",
) -> Quote:
    """Price ``cart`` under ``profile`` at scheduled event ``event_id`` ("" for none);
    raise RuleViolation with the fix on bad input."""
    if not cart:
        raise RuleViolation("the cart is empty; add at least one item (--item SKU[:QTY])")
    merged = _merge(cart)
    items = [catalog.item(entry.sku) for entry in merged]
    lines = []
    for number, (entry, item) in enumerate(zip(merged, items, strict=True), start=1):
        code, rate_bp = profile.rate_for(item)
        lines.append(
            PricedLine(
                line=number,
                sku=item.sku,
                name=item.name,
                qty=entry.qty,
                unit_price_minor=item.price_minor,
                amount_minor=item.price_minor * entry.qty,
                discount_minor=0,
                tax_rate=code,
                rate_bp=rate_bp,
                refundable=not item.engravable,
                personalisation=entry.personalisation,
            )
        )
    promotions = _apply_promotions(lines, items, _active_promotions(catalog, promo_code, event_id))
    taxes = _apply_tax(lines, profile)
    return Quote(profile, lines, promotions, taxes)


def taxes_by_rate(lines: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``taxes[]`` of lines already taxed (a refund's): their amounts summed per rate code."""
    taxes: dict[str, dict[str, Any]] = {}
    for ln in lines:
        t = taxes.setdefault(
            ln["tax_rate"],
            {
                "rate": ln["tax_rate"],
                "rate_bp": ln["rate_bp"],
                "net_minor": 0,
                "tax_minor": 0,
                "gross_minor": 0,
            },
        )
        for k in ("net_minor", "tax_minor", "gross_minor"):
            t[k] += ln[k]
    return [taxes[k] for k in sorted(taxes)]
