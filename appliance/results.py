"""What the till's sale and refund methods return: the event, and its JSON for the CLI.

:meth:`appliance.till.Till.sell` (and a booking paid at pickup) returns a
:class:`SaleResult`, :meth:`~appliance.till.Till.refund` and
:meth:`~appliance.till.Till.refund_foreign` a :class:`RefundResult`. Importers take
both from :mod:`appliance.till`, the till's front door.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.formats.chain import Event


@dataclass(frozen=True)
class SaleResult:
    event: Event
    replayed: bool = False  # True when the idempotency key matched an earlier sale

    @property
    def payload(self) -> dict[str, Any]:
        return self.event.payload

    def to_json(self) -> dict[str, Any]:
        p = self.payload
        return {
            "sale_id": p["sale_id"],
            "seq": self.event.seq,
            "receipt_no": p["receipt_no"],
            "shift_no": p["shift_no"],
            "idempotency_key": p["idempotency_key"],
            "currency": p["currency"],
            "total_minor": p["total_minor"],
            "tax_minor": p["tax_minor"],
            "discount_minor": p["discount_minor"],
            "due_minor": p["payment"]["due_minor"],
            "method": p["payment"]["method"],
            "tendered_minor": p["payment"].get("tendered_minor"),
            "change_minor": p["payment"].get("change_minor", 0),
            "lines": [
                {
                    k: ln[k]
                    for k in ("line", "sku", "name", "qty", "gross_minor", "tax_minor", "tax_rate")
                }
                for ln in p["lines"]
            ],
            "taxes": p["taxes"],
            "promotions": p["promotions"],
            "replayed": self.replayed,
        }


@dataclass(frozen=True)
class RefundResult:
    event: Event

    def to_json(self) -> dict[str, Any]:
        p = self.event.payload
        other = {k: p[k] for k in ("sale_device", "sale_event_ref") if k in p}
        return {
            **other,
            "sale_receipt_no": p["sale_receipt_no"],
            "event_id": p.get("event_id", ""),
            "refund_id": p["refund_id"],
            "sale_id": p["sale_id"],
            "seq": self.event.seq,
            "receipt_no": p["receipt_no"],
            "total_minor": p["total_minor"],
            "method": p["payment"]["method"],
            "currency": p["currency"],
            "lines": [
                {k: ln[k] for k in ("line", "sku", "qty", "gross_minor")} for ln in p["lines"]
            ],
        }
