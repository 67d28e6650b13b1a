"""The rollups that pages read instead of events (edge/rollups.py: one segment's delta,
in its transaction)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edge.store.base import StoreBase


class RollupTables(StoreBase):
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
