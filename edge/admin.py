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
        row = store.one("SELECT tenant, public_key FROM devices WHERE device_id = ?", (device_id,))
        if row is not None:
            if (row[0], row[1]) != (tenant, key_hex):
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
        store.execute(
            "INSERT INTO devices (device_id, tenant, public_key, enrolled_ms, last_seq, "
            "last_hash, tip) VALUES (?,?,?,?,0,?,?)",
            (device_id, tenant, key_hex, time.time_ns() // 1_000_000, GENESIS_HASH, GENESIS_HASH),
        )
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
    for device_id, reason, count in store.all(
        "SELECT device_id, reason, count FROM rejections ORDER BY device_id, reason"
    ):
        totals[reason] = totals.get(reason, 0) + int(count)
        per_device.setdefault(device_id, {})[reason] = int(count)
    devices = []
    for row in store.all(
        "SELECT device_id, tenant, events_stored, last_seq, segments_stored, "
        "duplicates_dropped FROM devices ORDER BY device_id"
    ):
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
        for t, sku, d, seq, q in store.all(
            "SELECT tenant, sku, device_id, seq, qty_after FROM stock_flags "
            "ORDER BY tenant, sku, device_id, seq"
        )
    ]
    return {"devices": devices, "rejected": totals, "stock_flags": flags}


def stock_set(store: Store, tenant: str, sku: str, qty: int, note: str = "count") -> int:
    """Set a counted stock level; from now on the SKU is tracked (negatives get flagged)."""
    check_identifier(sku, "SKU")
    check_identifier(tenant, "tenant")
    with store.transaction():
        row = store.one("SELECT qty FROM stock WHERE tenant = ? AND sku = ?", (tenant, sku))
        delta = qty - (int(row[0]) if row else 0)
        store.execute(
            "INSERT INTO stock_adjustments (tenant, sku, delta, wall_ms, note) VALUES (?,?,?,?,?)",
            (tenant, sku, delta, time.time_ns() // 1_000_000, note),
        )
        store.execute(
            "INSERT INTO stock (tenant, sku, qty, tracked) VALUES (?,?,?,1) "
            "ON CONFLICT (tenant, sku) DO UPDATE SET qty = excluded.qty, tracked = 1",
            (tenant, sku, qty),
        )
    return delta


def stored_events(store: Store, device_id: str) -> list[tuple[int, str]]:
    """(seq, hash) of a device's stored events, in order."""
    return [
        (int(s), h)
        for s, h in store.all(
            "SELECT seq, hash FROM events WHERE device_id = ? ORDER BY seq", (device_id,)
        )
    ]


def check(store: Store) -> dict[str, Any]:
    """Recompute the ledgers from every stored event and compare with the stored ledgers."""
    rows = store.all(
        "SELECT d.tenant, e.device_id, e.seq, e.type, e.body, e.dup_of FROM events e "
        "JOIN devices d ON d.device_id = e.device_id WHERE e.type IN (?, ?) "
        "ORDER BY e.ingest_id",
        (ledger.SALE, ledger.REFUND),
    )
    fresh = ledger.recompute(
        (t, d, int(seq), type_, json.loads(body)["payload"]) for t, d, seq, type_, body, _ in rows
    )
    problems = []
    stock = dict(fresh.stock)
    for tenant, sku, delta in store.all("SELECT tenant, sku, delta FROM stock_adjustments"):
        stock[(tenant, sku)] = stock.get((tenant, sku), 0) + int(delta)
    stored_stock = {
        (t, sku): int(q) for t, sku, q in store.all("SELECT tenant, sku, qty FROM stock")
    }
    for key in sorted(set(stock) | set(stored_stock)):
        if stock.get(key, 0) != stored_stock.get(key, 0):
            problems.append(
                f"stock {key}: ledger {stored_stock.get(key, 0)}, recomputed {stock.get(key, 0)}"
            )
    stored_tax = {
        (t, p, r): [int(x) for x in rest]
        for t, p, r, *rest in store.all(
            "SELECT tenant, tax_profile, rate, sales, gross_minor, tax_minor, net_minor "
            "FROM tax_ledger"
        )
    }
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
