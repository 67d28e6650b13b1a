"""Onboarding (edge/enrollments.py): each imported enrollment export, its media by hash,
and the region's signed reviews."""

from __future__ import annotations

from edge.store.base import StoreBase


class EnrollmentTables(StoreBase):
    def insert_enrollment(
        self,
        device_id: str,
        manifest_sha256: str,
        tenant: str,
        sequence: int,
        manifest: str,
        signature: str,
        imported_ms: int,
    ) -> bool:
        """Store an imported manifest; False when that manifest was imported before."""
        row = self.one(
            "INSERT INTO enrollments (device_id, manifest_sha256, tenant, sequence, manifest, "
            "signature, imported_ms) VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING "
            "RETURNING device_id",
            (device_id, manifest_sha256, tenant, sequence, manifest, signature, imported_ms),
        )
        return row is not None

    def insert_enrollment_media(self, device_id: str, sha256: str, body: bytes) -> None:
        """One file of an enrollment, by hash (a file two enrollments share is kept once)."""
        self.execute(
            "INSERT INTO enrollment_media (device_id, sha256, size, body) VALUES (?,?,?,?) "
            "ON CONFLICT DO NOTHING",
            (device_id, sha256, len(body), body),
        )

    def enrollment_rows(
        self, tenant: str | None = None, device_id: str | None = None
    ) -> list[tuple]:
        """(device_id, manifest_sha256, tenant, sequence, manifest, signature, imported_ms),
        by device and enrollment number; of one tenant and/or device when given."""
        where, params = [], []
        for column, value in (("tenant", tenant), ("device_id", device_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        return self.all(
            "SELECT device_id, manifest_sha256, tenant, sequence, manifest, signature, "
            "imported_ms FROM enrollments"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY device_id, sequence, imported_ms",
            params,
        )

    def enrollment_row(self, device_id: str, manifest_sha256: str | None = None) -> tuple | None:
        """One enrollment (columns as :meth:`enrollment_rows`): the given manifest, or the
        device's latest (highest enrollment number)."""
        sql = (
            "SELECT device_id, manifest_sha256, tenant, sequence, manifest, signature, "
            "imported_ms FROM enrollments WHERE device_id = ?"
        )
        if manifest_sha256 is not None:
            return self.one(sql + " AND manifest_sha256 = ?", (device_id, manifest_sha256))
        return self.one(sql + " ORDER BY sequence DESC, imported_ms DESC LIMIT 1", (device_id,))

    def enrollment_media(self, device_id: str, sha256: str) -> bytes | None:
        row = self.one(
            "SELECT body FROM enrollment_media WHERE device_id = ? AND sha256 = ?",
            (device_id, sha256),
        )
        return None if row is None else bytes(row[0])

    def insert_review(
        self,
        device_id: str,
        manifest_sha256: str,
        decision: str,
        reason: str,
        reviewer: str,
        decided_ms: int,
        message: bytes,
    ) -> None:
        self.execute(
            "INSERT INTO enrollment_reviews (device_id, manifest_sha256, decision, reason, "
            "reviewer, decided_ms, message) VALUES (?,?,?,?,?,?,?)",
            (device_id, manifest_sha256, decision, reason, reviewer, decided_ms, message),
        )

    def review_rows(self, device_id: str, manifest_sha256: str | None = None) -> list[tuple]:
        """(manifest_sha256, decision, reason, reviewer, decided_ms, message) of a device's
        reviews (of one manifest, when given), oldest first."""
        sql = (
            "SELECT manifest_sha256, decision, reason, reviewer, decided_ms, message "
            "FROM enrollment_reviews WHERE device_id = ?"
        )
        if manifest_sha256 is None:
            return self.all(sql + " ORDER BY id", (device_id,))
        return self.all(sql + " AND manifest_sha256 = ? ORDER BY id", (device_id, manifest_sha256))
