"""Receipts at the region: the search index, and checking a receipt someone holds.

**The index** (``console_receipts``) lets the console find a receipt by number or by the
short code printed under its QR without scanning the events table. It is caught up from
the events' ``ingest_id`` (the edge's own order) behind a watermark, by a background
thread of the web process and by :func:`catch_up` in tests. On PostgreSQL several ingest
workers commit in any order, so an id below the highest visible one may still be in an
open transaction: the watermark only moves over ids that are all present, and a hole
that stays for :data:`HOLE_SETTLE_MS` is an insert that rolled back (skipped). SQLite has
one writer, so what is visible is always a prefix.

**Verification** reuses the core's receipt format (``appliance.formats.receipt``): the
signature against the till's enrolled key, then the region's own copy of the receipt
event (its hash must start with the receipt's event reference). A photo is read with
``appliance.qrimage`` (zxing-cpp), after the web layer bounded its size.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from appliance import events as ev
from appliance.formats import receipt as receipt_sig
from appliance.qrimage import UnreadableImage, read_receipt_qr
from console import queries, tables
from console.scope import Scope
from edge.store import Store

log = logging.getLogger("tillbox.console")

INDEX = "receipts"
TYPES = (ev.SALE_COMPLETED, ev.REFUND_ISSUED, ev.RECEIPT_PRINTED, ev.RECEIPT_FAILED)
ID_SCAN = 50_000  # ids looked at per pass (the primary key only)
BATCH = 5_000  # events read per statement
HOLE_SETTLE_MS = 30_000  # longer than any ingest transaction stays open
UPLOAD_LIMIT = 8 << 20  # a phone photo of a receipt is 1-5 MiB


def _contiguous_end(ids: list[int], settled: int, hole: tuple[int, int], now_ms: int, pg: bool):
    """How far the watermark may move over ``ids`` (ascending, all > settled), and the hole
    it stopped at as (first missing id, first seen ms), or (0, 0)."""
    if not pg:
        return ids[-1], (0, 0)
    end = settled
    for i in ids:
        if i == end + 1:
            end = i
            continue
        missing = end + 1
        if hole[0] == missing and now_ms - hole[1] >= HOLE_SETTLE_MS:
            end = i  # a rolled-back insert: the ids never come
            continue
        return end, (missing, hole[1] if hole[0] == missing else now_ms)
    return end, (0, 0)


def _whole(value: object) -> int:
    if type(value) is not int:
        raise TypeError("expected a whole number")
    return value


def _receipt_row(
    tenant: str, device: str, seq: int, type_: str, payload: dict, wall_ms: object
) -> tuple:
    kind = "S" if type_ == ev.SALE_COMPLETED else "R"
    refunded = payload.get("sale_receipt_no") if kind == "R" else None
    return (
        device,
        _whole(payload["receipt_no"]),
        tenant,
        kind,
        int(seq),
        _whole(wall_ms),
        str(payload["currency"]),
        _whole(payload["total_minor"]),
        str(payload.get("payment", {}).get("method", "")),
        str(payload.get("sale_id", "")),
        refunded if type(refunded) is int else None,
        # a refund of another till's receipt names that till (sale_device)
        str(payload.get("sale_device") or device) if kind == "R" else "",
    )


def _index_rows(rows: list[tuple]) -> tuple[list[tuple], list[tuple[str, str, int]]]:
    receipts, codes = [], []
    for _id, tenant, device, seq, type_, body, dup_of in rows:
        try:
            obj = json.loads(body)
            payload = obj["payload"]
            if type_ in (ev.RECEIPT_PRINTED, ev.RECEIPT_FAILED):
                code, number = payload.get("code"), payload.get("receipt_no")
                if isinstance(code, str) and len(code) <= 16 and type(number) is int:
                    codes.append((code, device, number))
            elif not dup_of:  # a duplicate sale is counted under its first receipt
                receipts.append(_receipt_row(tenant, device, seq, type_, payload, obj["wall_ms"]))
        except (KeyError, TypeError, ValueError, AttributeError):
            # signed by the till and stored by the edge, but not a receipt this index can
            # read: left out (and said), never a stuck index
            log.warning("receipt index skipped %s seq %s (%s): fields missing", device, seq, type_)
    return receipts, codes


def catch_up(store: Store, now_ms: int) -> int:
    """Index the receipts stored since the watermark; returns how many events it read."""
    settled, hole_id, hole_ms = tables.watermark(store, INDEX)
    read = 0
    while True:
        ids = tables.ingest_ids_after(store, settled, ID_SCAN)
        if not ids:
            break
        end, hole = _contiguous_end(
            ids, settled, (hole_id, hole_ms), now_ms, store.dialect == "postgres"
        )
        cursor = settled
        while cursor < end:
            rows = tables.events_between(store, cursor, end, TYPES, BATCH)
            if not rows:
                break
            receipts, codes = _index_rows(rows)
            with store.transaction():
                tables.upsert_receipts(store, receipts)
                tables.set_receipt_codes(store, codes)
            cursor = rows[-1][0]
            read += len(rows)
        hole_id, hole_ms = hole
        moved = end > settled
        settled = end
        with store.transaction():
            tables.set_watermark(store, INDEX, settled, hole_id, hole_ms)
        if hole_id or not moved or len(ids) < ID_SCAN:
            break
    return read


# -- verification -------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """What the console says about a receipt someone holds."""

    ok: bool
    message: str
    payload: str = ""
    code: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    at_region: bool = False  # the region holds the receipt's event, and it matches

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "message": self.message,
            "code": self.code,
            "at_region": self.at_region,
            "fields": self.fields,
        }


def verify_payload(store: Store, scope: Scope, payload: str) -> Verdict:
    """Check a pasted QR payload: a tillbox receipt, signed by an enrolled till the caller
    may see, and (once synced) the same event the region stored. OutOfScope for a till
    of another tenant."""
    payload = payload.strip()
    try:
        fields, _sig, _signed = receipt_sig.parse_payload(payload)
    except ValueError as exc:
        return Verdict(False, f"not a tillbox receipt: {exc}", payload)
    device = queries.device(store, scope, fields.device_id)  # raises OutOfScope
    if device is None:
        return Verdict(
            False,
            f"till {fields.device_id} is not enrolled at this region; the receipt cannot be "
            "checked here",
            payload,
            fields=fields.to_json(),
        )
    check = receipt_sig.verify_receipt_payload(payload, device["public_key"])
    if not check.ok:
        return Verdict(False, check.problem, payload, check.code, fields.to_json())
    stored = queries.receipt_event(store, scope, fields.device_id, fields.receipt_no)
    if stored is None:
        return Verdict(
            True,
            f"genuine: signed by till {fields.device_id}; the region has not received receipt "
            f"{fields.receipt_no} yet (the till syncs it when it is online)",
            payload,
            check.code,
            fields.to_json(),
        )
    ref = getattr(fields, "event_ref", None)
    kind = "S" if stored["type"] == ev.SALE_COMPLETED else "R"
    if kind != fields.kind or (ref is not None and not stored["hash"].startswith(ref)):
        return Verdict(
            False,
            f"the signature is the till's, but receipt {fields.receipt_no} at the region is "
            "a different event: report it (a till whose log was replaced?)",
            payload,
            check.code,
            fields.to_json(),
        )
    return Verdict(
        True,
        f"genuine: signed by till {fields.device_id} and equal to receipt "
        f"{fields.receipt_no} as the region stored it",
        payload,
        check.code,
        fields.to_json(),
        at_region=True,
    )


def payload_from_photo(data: bytes) -> tuple[str, str]:
    """(payload, "") from a receipt photo, or ("", what went wrong, as one line)."""
    try:
        found = read_receipt_qr(data)
    except UnreadableImage as exc:
        return "", f"the upload is {exc}; send a JPEG or PNG photo of the receipt"
    if found.text:
        return found.text, ""
    if found.undecodable:
        return "", (
            "a QR code is in the photo but could not be read; photograph the receipt flat, "
            "in focus and closer"
        )
    return "", "no QR code in the photo; photograph the receipt's QR code, or paste its text"
