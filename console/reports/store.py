"""Every SQL statement of the tax and promoter reports: the one home of their queries.

The reports read the edge's rollup tables (``rollup_tax``, ``rollup_sales``,
``rollup_promos``; ingest keeps them, see edge/store/rollups.py) and own two tables of their
own, created here on first use:

* ``console_tax_filings``: a filed period (tenant, tax profile, first and last day),
  who filed it and when, the snapshot of its rows as filed, and each device's last
  stored sequence number at that moment (the watermark that tells a late sale from
  one the snapshot already holds). Rows are never updated or deleted: a trigger
  refuses both, so "its figures as filed never change" does not rest on the code.
* ``console_tenant_settings``: a merchant's choices; ``share_stall_takings`` (default
  off) lets promoters see that tenant's takings per stall.

Every query that reads tenant data takes the caller's :class:`console.scope.Scope`
and adds its condition (:meth:`Scope.tenant_filter` or :meth:`Scope.event_filter`)
to the statement, so a caller that forgot a check still reads nothing outside the
scope. Statements are written once with ``?`` placeholders and go through
:meth:`edge.store.Store.execute`, which translates them for PostgreSQL.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from console.scope import Scope
from edge import ledger
from edge.store import Store

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS console_tax_filings ("
    " id {serial}, tenant TEXT NOT NULL, tax_profile TEXT NOT NULL,"
    " from_day TEXT NOT NULL, to_day TEXT NOT NULL, filed_by TEXT NOT NULL,"
    " filed_ms BIGINT NOT NULL, snapshot TEXT NOT NULL, watermarks TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS console_tax_filings_by_period"
    " ON console_tax_filings (tenant, tax_profile, from_day)",
    "CREATE TABLE IF NOT EXISTS console_tenant_settings ("
    " tenant TEXT PRIMARY KEY, share_stall_takings INTEGER NOT NULL DEFAULT 0,"
    " updated_by TEXT NOT NULL DEFAULT '', updated_ms BIGINT NOT NULL DEFAULT 0)",
]
LOCKED = "a filed tax period is locked"
_SQLITE_LOCK = [
    f"CREATE TRIGGER IF NOT EXISTS console_tax_filings_no_{verb.lower()} BEFORE {verb} "
    f"ON console_tax_filings BEGIN SELECT RAISE(ABORT, '{LOCKED}'); END"
    for verb in ("UPDATE", "DELETE")
]
_POSTGRES_LOCK = [
    "CREATE OR REPLACE FUNCTION console_tax_filings_locked() RETURNS trigger "
    f"LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{LOCKED}'; END $$",
    "CREATE OR REPLACE TRIGGER console_tax_filings_locked BEFORE UPDATE OR DELETE "
    "ON console_tax_filings FOR EACH ROW EXECUTE FUNCTION console_tax_filings_locked()",
]
_PG_SCHEMA_LOCK = 7413  # advisory lock: one creator of these tables at a time

_ready: weakref.WeakSet[Store] = weakref.WeakSet()


def ensure_schema(store: Store) -> Store:
    """Create the reports' tables once per connection (every entry point calls this, so
    no caller has to remember to)."""
    if store in _ready:
        return store
    if store.dialect == "postgres":
        with store.transaction():
            store.execute("SELECT pg_advisory_xact_lock(?)", (_PG_SCHEMA_LOCK,))
            for statement in [*_SCHEMA, *_POSTGRES_LOCK]:
                store.execute(statement.format(serial="BIGSERIAL PRIMARY KEY"))
    else:
        for statement in [*_SCHEMA, *_SQLITE_LOCK]:
            store.execute(statement.format(serial="INTEGER PRIMARY KEY"))
    _ready.add(store)
    return store


def _where(conditions: Sequence[tuple[str, tuple[Any, ...]]]) -> tuple[str, tuple[Any, ...]]:
    sql = " AND ".join(f"({c})" for c, _ in conditions)
    return sql, tuple(p for _, params in conditions for p in params)


def _days(column: str, start: str | None, end: str | None) -> tuple[str, tuple[Any, ...]]:
    if start is None or end is None:
        return "1 = 1", ()
    return f"{column} BETWEEN ? AND ?", (start, end)


# -- tax ----------------------------------------------------------------------------------
def tax_rows(
    store: Store,
    scope: Scope,
    tenant: str,
    start: str,
    end: str,
    event_id: str | None = None,
    tax_profile: str | None = None,
) -> list[tuple[str, int, int, int, int]]:
    """(tax_profile, rate_bp, net, tax, gross) of the tenant's days ``start``..``end``,
    summed over rate names, events and days; refunds are already negative in the rollup,
    under the refunded sale's profile."""
    where, params = _where(
        [
            scope.tenant_filter("tenant"),
            ("tenant = ?", (tenant,)),
            _days("day", start, end),
            ("event_id = ?", (event_id,)) if event_id is not None else ("1 = 1", ()),
            ("tax_profile = ?", (tax_profile,)) if tax_profile is not None else ("1 = 1", ()),
        ]
    )
    rows = store.all(
        "SELECT tax_profile, rate_bp, SUM(net_minor), SUM(tax_minor), SUM(gross_minor) "
        f"FROM rollup_tax WHERE {where} GROUP BY tax_profile, rate_bp "
        "ORDER BY tax_profile, rate_bp",
        params,
    )
    return [(p, int(bp), int(n), int(t), int(g)) for p, bp, n, t, g in rows]


# -- filings ------------------------------------------------------------------------------
@contextmanager
def filing_transaction(store: Store) -> Iterator[Store]:
    """One transaction that sees the rollups, the devices and the filings at a single
    moment, with filings serialised: two reporters filing overlapping periods at once
    cannot both pass the overlap check. SQLite's BEGIN IMMEDIATE gives both already;
    PostgreSQL needs REPEATABLE READ (one snapshot for every statement) and a table lock
    taken before that snapshot."""
    ensure_schema(store)
    if store.dialect != "postgres":
        with store.transaction():
            yield store
        return
    with store.conn.transaction():
        store.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        store.execute("LOCK TABLE console_tax_filings IN SHARE ROW EXCLUSIVE MODE")
        yield store


_FILING_COLUMNS = (
    "id, tenant, tax_profile, from_day, to_day, filed_by, filed_ms, snapshot, watermarks"
)


def overlapping_filings(
    store: Store, scope: Scope, tenant: str, tax_profile: str | None, start: str, end: str
) -> list[tuple]:
    """Filings of the tenant (of one profile, or any) whose days meet ``start``..``end``."""
    ensure_schema(store)
    where, params = _where(
        [
            scope.tenant_filter("tenant"),
            ("tenant = ?", (tenant,)),
            ("tax_profile = ?", (tax_profile,)) if tax_profile is not None else ("1 = 1", ()),
            ("from_day <= ? AND to_day >= ?", (end, start)),
        ]
    )
    return store.all(
        f"SELECT {_FILING_COLUMNS} FROM console_tax_filings WHERE {where} ORDER BY from_day, id",
        params,
    )


def insert_filing(
    store: Store,
    tenant: str,
    tax_profile: str,
    start: str,
    end: str,
    filed_by: str,
    filed_ms: int,
    snapshot: str,
    watermarks: str,
) -> int:
    """Record a filed period; its id."""
    (filing_id,) = store.one(
        "INSERT INTO console_tax_filings (tenant, tax_profile, from_day, to_day, filed_by, "
        "filed_ms, snapshot, watermarks) VALUES (?,?,?,?,?,?,?,?) RETURNING id",
        (tenant, tax_profile, start, end, filed_by, filed_ms, snapshot, watermarks),
    )
    return int(filing_id)


def filing(store: Store, scope: Scope, filing_id: int) -> tuple | None:
    ensure_schema(store)
    where, params = _where([scope.tenant_filter("tenant"), ("id = ?", (filing_id,))])
    return store.one(f"SELECT {_FILING_COLUMNS} FROM console_tax_filings WHERE {where}", params)


def filings(store: Store, scope: Scope, tenant: str | None = None) -> list[tuple]:
    """Every filing the caller may see (of one tenant when given), newest period first."""
    ensure_schema(store)
    where, params = _where(
        [
            scope.tenant_filter("tenant"),
            ("tenant = ?", (tenant,)) if tenant is not None else ("1 = 1", ()),
        ]
    )
    return store.all(
        f"SELECT {_FILING_COLUMNS} FROM console_tax_filings WHERE {where} "
        "ORDER BY from_day DESC, tax_profile, id DESC",
        params,
    )


def device_watermarks(store: Store, scope: Scope, tenant: str) -> dict[str, int]:
    """Device id -> the last sequence number stored for it, for the tenant's devices."""
    where, params = _where([scope.tenant_filter("tenant"), ("tenant = ?", (tenant,))])
    rows = store.all(f"SELECT device_id, last_seq FROM devices WHERE {where}", params)
    return {device: int(seq) for device, seq in rows}


def ledger_events_after(
    store: Store, scope: Scope, tenant: str, watermarks: dict[str, int]
) -> list[tuple[str, int, str, str, str | None]]:
    """(device_id, seq, type, body, dup_of) of the tenant's sales and refunds stored after
    each device's watermark (a device enrolled since has watermark 0), by device and seq.
    Reads the events table only above the watermarks, through its (device_id, seq) key."""
    found = []
    for device, last in sorted(device_watermarks(store, scope, tenant).items()):
        since = watermarks.get(device, 0)
        if last <= since:
            continue
        found += store.all(
            "SELECT device_id, seq, type, body, dup_of FROM events WHERE device_id = ? "
            "AND seq > ? AND type IN (?, ?) ORDER BY seq",
            (device, since, ledger.SALE, ledger.REFUND),
        )
    return [(d, int(s), t, b, dup) for d, s, t, b, dup in found]


# -- tenant settings ----------------------------------------------------------------------
def share_stall_takings(store: Store, scope: Scope, tenant: str) -> bool:
    ensure_schema(store)
    where, params = _where([scope.tenant_filter("tenant"), ("tenant = ?", (tenant,))])
    row = store.one(
        f"SELECT share_stall_takings FROM console_tenant_settings WHERE {where}", params
    )
    return bool(row and row[0])


def set_share_stall_takings(
    store: Store, tenant: str, share: bool, updated_by: str, updated_ms: int
) -> None:
    ensure_schema(store)
    store.execute(
        "INSERT INTO console_tenant_settings (tenant, share_stall_takings, updated_by, "
        "updated_ms) VALUES (?,?,?,?) ON CONFLICT (tenant) DO UPDATE SET "
        "share_stall_takings = excluded.share_stall_takings, "
        "updated_by = excluded.updated_by, updated_ms = excluded.updated_ms",
        (tenant, 1 if share else 0, updated_by, updated_ms),
    )


# -- promoter -----------------------------------------------------------------------------
def _event_scope(
    scope: Scope, column: str, event_id: str, start: str | None, end: str | None, day: str
) -> tuple[str, tuple[Any, ...]]:
    return _where(
        [scope.event_filter(column), (f"{column} = ?", (event_id,)), _days(day, start, end)]
    )


def footfall(
    store: Store, scope: Scope, event_id: str, start: str | None, end: str | None
) -> list[tuple[str, int, int]]:
    """(day, hour, sales) of the event, every tenant's tills together."""
    where, params = _event_scope(scope, "event_id", event_id, start, end, "day")
    rows = store.all(
        f"SELECT day, hour, SUM(sales) FROM rollup_sales WHERE {where} "
        "GROUP BY day, hour ORDER BY day, hour",
        params,
    )
    return [(day, int(hour), int(n)) for day, hour, n in rows]


def promo_redemptions(
    store: Store, scope: Scope, event_id: str, start: str | None, end: str | None
) -> list[tuple[str, str, int, int]]:
    """(code, promoter, redemptions, discount_minor) of the event, by code and the
    promoter who owns it ("" for a merchant's own code)."""
    where, params = _event_scope(scope, "event_id", event_id, start, end, "day")
    rows = store.all(
        "SELECT code, promoter, SUM(redemptions), SUM(discount_minor) FROM rollup_promos "
        f"WHERE {where} GROUP BY code, promoter ORDER BY code, promoter",
        params,
    )
    return [(code, promoter, int(n), int(d)) for code, promoter, n, d in rows]


def event_takings(
    store: Store, scope: Scope, event_id: str, start: str | None, end: str | None
) -> list[tuple[str, int, int, int, int]]:
    """(currency, sales, gross, refunds, refund_minor) of the whole event."""
    where, params = _event_scope(scope, "event_id", event_id, start, end, "day")
    rows = store.all(
        "SELECT currency, SUM(sales), SUM(gross_minor), SUM(refunds), SUM(refund_minor) "
        f"FROM rollup_sales WHERE {where} GROUP BY currency ORDER BY currency",
        params,
    )
    return [(c, int(s), int(g), int(r), int(rm)) for c, s, g, r, rm in rows]


def shared_stall_takings(
    store: Store, scope: Scope, event_id: str, start: str | None, end: str | None
) -> list[tuple[str, str, str, int, int, int, int]]:
    """(tenant, stall, currency, sales, gross, refunds, refund_minor) per stall, only of
    the tenants that opted in (the join on the setting is the rule, in the statement).
    A till with no stall in its profile is its own stall, named by its device id."""
    ensure_schema(store)
    where, params = _event_scope(scope, "r.event_id", event_id, start, end, "r.day")
    stall = "COALESCE(NULLIF(p.stall, ''), r.device_id)"
    rows = store.all(
        f"SELECT r.tenant, {stall}, r.currency, SUM(r.sales), SUM(r.gross_minor), "
        "SUM(r.refunds), SUM(r.refund_minor) FROM rollup_sales r "
        "JOIN console_tenant_settings s ON s.tenant = r.tenant AND s.share_stall_takings = 1 "
        f"LEFT JOIN device_profiles p ON p.device_id = r.device_id WHERE {where} "
        f"GROUP BY r.tenant, {stall}, r.currency ORDER BY r.tenant, {stall}, r.currency",
        params,
    )
    return [(t, st, c, int(s), int(g), int(r), int(rm)) for t, st, c, s, g, r, rm in rows]
