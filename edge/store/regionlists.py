"""The region's signed lists for the tills (edge/regionlists.py, issue 15): the retained
update of each kind, and the roster it is made from."""

from __future__ import annotations

from edge.store.base import StoreBase


class RegionListTables(StoreBase):
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
