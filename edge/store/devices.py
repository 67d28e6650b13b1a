"""The enrolled devices: their rows (locked per transaction on PostgreSQL), chain tips and
counters, rejections, revocations and profiles."""

from __future__ import annotations

from collections.abc import Sequence

from edge.store.base import StoreBase


class DeviceTables(StoreBase):
    def lock_devices(self, device_ids: Sequence[str]) -> None:
        """Lock several device rows for this transaction, in id order (two workers that
        lock overlapping sets cannot deadlock); SQLite's write lock covers them already."""
        if self.dialect == "postgres" and device_ids:
            marks = ",".join("?" * len(device_ids))
            self.all(
                f"SELECT device_id FROM devices WHERE device_id IN ({marks}) "
                "ORDER BY device_id FOR UPDATE",
                tuple(sorted(device_ids)),
            )

    def lock_device(self, device_id: str) -> tuple | None:
        """The device row, locked for this transaction (another worker waits)."""
        suffix = " FOR UPDATE" if self.dialect == "postgres" else ""
        return self.one(
            "SELECT device_id, tenant, last_seq, last_hash, tip FROM devices "
            "WHERE device_id = ?" + suffix,
            (device_id,),
        )

    # -- devices ------------------------------------------------------------------------------
    def device_key(self, device_id: str) -> tuple[str, str] | None:
        """(tenant, public key hex) of an enrolled device, or None."""
        row = self.one("SELECT tenant, public_key FROM devices WHERE device_id = ?", (device_id,))
        return None if row is None else (row[0], row[1])

    def device_tip(self, device_id: str) -> tuple[int, str]:
        """(last stored seq, chain tip) of an enrolled device."""
        row = self.one("SELECT last_seq, tip FROM devices WHERE device_id = ?", (device_id,))
        return int(row[0]), row[1]

    def insert_device(
        self, device_id: str, tenant: str, public_key: str, enrolled_ms: int, genesis: str
    ) -> None:
        """A newly enrolled device: nothing stored yet, its chain starts at ``genesis``."""
        self.execute(
            "INSERT INTO devices (device_id, tenant, public_key, enrolled_ms, last_seq, "
            "last_hash, tip) VALUES (?,?,?,?,0,?,?)",
            (device_id, tenant, public_key, enrolled_ms, genesis, genesis),
        )

    def advance_device(
        self, device_id: str, last_seq: int, last_hash: str, tip: str, events: int, dups: int
    ) -> None:
        """The device's new chain tip and counters after a stored segment."""
        self.execute(
            "UPDATE devices SET last_seq = ?, last_hash = ?, tip = ?, "
            "events_stored = events_stored + ?, segments_stored = segments_stored + 1, "
            "duplicates_dropped = duplicates_dropped + ? WHERE device_id = ?",
            (last_seq, last_hash, tip, events, dups, device_id),
        )

    def count_duplicates(self, device_id: str, events: int) -> None:
        """A segment came again: its events are counted as dropped duplicates."""
        self.execute(
            "UPDATE devices SET duplicates_dropped = duplicates_dropped + ? WHERE device_id = ?",
            (events, device_id),
        )

    def device_stats(self) -> list[tuple]:
        """(device_id, tenant, events_stored, last_seq, segments_stored, duplicates_dropped)."""
        return self.all(
            "SELECT device_id, tenant, events_stored, last_seq, segments_stored, "
            "duplicates_dropped FROM devices ORDER BY device_id"
        )

    # -- rejections ---------------------------------------------------------------------------
    def record_rejection(self, device_id: str, reason: str) -> None:
        """Count one rejection inside the caller's transaction."""
        self.execute(
            "INSERT INTO rejections (device_id, reason, count) VALUES (?, ?, 1) "
            "ON CONFLICT (device_id, reason) DO UPDATE SET count = rejections.count + 1",
            (device_id, reason),
        )

    def count_rejection(self, device_id: str, reason: str) -> None:
        """Count one rejection in a transaction of its own."""
        with self.transaction():
            self.record_rejection(device_id, reason)

    def rejection_counts(self) -> list[tuple]:
        """(device_id, reason, count), ordered."""
        return self.all(
            "SELECT device_id, reason, count FROM rejections ORDER BY device_id, reason"
        )

    # -- devices: revocation and profiles ------------------------------------------------------
    def revoke_device(self, device_id: str, revoked_ms: int, reason: str) -> None:
        """Revoke a device's key for good; revoking again keeps the first time and reason."""
        self.execute(
            "INSERT INTO device_revocations (device_id, revoked_ms, reason) VALUES (?,?,?) "
            "ON CONFLICT (device_id) DO NOTHING",
            (device_id, revoked_ms, reason),
        )

    def revocation(self, device_id: str) -> tuple[int, str] | None:
        """(revoked_ms, reason) of a revoked device; None when it is not revoked."""
        row = self.one(
            "SELECT revoked_ms, reason FROM device_revocations WHERE device_id = ?", (device_id,)
        )
        return None if row is None else (int(row[0]), row[1])

    def set_device_profile(self, device_id: str, stall: str, label: str) -> None:
        """The device's stall and label (both replaced)."""
        self.execute(
            "INSERT INTO device_profiles (device_id, stall, label) VALUES (?,?,?) "
            "ON CONFLICT (device_id) DO UPDATE SET stall = excluded.stall, label = excluded.label",
            (device_id, stall, label),
        )

    def device_profile(self, device_id: str) -> tuple[str, str] | None:
        """(stall, label) of a device that has a profile; None otherwise."""
        row = self.one("SELECT stall, label FROM device_profiles WHERE device_id = ?", (device_id,))
        return None if row is None else (row[0], row[1])

    def device_list(self) -> list[tuple]:
        """(device_id, tenant, enrolled_ms, last_seq, stall, label, revoked_ms, reason,
        last telemetry received_ms, its sent_ms) per enrolled device, by id; None where the
        device has no profile, revocation or telemetry."""
        return self.all(
            "SELECT d.device_id, d.tenant, d.enrolled_ms, d.last_seq, p.stall, p.label, "
            "r.revoked_ms, r.reason, t.received_ms, t.sent_ms FROM devices d "
            "LEFT JOIN device_profiles p ON p.device_id = d.device_id "
            "LEFT JOIN device_revocations r ON r.device_id = d.device_id "
            "LEFT JOIN telemetry_latest t ON t.device_id = d.device_id ORDER BY d.device_id"
        )
