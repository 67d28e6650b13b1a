"""The stored sales by idempotency key, sale id and receipt number, and the refunds of
another till's receipt that wait for their sale (edge/ledger.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edge.store.base import StoreBase

_CHUNK = 400  # values per IN (...) list: well under SQLite's bound-parameter limit


class SalesTables(StoreBase):
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
