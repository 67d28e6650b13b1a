"""Every read the console's pages and API make of the region's data, each under a Scope.

Each function first asks the scope for its area (``Scope.allow``: the role may open
it), then puts the scope's tenant condition into the SQL itself (``Scope.tenant_filter``),
so a route that forgot a check still reads only the caller's tenants. Pages read the
rollup, telemetry and ledger tables the edge keeps, and the console's receipt index;
never a scan of the events table (a receipt's own event is read by its key).

Results are plain dicts and lists, ready for a template or for JSON.
"""

from __future__ import annotations

import json
from typing import Any

from console.scope import REGION_WIDE, OutOfScope, Scope
from edge.store import Store

# What a sales page can be grouped by -> the SQL expression of the group's key.
SALES_GROUPS = {
    "stall": "COALESCE(p.stall, '')",
    "till": "r.device_id",
    "event": "r.event_id",
    "day": "r.day",
    "hour": "r.hour",
}


def _where(scope: Scope, tenant: str | None, column: str) -> tuple[str, list[Any]]:
    """The scope's tenant condition on ``column``, narrowed to ``tenant`` when one is asked
    (the caller has already checked, with Scope.pick_tenant, that it may)."""
    sql, params = scope.tenant_filter(column)
    args = list(params)
    if tenant is not None:
        sql += f" AND {column} = ?"
        args.append(tenant)
    return sql, args


def _int(value: Any) -> int:
    return int(value or 0)  # PostgreSQL's SUM of BIGINT is numeric: make it an int again


# -- sales and refunds (rollups) ----------------------------------------------------------
def sales(
    store: Store, scope: Scope, tenant: str | None, day_from: str, day_to: str, group: str
) -> list[dict[str, Any]]:
    """Sales, takings and refunds per ``group`` (a key of SALES_GROUPS) and currency,
    over the UTC days day_from..day_to (inclusive)."""
    scope.allow("sales")
    key = SALES_GROUPS[group]
    where, args = _where(scope, tenant, "r.tenant")
    rows = store.all(
        f"SELECT {key}, r.currency, SUM(r.sales), SUM(r.gross_minor), SUM(r.refunds), "
        "SUM(r.refund_minor) FROM rollup_sales r "
        "LEFT JOIN device_profiles p ON p.device_id = r.device_id "
        f"WHERE {where} AND r.day >= ? AND r.day <= ? "
        f"GROUP BY {key}, r.currency ORDER BY {key}, r.currency",
        (*args, day_from, day_to),
    )
    return [
        {
            "key": str(k),
            "currency": cur,
            "sales": _int(n),
            "gross_minor": _int(gross),
            "refunds": _int(nr),
            "refund_minor": _int(refund),
            "net_minor": _int(gross) - _int(refund),
        }
        for k, cur, n, gross, nr, refund in rows
    ]


def top_items(
    store: Store, scope: Scope, tenant: str | None, day_from: str, day_to: str, limit: int = 10
) -> list[dict[str, Any]]:
    """The best-selling items by takings over the days (quantity and takings)."""
    scope.allow("sales")
    where, args = _where(scope, tenant, "tenant")
    rows = store.all(
        "SELECT sku, MAX(name), SUM(qty), SUM(gross_minor) FROM rollup_items "
        f"WHERE {where} AND day >= ? AND day <= ? GROUP BY sku "
        "ORDER BY SUM(gross_minor) DESC, sku LIMIT ?",
        (*args, day_from, day_to, limit),
    )
    return [
        {"sku": sku, "name": name, "qty": _int(q), "gross_minor": _int(g)}
        for sku, name, q, g in rows
    ]


def refund_summary(
    store: Store, scope: Scope, tenant: str | None, day_from: str, day_to: str
) -> list[dict[str, Any]]:
    """Refunds per till and day over the days (from the sales rollup)."""
    scope.allow("refunds")
    where, args = _where(scope, tenant, "tenant")
    rows = store.all(
        "SELECT device_id, day, currency, SUM(refunds), SUM(refund_minor) FROM rollup_sales "
        f"WHERE {where} AND day >= ? AND day <= ? AND refunds > 0 "
        "GROUP BY device_id, day, currency ORDER BY day, device_id, currency",
        (*args, day_from, day_to),
    )
    return [
        {"device_id": d, "day": day, "currency": c, "refunds": _int(n), "refund_minor": _int(m)}
        for d, day, c, n, m in rows
    ]


_RECEIPT_COLUMNS = (
    "device_id, receipt_no, tenant, kind, seq, wall_ms, currency, total_minor, method, "
    "sale_id, refunded_receipt_no, refunded_device, code"
)


def _receipt(row: tuple) -> dict[str, Any]:
    keys = [c.strip() for c in _RECEIPT_COLUMNS.split(",")]
    out = dict(zip(keys, row, strict=True))
    for k in ("receipt_no", "seq", "wall_ms", "total_minor"):
        out[k] = int(out[k])
    if out["refunded_receipt_no"] is not None:
        out["refunded_receipt_no"] = int(out["refunded_receipt_no"])
    return out


def refunds(
    store: Store, scope: Scope, tenant: str | None, from_ms: int, to_ms: int, limit: int = 200
) -> list[dict[str, Any]]:
    """The refund receipts issued from_ms <= time < to_ms, newest first (receipt index)."""
    scope.allow("refunds")
    where, args = _where(scope, tenant, "tenant")
    rows = store.all(
        f"SELECT {_RECEIPT_COLUMNS} FROM console_receipts WHERE {where} AND kind = 'R' "
        "AND wall_ms >= ? AND wall_ms < ? ORDER BY wall_ms DESC, device_id LIMIT ?",
        (*args, from_ms, to_ms, limit),
    )
    return [_receipt(r) for r in rows]


# -- receipts -----------------------------------------------------------------------------
def receipts_by_number(
    store: Store, scope: Scope, tenant: str | None, number: int, device_id: str | None = None
) -> list[dict[str, Any]]:
    scope.allow("receipts")
    where, args = _where(scope, tenant, "tenant")
    if device_id is not None:
        where += " AND device_id = ?"
        args.append(device_id)
    rows = store.all(
        f"SELECT {_RECEIPT_COLUMNS} FROM console_receipts WHERE {where} AND receipt_no = ? "
        "ORDER BY device_id LIMIT 100",
        (*args, number),
    )
    return [_receipt(r) for r in rows]


def receipts_by_code(store: Store, scope: Scope, code: str) -> list[dict[str, Any]]:
    scope.allow("receipts")
    where, args = _where(scope, None, "tenant")
    rows = store.all(
        f"SELECT {_RECEIPT_COLUMNS} FROM console_receipts WHERE {where} AND code = ? "
        "ORDER BY device_id, receipt_no LIMIT 100",
        (*args, code),
    )
    return [_receipt(r) for r in rows]


def receipt(store: Store, scope: Scope, device_id: str, receipt_no: int) -> dict[str, Any] | None:
    """One receipt with its event's payload (read by its key), or None."""
    scope.allow("receipts")
    where, args = _where(scope, None, "r.tenant")
    row = store.one(
        f"SELECT {', '.join('r.' + c.strip() for c in _RECEIPT_COLUMNS.split(','))}, e.body, "
        "e.hash FROM console_receipts r JOIN events e ON e.device_id = r.device_id "
        f"AND e.seq = r.seq WHERE {where} AND r.device_id = ? AND r.receipt_no = ?",
        (*args, device_id, receipt_no),
    )
    if row is None:
        return None
    out = _receipt(row[:-2])
    out["payload"] = json.loads(row[-2])["payload"]
    out["event_hash"] = row[-1]
    return out


def receipt_event(
    store: Store, scope: Scope, device_id: str, receipt_no: int
) -> dict[str, Any] | None:
    """The type and hash of the event the region stored under a till's receipt number."""
    scope.allow("verify")
    where, args = _where(scope, None, "r.tenant")
    row = store.one(
        "SELECT e.type, e.hash FROM console_receipts r JOIN events e "
        "ON e.device_id = r.device_id AND e.seq = r.seq "
        f"WHERE {where} AND r.device_id = ? AND r.receipt_no = ?",
        (*args, device_id, receipt_no),
    )
    return None if row is None else {"type": row[0], "hash": row[1]}


def device(store: Store, scope: Scope, device_id: str) -> dict[str, Any] | None:
    """An enrolled device (tenant, public key) the caller may see; None when unknown.
    A device of another tenant is OutOfScope (the receipt names it anyway)."""
    row = store.one("SELECT tenant, public_key FROM devices WHERE device_id = ?", (device_id,))
    if row is None:
        return None
    if not scope.may_see_tenant(row[0]):
        raise OutOfScope(f"till {device_id} belongs to a tenant outside your scope")
    return {"device_id": device_id, "tenant": row[0], "public_key": row[1]}


# -- stock --------------------------------------------------------------------------------
def stock(store: Store, scope: Scope, tenant: str | None) -> list[dict[str, Any]]:
    """Stock levels (the edge's ledger), lowest first."""
    scope.allow("stock")
    where, args = _where(scope, tenant, "tenant")
    rows = store.all(
        f"SELECT tenant, sku, qty, tracked FROM stock WHERE {where} ORDER BY qty, tenant, sku",
        args,
    )
    return [{"tenant": t, "sku": s, "qty": _int(q), "tracked": bool(tr)} for t, s, q, tr in rows]


def stock_flags(store: Store, scope: Scope, tenant: str | None) -> list[dict[str, Any]]:
    """Negative-stock flags, each with its resolution (None while open); open ones first."""
    scope.allow("stock")
    where, args = _where(scope, tenant, "f.tenant")
    rows = store.all(
        "SELECT f.tenant, f.sku, f.device_id, f.seq, f.qty_after, r.resolved_ms, r.user_name, "
        "r.note, r.counted_qty FROM stock_flags f LEFT JOIN console_stock_resolutions r "
        "ON r.tenant = f.tenant AND r.sku = f.sku AND r.device_id = f.device_id "
        f"AND r.seq = f.seq WHERE {where} "
        "ORDER BY CASE WHEN r.seq IS NULL THEN 0 ELSE 1 END, f.tenant, f.sku, f.device_id, f.seq "
        "LIMIT 500",
        args,
    )
    return [
        {
            "tenant": t,
            "sku": sku,
            "device_id": d,
            "seq": _int(seq),
            "qty_after": _int(q),
            "resolution": None
            if at is None
            else {"resolved_ms": _int(at), "by": by, "note": note, "counted_qty": _int(c)},
        }
        for t, sku, d, seq, q, at, by, note, c in rows
    ]


def stock_adjustments(
    store: Store, scope: Scope, tenant: str | None, limit: int = 100
) -> list[dict[str, Any]]:
    """Counted adjustments with their notes, newest first."""
    scope.allow("stock")
    where, args = _where(scope, tenant, "tenant")
    rows = store.all(
        "SELECT tenant, sku, delta, wall_ms, note FROM stock_adjustments "
        f"WHERE {where} ORDER BY wall_ms DESC, sku LIMIT ?",
        (*args, limit),
    )
    return [
        {"tenant": t, "sku": s, "delta": _int(d), "wall_ms": _int(w), "note": n}
        for t, s, d, w, n in rows
    ]


def stock_item(store: Store, scope: Scope, tenant: str, sku: str) -> dict[str, Any] | None:
    scope.allow("stock.count")
    where, args = _where(scope, tenant, "tenant")
    row = store.one(f"SELECT qty, tracked FROM stock WHERE {where} AND sku = ?", (*args, sku))
    return None if row is None else {"tenant": tenant, "sku": sku, "qty": _int(row[0])}


# -- the fleet ----------------------------------------------------------------------------
def fleet(store: Store, scope: Scope, tenant: str | None = None) -> list[dict[str, Any]]:
    """Every enrolled till the caller may see, with its latest telemetry (None when it
    never sent any), its revocation, stall and ingest counters."""
    scope.allow("fleet")
    return _devices(store, scope, tenant)


def exposure(store: Store, scope: Scope, tenant: str | None) -> list[dict[str, Any]]:
    """The tills of the tenant with their latest telemetry (offline card exposure)."""
    scope.allow("exposure")
    return _devices(store, scope, tenant)


def devices(store: Store, scope: Scope) -> list[dict[str, Any]]:
    """Every enrolled device, for the admin's device page."""
    scope.allow("devices")
    return _devices(store, scope, None)


def _devices(store: Store, scope: Scope, tenant: str | None) -> list[dict[str, Any]]:
    where, args = _where(scope, tenant, "d.tenant")
    rows = store.all(
        "SELECT d.device_id, d.tenant, d.public_key, d.enrolled_ms, d.events_stored, "
        "d.last_seq, t.received_ms, t.sent_ms, t.body, v.revoked_ms, v.reason, p.stall, "
        "p.label FROM devices d LEFT JOIN telemetry_latest t ON t.device_id = d.device_id "
        "LEFT JOIN device_revocations v ON v.device_id = d.device_id "
        "LEFT JOIN device_profiles p ON p.device_id = d.device_id "
        f"WHERE {where} ORDER BY d.tenant, d.device_id",
        args,
    )
    out = []
    for (
        d,
        t,
        key,
        enrolled,
        stored,
        last,
        received,
        sent,
        body,
        revoked,
        reason,
        stall,
        label,
    ) in rows:
        try:
            telemetry = json.loads(body) if body else None
        except ValueError:  # the edge stores only verified JSON; never fail a page on one row
            telemetry = None
        out.append(
            {
                "device_id": d,
                "tenant": t,
                "public_key": key,
                "enrolled_ms": _int(enrolled),
                "events_stored": _int(stored),
                "last_seq": _int(last),
                "received_ms": None if received is None else _int(received),
                "sent_ms": None if sent is None else _int(sent),
                "telemetry": telemetry if isinstance(telemetry, dict) else None,
                "revoked": None
                if revoked is None
                else {"revoked_ms": _int(revoked), "reason": reason},
                "stall": stall or "",
                "label": label or "",
            }
        )
    return out


def rejections(store: Store, scope: Scope) -> dict[str, dict[str, int]]:
    """device -> reason -> count of refused segments (a revoked device's are counted)."""
    scope.allow("devices")
    where, args = _where(scope, None, "d.tenant")
    rows = store.all(
        "SELECT r.device_id, r.reason, r.count FROM rejections r "
        f"JOIN devices d ON d.device_id = r.device_id WHERE {where}",
        args,
    )
    out: dict[str, dict[str, int]] = {}
    for d, reason, n in rows:
        out.setdefault(d, {})[reason] = _int(n)
    return out


# -- admin --------------------------------------------------------------------------------
def users(store: Store, scope: Scope) -> list[dict[str, Any]]:
    scope.allow("users")
    rows = store.all(
        "SELECT name, role, tenant, events, stalls, created_ms, disabled FROM console_users "
        "ORDER BY name"
    )
    return [
        {
            "name": n,
            "role": r,
            "tenant": t or None,
            "events": json.loads(ev),
            "stalls": json.loads(st),
            "created_ms": _int(c),
            "disabled": bool(dis),
        }
        for n, r, t, ev, st, c, dis in rows
    ]


def tenants(store: Store, scope: Scope) -> list[dict[str, Any]]:
    """Every tenant the region knows (from its devices and users), with how many tills and
    users it has."""
    scope.allow("tenants")
    devices_per = dict(store.all("SELECT tenant, COUNT(*) FROM devices GROUP BY tenant"))
    users_per = dict(
        store.all("SELECT tenant, COUNT(*) FROM console_users WHERE tenant <> '' GROUP BY tenant")
    )
    return [
        {"tenant": t, "devices": _int(devices_per.get(t)), "users": _int(users_per.get(t))}
        for t in sorted(set(devices_per) | set(users_per))
    ]


def audit(
    store: Store, scope: Scope, limit: int = 200, before_id: int | None = None
) -> list[dict[str, Any]]:
    """The audit log, newest first (``before_id`` pages back)."""
    scope.allow("audit")
    cond, args = ("id < ?", [before_id]) if before_id is not None else ("1 = 1", [])
    rows = store.all(
        "SELECT id, at_ms, user_name, role, action, tenant, target, detail, client "
        f"FROM console_audit WHERE {cond} ORDER BY id DESC LIMIT ?",
        (*args, limit),
    )
    return [
        {
            "id": _int(i),
            "at_ms": _int(at),
            "user": u,
            "role": r,
            "action": a,
            "tenant": t,
            "target": tg,
            "detail": d,
            "client": c,
        }
        for i, at, u, r, a, t, tg, d, c in rows
    ]


# -- the tax reporter ---------------------------------------------------------------------
def report_tenants(store: Store, scope: Scope, area: str) -> list[str]:
    """The tenants whose reports the caller may open in ``area`` (the region's tenants,
    from its enrolled devices), for the tenant picker of the tax pages."""
    scope.allow(area)
    where, args = _where(scope, None, "tenant")
    return [t for (t,) in store.all(f"SELECT DISTINCT tenant FROM devices WHERE {where}", args)]


def event_days(store: Store, scope: Scope, tenant: str, event_id: str) -> tuple[str, str] | None:
    """The first and last day the tenant's tills sold at ``event_id`` (rollup_tax), or
    None: a ledger of an event asked for without days covers these."""
    scope.allow("tax")
    where, args = _where(scope, tenant, "tenant")
    row = store.one(
        f"SELECT MIN(day), MAX(day) FROM rollup_tax WHERE {where} AND event_id = ?",
        (*args, event_id),
    )
    return None if row is None or row[0] is None else (row[0], row[1])


# -- the inspector ------------------------------------------------------------------------
def _inspectable(scope: Scope, device: str, stall: str) -> tuple[str, list[Any]]:
    """The condition that keeps the devices the caller may inspect: for an inspector,
    the tills at one of their stalls (the device's profile) or that sold at one of their
    events (the sales rollup); region-wide roles see every device; anyone else none."""
    if scope.role in REGION_WIDE:
        return "1 = 1", []
    if scope.role != "inspector":
        return "1 = 0", []
    parts, args = [], []
    if scope.stalls:
        parts.append(f"{stall} IN ({','.join('?' * len(scope.stalls))})")
        args += sorted(scope.stalls)
    if scope.events:
        parts.append(
            f"{device} IN (SELECT device_id FROM rollup_sales WHERE event_id IN "
            f"({','.join('?' * len(scope.events))}))"
        )
        args += sorted(scope.events)
    return (" OR ".join(parts) or "1 = 0"), args


def inspected_devices(store: Store, scope: Scope) -> list[dict[str, Any]]:
    """The devices the caller may inspect: tenant, stall, label, events stored, when the
    region last stored one of their segments."""
    scope.allow("inspector")
    where, args = _inspectable(scope, "d.device_id", "COALESCE(p.stall, '')")
    rows = store.all(
        "SELECT d.device_id, d.tenant, COALESCE(p.stall, ''), COALESCE(p.label, ''), "
        "d.events_stored, d.last_seq, d.segments_stored, "
        "(SELECT MAX(s.stored_ms) FROM segments s WHERE s.device_id = d.device_id) "
        "FROM devices d LEFT JOIN device_profiles p ON p.device_id = d.device_id "
        f"WHERE {where} ORDER BY d.tenant, d.device_id",
        args,
    )
    return [
        {
            "device_id": d,
            "tenant": t,
            "stall": stall,
            "label": label,
            "events_stored": _int(n),
            "last_seq": _int(last),
            "segments_stored": _int(segs),
            "last_stored_ms": None if at is None else _int(at),
        }
        for d, t, stall, label, n, last, segs, at in rows
    ]


def inspected_device(
    store: Store, scope: Scope, device_id: str, area: str = "inspector"
) -> dict[str, Any] | None:
    """One device the caller may inspect, or None when the region does not know it; a
    device outside the caller's stalls and events is OutOfScope."""
    scope.allow(area)
    row = store.one(
        "SELECT d.device_id, d.tenant, d.public_key, COALESCE(p.stall, ''), "
        "COALESCE(p.label, ''), d.events_stored, d.last_seq FROM devices d "
        "LEFT JOIN device_profiles p ON p.device_id = d.device_id WHERE d.device_id = ?",
        (device_id,),
    )
    if row is None:
        return None
    where, args = _inspectable(scope, "d.device_id", "COALESCE(p.stall, '')")
    allowed = store.one(
        "SELECT 1 FROM devices d LEFT JOIN device_profiles p ON p.device_id = d.device_id "
        f"WHERE d.device_id = ? AND ({where})",
        (device_id, *args),
    )
    if allowed is None:
        raise OutOfScope(f"till {device_id} is not at one of your stalls or events")
    d, tenant, key, stall, label, n, last = row
    return {
        "device_id": d,
        "tenant": tenant,
        "public_key": key,
        "stall": stall,
        "label": label,
        "events_stored": _int(n),
        "last_seq": _int(last),
    }


def _event_row(seq: Any, type_: str, hash_: str, body: str) -> dict[str, Any]:
    try:
        event = json.loads(body)
    except ValueError:  # the edge stores only verified JSON; never fail a page on one row
        event = {}
    return {
        "seq": _int(seq),
        "type": type_,
        "hash": hash_,
        "wall_ms": event.get("wall_ms") if isinstance(event.get("wall_ms"), int) else None,
        "payload": event.get("payload") if isinstance(event.get("payload"), dict) else {},
    }


def device_events(
    store: Store,
    scope: Scope,
    device_id: str,
    before_seq: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """A device's stored events, newest first, by its (device_id, seq) key: ``limit`` of
    them below ``before_seq`` (paging)."""
    inspected_device(store, scope, device_id)
    cond, args = "device_id = ?", [device_id]
    if before_seq is not None:
        cond += " AND seq < ?"
        args.append(before_seq)
    rows = store.all(
        f"SELECT seq, type, hash, body FROM events WHERE {cond} ORDER BY seq DESC LIMIT ?",
        (*args, limit),
    )
    return [_event_row(*r) for r in rows]


def last_selftests(store: Store, scope: Scope) -> dict[str, dict[str, Any]]:
    """The last self-test of every device the caller may inspect, by device, in one
    statement (the inspector's list: one lookup per till was 2.7 s at 200 tills). The
    newest self-test per device comes from the partial index on self-tests (its type is
    written into the statement, see :func:`device_selftests`)."""
    scope.allow("inspector")
    where, args = _inspectable(scope, "e.device_id", "COALESCE(p.stall, '')")
    rows = store.all(
        "SELECT e.device_id, e.seq, e.type, e.hash, e.body FROM events e JOIN ("
        "SELECT device_id, MAX(seq) AS seq FROM events WHERE type = 'selftest.recorded' "
        "GROUP BY device_id) m ON m.device_id = e.device_id AND m.seq = e.seq "
        "LEFT JOIN device_profiles p ON p.device_id = e.device_id "
        f"WHERE {where}",
        args,
    )
    return {device: _event_row(seq, type_, h, body) for device, seq, type_, h, body in rows}


def device_selftests(
    store: Store, scope: Scope, device_id: str, limit: int = 1
) -> list[dict[str, Any]]:
    """A device's last ``limit`` self-tests, newest first. The type is written into the
    statement, not bound: only then may the planners use the partial index on self-tests
    (edge/store/schema.py, ``events_selftests``)."""
    inspected_device(store, scope, device_id)
    rows = store.all(
        "SELECT seq, type, hash, body FROM events "
        "WHERE device_id = ? AND type = 'selftest.recorded' ORDER BY seq DESC LIMIT ?",
        (device_id, limit),
    )
    return [_event_row(*r) for r in rows]


def device_acks(
    store: Store, scope: Scope, device_id: str, limit: int = 200
) -> list[dict[str, Any]]:
    """The segments the region stored (and acked) for the device, newest first."""
    inspected_device(store, scope, device_id)
    rows = store.all(
        "SELECT id, first_seq, last_seq, size, stored_ms FROM segments WHERE device_id = ? "
        "ORDER BY first_seq DESC LIMIT ?",
        (device_id, limit),
    )
    return [
        {
            "segment_id": s,
            "first_seq": _int(a),
            "last_seq": _int(b),
            "size": _int(n),
            "stored_ms": _int(at),
        }
        for s, a, b, n, at in rows
    ]
