"""Edge storage, chosen by URL: ``sqlite:///path`` (default) or ``postgresql://...``.

One class, two dialects. Every statement is written once with ``?`` placeholders
and goes through :meth:`Store.execute`, which translates for psycopg and can be
traced (``TILLBOX_SQL_TRACE=1``). The schema differs only in the auto-numbered
ingest id and the blob type.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from appliance.errors import TillError

log = logging.getLogger("tillbox.edge.sql")

# promoter: the code's owner as the sale's promotion names it ("" for a code of the
# merchant's own), so that redemptions count per promoter (issue 15)
_ROLLUP_PROMOS = """CREATE TABLE IF NOT EXISTS rollup_promos (
    tenant TEXT NOT NULL, event_id TEXT NOT NULL, day TEXT NOT NULL, code TEXT NOT NULL,
    promoter TEXT NOT NULL, redemptions BIGINT NOT NULL, discount_minor BIGINT NOT NULL,
    PRIMARY KEY (tenant, event_id, day, code, promoter))"""
_TABLES = """
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

_SALES_BY_RECEIPT = (
    "CREATE INDEX IF NOT EXISTS sales_by_receipt ON sales (tenant, device_id, receipt_no)"
)
_TRACE = bool(os.environ.get("TILLBOX_SQL_TRACE"))
_CHUNK = 400  # values per IN (...) list: well under SQLite's bound-parameter limit


class Store:
    """A connection to the edge database. Not thread-safe: one per worker."""

    def __init__(self, url: str, conn: Any, dialect: str) -> None:
        self.url = url
        self.conn = conn
        self.dialect = dialect

    @classmethod
    def open(cls, url: str) -> Store:
        parts = urlsplit(url)
        if parts.scheme == "sqlite":
            path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
            if not path:
                raise TillError(f"{url!r}: a SQLite URL is sqlite:///relative/or/absolute/path")
            return cls._sqlite(url, Path(path))
        if parts.scheme in ("postgresql", "postgres"):
            return cls._postgres(url)
        raise TillError(
            f"--db {url!r} is not supported; use sqlite:///PATH or postgresql://USER@HOST/DB"
        )

    @classmethod
    def _sqlite(cls, url: str, path: Path) -> Store:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                path, isolation_level=None, timeout=30.0, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # an ack promises the segment is on disk
            # A region server has memory: keep the idempotency-key index (random UUIDs) in
            # cache and checkpoint the WAL in big steps; without this, ingest slows ~2x by
            # 100,000 events (measured, docs/performance.md).
            conn.execute("PRAGMA cache_size=-131072")
            conn.execute("PRAGMA wal_autocheckpoint=20000")
            conn.executescript(
                _TABLES.format(
                    serial="INTEGER PRIMARY KEY", blob="BLOB", rollup_promos=_ROLLUP_PROMOS
                )
            )
            store = cls(url, conn, "sqlite")
            if store._outdated():
                with store.transaction():
                    store._upgrade()
            store.execute(_SALES_BY_RECEIPT)
        except (sqlite3.Error, OSError, ValueError) as exc:  # ValueError: a NUL in the path
            raise TillError(
                f"cannot open edge database {path!s:.200} ({exc}); check the path and free space"
            ) from None
        return store

    @classmethod
    def _postgres(cls, url: str) -> Store:
        try:
            import psycopg
        except ImportError:
            raise TillError("PostgreSQL needs psycopg 3; pip install 'tillbox[postgres]'") from None
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
            store = cls(url, conn, "postgres")
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(7406)")  # one creator at a time
                for statement in _TABLES.format(
                    serial="BIGSERIAL PRIMARY KEY", blob="BYTEA", rollup_promos=_ROLLUP_PROMOS
                ).split(";"):
                    if statement.strip():
                        conn.execute(statement)
                store._upgrade()
                conn.execute(_SALES_BY_RECEIPT)
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TillError(
                f"cannot use PostgreSQL at {_redact(url)} ({first}); check the "
                "URL, that the server runs and that the database exists"
            ) from None
        return store

    def close(self) -> None:
        self.conn.close()

    # -- a database made by an older tillbox ---------------------------------------------------
    def _has_column(self, table: str, column: str) -> bool:
        if self.dialect == "sqlite":
            return any(row[1] == column for row in self.all(f"PRAGMA table_info({table})"))
        return (
            self.one(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = ? AND column_name = ?",
                (table, column),
            )
            is not None
        )

    def _outdated(self) -> bool:
        """A database from an older tillbox, whose ledgers and rollups :meth:`_upgrade`
        must fold again."""
        return not (
            self._has_column("sales", "receipt_no")
            and self._has_column("rollup_promos", "promoter")
        )

    def _upgrade(self) -> None:
        """Inside the caller's transaction, once: a database from an older tillbox gets
        what it lacks, and its ledgers, rollups and pending refunds are folded again from
        the stored events by the ledger's own code, so that afterwards they are what
        ingest would have made and ``tillbox edge check`` holds:

        * before sales had their receipt number (issue 15, wave 2): the column (a refund
          at another till was booked under ``unknown``, a paid booking took no stock);
        * before promo redemptions counted per promoter: ``rollup_promos`` without its
          ``promoter`` column (a rollup only: dropped, made again and refolded).

        A new database has both and skips this."""
        if not self._outdated():
            return
        log.warning("edge database from an older tillbox: upgrading it, refolding")
        if not self._has_column("sales", "receipt_no"):
            self.execute("ALTER TABLE sales ADD COLUMN receipt_no BIGINT NOT NULL DEFAULT 0")
        if not self._has_column("rollup_promos", "promoter"):
            self.execute("DROP TABLE rollup_promos")
            self.execute(_ROLLUP_PROMOS)
        self._refold()

    def _refold(self) -> None:
        import json

        from edge import ledger, rollups  # the fold: what the ledgers must say

        events = []
        for tenant, device, seq, type_, body, _dup in self.events_of_types(sorted(ledger.TYPES)):
            obj = json.loads(body)
            events.append((tenant, device, int(seq), type_, obj["wall_ms"], obj["payload"]))
        books, rolled = rollups.recompute_with_ledger(events)
        for table in (
            "sales",
            "device_stock",
            "tax_ledger",
            "pending_refunds",
            "rollup_sales",
            "rollup_tax",
            "rollup_items",
            "rollup_promos",
        ):
            self.execute(f"DELETE FROM {table}")
        self.insert_sales([(t, key, *value) for (t, key), value in books.sales.items()])
        self.add_device_stock([(*k, v) for k, v in sorted(books.by_device.items())])
        for (t, profile, rate), (count, gross, tax, net) in sorted(books.tax.items()):
            self.add_tax(t, profile, rate, count, gross, tax, net)
        self.insert_pending_refunds(
            [
                (r.device, r.seq, t, sale_device, receipt_no)
                for (t, sale_device, receipt_no), refunds in books.pending.items()
                for r in refunds
            ]
        )
        for add, table in (
            (self.add_rollup_sales, rolled.sales),
            (self.add_rollup_tax, rolled.tax),
            (self.add_rollup_items, rolled.items),
            (self.add_rollup_promos, rolled.promos),
        ):
            if table:
                add([(*k, *v) for k, v in sorted(table.items())])
        level = dict(books.stock)
        for tenant, sku, delta in self.stock_adjustments():
            level[(tenant, sku)] = level.get((tenant, sku), 0) + int(delta)
        for tenant, sku, _qty in self.stock_levels():
            level.setdefault((tenant, sku), 0)
        self.executemany(
            "INSERT INTO stock (tenant, sku, qty) VALUES (?,?,?) ON CONFLICT (tenant, sku) "
            "DO UPDATE SET qty = excluded.qty",
            [(t, sku, qty) for (t, sku), qty in sorted(level.items())],
        )

    # -- statements ---------------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgres" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if _TRACE:
            log.debug("sql %s %r", sql, params)
        return self.conn.execute(self._sql(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if _TRACE:
            log.debug("sql many %s (%d rows)", sql, len(rows))
        if self.dialect == "postgres":
            with self.conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
        else:
            self.conn.executemany(sql, rows)

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return list(self.execute(sql, params).fetchall())

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """All-or-nothing. SQLite takes the write lock up front; PostgreSQL locks rows."""
        if self.dialect == "postgres":
            with self.conn.transaction():
                yield self
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def lock_devices(self, device_ids: Sequence[str]) -> None:
        """Lock several device rows for this transaction, in id order (two workers that
        lock overlapping sets cannot deadlock); SQLite's write lock covers them already."""
        if self.dialect == "postgres" and device_ids:
            marks = ",".join("?" * len(device_ids))
            self.all(
                f"SELECT device_id FROM devices WHERE device_id IN ({marks}) "
                "ORDER BY device_id FOR UPDATE",
                tuple(sorted(device_ids)),
            )

    def lock_device(self, device_id: str) -> tuple | None:
        """The device row, locked for this transaction (another worker waits)."""
        suffix = " FOR UPDATE" if self.dialect == "postgres" else ""
        return self.one(
            "SELECT device_id, tenant, last_seq, last_hash, tip FROM devices "
            "WHERE device_id = ?" + suffix,
            (device_id,),
        )

    # -- devices ------------------------------------------------------------------------------
    def device_key(self, device_id: str) -> tuple[str, str] | None:
        """(tenant, public key hex) of an enrolled device, or None."""
        row = self.one("SELECT tenant, public_key FROM devices WHERE device_id = ?", (device_id,))
        return None if row is None else (row[0], row[1])

    def device_tip(self, device_id: str) -> tuple[int, str]:
        """(last stored seq, chain tip) of an enrolled device."""
        row = self.one("SELECT last_seq, tip FROM devices WHERE device_id = ?", (device_id,))
        return int(row[0]), row[1]

    def insert_device(
        self, device_id: str, tenant: str, public_key: str, enrolled_ms: int, genesis: str
    ) -> None:
        """A newly enrolled device: nothing stored yet, its chain starts at ``genesis``."""
        self.execute(
            "INSERT INTO devices (device_id, tenant, public_key, enrolled_ms, last_seq, "
            "last_hash, tip) VALUES (?,?,?,?,0,?,?)",
            (device_id, tenant, public_key, enrolled_ms, genesis, genesis),
        )

    def advance_device(
        self, device_id: str, last_seq: int, last_hash: str, tip: str, events: int, dups: int
    ) -> None:
        """The device's new chain tip and counters after a stored segment."""
        self.execute(
            "UPDATE devices SET last_seq = ?, last_hash = ?, tip = ?, "
            "events_stored = events_stored + ?, segments_stored = segments_stored + 1, "
            "duplicates_dropped = duplicates_dropped + ? WHERE device_id = ?",
            (last_seq, last_hash, tip, events, dups, device_id),
        )

    def count_duplicates(self, device_id: str, events: int) -> None:
        """A segment came again: its events are counted as dropped duplicates."""
        self.execute(
            "UPDATE devices SET duplicates_dropped = duplicates_dropped + ? WHERE device_id = ?",
            (events, device_id),
        )

    def device_stats(self) -> list[tuple]:
        """(device_id, tenant, events_stored, last_seq, segments_stored, duplicates_dropped)."""
        return self.all(
            "SELECT device_id, tenant, events_stored, last_seq, segments_stored, "
            "duplicates_dropped FROM devices ORDER BY device_id"
        )

    # -- rejections ---------------------------------------------------------------------------
    def record_rejection(self, device_id: str, reason: str) -> None:
        """Count one rejection inside the caller's transaction."""
        self.execute(
            "INSERT INTO rejections (device_id, reason, count) VALUES (?, ?, 1) "
            "ON CONFLICT (device_id, reason) DO UPDATE SET count = rejections.count + 1",
            (device_id, reason),
        )

    def count_rejection(self, device_id: str, reason: str) -> None:
        """Count one rejection in a transaction of its own."""
        with self.transaction():
            self.record_rejection(device_id, reason)

    def rejection_counts(self) -> list[tuple]:
        """(device_id, reason, count), ordered."""
        return self.all(
            "SELECT device_id, reason, count FROM rejections ORDER BY device_id, reason"
        )

    # -- segments and events ------------------------------------------------------------------
    def segment_stored(self, seg_id: str) -> bool:
        return self.one("SELECT 1 FROM segments WHERE id = ?", (seg_id,)) is not None

    def insert_segment(
        self, seg_id: str, device_id: str, first_seq: int, last_seq: int, size: int, stored_ms: int
    ) -> None:
        self.execute(
            "INSERT INTO segments (id, device_id, first_seq, last_seq, size, stored_ms) "
            "VALUES (?,?,?,?,?,?)",
            (seg_id, device_id, first_seq, last_seq, size, stored_ms),
        )

    def insert_events(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows of (device_id, seq, type, hash, body, dup_of)."""
        self.executemany(
            "INSERT INTO events (device_id, seq, type, hash, body, dup_of) VALUES (?,?,?,?,?,?)",
            rows,
        )

    def stored_events(self, device_id: str) -> list[tuple]:
        """(seq, hash) of a device's stored events, in order."""
        return self.all(
            "SELECT seq, hash FROM events WHERE device_id = ? ORDER BY seq", (device_id,)
        )

    def events_of_types(self, types: Sequence[str]) -> list[tuple]:
        """(tenant, device_id, seq, type, body, dup_of) of the stored events of ``types``,
        in ingest order."""
        marks = ",".join("?" * len(types))
        return self.all(
            "SELECT d.tenant, e.device_id, e.seq, e.type, e.body, e.dup_of FROM events e "
            f"JOIN devices d ON d.device_id = e.device_id WHERE e.type IN ({marks}) "
            "ORDER BY e.ingest_id",
            tuple(types),
        )

    # -- the region's signed lists for the tills (edge/regionlists.py, issue 15) ------------
    def region_update(
        self, tenant: str, kind: str, *, lock: bool = False
    ) -> tuple[int, bytes] | None:
        """(version, signed bytes) of the tenant's latest update of ``kind``, or None;
        ``lock``: held for this transaction (a concurrent writer waits, PostgreSQL)."""
        suffix = " FOR UPDATE" if lock and self.dialect == "postgres" else ""
        row = self.one(
            "SELECT version, body FROM region_updates WHERE tenant = ? AND kind = ?" + suffix,
            (tenant, kind),
        )
        return None if row is None else (int(row[0]), bytes(row[1]))

    def put_region_update(self, tenant: str, kind: str, version: int, body: bytes) -> None:
        """Keep ``body`` as the tenant's latest update of ``kind`` (the retained one)."""
        self.execute(
            "INSERT INTO region_updates (tenant, kind, version, body) VALUES (?,?,?,?) "
            "ON CONFLICT (tenant, kind) DO UPDATE SET version = excluded.version, "
            "body = excluded.body",
            (tenant, kind, version, body),
        )

    def roster_rows(self, tenant: str) -> list[tuple]:
        """(device_id, public_key, stall) of the tenant's enrolled, unrevoked devices."""
        return self.all(
            "SELECT d.device_id, d.public_key, COALESCE(p.stall, '') FROM devices d "
            "LEFT JOIN device_profiles p ON p.device_id = d.device_id WHERE d.tenant = ? "
            "AND d.device_id NOT IN (SELECT device_id FROM device_revocations) "
            "ORDER BY d.device_id",
            (tenant,),
        )

    # -- sales --------------------------------------------------------------------------------
    def _lookup(self, sql: str, tenant: str, values: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for i in range(0, len(values), _CHUNK):
            chunk = values[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for key, value in self.all(sql.format(marks=marks), (tenant, *chunk)):
                found[key] = value
        return found

    def sale_ids_by_key(self, tenant: str, idem_keys: Sequence[str]) -> dict[str, str]:
        """Idempotency key -> sale id, for the keys the tenant's stored sales already hold."""
        return self._lookup(
            "SELECT idem_key, sale_id FROM sales WHERE tenant = ? AND idem_key IN ({marks})",
            tenant,
            idem_keys,
        )

    def sale_profiles(self, tenant: str, sale_ids: Sequence[str]) -> dict[str, str]:
        """Sale id -> tax profile, for the tenant's stored sales among ``sale_ids``."""
        return self._lookup(
            "SELECT sale_id, tax_profile FROM sales WHERE tenant = ? AND sale_id IN ({marks})",
            tenant,
            sale_ids,
        )

    def insert_sales(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows of (tenant, idem_key, sale_id, device_id, seq, tax_profile, receipt_no)."""
        if rows:
            self.executemany(
                "INSERT INTO sales (tenant, idem_key, sale_id, device_id, seq, tax_profile, "
                "receipt_no) VALUES (?,?,?,?,?,?,?)",
                rows,
            )

    def sale_profiles_by_receipt(
        self, tenant: str, wanted: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], str]:
        """(device, receipt no) -> tax profile, for the tenant's stored sales among
        ``wanted`` (the sales that refunds at other tills name)."""
        by_device: dict[str, list[int]] = {}
        for device, receipt_no in wanted:
            by_device.setdefault(device, []).append(receipt_no)
        found: dict[tuple[str, int], str] = {}
        for device, receipts in sorted(by_device.items()):
            for i in range(0, len(receipts), _CHUNK):
                chunk = receipts[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for receipt_no, profile in self.all(
                    "SELECT receipt_no, tax_profile FROM sales WHERE tenant = ? AND "
                    f"device_id = ? AND receipt_no IN ({marks})",
                    (tenant, device, *chunk),
                ):
                    found[(device, int(receipt_no))] = profile
        return found

    # -- refunds waiting for their sale (edge/ledger.py) --------------------------------------
    def pending_refunds(
        self, tenant: str, sale_device: str, receipt_nos: Sequence[int]
    ) -> list[tuple[int, str, int, str]]:
        """(sale receipt no, device_id, seq, body) of the stored refunds that wait for one
        of ``sale_device``'s sales ``receipt_nos``."""
        out: list[tuple[int, str, int, str]] = []
        for i in range(0, len(receipt_nos), _CHUNK):
            chunk = receipt_nos[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            out += [
                (int(r), d, int(seq), body)
                for r, d, seq, body in self.all(
                    "SELECT p.sale_receipt_no, p.device_id, p.seq, e.body FROM pending_refunds p "
                    "JOIN events e ON e.device_id = p.device_id AND e.seq = p.seq "
                    "WHERE p.tenant = ? AND p.sale_device = ? "
                    f"AND p.sale_receipt_no IN ({marks}) ORDER BY p.device_id, p.seq",
                    (tenant, sale_device, *chunk),
                )
            ]
        return out

    def insert_pending_refunds(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows of (device_id, seq, tenant, sale_device, sale_receipt_no)."""
        if rows:
            self.executemany(
                "INSERT INTO pending_refunds (device_id, seq, tenant, sale_device, "
                "sale_receipt_no) VALUES (?,?,?,?,?)",
                rows,
            )

    def delete_pending_refunds(self, keys: Sequence[tuple[str, int]]) -> None:
        """The refunds (device_id, seq) whose sale arrived."""
        if keys:
            self.executemany("DELETE FROM pending_refunds WHERE device_id = ? AND seq = ?", keys)

    def pending_refund_rows(self) -> list[tuple]:
        """(device_id, seq, tenant, sale_device, sale_receipt_no), ordered."""
        return self.all(
            "SELECT device_id, seq, tenant, sale_device, sale_receipt_no FROM pending_refunds "
            "ORDER BY device_id, seq"
        )

    def drop_settled(self, tenant: str, profile: str) -> None:
        """Rows of ``profile`` that hold nothing any more (every refund booked there moved
        to its sale's profile)."""
        for table in ("tax_ledger", "rollup_tax"):
            self.execute(
                f"DELETE FROM {table} WHERE tenant = ? AND tax_profile = ? AND sales = 0 "
                "AND gross_minor = 0 AND tax_minor = 0 AND net_minor = 0",
                (tenant, profile),
            )

    # -- stock --------------------------------------------------------------------------------
    def add_stock(self, tenant: str, sku: str, change: int) -> tuple[int, bool]:
        """Add ``change`` to the SKU's level: (the new level, whether the SKU is tracked)."""
        qty, tracked = self.one(
            "INSERT INTO stock (tenant, sku, qty) VALUES (?,?,?) ON CONFLICT (tenant, sku) "
            "DO UPDATE SET qty = stock.qty + excluded.qty RETURNING qty, tracked",
            (tenant, sku, change),
        )
        return int(qty), bool(tracked)

    def add_device_stock(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows of (tenant, device_id, sku, change): each till's own net movements."""
        if rows:
            self.executemany(
                "INSERT INTO device_stock (tenant, device_id, sku, qty) VALUES (?,?,?,?) "
                "ON CONFLICT (device_id, sku) DO UPDATE SET qty = device_stock.qty + excluded.qty",
                rows,
            )

    def device_stock_rows(self) -> list[tuple]:
        """(tenant, device_id, sku, qty) of every till's net movements."""
        return self.all("SELECT tenant, device_id, sku, qty FROM device_stock")

    def stall_moves(self, tenant: str, stall: str) -> list[tuple]:
        """(device_id, last stored seq, sku or None, net qty or None) of the tenant's
        devices at ``stall`` (revoked ones too: what they sold left the shelf), by device
        and SKU (one row per device without movements)."""
        return self.all(
            "SELECT d.device_id, d.last_seq, s.sku, s.qty FROM devices d "
            "JOIN device_profiles p ON p.device_id = d.device_id "
            "LEFT JOIN device_stock s ON s.device_id = d.device_id "
            "WHERE d.tenant = ? AND p.stall = ? ORDER BY d.device_id, s.sku",
            (tenant, stall),
        )

    def flag_stock(self, tenant: str, sku: str, device_id: str, seq: int, qty_after: int) -> None:
        """A tracked SKU went negative at (device, seq); once per event."""
        self.execute(
            "INSERT INTO stock_flags (tenant, sku, device_id, seq, qty_after) "
            "VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
            (tenant, sku, device_id, seq, qty_after),
        )

    def stock_flags(self) -> list[tuple]:
        """(tenant, sku, device_id, seq, qty_after), ordered."""
        return self.all(
            "SELECT tenant, sku, device_id, seq, qty_after FROM stock_flags "
            "ORDER BY tenant, sku, device_id, seq"
        )

    def stock_qty(self, tenant: str, sku: str) -> int | None:
        row = self.one("SELECT qty FROM stock WHERE tenant = ? AND sku = ?", (tenant, sku))
        return None if row is None else int(row[0])

    def set_counted_stock(
        self, tenant: str, sku: str, qty: int, delta: int, wall_ms: int, note: str
    ) -> None:
        """A counted level: the adjustment that explains it, and the level, now tracked."""
        self.execute(
            "INSERT INTO stock_adjustments (tenant, sku, delta, wall_ms, note) VALUES (?,?,?,?,?)",
            (tenant, sku, delta, wall_ms, note),
        )
        self.execute(
            "INSERT INTO stock (tenant, sku, qty, tracked) VALUES (?,?,?,1) "
            "ON CONFLICT (tenant, sku) DO UPDATE SET qty = excluded.qty, tracked = 1",
            (tenant, sku, qty),
        )

    def stock_adjustments(self) -> list[tuple]:
        """(tenant, sku, delta) of every counted adjustment."""
        return self.all("SELECT tenant, sku, delta FROM stock_adjustments")

    def stock_levels(self) -> list[tuple]:
        """(tenant, sku, qty) of every SKU."""
        return self.all("SELECT tenant, sku, qty FROM stock")

    # -- tax ----------------------------------------------------------------------------------
    def add_tax(
        self, tenant: str, profile: str, rate: str, sales: int, gross: int, tax: int, net: int
    ) -> None:
        self.execute(
            "INSERT INTO tax_ledger (tenant, tax_profile, rate, sales, gross_minor, "
            "tax_minor, net_minor) VALUES (?,?,?,?,?,?,?) ON CONFLICT "
            "(tenant, tax_profile, rate) DO UPDATE SET sales = tax_ledger.sales + "
            "excluded.sales, gross_minor = tax_ledger.gross_minor + excluded.gross_minor, "
            "tax_minor = tax_ledger.tax_minor + excluded.tax_minor, "
            "net_minor = tax_ledger.net_minor + excluded.net_minor",
            (tenant, profile, rate, sales, gross, tax, net),
        )

    def tax_ledger(self) -> list[tuple]:
        """(tenant, tax_profile, rate, sales, gross_minor, tax_minor, net_minor)."""
        return self.all(
            "SELECT tenant, tax_profile, rate, sales, gross_minor, tax_minor, net_minor "
            "FROM tax_ledger"
        )

    # -- enrollments --------------------------------------------------------------------------
    def insert_enrollment(
        self,
        device_id: str,
        manifest_sha256: str,
        tenant: str,
        sequence: int,
        manifest: str,
        signature: str,
        imported_ms: int,
    ) -> bool:
        """Store an imported manifest; False when that manifest was imported before."""
        row = self.one(
            "INSERT INTO enrollments (device_id, manifest_sha256, tenant, sequence, manifest, "
            "signature, imported_ms) VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING "
            "RETURNING device_id",
            (device_id, manifest_sha256, tenant, sequence, manifest, signature, imported_ms),
        )
        return row is not None

    def insert_enrollment_media(self, device_id: str, sha256: str, body: bytes) -> None:
        """One file of an enrollment, by hash (a file two enrollments share is kept once)."""
        self.execute(
            "INSERT INTO enrollment_media (device_id, sha256, size, body) VALUES (?,?,?,?) "
            "ON CONFLICT DO NOTHING",
            (device_id, sha256, len(body), body),
        )

    def enrollment_rows(
        self, tenant: str | None = None, device_id: str | None = None
    ) -> list[tuple]:
        """(device_id, manifest_sha256, tenant, sequence, manifest, signature, imported_ms),
        by device and enrollment number; of one tenant and/or device when given."""
        where, params = [], []
        for column, value in (("tenant", tenant), ("device_id", device_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        return self.all(
            "SELECT device_id, manifest_sha256, tenant, sequence, manifest, signature, "
            "imported_ms FROM enrollments"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY device_id, sequence, imported_ms",
            params,
        )

    def enrollment_row(self, device_id: str, manifest_sha256: str | None = None) -> tuple | None:
        """One enrollment (columns as :meth:`enrollment_rows`): the given manifest, or the
        device's latest (highest enrollment number)."""
        sql = (
            "SELECT device_id, manifest_sha256, tenant, sequence, manifest, signature, "
            "imported_ms FROM enrollments WHERE device_id = ?"
        )
        if manifest_sha256 is not None:
            return self.one(sql + " AND manifest_sha256 = ?", (device_id, manifest_sha256))
        return self.one(sql + " ORDER BY sequence DESC, imported_ms DESC LIMIT 1", (device_id,))

    def enrollment_media(self, device_id: str, sha256: str) -> bytes | None:
        row = self.one(
            "SELECT body FROM enrollment_media WHERE device_id = ? AND sha256 = ?",
            (device_id, sha256),
        )
        return None if row is None else bytes(row[0])

    def insert_review(
        self,
        device_id: str,
        manifest_sha256: str,
        decision: str,
        reason: str,
        reviewer: str,
        decided_ms: int,
        message: bytes,
    ) -> None:
        self.execute(
            "INSERT INTO enrollment_reviews (device_id, manifest_sha256, decision, reason, "
            "reviewer, decided_ms, message) VALUES (?,?,?,?,?,?,?)",
            (device_id, manifest_sha256, decision, reason, reviewer, decided_ms, message),
        )

    def review_rows(self, device_id: str, manifest_sha256: str | None = None) -> list[tuple]:
        """(manifest_sha256, decision, reason, reviewer, decided_ms, message) of a device's
        reviews (of one manifest, when given), oldest first."""
        sql = (
            "SELECT manifest_sha256, decision, reason, reviewer, decided_ms, message "
            "FROM enrollment_reviews WHERE device_id = ?"
        )
        if manifest_sha256 is None:
            return self.all(sql + " ORDER BY id", (device_id,))
        return self.all(sql + " AND manifest_sha256 = ? ORDER BY id", (device_id, manifest_sha256))

    # -- what the region's inspection package reads --------------------------------------------
    def device_event_lines(self, device_id: str) -> Iterator[tuple[int, str, str]]:
        """(seq, type, body) of a device's stored events in seq order, fetched in pages."""
        after = 0
        while True:
            rows = self.all(
                "SELECT seq, type, body FROM events WHERE device_id = ? AND seq > ? "
                "ORDER BY seq LIMIT 2000",
                (device_id, after),
            )
            if not rows:
                return
            for seq, type_, body in rows:
                yield int(seq), type_, body
            after = int(rows[-1][0])

    def device_segments(self, device_id: str) -> list[tuple]:
        """(id, first_seq, last_seq, size, stored_ms) of a device's stored segments."""
        return self.all(
            "SELECT id, first_seq, last_seq, size, stored_ms FROM segments WHERE device_id = ? "
            "ORDER BY first_seq",
            (device_id,),
        )

    # -- rollups (edge/rollups.py: one segment's delta, in its transaction) ---------------------
    def add_rollup_sales(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows of (tenant, device_id, event_id, day, hour, currency, sales, gross_minor,
        refunds, refund_minor), added to what is there. Callers sort rows by key, so two
        workers lock shared rows in one order (PostgreSQL)."""
        self.executemany(
            "INSERT INTO rollup_sales (tenant, device_id, event_id, day, hour, currency, sales, "
            "gross_minor, refunds, refund_minor) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT "
            "(tenant, device_id, event_id, day, hour, currency) DO UPDATE SET "
            "sales = rollup_sales.sales + excluded.sales, "
            "gross_minor = rollup_sales.gross_minor + excluded.gross_minor, "
            "refunds = rollup_sales.refunds + excluded.refunds, "
            "refund_minor = rollup_sales.refund_minor + excluded.refund_minor",
            rows,
        )

    def add_rollup_tax(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows of (tenant, tax_profile, rate, rate_bp, day, event_id, sales, gross_minor,
        tax_minor, net_minor), added to what is there."""
        self.executemany(
            "INSERT INTO rollup_tax (tenant, tax_profile, rate, rate_bp, day, event_id, sales, "
            "gross_minor, tax_minor, net_minor) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT "
            "(tenant, tax_profile, rate, rate_bp, day, event_id) DO UPDATE SET "
            "sales = rollup_tax.sales + excluded.sales, "
            "gross_minor = rollup_tax.gross_minor + excluded.gross_minor, "
            "tax_minor = rollup_tax.tax_minor + excluded.tax_minor, "
            "net_minor = rollup_tax.net_minor + excluded.net_minor",
            rows,
        )

    def add_rollup_items(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows of (tenant, day, sku, name, qty, gross_minor); the newest name wins."""
        self.executemany(
            "INSERT INTO rollup_items (tenant, day, sku, name, qty, gross_minor) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT (tenant, day, sku) DO UPDATE SET "
            "name = excluded.name, qty = rollup_items.qty + excluded.qty, "
            "gross_minor = rollup_items.gross_minor + excluded.gross_minor",
            rows,
        )

    def add_rollup_promos(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows of (tenant, event_id, day, code, promoter, redemptions, discount_minor)."""
        self.executemany(
            "INSERT INTO rollup_promos (tenant, event_id, day, code, promoter, redemptions, "
            "discount_minor) VALUES (?,?,?,?,?,?,?) "
            "ON CONFLICT (tenant, event_id, day, code, promoter) "
            "DO UPDATE SET redemptions = rollup_promos.redemptions + excluded.redemptions, "
            "discount_minor = rollup_promos.discount_minor + excluded.discount_minor",
            rows,
        )

    def rollup_rows(self) -> dict[str, list[tuple]]:
        """Every rollup row, by table, in the column order of the add_rollup_* methods."""
        return {
            "sales": self.all(
                "SELECT tenant, device_id, event_id, day, hour, currency, sales, gross_minor, "
                "refunds, refund_minor FROM rollup_sales"
            ),
            "tax": self.all(
                "SELECT tenant, tax_profile, rate, rate_bp, day, event_id, sales, gross_minor, "
                "tax_minor, net_minor FROM rollup_tax"
            ),
            "items": self.all("SELECT tenant, day, sku, name, qty, gross_minor FROM rollup_items"),
            "promos": self.all(
                "SELECT tenant, event_id, day, code, promoter, redemptions, discount_minor "
                "FROM rollup_promos"
            ),
        }

    # -- devices: revocation and profiles ------------------------------------------------------
    def revoke_device(self, device_id: str, revoked_ms: int, reason: str) -> None:
        """Revoke a device's key for good; revoking again keeps the first time and reason."""
        self.execute(
            "INSERT INTO device_revocations (device_id, revoked_ms, reason) VALUES (?,?,?) "
            "ON CONFLICT (device_id) DO NOTHING",
            (device_id, revoked_ms, reason),
        )

    def revocation(self, device_id: str) -> tuple[int, str] | None:
        """(revoked_ms, reason) of a revoked device; None when it is not revoked."""
        row = self.one(
            "SELECT revoked_ms, reason FROM device_revocations WHERE device_id = ?", (device_id,)
        )
        return None if row is None else (int(row[0]), row[1])

    def set_device_profile(self, device_id: str, stall: str, label: str) -> None:
        """The device's stall and label (both replaced)."""
        self.execute(
            "INSERT INTO device_profiles (device_id, stall, label) VALUES (?,?,?) "
            "ON CONFLICT (device_id) DO UPDATE SET stall = excluded.stall, label = excluded.label",
            (device_id, stall, label),
        )

    def device_profile(self, device_id: str) -> tuple[str, str] | None:
        """(stall, label) of a device that has a profile; None otherwise."""
        row = self.one("SELECT stall, label FROM device_profiles WHERE device_id = ?", (device_id,))
        return None if row is None else (row[0], row[1])

    def device_list(self) -> list[tuple]:
        """(device_id, tenant, enrolled_ms, last_seq, stall, label, revoked_ms, reason,
        last telemetry received_ms, its sent_ms) per enrolled device, by id; None where the
        device has no profile, revocation or telemetry."""
        return self.all(
            "SELECT d.device_id, d.tenant, d.enrolled_ms, d.last_seq, p.stall, p.label, "
            "r.revoked_ms, r.reason, t.received_ms, t.sent_ms FROM devices d "
            "LEFT JOIN device_profiles p ON p.device_id = d.device_id "
            "LEFT JOIN device_revocations r ON r.device_id = d.device_id "
            "LEFT JOIN telemetry_latest t ON t.device_id = d.device_id ORDER BY d.device_id"
        )

    # -- telemetry (edge/telemetry.py) ---------------------------------------------------------
    def put_telemetry(
        self, device_id: str, tenant: str, received_ms: int, sent_ms: int, body: str, keep: int
    ) -> bool:
        """A verified health message: the device's latest (unless a newer one is there) and
        its history, pruned to the newest ``keep`` rows in the same transaction. False (and
        nothing written) when the history already holds this very message: a QoS 1
        redelivery, or a replay (each message has its own ``sent_ms``)."""
        with self.transaction():
            seen = self.one(
                "SELECT 1 FROM telemetry_history WHERE device_id = ? AND body = ? LIMIT 1",
                (device_id, body),
            )
            if seen is not None:
                return False
            self.execute(
                "INSERT INTO telemetry_latest (device_id, tenant, received_ms, sent_ms, body) "
                "VALUES (?,?,?,?,?) ON CONFLICT (device_id) DO UPDATE SET "
                "tenant = excluded.tenant, received_ms = excluded.received_ms, "
                "sent_ms = excluded.sent_ms, body = excluded.body "
                "WHERE telemetry_latest.received_ms <= excluded.received_ms",
                (device_id, tenant, received_ms, sent_ms, body),
            )
            self.execute(
                "INSERT INTO telemetry_history (device_id, received_ms, body) VALUES (?,?,?)",
                (device_id, received_ms, body),
            )
            self.execute(
                "DELETE FROM telemetry_history WHERE device_id = ? AND id <= (SELECT id FROM "
                "telemetry_history WHERE device_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (device_id, device_id, keep),
            )
        return True

    def telemetry_latest(self, device_id: str) -> tuple[str, int, int, str] | None:
        """(tenant, received_ms, sent_ms, body) of the device's latest health message."""
        row = self.one(
            "SELECT tenant, received_ms, sent_ms, body FROM telemetry_latest WHERE device_id = ?",
            (device_id,),
        )
        return None if row is None else (row[0], int(row[1]), int(row[2]), row[3])

    def telemetry_history(self, device_id: str) -> list[tuple[int, str]]:
        """(received_ms, body) of the device's kept health messages, oldest first."""
        return [
            (int(r), b)
            for r, b in self.all(
                "SELECT received_ms, body FROM telemetry_history WHERE device_id = ? ORDER BY id",
                (device_id,),
            )
        ]


def _psycopg_errors() -> tuple[type, type, type] | None:
    try:
        import psycopg
    except ImportError:
        return None
    return psycopg.OperationalError, psycopg.InterfaceError, psycopg.IntegrityError


def is_transient(exc: BaseException) -> bool:
    """True when a failed statement says the database is unavailable *now* (down, locked,
    a lost connection, a full disk, a deadlock), not that the data is wrong: the same
    segment may succeed when it comes again. Everything else (an integer it cannot
    hold, a constraint) is a property of the data, and retrying would never end."""
    if isinstance(exc, sqlite3.OperationalError):
        return True
    pg = _psycopg_errors()
    return pg is not None and isinstance(exc, pg[:2])


def is_write_conflict(exc: BaseException) -> bool:
    """A unique key another worker committed while this transaction ran (PostgreSQL
    locks rows, not the whole database): running the transaction once more sees it."""
    if isinstance(exc, sqlite3.IntegrityError):
        return True
    pg = _psycopg_errors()
    return pg is not None and isinstance(exc, pg[2])


def _redact(url: str) -> str:
    parts = urlsplit(url)
    return url.replace(f":{parts.password}@", ":***@") if parts.password else url
