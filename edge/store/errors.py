"""What a failed statement means for the caller: try again later, or run the transaction
once more."""

from __future__ import annotations

import sqlite3


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
