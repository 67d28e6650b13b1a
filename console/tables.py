"""The console's own tables in the edge's database, and every statement on them.

Users, sessions, login failures, the audit log, stock-flag resolutions and the receipt
index live next to the edge's tables (same database, same
:class:`edge.store.Store`, ``?`` placeholders translated for PostgreSQL), prefixed
``console_`` so the edge's schema and the console's never collide. Reads of the
region's business data are in :mod:`console.queries`, each scoped; this module holds
what is not scoped by a caller: signing in (before there is a caller), the audit and
rate-limit bookkeeping, and the receipt index's catch-up.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from edge.store import Store

_TABLES = """
CREATE TABLE IF NOT EXISTS console_users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, tenant TEXT NOT NULL DEFAULT '',
    events TEXT NOT NULL DEFAULT '[]', stalls TEXT NOT NULL DEFAULT '[]',
    password_hash TEXT NOT NULL, created_ms BIGINT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS console_sessions (
    token_hash TEXT PRIMARY KEY, user_name TEXT NOT NULL, csrf TEXT NOT NULL,
    created_ms BIGINT NOT NULL, expires_ms BIGINT NOT NULL, client TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS console_sessions_by_user ON console_sessions (user_name);
CREATE TABLE IF NOT EXISTS console_login_failures (
    key TEXT PRIMARY KEY, window_start_ms BIGINT NOT NULL, failures BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS console_audit (
    id {serial}, at_ms BIGINT NOT NULL, user_name TEXT NOT NULL, role TEXT NOT NULL,
    action TEXT NOT NULL, tenant TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL,
    client TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS console_stock_resolutions (
    tenant TEXT NOT NULL, sku TEXT NOT NULL, device_id TEXT NOT NULL, seq BIGINT NOT NULL,
    resolved_ms BIGINT NOT NULL, user_name TEXT NOT NULL, note TEXT NOT NULL,
    counted_qty BIGINT NOT NULL, PRIMARY KEY (tenant, sku, device_id, seq));
CREATE TABLE IF NOT EXISTS console_receipts (
    device_id TEXT NOT NULL, receipt_no BIGINT NOT NULL, tenant TEXT NOT NULL,
    kind TEXT NOT NULL, seq BIGINT NOT NULL, wall_ms BIGINT NOT NULL, currency TEXT NOT NULL,
    total_minor BIGINT NOT NULL, method TEXT NOT NULL, sale_id TEXT NOT NULL,
    refunded_receipt_no BIGINT, refunded_device TEXT NOT NULL DEFAULT '',
    code TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (device_id, receipt_no));
CREATE INDEX IF NOT EXISTS console_receipts_by_code ON console_receipts (code);
CREATE INDEX IF NOT EXISTS console_receipts_by_number ON console_receipts (tenant, receipt_no);
CREATE INDEX IF NOT EXISTS console_receipts_by_time ON console_receipts (tenant, kind, wall_ms);
-- the inspector pages list the segments (acks) of one device: by device, not a scan of
-- every till (the table is the edge one, console.queries.device_acks reads it)
CREATE INDEX IF NOT EXISTS console_segments_by_device ON segments (device_id, first_seq);
CREATE TABLE IF NOT EXISTS console_watermarks (
    name TEXT PRIMARY KEY, ingest_id BIGINT NOT NULL, hole_id BIGINT NOT NULL,
    hole_ms BIGINT NOT NULL)
"""


def ensure_schema(store: Store) -> None:
    """Create the console's tables when missing (idempotent; one creator at a time)."""
    serial = "BIGSERIAL PRIMARY KEY" if store.dialect == "postgres" else "INTEGER PRIMARY KEY"
    with store.transaction():
        if store.dialect == "postgres":
            store.execute("SELECT pg_advisory_xact_lock(7413)")
        for statement in _TABLES.format(serial=serial).split(";"):
            if statement.strip():
                store.execute(statement)


# -- users --------------------------------------------------------------------------------
def insert_user(
    store: Store,
    name: str,
    role: str,
    tenant: str,
    events: Sequence[str],
    stalls: Sequence[str],
    password_hash: str,
    created_ms: int,
    replace: bool = False,
) -> bool:
    """Add a user; False when the name is taken (nothing changed). With ``replace`` an
    existing user gets the new role, scope and password, and their sessions end."""
    with store.transaction():
        if store.one("SELECT 1 FROM console_users WHERE name = ?", (name,)):
            if not replace:
                return False
            store.execute("DELETE FROM console_sessions WHERE user_name = ?", (name,))
            store.execute("DELETE FROM console_users WHERE name = ?", (name,))
        store.execute(
            "INSERT INTO console_users (name, role, tenant, events, stalls, password_hash, "
            "created_ms) VALUES (?,?,?,?,?,?,?)",
            (
                name,
                role,
                tenant,
                json.dumps(sorted(events)),
                json.dumps(sorted(stalls)),
                password_hash,
                created_ms,
            ),
        )
    return True


def user_row(store: Store, name: str) -> tuple | None:
    """(name, role, tenant, events JSON, stalls JSON, password_hash, disabled) or None."""
    return store.one(
        "SELECT name, role, tenant, events, stalls, password_hash, disabled FROM console_users "
        "WHERE name = ?",
        (name,),
    )


def set_password_hash(store: Store, name: str, password_hash: str) -> None:
    store.execute(
        "UPDATE console_users SET password_hash = ? WHERE name = ?", (password_hash, name)
    )


def set_user_disabled(store: Store, name: str, disabled: bool) -> bool:
    """Disable (or enable) a user and end their sessions; False when there is no such user."""
    with store.transaction():
        if not store.one("SELECT 1 FROM console_users WHERE name = ?", (name,)):
            return False
        store.execute("UPDATE console_users SET disabled = ? WHERE name = ?", (int(disabled), name))
        if disabled:
            store.execute("DELETE FROM console_sessions WHERE user_name = ?", (name,))
    return True


# -- sessions -----------------------------------------------------------------------------
def insert_session(
    store: Store, token_hash: str, user: str, csrf: str, now_ms: int, expires_ms: int, client: str
) -> None:
    with store.transaction():
        store.execute("DELETE FROM console_sessions WHERE expires_ms < ?", (now_ms,))
        store.execute(
            "INSERT INTO console_sessions (token_hash, user_name, csrf, created_ms, expires_ms, "
            "client) VALUES (?,?,?,?,?,?)",
            (token_hash, user, csrf, now_ms, expires_ms, client),
        )


def session_row(store: Store, token_hash: str, now_ms: int) -> tuple | None:
    """(user, csrf, role, tenant, events, stalls) of a live session of an enabled user."""
    return store.one(
        "SELECT s.user_name, s.csrf, u.role, u.tenant, u.events, u.stalls "
        "FROM console_sessions s JOIN console_users u ON u.name = s.user_name "
        "WHERE s.token_hash = ? AND s.expires_ms > ? AND u.disabled = 0",
        (token_hash, now_ms),
    )


def delete_session(store: Store, token_hash: str) -> None:
    store.execute("DELETE FROM console_sessions WHERE token_hash = ?", (token_hash,))


# -- login failures (rate limiting) -------------------------------------------------------
def failures(store: Store, keys: Sequence[str], since_ms: int) -> dict[str, tuple[int, int]]:
    """key -> (failures, window start) for the keys whose window started after since_ms."""
    marks = ",".join("?" * len(keys))
    rows = store.all(
        f"SELECT key, failures, window_start_ms FROM console_login_failures "
        f"WHERE key IN ({marks}) AND window_start_ms > ?",
        (*keys, since_ms),
    )
    return {k: (int(n), int(start)) for k, n, start in rows}


def count_failure(store: Store, keys: Sequence[str], now_ms: int, window_ms: int) -> None:
    """One more failed sign-in under each key; a window older than window_ms starts again."""
    with store.transaction():
        for key in keys:
            store.execute(
                "INSERT INTO console_login_failures (key, window_start_ms, failures) "
                "VALUES (?, ?, 1) ON CONFLICT (key) DO UPDATE SET "
                "failures = CASE WHEN console_login_failures.window_start_ms <= ? THEN 1 "
                "ELSE console_login_failures.failures + 1 END, "
                "window_start_ms = CASE WHEN console_login_failures.window_start_ms <= ? "
                "THEN excluded.window_start_ms ELSE console_login_failures.window_start_ms END",
                (key, now_ms, now_ms - window_ms, now_ms - window_ms),
            )


def clear_failures(store: Store, keys: Sequence[str]) -> None:
    marks = ",".join("?" * len(keys))
    store.execute(f"DELETE FROM console_login_failures WHERE key IN ({marks})", tuple(keys))


# -- audit --------------------------------------------------------------------------------
def insert_audit(
    store: Store,
    at_ms: int,
    user: str,
    role: str,
    action: str,
    tenant: str,
    target: str,
    detail: str,
    client: str,
) -> None:
    store.execute(
        "INSERT INTO console_audit (at_ms, user_name, role, action, tenant, target, detail, "
        "client) VALUES (?,?,?,?,?,?,?,?)",
        (at_ms, user, role, action, tenant, target, detail, client),
    )


# -- stock-flag resolutions ---------------------------------------------------------------
def resolve_flags(
    store: Store, tenant: str, sku: str, resolved_ms: int, user: str, note: str, counted: int
) -> int:
    """Mark every open negative-stock flag of the SKU resolved (inside the caller's
    transaction, with the count that resolves them); returns how many."""
    open_flags = store.all(
        "SELECT f.device_id, f.seq FROM stock_flags f LEFT JOIN console_stock_resolutions r "
        "ON r.tenant = f.tenant AND r.sku = f.sku AND r.device_id = f.device_id "
        "AND r.seq = f.seq WHERE f.tenant = ? AND f.sku = ? AND r.seq IS NULL",
        (tenant, sku),
    )
    for device_id, seq in open_flags:
        store.execute(
            "INSERT INTO console_stock_resolutions (tenant, sku, device_id, seq, resolved_ms, "
            "user_name, note, counted_qty) VALUES (?,?,?,?,?,?,?,?)",
            (tenant, sku, device_id, int(seq), resolved_ms, user, note, counted),
        )
    return len(open_flags)


# -- the receipt index --------------------------------------------------------------------
def watermark(store: Store, name: str) -> tuple[int, int, int]:
    """(indexed up to this ingest id, the missing id it waits at, since when in ms) of an
    index; zeros at first."""
    row = store.one(
        "SELECT ingest_id, hole_id, hole_ms FROM console_watermarks WHERE name = ?", (name,)
    )
    return (0, 0, 0) if row is None else (int(row[0]), int(row[1]), int(row[2]))


def set_watermark(store: Store, name: str, upto: int, hole_id: int, hole_ms: int) -> None:
    """Move an index's watermark forward (never back: two web processes may both run it)."""
    store.execute(
        "INSERT INTO console_watermarks (name, ingest_id, hole_id, hole_ms) "
        "VALUES (?,?,?,?) ON CONFLICT (name) DO UPDATE SET "
        "ingest_id = CASE WHEN excluded.ingest_id > console_watermarks.ingest_id "
        "THEN excluded.ingest_id ELSE console_watermarks.ingest_id END, "
        "hole_id = excluded.hole_id, hole_ms = excluded.hole_ms",
        (name, upto, hole_id, hole_ms),
    )


def ingest_ids_after(store: Store, after_id: int, limit: int) -> list[int]:
    """The stored events' ingest ids after ``after_id``, ascending (the primary key only)."""
    return [
        int(r[0])
        for r in store.all(
            "SELECT ingest_id FROM events WHERE ingest_id > ? ORDER BY ingest_id LIMIT ?",
            (after_id, limit),
        )
    ]


def events_between(
    store: Store, after_id: int, upto_id: int, types: Sequence[str], limit: int
) -> list[tuple[int, str, str, int, str, str, str | None]]:
    """(ingest_id, tenant, device_id, seq, type, body, dup_of) of stored events of ``types``
    with after_id < ingest_id <= upto_id, in ingest order, at most ``limit``."""
    marks = ",".join("?" * len(types))
    return store.all(
        "SELECT e.ingest_id, d.tenant, e.device_id, e.seq, e.type, e.body, e.dup_of "
        "FROM events e JOIN devices d ON d.device_id = e.device_id "
        f"WHERE e.ingest_id > ? AND e.ingest_id <= ? AND e.type IN ({marks}) "
        "ORDER BY e.ingest_id LIMIT ?",
        (after_id, upto_id, *types, limit),
    )


def upsert_receipts(store: Store, rows: Sequence[Sequence[Any]]) -> None:
    """Rows of (device_id, receipt_no, tenant, kind, seq, wall_ms, currency, total_minor,
    method, sale_id, refunded_receipt_no, refunded_device); a receipt already indexed keeps
    its row."""
    if rows:
        store.executemany(
            "INSERT INTO console_receipts (device_id, receipt_no, tenant, kind, seq, wall_ms, "
            "currency, total_minor, method, sale_id, refunded_receipt_no, refunded_device) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (device_id, receipt_no) DO NOTHING",
            rows,
        )


def set_receipt_codes(store: Store, rows: Sequence[tuple[str, str, int]]) -> None:
    """Rows of (code, device_id, receipt_no): the short code the till printed."""
    if rows:
        store.executemany(
            "UPDATE console_receipts SET code = ? WHERE device_id = ? AND receipt_no = ?", rows
        )
