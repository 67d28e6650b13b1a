"""Shared fixtures: a real demo till on disk with sales, and probes that behave.

The helpers behind them live in compliance/testing.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from appliance import keys
from appliance.datadir import DataDir
from appliance.formats import wire
from appliance.formats.canonical import canonical_bytes
from appliance.formats.chain import GENESIS_HASH, event_hash
from appliance.log import EventLog
from compliance.testing import (
    REGION,
    REGION_PUB,
    FakeProbes,
    enroll_till,
    jpeg_bytes,
    set_region_key,
    till_with_sales,
)
from sync_agent.store import AgentStore


@pytest.fixture
def probes() -> FakeProbes:
    return FakeProbes()


@pytest.fixture
def till_dir(tmp_path: Path) -> DataDir:
    return till_with_sales(tmp_path / "till")


@pytest.fixture
def permit_file(tmp_path: Path) -> Path:
    path = tmp_path / "permit.pdf"
    path.write_bytes(b"%PDF-1.4\n% market trading permit TP-2291\n")
    return path


@pytest.fixture
def photo_file(tmp_path: Path) -> Path:
    path = tmp_path / "engraver.jpg"
    path.write_bytes(jpeg_bytes())
    return path


@pytest.fixture
def enrolled(till_dir: DataDir, permit_file: Path, photo_file: Path) -> DataDir:
    enroll_till(till_dir, permit_file, photo_file)
    return till_dir


@pytest.fixture
def make_probes() -> type[FakeProbes]:
    """The FakeProbes class, for tests that need several differently broken rigs."""
    return FakeProbes


@pytest.fixture
def enroll_with() -> Callable[..., dict]:
    """enroll_till(ddir, permit, photo, probes=None, expires=...)."""
    return enroll_till


def tamper_log(path: Path, *edits: tuple[str, tuple], rechain: bool = True) -> None:
    """Edit a closed till's log as an attacker with the file would: past the append-only
    triggers and, with ``rechain``, recomputing every hash so the chain hides the edit."""
    conn = sqlite3.connect(path)
    triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type='trigger'").fetchall()
    for name, _sql in triggers:
        conn.execute(f"DROP TRIGGER {name}")
    for sql, params in edits:
        conn.execute(sql, params)
    conn.commit()
    log = EventLog.open(path, readonly=True)
    events = list(log.events()) if rechain else []
    log.close()
    prev = GENESIS_HASH
    for event in events:
        digest = event_hash({**event.envelope(), "prev": prev})
        conn.execute(
            "UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, event.seq)
        )
        prev = digest
    for _name, sql in triggers:
        conn.execute(sql)
    conn.commit()
    conn.close()


@pytest.fixture
def tamper() -> Callable[..., None]:
    """tamper_log(path, (sql, params), ..., rechain=True): edit the log, re-chain it."""
    return tamper_log


def seal_ack(
    key: SigningKey, device: str, seg_id: str, first: int, last: int, nonce: str = ""
) -> bytes:
    """A region's signed ack of segment ``seg_id`` (``nonce`` empty: a v1 ack)."""
    ack = wire.Ack("demo", device, "ack", seg_id, first, last, last, seg_id, nonce=nonce)
    return wire.seal_ack(key, ack)


@pytest.fixture(name="seal_ack")
def seal_ack_fixture() -> Callable[..., bytes]:
    """seal_ack(key, device, seg_id, first, last, nonce=""): a region's signed ack."""
    return seal_ack


def seal_agent_segments(ddir: DataDir, ranges: list[tuple[int, int]]) -> list[str]:
    """Seal the log's events in ``ranges`` as the agent does, kept unacked in its
    agent.db (each segment chained to the one before); the segments' ids."""
    log = EventLog.open(ddir.log_path, readonly=True)
    lines = [canonical_bytes(e.to_json()) for e in log.events()]
    log.close()
    device_key = keys.load_signing_key(ddir.private_key_path)
    store = AgentStore(ddir.sync_dir / "agent.db")
    ids: list[str] = []
    for first, last in ranges:
        prev = ids[-1] if ids else GENESIS_HASH
        data = wire.seal_segment(
            device_key,
            tenant="demo",
            device=log.device_id,
            first_seq=first,
            last_seq=last,
            prev=prev,
            lines=lines[first - 1 : last],
        )
        store.add(first, last, wire.segment_id(data), prev, data)
        ids.append(wire.segment_id(data))
    store.close()
    return ids


@pytest.fixture
def seal_segments() -> Callable[[DataDir, list[tuple[int, int]]], list[str]]:
    """seal_agent_segments(ddir, [(first, last), ...]) -> the segment ids."""
    return seal_agent_segments


@pytest.fixture
def synced(till_dir: DataDir) -> tuple[DataDir, list[str]]:
    """till-1 whose agent sealed three segments; the region acked the first two."""
    last_seq = _log_tail(till_dir)
    ids = seal_agent_segments(till_dir, [(1, 3), (4, 6), (7, last_seq)])
    store = AgentStore(till_dir.sync_dir / "agent.db")
    # an agent before ack binding kept a v1 ack (no nonce), a current one a v2
    store.mark_acked(ids[0], seal_ack(REGION, "till-1", ids[0], 1, 3))
    store.mark_acked(ids[1], seal_ack(REGION, "till-1", ids[1], 4, 6, "ab" * 16))
    store.close()
    set_region_key(till_dir, REGION_PUB)
    return till_dir, ids


def _log_tail(ddir: DataDir) -> int:
    log = EventLog.open(ddir.log_path, readonly=True)
    try:
        return log.last()[0]
    finally:
        log.close()
