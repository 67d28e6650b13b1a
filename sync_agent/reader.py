"""Reads the till's log through its own read-only connection.

The agent never writes to ``log.db`` and never holds a read transaction open
between batches, so the cashier's writes never wait for it (SQLite WAL lets a
writer commit while readers read).

Each event leaves as its export form, ``canonical_bytes(Event.to_json())``.
Building that from the row directly (the stored payload is already canonical
text) is ~10x faster than parsing and re-encoding it; a test checks the two
are byte-identical for every event type.
"""

from __future__ import annotations

import json
from pathlib import Path

from appliance import queries
from appliance.chain import FORMAT_VERSION
from appliance.log import EventLog

_str = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def event_line(row: tuple) -> bytes:
    """Canonical JSON of one events row's export form (keys in sorted order)."""
    seq, event_id, device_id, type_, payload, wall_ms, boot_id, mono_us, prev, digest = row
    return (
        f'{{"boot":{_str(boot_id)},"device":{_str(device_id)},"hash":{_str(digest)},'
        f'"id":{_str(event_id)},"mono_us":{int(mono_us)},"payload":{payload},'
        f'"prev":{_str(prev)},"seq":{int(seq)},"type":{_str(type_)},"v":{FORMAT_VERSION},'
        f'"wall_ms":{int(wall_ms)}}}'
    ).encode()


class LogReader:
    """The agent's view of one till log."""

    def __init__(self, path: Path) -> None:
        self.log = EventLog.open(Path(path), readonly=True)
        self.device_id = self.log.device_id

    def tail(self) -> tuple[int, str]:
        """(last seq, its hash); (0, genesis) for an empty log."""
        return self.log.last()

    def tenant(self) -> str | None:
        """The tenant recorded in the device's first event, if any."""
        genesis = queries.genesis_payload(self.log)
        return genesis.get("tenant") if genesis else None

    def wall_ms(self, seq: int) -> int | None:
        return queries.event_wall_ms(self.log, seq)

    def lines(self, since: int, limit: int) -> list[bytes]:
        """Up to ``limit`` events after ``since``, in order, as canonical lines."""
        return [event_line(row) for row in queries.export_rows(self.log, since, limit)]

    def close(self) -> None:
        self.log.close()
