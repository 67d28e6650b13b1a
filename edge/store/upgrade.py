"""A database made by an older tillbox: the columns it lacks, and its ledgers and rollups
folded again from the stored events by the ledger's own code."""

from __future__ import annotations

from edge.store.base import log
from edge.store.events import EventTables
from edge.store.rollups import RollupTables
from edge.store.sales import SalesTables
from edge.store.schema import ROLLUP_PROMOS
from edge.store.stock import StockTables
from edge.store.tax import TaxTables


class SchemaUpgrade(EventTables, SalesTables, StockTables, TaxTables, RollupTables):
    """The upgrade and the refold; the refold writes through the tables' own methods."""

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
            self.execute(ROLLUP_PROMOS)
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
