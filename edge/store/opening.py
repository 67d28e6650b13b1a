"""Opening the edge database by URL: the connection, the tables made if missing, and a
database from an older tillbox upgraded once."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from appliance.errors import TillError
from edge.store.schema import ROLLUP_PROMOS, SALES_BY_RECEIPT, TABLES
from edge.store.upgrade import SchemaUpgrade


class OpenByUrl(SchemaUpgrade):
    """``sqlite:///path`` or ``postgresql://...``, each connected as the edge needs it."""

    @classmethod
    def open(cls, url: str) -> Self:
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
    def _sqlite(cls, url: str, path: Path) -> Self:
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
                TABLES.format(
                    serial="INTEGER PRIMARY KEY", blob="BLOB", rollup_promos=ROLLUP_PROMOS
                )
            )
            store = cls(url, conn, "sqlite")
            if store._outdated():
                with store.transaction():
                    store._upgrade()
            store.execute(SALES_BY_RECEIPT)
        except (sqlite3.Error, OSError, ValueError) as exc:  # ValueError: a NUL in the path
            raise TillError(
                f"cannot open edge database {path!s:.200} ({exc}); check the path and free space"
            ) from None
        return store

    @classmethod
    def _postgres(cls, url: str) -> Self:
        try:
            import psycopg
        except ImportError:
            raise TillError("PostgreSQL needs psycopg 3; pip install 'tillbox[postgres]'") from None
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
            store = cls(url, conn, "postgres")
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(7406)")  # one creator at a time
                for statement in TABLES.format(
                    serial="BIGSERIAL PRIMARY KEY", blob="BYTEA", rollup_promos=ROLLUP_PROMOS
                ).split(";"):
                    if statement.strip():
                        conn.execute(statement)
                store._upgrade()
                conn.execute(SALES_BY_RECEIPT)
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TillError(
                f"cannot use PostgreSQL at {_redact(url)} ({first}); check the "
                "URL, that the server runs and that the database exists"
            ) from None
        return store


def _redact(url: str) -> str:
    parts = urlsplit(url)
    return url.replace(f":{parts.password}@", ":***@") if parts.password else url
