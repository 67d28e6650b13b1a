"""Each device's latest signed health message and its bounded history
(edge/telemetry.py)."""

from __future__ import annotations

from edge.store.base import StoreBase


class TelemetryTables(StoreBase):
    def put_telemetry(
        self, device_id: str, tenant: str, received_ms: int, sent_ms: int, body: str, keep: int
    ) -> bool:
        """A verified health message: the device's latest (unless a newer one is there) and
        its history, pruned to the newest ``keep`` rows in the same transaction. False (and
        nothing written) when the history already holds this very message: a QoS 1
        redelivery, or a replay (each message has its own ``sent_ms``)."""
        with self.transaction():
            seen = self.one(
                "SELECT 1 FROM telemetry_history WHERE device_id = ? AND body = ? LIMIT 1",
                (device_id, body),
            )
            if seen is not None:
                return False
            self.execute(
                "INSERT INTO telemetry_latest (device_id, tenant, received_ms, sent_ms, body) "
                "VALUES (?,?,?,?,?) ON CONFLICT (device_id) DO UPDATE SET "
                "tenant = excluded.tenant, received_ms = excluded.received_ms, "
                "sent_ms = excluded.sent_ms, body = excluded.body "
                "WHERE telemetry_latest.received_ms <= excluded.received_ms",
                (device_id, tenant, received_ms, sent_ms, body),
            )
            self.execute(
                "INSERT INTO telemetry_history (device_id, received_ms, body) VALUES (?,?,?)",
                (device_id, received_ms, body),
            )
            self.execute(
                "DELETE FROM telemetry_history WHERE device_id = ? AND id <= (SELECT id FROM "
                "telemetry_history WHERE device_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (device_id, device_id, keep),
            )
        return True

    def telemetry_latest(self, device_id: str) -> tuple[str, int, int, str] | None:
        """(tenant, received_ms, sent_ms, body) of the device's latest health message."""
        row = self.one(
            "SELECT tenant, received_ms, sent_ms, body FROM telemetry_latest WHERE device_id = ?",
            (device_id,),
        )
        return None if row is None else (row[0], int(row[1]), int(row[2]), row[3])

    def telemetry_history(self, device_id: str) -> list[tuple[int, str]]:
        """(received_ms, body) of the device's kept health messages, oldest first."""
        return [
            (int(r), b)
            for r, b in self.all(
                "SELECT received_ms, body FROM telemetry_history WHERE device_id = ? ORDER BY id",
                (device_id,),
            )
        ]
