"""The agent's own durable state: ``DIR/sync/agent.db`` (SQLite, WAL, synchronous=FULL).

What is sealed (the exact segment bytes, kept until the edge acks them), what is
acked, and the chain tip. Every change is one committed transaction, so a
SIGKILL at any instant leaves either the old or the new state, and a restart
resends exactly the unacked segments with the very bytes sent before (a
re-sealed segment would get a new id and break the chain the edge holds).
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.formats.chain import GENESIS_HASH

_DDL = [
    """CREATE TABLE IF NOT EXISTS segments (
        first_seq INTEGER PRIMARY KEY,
        last_seq  INTEGER NOT NULL,
        id        TEXT NOT NULL UNIQUE,
        prev      TEXT NOT NULL,
        size      INTEGER NOT NULL,
        data      BLOB,
        sealed_ms INTEGER NOT NULL,
        acked_ms  INTEGER,
        ack       BLOB
    )""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
]


@dataclass(frozen=True)
class Sealed:
    first_seq: int
    last_seq: int
    id: str
    prev: str
    size: int


def private_file(path: Path) -> None:
    """Create ``path`` 0640 if missing, and take others' access away if it has any.

    agent.db holds every sale (in its segments) and the acks: its service writes it,
    the tillbox group reads it (``tillbox inspect export``), nobody else.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        mode = os.fstat(fd).st_mode & 0o777
        if mode & 0o007:
            os.fchmod(fd, mode & 0o770)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists() and side.stat().st_mode & 0o007:
            os.chmod(side, side.stat().st_mode & 0o770)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class AgentStore:
    def __init__(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        private_file(path)  # before SQLite opens it: its -wal and -shm inherit the mode
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        for statement in _DDL:
            self.conn.execute(statement)
        self._migrate()

    def _migrate(self) -> None:
        """Bring an agent.db written by an older agent up to this schema, in place.

        ``ack`` (the region's signed ack bytes, the inspection bundle's proof) came
        after the first release. The check runs again inside the write transaction,
        so two processes opening the same old file at once cannot both add it.
        """
        if self._has_ack_column():
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            if not self._has_ack_column():
                self.conn.execute("ALTER TABLE segments ADD COLUMN ack BLOB")
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def _has_ack_column(self) -> bool:
        return any(row[1] == "ack" for row in self.conn.execute("PRAGMA table_info(segments)"))

    def close(self) -> None:
        self.conn.close()

    # -- meta -------------------------------------------------------------------------------
    def get(self, key: str, default: str = "") -> str:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def put(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def bump(self, key: str, by: int = 1) -> int:
        value = int(self.get(key, "0")) + by
        self.put(key, str(value))
        return value

    def counters(self, prefixes: tuple[str, ...]) -> dict[str, int]:
        """Every meta counter whose key starts with one of ``prefixes``, by key."""
        rows = self.conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall()
        return {key: int(value) for key, value in rows if key.startswith(prefixes)}

    # -- the chain --------------------------------------------------------------------------
    def base(self) -> tuple[int, str]:
        """Where sealing restarts after a rebase onto the edge's tip (0, genesis otherwise)."""
        seq = int(self.get("base_seq", "0"))
        return seq, self.get("base_id", GENESIS_HASH)

    def tip(self) -> tuple[int, str]:
        """(last sealed seq, id of the last segment): where the next segment continues."""
        row = self.conn.execute(
            "SELECT last_seq, id FROM segments ORDER BY first_seq DESC LIMIT 1"
        ).fetchone()
        base = self.base()
        # <=: a local segment that ends exactly at the rebase point is not the edge's tip
        # (it was cut differently); continuing from it would be NACKed for ever
        if row is None or row[0] <= base[0]:
            return base
        return row[0], row[1]

    def add(self, first_seq: int, last_seq: int, seg_id: str, prev: str, data: bytes) -> None:
        self.conn.execute(
            "INSERT INTO segments (first_seq, last_seq, id, prev, size, data, sealed_ms) "
            "VALUES (?,?,?,?,?,?,?)",
            (first_seq, last_seq, seg_id, prev, len(data), data, _now_ms()),
        )

    def unacked(self) -> list[Sealed]:
        return [
            Sealed(*row)
            for row in self.conn.execute(
                "SELECT first_seq, last_seq, id, prev, size FROM segments "
                "WHERE acked_ms IS NULL ORDER BY first_seq"
            )
        ]

    def data(self, seg_id: str) -> bytes | None:
        row = self.conn.execute("SELECT data FROM segments WHERE id = ?", (seg_id,)).fetchone()
        return row[0] if row else None

    def by_id(self, seg_id: str) -> Sealed | None:
        row = self.conn.execute(
            "SELECT first_seq, last_seq, id, prev, size FROM segments WHERE id = ?", (seg_id,)
        ).fetchone()
        return Sealed(*row) if row else None

    def mark_acked(self, seg_id: str, ack: bytes | None = None) -> int:
        """Mark ``seg_id`` and every segment before it acked; return events newly acked.

        The edge stores a device's segments only in chain order, so its signed ack
        of a segment also proves every earlier one is stored (an earlier ack may
        simply have been lost). ``ack`` is that signed ack exactly as received
        (already verified against the region key): it is kept on ``seg_id``'s row,
        in the same transaction, as the proof the inspection bundle exports. The
        first ack kept for a segment stays (a later duplicate proves the same).
        """
        row = self.conn.execute("SELECT first_seq FROM segments WHERE id = ?", (seg_id,)).fetchone()
        if row is None:
            return 0
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            newly = self.conn.execute(
                "SELECT COALESCE(SUM(last_seq - first_seq + 1), 0) FROM segments "
                "WHERE first_seq <= ? AND acked_ms IS NULL",
                (row[0],),
            ).fetchone()[0]
            self.conn.execute(
                "UPDATE segments SET acked_ms = ?, data = NULL "
                "WHERE first_seq <= ? AND acked_ms IS NULL",
                (_now_ms(), row[0]),
            )
            if ack is not None:
                self.conn.execute(
                    "UPDATE segments SET ack = ? WHERE id = ? AND ack IS NULL", (ack, seg_id)
                )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return newly

    def ack(self, seg_id: str) -> bytes | None:
        """The region's signed ack kept for ``seg_id`` (None: none kept)."""
        row = self.conn.execute("SELECT ack FROM segments WHERE id = ?", (seg_id,)).fetchone()
        return bytes(row[0]) if row and row[0] is not None else None

    def rebase(self, seq: int, seg_id: str) -> None:
        """Adopt the edge's tip: drop local segments past ``seq``, continue from there."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute("DELETE FROM segments WHERE last_seq > ?", (seq,))
            self.conn.execute(
                "UPDATE segments SET acked_ms = COALESCE(acked_ms, ?), data = NULL", (_now_ms(),)
            )
            self.put("base_seq", str(seq))
            self.put("base_id", seg_id)
            self.put("base_ms", str(_now_ms()))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def acked_seq(self) -> int:
        row = self.conn.execute(
            "SELECT MAX(last_seq) FROM segments WHERE acked_ms IS NOT NULL"
        ).fetchone()
        return max(row[0] or 0, self.base()[0])

    def last_ack_ms(self) -> int:
        row = self.conn.execute("SELECT MAX(acked_ms) FROM segments").fetchone()
        return max(row[0] or 0, int(self.get("base_ms", "0")))

    def segment_counts(self) -> dict[str, int]:
        """How many sealed segments wait for the edge's ack, and how many it acked."""
        row = self.conn.execute(
            "SELECT SUM(acked_ms IS NULL), SUM(acked_ms IS NOT NULL) FROM segments"
        ).fetchone()
        return {"unacked": row[0] or 0, "acked": row[1] or 0}

    def unacked_bytes(self) -> int:
        row = self.conn.execute(
            "SELECT COALESCE(SUM(size), 0) FROM segments WHERE acked_ms IS NULL"
        ).fetchone()
        return row[0]

    def bytes_per_event(self) -> float | None:
        row = self.conn.execute(
            "SELECT SUM(size), SUM(last_seq - first_seq + 1) FROM "
            "(SELECT size, first_seq, last_seq FROM segments ORDER BY first_seq DESC LIMIT 20)"
        ).fetchone()
        return row[0] / row[1] if row[1] else None
