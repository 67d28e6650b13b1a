"""How a sale is paid: the methods, the cash tendered and its change, the offline card limits.

A till takes card payments offline: card money stays at risk until the region has
acked the sale (:meth:`appliance.till.Till.card_exposure_minor`). The ``[payment]``
limits of the config bound it, per sale and for all the card money the till holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from appliance.errors import RuleViolation
from appliance.pricing import Quote

if TYPE_CHECKING:
    from appliance.till import Till

PAYMENT_METHODS = ("cash", "card")


def check_card_limits(till: Till, due_minor: int) -> None:
    """Raise with the reason when an offline card payment would exceed a limit."""
    pay = till.config.section("payment")
    per_sale = int(pay["card_offline_limit_minor"])
    per_device = int(pay["card_offline_device_limit_minor"])
    if due_minor > per_sale:
        raise RuleViolation(
            f"card payment of {till.money(due_minor)} is above the offline card limit of "
            f"{till.money(per_sale)} per sale; take cash or split the sale"
        )
    exposure = till.card_exposure_minor()
    if exposure + due_minor > per_device:
        raise RuleViolation(
            f"this till already holds {till.money(exposure)} of unsynced card payments; "
            f"the device limit is {till.money(per_device)}; take cash or sync first"
        )


def payment(till: Till, quote: Quote, method: str, tendered: int | None) -> dict[str, Any]:
    """The sale's ``payment``: what is due by ``method`` (cash is rounded), the cash
    tendered and the change; refused when too little cash or over a card limit."""
    if method not in PAYMENT_METHODS:
        raise RuleViolation(f"payment method {method!r} is not supported; use cash or card")
    due = quote.due_minor(method)
    paid: dict[str, Any] = {
        "method": method,
        "due_minor": due,
        "rounding_minor": due - quote.total_minor,
    }
    if method == "cash":
        given = due if tendered is None else tendered
        if isinstance(given, bool) or not isinstance(given, int) or given < due:
            raise RuleViolation(
                f"cash tendered {till.money(given or 0)} is less than the "
                f"{till.money(due)} due; take more cash or pay by card"
            )
        paid.update(tendered_minor=given, change_minor=given - due)
    else:
        if tendered is not None:
            raise RuleViolation("--tendered is for cash only; leave it out for card")
        check_card_limits(till, due)
        paid["offline"] = True
    return paid
