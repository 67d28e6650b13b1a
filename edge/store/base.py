"""The connection under every table module: the dialect, and the one path each statement
takes (:meth:`StoreBase.execute`), which translates ``?`` for psycopg and can be traced
(``TILLBOX_SQL_TRACE=1``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Self

log = logging.getLogger("tillbox.edge.sql")

_TRACE = bool(os.environ.get("TILLBOX_SQL_TRACE"))


class StoreBase:
    """A connection to the edge database and its statements; the table modules add the
    named reads and writes (:class:`edge.store.Store` composes them)."""

    def __init__(self, url: str, conn: Any, dialect: str) -> None:
        self.url = url
        self.conn = conn
        self.dialect = dialect

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
    def transaction(self) -> Iterator[Self]:
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
