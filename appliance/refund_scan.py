"""Refund by scan: which receipt QR payloads open a sale for refund (the authenticity policy).

:func:`refund_by_receipt` refunds a scanned receipt of this till or of any till in the
tenant's roster (:mod:`appliance.crossrefund`). :func:`receipt_from_qr` is this till's own.

A scanned payload (the camera's decode or a handheld scanner's typed text) is accepted
only when it is a tillbox receipt of THIS till, its signature verifies with this till's
public key, it is a sale receipt (a refund is not refunded again) and its signed fields
are exactly what this till's log says about the sale under that receipt number. Every
refusal is one line with what to do; nothing is logged either way.
"""

from __future__ import annotations

from collections.abc import Sequence

from appliance import crossrefund
from appliance.errors import RuleViolation
from appliance.formats import receipt as receipt_sig
from appliance.till import RefundResult, Till


def receipt_from_qr(till: Till, payload: str) -> int:
    """The sale's receipt number from a scanned receipt QR, after checking it is genuine.

    Refused, each with its reason: not a tillbox receipt, a receipt of another till,
    a signature that does not verify with this till's public key (altered or forged),
    a refund receipt, and a receipt whose signed fields differ from the sale this till
    logged under that number.
    """
    try:
        fields, _sig, _signed = receipt_sig.parse_payload(payload)
    except ValueError as exc:
        raise RuleViolation(
            f"that QR code is not a tillbox receipt ({exc}); type the receipt number instead"
        ) from None
    if fields.device_id != till.device_id:
        raise RuleViolation(
            f"that receipt is from till {fields.device_id}, not this "
            f"one ({till.device_id}); refund it there"
        )
    check = receipt_sig.verify_receipt_payload(payload, till.public_key_hex())
    if not check.ok:
        raise RuleViolation(
            f"receipt {fields.receipt_no} refused: its signature was not made by this "
            "till (an altered or forged receipt); nothing was refunded"
        )
    if fields.kind != "S":
        raise RuleViolation(
            f"receipt {fields.receipt_no} is a refund receipt and cannot be refunded "
            "again; scan the sale's receipt"
        )
    event = till.find_sale(fields.receipt_no)
    expected = receipt_sig.expected_fields(till.log, event, fields.version, till.public_key_hex())
    if expected != fields:  # TB2 binds tenant, method and the event's hash; TB1 less
        raise RuleViolation(
            f"receipt {fields.receipt_no} does not match sale {fields.receipt_no} in "
            "this till's log; type the receipt number and check the sale"
        )
    return fields.receipt_no


def refund_by_receipt(
    till: Till, payload: str, items: Sequence[tuple[str, int]] | None = None
) -> RefundResult:
    """Refund the sale of a scanned receipt: this till's own by its log (exactly as by
    receipt number), another roster till's by what its signed receipt states."""
    try:
        fields, _sig, _signed = receipt_sig.parse_payload(payload)
    except ValueError:
        fields = None
    if fields is not None and fields.device_id == till.device_id:
        return till.refund(receipt_from_qr(till, payload), items)
    sale = crossrefund.check_receipt(payload, till.tenant, till.lists.roster(till.log.conn))
    return till.refund_foreign(sale, items)
