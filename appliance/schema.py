"""Schema of the till database and its migration path.

The ``events`` table is the log: append-only by construction (triggers abort
UPDATE and DELETE, and an INSERT must continue the sequence). Every other
table is a *projection*: derived state that ``appliance.projections`` can
drop and rebuild from the events at any time.

``PRAGMA user_version`` holds the schema version and ``PRAGMA application_id``
marks the file as a tillbox log, so a foreign SQLite file is refused.
"""

from __future__ import annotations

APPLICATION_ID = 0x54494C4C  # "TILL"

# ``event_id`` is a UUIDv7 (appliance.ids): unique by construction, so it carries no
# UNIQUE index: one less page to write per event. (device_id, seq) is the key the
# edge deduplicates on.
EVENTS_DDL = """
CREATE TABLE events (
    seq       INTEGER PRIMARY KEY,
    event_id  TEXT    NOT NULL,
    device_id TEXT    NOT NULL,
    type      TEXT    NOT NULL,
    payload   TEXT    NOT NULL,
    wall_ms   INTEGER NOT NULL,
    boot_id   TEXT    NOT NULL,
    mono_us   INTEGER NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
)
"""

# Exact texts: ``tillbox log verify`` compares sqlite_master against these, so a
# dropped or weakened trigger is reported as tampering.
TRIGGERS = {
    "events_append_only_update": """CREATE TRIGGER events_append_only_update
BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'tillbox: events are append-only'); END""",
    "events_append_only_delete": """CREATE TRIGGER events_append_only_delete
BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'tillbox: events are append-only'); END""",
    "events_gapless_insert": """CREATE TRIGGER events_gapless_insert
BEFORE INSERT ON events
WHEN NEW.seq IS NOT (SELECT COALESCE(MAX(seq), 0) + 1 FROM events)
  OR NEW.prev_hash IS NOT COALESCE((SELECT hash FROM events ORDER BY seq DESC LIMIT 1),
                                   '0000000000000000000000000000000000000000000000000000000000000000')
BEGIN SELECT RAISE(ABORT, 'tillbox: events must continue the sequence and the chain'); END""",
}

_V1_PROJECTION_DDL = [
    """CREATE TABLE catalog_items (
        sku TEXT PRIMARY KEY, name TEXT NOT NULL, price_minor INTEGER NOT NULL,
        tax_rate TEXT NOT NULL, category TEXT NOT NULL, body TEXT NOT NULL
    ) WITHOUT ROWID""",
    "CREATE TABLE catalog_meta (key TEXT PRIMARY KEY, body TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL) WITHOUT ROWID",
    """CREATE TABLE sales (
        receipt_no INTEGER PRIMARY KEY, sale_id TEXT NOT NULL UNIQUE, seq INTEGER NOT NULL,
        idem_key TEXT NOT NULL UNIQUE, shift_no INTEGER NOT NULL, method TEXT NOT NULL,
        total_minor INTEGER NOT NULL, wall_ms INTEGER NOT NULL
    )""",
    # Keyed by receipt number (ever-growing) so a sale's lines append at the index's edge.
    """CREATE TABLE sale_lines (
        receipt_no INTEGER NOT NULL, line INTEGER NOT NULL, sku TEXT NOT NULL,
        qty INTEGER NOT NULL, refunded_qty INTEGER NOT NULL DEFAULT 0,
        refundable INTEGER NOT NULL, PRIMARY KEY (receipt_no, line)
    ) WITHOUT ROWID""",
    """CREATE TABLE refunds (
        receipt_no INTEGER PRIMARY KEY, refund_id TEXT NOT NULL UNIQUE, sale_id TEXT NOT NULL,
        seq INTEGER NOT NULL, shift_no INTEGER NOT NULL, total_minor INTEGER NOT NULL
    )""",
    """CREATE TABLE shifts (
        shift_no INTEGER PRIMARY KEY, opened_seq INTEGER NOT NULL, closed_seq INTEGER
    )""",
    """CREATE TABLE shift_totals (
        shift_no INTEGER NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
        count INTEGER NOT NULL, gross_minor INTEGER NOT NULL, tax_minor INTEGER NOT NULL,
        net_minor INTEGER NOT NULL, PRIMARY KEY (shift_no, kind, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE receipt_status (
        receipt_no INTEGER PRIMARY KEY, state TEXT NOT NULL, seq INTEGER NOT NULL,
        detail TEXT NOT NULL
    )""",
]

# Schema 2: the self-test gate. Each check's latest recorded result (a partial self-test
# updates only the checks it ran) and the seqs of technician overrides.
GATE_DDL = [
    """CREATE TABLE selftest_checks (
        name TEXT PRIMARY KEY, seq INTEGER NOT NULL, result TEXT NOT NULL,
        fatal INTEGER NOT NULL, value TEXT NOT NULL, fix TEXT NOT NULL
    ) WITHOUT ROWID""",
    "CREATE TABLE selftest_overrides (seq INTEGER PRIMARY KEY)",
]

# Fill the gate from a log written before schema 2, the same rows the projection writes:
# per check, the values of its highest-seq record (SQLite takes bare columns from the
# row that MAX() picked).
GATE_BACKFILL = [
    """INSERT INTO selftest_checks (name, seq, result, fatal, value, fix)
    SELECT json_extract(c.value, '$.name'), MAX(e.seq), json_extract(c.value, '$.result'),
           COALESCE(json_extract(c.value, '$.fatal'), 0) = 1,
           COALESCE(json_extract(c.value, '$.value'), ''),
           COALESCE(json_extract(c.value, '$.fix'), '')
    FROM events AS e, json_each(e.payload, '$.checks') AS c
    WHERE e.type = 'selftest.recorded' AND json_type(c.value, '$.name') = 'text'
      AND json_type(c.value, '$.result') = 'text'
    GROUP BY json_extract(c.value, '$.name')""",
    "INSERT INTO selftest_overrides (seq) SELECT seq FROM events WHERE type = 'selftest.override'",
]

# Schema 3: several tills, many events (issue 15). The region's lists as last applied
# (schedule and roster in full; bookings as their count and hash: the list itself, with
# customers' names, stays out of the append-only log, in DIR/region/bookings.tbru), the
# event the till trades at and the cashier's last choice, the bookings handed over here,
# and what this till refunded of other tills' receipts (per tax rate: a receipt's QR code
# states its gross per rate, so that is what a refund at another till is bounded by).
# No backfill: logs before schema 3 hold none of these events. IF NOT EXISTS: a log made
# by this version and turned back to an older schema number (the gate's tests do) migrates.
REGION_DDL = [
    """CREATE TABLE IF NOT EXISTS region_data (
        kind TEXT PRIMARY KEY, version INTEGER NOT NULL, seq INTEGER NOT NULL,
        issued_wall_ms INTEGER NOT NULL, body TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS event_state (
        key TEXT PRIMARY KEY, seq INTEGER NOT NULL, body TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS booking_redemptions (
        booking_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, receipt_no INTEGER NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS foreign_refunds (
        device_id TEXT NOT NULL, receipt_no INTEGER NOT NULL, rate_bp INTEGER NOT NULL,
        gross_minor INTEGER NOT NULL, PRIMARY KEY (device_id, receipt_no, rate_bp)
    ) WITHOUT ROWID""",
]

PROJECTION_DDL = [*_V1_PROJECTION_DDL, *GATE_DDL, *REGION_DDL]

PROJECTION_TABLES = [
    "catalog_items",
    "catalog_meta",
    "stock",
    "sales",
    "sale_lines",
    "refunds",
    "shifts",
    "shift_totals",
    "receipt_status",
    "selftest_checks",
    "selftest_overrides",
    "region_data",
    "event_state",
    "booking_redemptions",
    "foreign_refunds",
]

# version -> statements that bring a database from version-1 to version.
MIGRATIONS: dict[int, list[str]] = {
    1: [EVENTS_DDL, *TRIGGERS.values(), *_V1_PROJECTION_DDL],
    2: [*GATE_DDL, *GATE_BACKFILL],
    3: REGION_DDL,
}

SCHEMA_VERSION = max(MIGRATIONS)
