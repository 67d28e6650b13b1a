"""What the region's operator does besides serving: enroll, count, check, set stock."""

from __future__ import annotations

import json
import time
from typing import Any

from nacl.signing import VerifyKey

from appliance.errors import TillError
from appliance.formats.chain import GENESIS_HASH
from appliance.identifiers import check_identifier
from edge import ledger
from edge.store import Store


def _valid_id(text: str, what: str) -> str:
    return check_identifier(text, what)


def enroll(store: Store, device_id: str, public_key: VerifyKey, tenant: str) -> dict[str, Any]:
    """Register a device's public key; enrolling the same key again changes nothing."""
    _valid_id(device_id, "device id")
    _valid_id(tenant, "tenant")
    if device_id == "region":
        raise TillError("device id 'region' is reserved for region updates; pick another id")
    key_hex = public_key.encode().hex()
    with store.transaction():
        enrolled = store.device_key(device_id)
        if enrolled is not None:
            if enrolled != (tenant, key_hex):
                raise TillError(
                    f"device {device_id} is already enrolled with another key or "
                    "tenant; a device keeps its key for life (use a new device id)"
                )
            return {
                "device_id": device_id,
                "tenant": tenant,
                "public_key": key_hex,
                "already_enrolled": True,
            }
        store.insert_device(device_id, tenant, key_hex, time.time_ns() // 1_000_000, GENESIS_HASH)
    return {
        "device_id": device_id,
        "tenant": tenant,
        "public_key": key_hex,
        "already_enrolled": False,
    }


def stats(store: Store) -> dict[str, Any]:
    """Per device: stored, last seq, rejected (and why), duplicates; and all rejections."""
    per_device: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for device_id, reason, count in store.rejection_counts():
        totals[reason] = totals.get(reason, 0) + int(count)
        per_device.setdefault(device_id, {})[reason] = int(count)
    devices = []
    for row in store.device_stats():
        reasons = per_device.get(row[0], {})
        devices.append(
            {
                "device_id": row[0],
                "tenant": row[1],
                "events_stored": int(row[2]),
                "last_seq": int(row[3]),
                "segments_stored": int(row[4]),
                "segments_rejected": sum(reasons.values()),
                "rejected": reasons,
                "duplicates_dropped": int(row[5]),
            }
        )
    flags = [
        {"tenant": t, "sku": sku, "device_id": d, "seq": int(seq), "qty_after": int(q)}
        for t, sku, d, seq, q in store.stock_flags()
    ]
    return {"devices": devices, "rejected": totals, "stock_flags": flags}


def stock_set(store: Store, tenant: str, sku: str, qty: int, note: str = "count") -> int:
    """Set a counted stock level; from now on the SKU is tracked (negatives get flagged)."""
    check_identifier(sku, "SKU")
    check_identifier(tenant, "tenant")
    with store.transaction():
        delta = qty - (store.stock_qty(tenant, sku) or 0)
        store.set_counted_stock(tenant, sku, qty, delta, time.time_ns() // 1_000_000, note)
    return delta


def stored_events(store: Store, device_id: str) -> list[tuple[int, str]]:
    """(seq, hash) of a device's stored events, in order."""
    return [(int(s), h) for s, h in store.stored_events(device_id)]


def check(store: Store) -> dict[str, Any]:
    """Recompute the ledgers from every stored event and compare with the stored ledgers."""
    rows = store.events_of_types((ledger.SALE, ledger.REFUND))
    fresh = ledger.recompute(
        (t, d, int(seq), type_, json.loads(body)["payload"]) for t, d, seq, type_, body, _ in rows
    )
    problems = []
    stock = dict(fresh.stock)
    for tenant, sku, delta in store.stock_adjustments():
        stock[(tenant, sku)] = stock.get((tenant, sku), 0) + int(delta)
    stored_stock = {(t, sku): int(q) for t, sku, q in store.stock_levels()}
    for key in sorted(set(stock) | set(stored_stock)):
        if stock.get(key, 0) != stored_stock.get(key, 0):
            problems.append(
                f"stock {key}: ledger {stored_stock.get(key, 0)}, recomputed {stock.get(key, 0)}"
            )
    stored_tax = {(t, p, r): [int(x) for x in rest] for t, p, r, *rest in store.tax_ledger()}
    for key in sorted(set(fresh.tax) | set(stored_tax)):
        if fresh.tax.get(key, [0, 0, 0, 0]) != stored_tax.get(key, [0, 0, 0, 0]):
            problems.append(
                f"tax {key}: ledger {stored_tax.get(key)}, recomputed {fresh.tax.get(key)}"
            )
    stored_dups = {(d, int(seq)): dup for _t, d, seq, _ty, _b, dup in rows if dup}
    if stored_dups != fresh.dups:
        problems.append(f"duplicate sales: stored {len(stored_dups)}, recomputed {len(fresh.dups)}")
    return {
        "ok": not problems,
        "problems": problems,
        "sales": len(fresh.sales),
        "duplicates": len(fresh.dups),
        "events_checked": len(rows),
    }
