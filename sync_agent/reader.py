"""Reads the till's log through its own read-only connection.

The agent never writes to ``log.db`` and never holds a read transaction open
between batches, so the cashier's writes never wait for it (SQLite WAL lets a
writer commit while readers read).

Each event leaves as its export line (:func:`appliance.formats.chain.export_line`,
built from the row without re-encoding the payload); a test checks it is
byte-identical to ``canonical_bytes(Event.to_json())`` for every event type.
"""

from __future__ import annotations

from pathlib import Path

from appliance import queries
from appliance.formats.chain import export_line
from appliance.log import EventLog


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
        return [export_line(row) for row in queries.export_rows(self.log, since, limit)]

    def close(self) -> None:
        self.log.close()
