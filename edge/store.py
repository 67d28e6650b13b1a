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
CREATE TABLE IF NOT EXISTS sales (
    tenant TEXT NOT NULL, idem_key TEXT NOT NULL, sale_id TEXT NOT NULL,
    device_id TEXT NOT NULL, seq BIGINT NOT NULL, tax_profile TEXT NOT NULL,
    PRIMARY KEY (tenant, idem_key));
CREATE INDEX IF NOT EXISTS sales_by_id ON sales (tenant, sale_id);
CREATE TABLE IF NOT EXISTS stock (
    tenant TEXT NOT NULL, sku TEXT NOT NULL, qty BIGINT NOT NULL,
    tracked INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (tenant, sku));
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
"""

_TRACE = bool(os.environ.get("TILLBOX_SQL_TRACE"))


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
            conn.executescript(_TABLES.format(serial="INTEGER PRIMARY KEY", blob="BLOB"))
        except (sqlite3.Error, OSError) as exc:
            raise TillError(
                f"cannot open edge database {path} ({exc}); check the path and free space"
            ) from None
        return cls(url, conn, "sqlite")

    @classmethod
    def _postgres(cls, url: str) -> Store:
        try:
            import psycopg
        except ImportError:
            raise TillError("PostgreSQL needs psycopg 3; pip install 'tillbox[postgres]'") from None
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(7406)")  # one creator at a time
                for statement in _TABLES.format(serial="BIGSERIAL PRIMARY KEY", blob="BYTEA").split(
                    ";"
                ):
                    if statement.strip():
                        conn.execute(statement)
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TillError(
                f"cannot use PostgreSQL at {_redact(url)} ({first}); check the "
                "URL, that the server runs and that the database exists"
            ) from None
        return cls(url, conn, "postgres")

    def close(self) -> None:
        self.conn.close()

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

    def lock_device(self, device_id: str) -> tuple | None:
        """The device row, locked for this transaction (another worker waits)."""
        suffix = " FOR UPDATE" if self.dialect == "postgres" else ""
        return self.one(
            "SELECT device_id, tenant, last_seq, last_hash, tip FROM devices "
            "WHERE device_id = ?" + suffix,
            (device_id,),
        )

    def count_rejection(self, device_id: str, reason: str) -> None:
        with self.transaction():
            self.execute(
                "INSERT INTO rejections (device_id, reason, count) VALUES (?, ?, 1) "
                "ON CONFLICT (device_id, reason) DO UPDATE SET count = rejections.count + 1",
                (device_id, reason),
            )


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
