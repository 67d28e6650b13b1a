"""agent.db keeps the region's signed ack bytes, and older files gain the column in place."""

from __future__ import annotations

import sqlite3

from sync_agent.store import AgentStore

# The segments table as the first release created it (no ``ack`` column).
OLD_SCHEMA = """CREATE TABLE segments (
    first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL, id TEXT NOT NULL UNIQUE,
    prev TEXT NOT NULL, size INTEGER NOT NULL, data BLOB, sealed_ms INTEGER NOT NULL,
    acked_ms INTEGER)"""


def _columns(path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[1] for row in conn.execute("PRAGMA table_info(segments)")]
    finally:
        conn.close()


def test_old_agent_db_is_migrated_and_keeps_its_rows(tmp_path):
    path = tmp_path / "agent.db"
    conn = sqlite3.connect(path)
    conn.execute(OLD_SCHEMA)
    conn.execute("INSERT INTO segments VALUES (1, 4, 'a', 'g', 10, NULL, 1, 2)")
    conn.execute("INSERT INTO segments VALUES (5, 9, 'b', 'a', 11, x'0102', 3, NULL)")
    conn.commit()
    conn.close()
    assert "ack" not in _columns(path)
    store = AgentStore(path)
    try:
        assert _columns(path)[-1] == "ack"
        assert [s.id for s in store.unacked()] == ["b"] and store.data("b") == b"\x01\x02"
        assert store.ack("a") is None  # acked before acks were kept: no proof to invent
        assert store.mark_acked("b", b"TBAK-signed-bytes") == 5
        assert store.ack("b") == b"TBAK-signed-bytes" and store.data("b") is None
    finally:
        store.close()
    AgentStore(path).close()  # a second open finds the column and changes nothing
    assert _columns(path).count("ack") == 1


def test_ack_bytes_land_on_the_named_segment_and_the_first_one_stays(tmp_path):
    store = AgentStore(tmp_path / "agent.db")
    try:
        store.add(1, 3, "s1", "g", b"one")
        store.add(4, 6, "s2", "s1", b"two")
        assert store.mark_acked("s2", b"ack-of-s2") == 6  # covers s1 too
        assert store.ack("s2") == b"ack-of-s2" and store.ack("s1") is None
        assert store.mark_acked("s2", b"duplicate-ack") == 0
        assert store.ack("s2") == b"ack-of-s2"
        assert store.mark_acked("s1", b"late-ack-of-s1") == 0
        assert store.ack("s1") == b"late-ack-of-s1"
        assert store.mark_acked("nope", b"x") == 0 and store.ack("nope") is None
    finally:
        store.close()
