"""The edge database's tables, written once for both dialects: ``{serial}`` is the
auto-numbered id and ``{blob}`` the blob type, filled in by :mod:`edge.store.opening`."""

# promoter: the code's owner as the sale's promotion names it ("" for a code of the
# merchant's own), so that redemptions count per promoter (issue 15)
ROLLUP_PROMOS = """CREATE TABLE IF NOT EXISTS rollup_promos (
    tenant TEXT NOT NULL, event_id TEXT NOT NULL, day TEXT NOT NULL, code TEXT NOT NULL,
    promoter TEXT NOT NULL, redemptions BIGINT NOT NULL, discount_minor BIGINT NOT NULL,
    PRIMARY KEY (tenant, event_id, day, code, promoter))"""
TABLES = """
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, public_key TEXT NOT NULL,
    enrolled_ms BIGINT NOT NULL, last_seq BIGINT NOT NULL DEFAULT 0,
    last_hash TEXT NOT NULL, tip TEXT NOT NULL, events_stored BIGINT NOT NULL DEFAULT 0,
    segments_stored BIGINT NOT NULL DEFAULT 0, duplicates_dropped BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS segments (
    id TEXT PRIMARY KEY, device_id TEXT NOT NULL, first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL, size BIGINT NOT NULL, stored_ms BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    ingest_id {serial}, device_id TEXT NOT NULL, seq BIGINT NOT NULL, type TEXT NOT NULL,
    hash TEXT NOT NULL, body TEXT NOT NULL, dup_of TEXT, UNIQUE (device_id, seq));
-- a till's self-tests (the inspector's list shows each till's last one): without it the
-- newest is found by walking back through every event the till logged since, ~5,000 per
-- till at 1,000,000 events, and the inspector's list of 200 tills took 2.7 s at p95
-- (bench/console.py). Partial: only the rare self-test rows are in it, ingest barely pays.
CREATE INDEX IF NOT EXISTS events_selftests ON events (device_id, seq)
    WHERE type = 'selftest.recorded';
CREATE TABLE IF NOT EXISTS sales (
    tenant TEXT NOT NULL, idem_key TEXT NOT NULL, sale_id TEXT NOT NULL,
    device_id TEXT NOT NULL, seq BIGINT NOT NULL, tax_profile TEXT NOT NULL,
    receipt_no BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (tenant, idem_key));
CREATE INDEX IF NOT EXISTS sales_by_id ON sales (tenant, sale_id);
-- refunds of another till's receipt whose sale is not stored yet, booked under unknown
-- until it is (edge/ledger.py). The index on sales.receipt_no comes after Store._upgrade
CREATE TABLE IF NOT EXISTS pending_refunds (
    device_id TEXT NOT NULL, seq BIGINT NOT NULL, tenant TEXT NOT NULL,
    sale_device TEXT NOT NULL, sale_receipt_no BIGINT NOT NULL, PRIMARY KEY (device_id, seq));
CREATE INDEX IF NOT EXISTS pending_refunds_by_sale
    ON pending_refunds (tenant, sale_device, sale_receipt_no);
CREATE TABLE IF NOT EXISTS stock (
    tenant TEXT NOT NULL, sku TEXT NOT NULL, qty BIGINT NOT NULL,
    tracked INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (tenant, sku));
CREATE TABLE IF NOT EXISTS device_stock (
    tenant TEXT NOT NULL, device_id TEXT NOT NULL, sku TEXT NOT NULL, qty BIGINT NOT NULL,
    PRIMARY KEY (device_id, sku));
CREATE TABLE IF NOT EXISTS stock_adjustments (
    tenant TEXT NOT NULL, sku TEXT NOT NULL, delta BIGINT NOT NULL, wall_ms BIGINT NOT NULL,
    note TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stock_flags (
    tenant TEXT NOT NULL, sku TEXT NOT NULL, device_id TEXT NOT NULL, seq BIGINT NOT NULL,
    qty_after BIGINT NOT NULL, PRIMARY KEY (tenant, sku, device_id, seq));
CREATE TABLE IF NOT EXISTS tax_ledger (
    tenant TEXT NOT NULL, tax_profile TEXT NOT NULL, rate TEXT NOT NULL,
    sales BIGINT NOT NULL, gross_minor BIGINT NOT NULL, tax_minor BIGINT NOT NULL,
    net_minor BIGINT NOT NULL, PRIMARY KEY (tenant, tax_profile, rate));
CREATE TABLE IF NOT EXISTS rejections (
    device_id TEXT NOT NULL, reason TEXT NOT NULL, count BIGINT NOT NULL,
    PRIMARY KEY (device_id, reason));
CREATE TABLE IF NOT EXISTS region_updates (
    tenant TEXT NOT NULL, kind TEXT NOT NULL, version BIGINT NOT NULL,
    body {blob} NOT NULL, PRIMARY KEY (tenant, kind));
-- the console's side of the region (issue 13): revoked keys, a device's stall and label,
-- rollups that ingest keeps in the segment's transaction so pages never scan events (day
-- and hour are UTC, of the wall clock of the event: "tillbox edge check" recomputes them), and
-- each device's latest signed telemetry with a bounded history
CREATE TABLE IF NOT EXISTS device_revocations (
    device_id TEXT PRIMARY KEY, revoked_ms BIGINT NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS device_profiles (
    device_id TEXT PRIMARY KEY, stall TEXT NOT NULL DEFAULT '', label TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS rollup_sales (
    tenant TEXT NOT NULL, device_id TEXT NOT NULL, event_id TEXT NOT NULL, day TEXT NOT NULL,
    hour INTEGER NOT NULL, currency TEXT NOT NULL, sales BIGINT NOT NULL,
    gross_minor BIGINT NOT NULL, refunds BIGINT NOT NULL, refund_minor BIGINT NOT NULL,
    PRIMARY KEY (tenant, device_id, event_id, day, hour, currency));
-- the reads that do not start with a tenant: a promoter's event (every tenant at it) and a
-- region-wide role's days. Without them each such page scans every rollup row the region
-- ever kept: after a year of 200 tills (742,000 rows) the promoter's report took 540 ms at
-- p95 and the admin's month 360 ms (bench/console.py --age-days 360, docs/performance.md)
CREATE INDEX IF NOT EXISTS rollup_sales_by_event ON rollup_sales (event_id, day);
CREATE INDEX IF NOT EXISTS rollup_sales_by_day ON rollup_sales (day);
CREATE TABLE IF NOT EXISTS rollup_tax (
    tenant TEXT NOT NULL, tax_profile TEXT NOT NULL, rate TEXT NOT NULL,
    rate_bp BIGINT NOT NULL, day TEXT NOT NULL, event_id TEXT NOT NULL, sales BIGINT NOT NULL,
    gross_minor BIGINT NOT NULL, tax_minor BIGINT NOT NULL, net_minor BIGINT NOT NULL,
    PRIMARY KEY (tenant, tax_profile, rate, rate_bp, day, event_id));
CREATE TABLE IF NOT EXISTS rollup_items (
    tenant TEXT NOT NULL, day TEXT NOT NULL, sku TEXT NOT NULL, name TEXT NOT NULL,
    qty BIGINT NOT NULL, gross_minor BIGINT NOT NULL, PRIMARY KEY (tenant, day, sku));
{rollup_promos};
CREATE TABLE IF NOT EXISTS telemetry_latest (
    device_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, received_ms BIGINT NOT NULL,
    sent_ms BIGINT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS telemetry_history (
    id {serial}, device_id TEXT NOT NULL, received_ms BIGINT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS telemetry_history_by_device ON telemetry_history (device_id, id);
-- onboarding (issue 13): each imported enrollment export (the device-signed manifest, kept
-- byte for byte), its media (one row per file, by hash), and the region's signed reviews
CREATE TABLE IF NOT EXISTS enrollments (
    device_id TEXT NOT NULL, manifest_sha256 TEXT NOT NULL, tenant TEXT NOT NULL,
    sequence BIGINT NOT NULL, manifest TEXT NOT NULL, signature TEXT NOT NULL,
    imported_ms BIGINT NOT NULL, PRIMARY KEY (device_id, manifest_sha256));
CREATE TABLE IF NOT EXISTS enrollment_media (
    device_id TEXT NOT NULL, sha256 TEXT NOT NULL, size BIGINT NOT NULL,
    body {blob} NOT NULL, PRIMARY KEY (device_id, sha256));
CREATE TABLE IF NOT EXISTS enrollment_reviews (
    id {serial}, device_id TEXT NOT NULL, manifest_sha256 TEXT NOT NULL,
    decision TEXT NOT NULL, reason TEXT NOT NULL, reviewer TEXT NOT NULL,
    decided_ms BIGINT NOT NULL, message {blob} NOT NULL);
CREATE INDEX IF NOT EXISTS enrollment_reviews_by_device ON enrollment_reviews (device_id, id);
"""

SALES_BY_RECEIPT = (
    "CREATE INDEX IF NOT EXISTS sales_by_receipt ON sales (tenant, device_id, receipt_no)"
)
