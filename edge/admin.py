"""What the region's operator does besides serving: enroll, count, check, set stock, and
revoke or describe a device."""

from __future__ import annotations

import json
import time
from typing import Any

from nacl.signing import VerifyKey

from appliance.errors import TillError
from appliance.formats.chain import GENESIS_HASH
from appliance.identifiers import check_device_id, check_identifier
from edge import ledger, rollups
from edge.store import Store
from edge.telemetry import REASON_PREFIX as HEALTH_REASON

MAX_REASON_CHARS = 500
MAX_PROFILE_CHARS = 100
_SHOWN_PROBLEMS = 10  # per table, then a count


def _valid_id(text: str, what: str) -> str:
    return check_identifier(text, what)


def enroll(store: Store, device_id: str, public_key: VerifyKey, tenant: str) -> dict[str, Any]:
    """Register a device's public key; enrolling the same key again changes nothing."""
    check_device_id(device_id)
    _valid_id(tenant, "tenant")
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
        segment_reasons = [n for r, n in reasons.items() if not r.startswith(HEALTH_REASON)]
        devices.append(
            {
                "device_id": row[0],
                "tenant": row[1],
                "events_stored": int(row[2]),
                "last_seq": int(row[3]),
                "segments_stored": int(row[4]),
                "segments_rejected": sum(segment_reasons),
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
    with store.transaction():
        return record_count(store, tenant, sku, qty, note)


def record_count(store: Store, tenant: str, sku: str, qty: int, note: str) -> int:
    """The stock-count rule, inside the caller's transaction (the console adds its own rows
    to it): the level becomes ``qty``, an adjustment with ``note`` explains the change, and
    the SKU is tracked from now on. Returns the change."""
    check_identifier(sku, "SKU")
    check_identifier(tenant, "tenant")
    delta = qty - (store.stock_qty(tenant, sku) or 0)
    store.set_counted_stock(tenant, sku, qty, delta, time.time_ns() // 1_000_000, note)
    return delta


def stored_events(store: Store, device_id: str) -> list[tuple[int, str]]:
    """(seq, hash) of a device's stored events, in order."""
    return [(int(s), h) for s, h in store.stored_events(device_id)]


def check(store: Store) -> dict[str, Any]:
    """Recompute the ledgers and the rollups from every stored event and compare them with
    the stored ones; and the rollups' totals with the tax ledger."""
    rows = store.events_of_types(sorted(ledger.TYPES))
    parsed = [(t, d, int(seq), type_, json.loads(body)) for t, d, seq, type_, body, _ in rows]
    fresh, rolled = rollups.recompute_with_ledger(
        (t, d, seq, type_, obj["wall_ms"], obj["payload"]) for t, d, seq, type_, obj in parsed
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
    mine = {(t, d, sku): int(q) for t, d, sku, q in store.device_stock_rows() if int(q)}
    if mine != {k: v for k, v in fresh.by_device.items() if v}:
        problems.append("each till's stock movements (device_stock) differ from a recomputation")
    waiting = {(d, int(seq)): (t, sd, int(r)) for d, seq, t, sd, r in store.pending_refund_rows()}
    refolded = {(p.device, p.seq): where for where, found in fresh.pending.items() for p in found}
    if waiting != refolded:
        problems.append(
            f"refunds waiting for their sale: stored {sorted(waiting)[:3]} "
            f"({len(waiting)}), recomputed {sorted(refolded)[:3]} ({len(refolded)})"
        )
    checked = _check_rollups(store, rolled, stored_tax, problems)
    return {
        "ok": not problems,
        "problems": problems,
        "sales": len(fresh.sales),
        "duplicates": len(fresh.dups),
        "events_checked": len(rows),
        "rollup_rows_checked": checked,
    }


def _compare(
    table: str, stored: dict[tuple, list], fresh: dict[tuple, list], problems: list[str]
) -> None:
    # a row that holds nothing is no row (refunds that moved to their sale's profile)
    stored = {k: v for k, v in stored.items() if any(x != 0 for x in v if not isinstance(x, str))}
    fresh = {k: v for k, v in fresh.items() if any(x != 0 for x in v if not isinstance(x, str))}
    bad = [k for k in sorted(set(stored) | set(fresh), key=repr) if stored.get(k) != fresh.get(k)]
    for key in bad[:_SHOWN_PROBLEMS]:
        problems.append(f"{table} {key}: stored {stored.get(key)}, recomputed {fresh.get(key)}")
    if len(bad) > _SHOWN_PROBLEMS:
        problems.append(f"{table}: {len(bad) - _SHOWN_PROBLEMS} more rows differ")


def _check_rollups(
    store: Store,
    fresh: rollups.RollupDelta,
    stored_tax: dict[tuple, list[int]],
    problems: list[str],
) -> int:
    """Compare every rollup table with its recomputation; return the rows checked."""
    stored = store.rollup_rows()

    def keyed(rows: list[tuple], width: int) -> dict[tuple, list]:
        return {
            tuple(r[:width]): [v if isinstance(v, str) else int(v) for v in r[width:]] for r in rows
        }

    tables = (
        ("rollup_sales", keyed(stored["sales"], 6), fresh.sales),
        ("rollup_tax", keyed(stored["tax"], 6), fresh.tax),
        ("rollup_items", keyed(stored["items"], 3), fresh.items),
        ("rollup_promos", keyed(stored["promos"], 5), fresh.promos),
    )
    for name, rows, recomputed in tables:
        _compare(name, rows, recomputed, problems)
    # the rollups must add up to the tax ledger itself (not only to a recomputation)
    summed: dict[tuple, list[int]] = {}
    for (tenant, profile, rate, *_rest), values in tables[1][1].items():
        row = summed.setdefault((tenant, profile, rate), [0, 0, 0, 0])
        for i, v in enumerate(values):
            row[i] += v
    for key in sorted(set(summed) | set(stored_tax)):
        if summed.get(key, [0, 0, 0, 0]) != stored_tax.get(key, [0, 0, 0, 0]):
            problems.append(
                f"rollup_tax {key} adds up to {summed.get(key)}, the tax ledger holds "
                f"{stored_tax.get(key)}"
            )
    return sum(len(t[1]) for t in tables)


# -- devices: revocation and profiles -------------------------------------------------------
def _one_line(text: str, what: str, limit: int, required: bool) -> str:
    """``text`` as one line (runs of whitespace, newlines included, become one space)."""
    line = " ".join(str(text).split())
    if required and not line:
        raise TillError(f"{what} is empty; say in a few words why (it is kept with the device)")
    if len(line) > limit:
        raise TillError(f"{what} is {len(line)} characters; keep it to {limit}")
    if any(not ch.isprintable() for ch in line):
        raise TillError(f"{what} holds control characters; type it as plain text")
    return line


def _require_enrolled(store: Store, device_id: str) -> None:
    if store.device_key(_valid_id(device_id, "device id")) is None:
        raise TillError(
            f"device {device_id} is not enrolled at this region; `tillbox edge device list` "
            "shows the devices it knows"
        )


def revoke(store: Store, device_id: str, reason: str, now_ms: int | None = None) -> dict[str, Any]:
    """Revoke a device's key: from the commit on, its segments get a signed NACK
    ``rejected:revoked`` and its health messages are refused, both counted. For good:
    revoking again changes nothing (the first time and reason stay)."""
    reason = _one_line(reason, "--reason", MAX_REASON_CHARS, required=True)
    when = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    with store.transaction():
        _require_enrolled(store, device_id)
        # the device's row lock: a segment being stored now commits first, none after
        store.lock_device(device_id)
        before = store.revocation(device_id)
        if before is None:
            store.revoke_device(device_id, when, reason)
    revoked_ms, kept = before or (when, reason)
    return {
        "device_id": device_id,
        "revoked_ms": revoked_ms,
        "reason": kept,
        "already_revoked": before is not None,
    }


def device_tenant(store: Store, device_id: str) -> str:
    """The tenant an enrolled device belongs to."""
    _require_enrolled(store, device_id)
    row = store.device_key(device_id)
    assert row is not None
    return row[0]


def set_profile(
    store: Store, device_id: str, stall: str | None = None, label: str | None = None
) -> dict[str, Any]:
    """Set a device's stall and/or label (what the console shows); the one not given stays."""
    if stall is None and label is None:
        raise TillError("nothing to set; give --stall, --label or both")
    with store.transaction():
        _require_enrolled(store, device_id)
        old_stall, old_label = store.device_profile(device_id) or ("", "")
        new_stall = (
            old_stall if stall is None else _one_line(stall, "--stall", MAX_PROFILE_CHARS, False)
        )
        new_label = (
            old_label if label is None else _one_line(label, "--label", MAX_PROFILE_CHARS, False)
        )
        store.set_device_profile(device_id, new_stall, new_label)
    return {"device_id": device_id, "stall": new_stall, "label": new_label}


def devices(store: Store) -> list[dict[str, Any]]:
    """Every enrolled device: tenant, stall, label, revocation, last sequence, last seen."""
    out = []
    for row in store.device_list():
        device_id, tenant, enrolled_ms, last_seq, stall, label, revoked_ms, reason, seen, sent = row
        out.append(
            {
                "device_id": device_id,
                "tenant": tenant,
                "enrolled_ms": int(enrolled_ms),
                "last_seq": int(last_seq),
                "stall": stall or "",
                "label": label or "",
                "revoked": revoked_ms is not None,
                "revoked_ms": None if revoked_ms is None else int(revoked_ms),
                "revoked_reason": reason,
                "last_seen_ms": None if seen is None else int(seen),
                "clock_skew_ms": None if seen is None else int(seen) - int(sent),
            }
        )
    return out
