"""The stored segments and their events, and the pages of them the inspection package
reads."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from edge.store.base import StoreBase


class EventTables(StoreBase):
    # -- segments and events ------------------------------------------------------------------
    def segment_stored(self, seg_id: str) -> bool:
        return self.one("SELECT 1 FROM segments WHERE id = ?", (seg_id,)) is not None

    def insert_segment(
        self, seg_id: str, device_id: str, first_seq: int, last_seq: int, size: int, stored_ms: int
    ) -> None:
        self.execute(
            "INSERT INTO segments (id, device_id, first_seq, last_seq, size, stored_ms) "
            "VALUES (?,?,?,?,?,?)",
            (seg_id, device_id, first_seq, last_seq, size, stored_ms),
        )

    def insert_events(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows of (device_id, seq, type, hash, body, dup_of)."""
        self.executemany(
            "INSERT INTO events (device_id, seq, type, hash, body, dup_of) VALUES (?,?,?,?,?,?)",
            rows,
        )

    def stored_events(self, device_id: str) -> list[tuple]:
        """(seq, hash) of a device's stored events, in order."""
        return self.all(
            "SELECT seq, hash FROM events WHERE device_id = ? ORDER BY seq", (device_id,)
        )

    def events_of_types(self, types: Sequence[str]) -> list[tuple]:
        """(tenant, device_id, seq, type, body, dup_of) of the stored events of ``types``,
        in ingest order."""
        marks = ",".join("?" * len(types))
        return self.all(
            "SELECT d.tenant, e.device_id, e.seq, e.type, e.body, e.dup_of FROM events e "
            f"JOIN devices d ON d.device_id = e.device_id WHERE e.type IN ({marks}) "
            "ORDER BY e.ingest_id",
            tuple(types),
        )

    # -- what the region's inspection package reads --------------------------------------------
    def device_event_lines(self, device_id: str) -> Iterator[tuple[int, str, str]]:
        """(seq, type, body) of a device's stored events in seq order, fetched in pages."""
        after = 0
        while True:
            rows = self.all(
                "SELECT seq, type, body FROM events WHERE device_id = ? AND seq > ? "
                "ORDER BY seq LIMIT 2000",
                (device_id, after),
            )
            if not rows:
                return
            for seq, type_, body in rows:
                yield int(seq), type_, body
            after = int(rows[-1][0])

    def device_segments(self, device_id: str) -> list[tuple]:
        """(id, first_seq, last_seq, size, stored_ms) of a device's stored segments."""
        return self.all(
            "SELECT id, first_seq, last_seq, size, stored_ms FROM segments WHERE device_id = ? "
            "ORDER BY first_seq",
            (device_id,),
        )
