"""The amounts of a refund of this till's own receipt: which lines, how many units, how much.

Pure: the sale's payload and its lines' projection rows (``(line, sku, qty, refunded
before, refundable)``, :func:`appliance.projections.sale_lines`) in, the refund's lines
and totals out; :meth:`appliance.till.Till.refund` records them. A receipt of another
till is refunded by rate instead (:mod:`appliance.crossrefund`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from appliance.errors import RuleViolation
from appliance.money import div_round, round_to_step
from appliance.pricing import taxes_by_rate


class Amounts(NamedTuple):
    """A refund's ``lines``, its ``taxes`` per rate, its gross, and its total (a cash
    refund rounded to the sale's cash rounding step, as its payment was)."""

    lines: list[dict[str, Any]]
    taxes: list[dict[str, Any]]
    gross_minor: int
    total_minor: int


def amounts(
    sale: dict[str, Any], rows: list[tuple], items: Sequence[tuple[str, int]] | None
) -> Amounts:
    """What refunding ``items`` (``(sku, qty)`` each; None: all that is left) of the sale
    whose payload is ``sale`` pays back."""
    by_line = {ln["line"]: ln for ln in sale["lines"]}
    lines = []
    for line_no, qty, already in plan(sale["receipt_no"], rows, items):
        sold = by_line[line_no]
        lines.append(refund_line(sold, qty, already))
    taxes = taxes_by_rate(lines)
    gross = sum(ln["gross_minor"] for ln in lines)
    method = sale["payment"]["method"]
    step = sale.get("cash_rounding_minor", 0) if method == "cash" else 0
    return Amounts(lines, taxes, gross, round_to_step(gross, step))


def plan(
    receipt_no: int, rows: list[tuple], items: Sequence[tuple[str, int]] | None
) -> list[tuple[int, int, int]]:
    """(line, qty to refund, qty refunded before) for each line touched."""
    open_lines = [(line, sku, qty, done, refundable) for line, sku, qty, done, refundable in rows]
    if items is None:
        plan = [
            (line, qty - done, done)
            for line, _sku, qty, done, refundable in open_lines
            if refundable and qty > done
        ]
        if not plan:
            raise RuleViolation(f"receipt {receipt_no} has nothing left to refund")
        return plan
    plan = []
    for sku, want in items:
        if isinstance(want, bool) or not isinstance(want, int) or want <= 0:
            raise RuleViolation(f"refund quantity for {sku} must be a whole number above zero")
        candidates = [r for r in open_lines if r[1] == sku]
        if not candidates:
            raise RuleViolation(f"{sku} is not on receipt {receipt_no}; check the items sold")
        if not any(r[4] for r in candidates):
            raise RuleViolation(
                f"{sku} is personalised and cannot be refunded (the customer approved the proof)"
            )
        left = sum(qty - done for _l, _s, qty, done, ok in candidates if ok)
        if want > left:
            sold = sum(r[2] for r in candidates)
            raise RuleViolation(
                f"cannot refund {want} x {sku} from receipt {receipt_no}: only "
                f"{left} of {sold} sold are left to refund"
            )
        for index, (line, s, qty, done, ok) in enumerate(open_lines):
            if s != sku or not ok or want == 0:
                continue
            take = min(want, qty - done)
            if take:
                plan.append((line, take, done))
                open_lines[index] = (line, s, qty, done + take, ok)
                want -= take
    return plan


def refund_line(sold: dict[str, Any], qty: int, already: int) -> dict[str, Any]:
    """Refund ``qty`` units of a sold line, proportionally and cent-exact.

    Amounts are computed on cumulative quantities, so refunding a line in
    several parts always adds up to exactly what was paid for it.
    """

    def share(amount: int, units: int) -> int:
        return div_round(amount * units, sold["qty"])

    line = {
        "line": sold["line"],
        "sku": sold["sku"],
        "qty": qty,
        "tax_rate": sold["tax_rate"],
        "rate_bp": sold["rate_bp"],
    }
    for k in ("gross_minor", "tax_minor"):
        line[k] = share(sold[k], already + qty) - share(sold[k], already)
    line["net_minor"] = line["gross_minor"] - line["tax_minor"]
    return line
