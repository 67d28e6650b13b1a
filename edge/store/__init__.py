"""Edge storage, chosen by URL: ``sqlite:///path`` (default) or ``postgresql://...``.

One class, two dialects. Every statement is written once with ``?`` placeholders
and goes through :meth:`Store.execute`, which translates for psycopg and can be
traced (``TILLBOX_SQL_TRACE=1``). The schema differs only in the auto-numbered
ingest id and the blob type.

:class:`Store` is composed of one module per job: ``base`` (the connection and its
statements), ``schema`` (the tables), ``opening`` (by URL) and ``upgrade`` (a database
from an older tillbox), then one per group of tables: ``devices``, ``events``,
``regionlists``, ``sales``, ``stock``, ``tax``, ``enrollments``, ``rollups`` and
``telemetry``; ``errors`` says what a failed statement means.
"""

from __future__ import annotations

from edge.store.devices import DeviceTables
from edge.store.enrollments import EnrollmentTables
from edge.store.errors import is_transient, is_write_conflict
from edge.store.events import EventTables
from edge.store.opening import OpenByUrl
from edge.store.regionlists import RegionListTables
from edge.store.rollups import RollupTables
from edge.store.sales import SalesTables
from edge.store.stock import StockTables
from edge.store.tax import TaxTables
from edge.store.telemetry import TelemetryTables

__all__ = ["Store", "is_transient", "is_write_conflict"]


class Store(
    OpenByUrl,
    DeviceTables,
    EventTables,
    RegionListTables,
    SalesTables,
    StockTables,
    TaxTables,
    EnrollmentTables,
    RollupTables,
    TelemetryTables,
):
    """A connection to the edge database. Not thread-safe: one per worker."""
