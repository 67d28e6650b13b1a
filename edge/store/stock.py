"""Stock: each SKU's level, each till's own net movements, the flags of a tracked SKU gone
negative, and the counted adjustments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edge.store.base import StoreBase


class StockTables(StoreBase):
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
