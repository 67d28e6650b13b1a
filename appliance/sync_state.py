"""The sync agent's published state, and what the till makes of it.

The agent (its own process) rewrites ``DIR/sync/state.json`` atomically, at least
every ``[sync] state_interval_s`` while it runs. The core reads only ``acked_seq``
from it as a fact (the edge's signed acks say so); what *waits* is counted from the
log itself (:func:`view`), so a till whose agent never ran, crashed or stopped still
shows every unsynced sale. The file adds throughput, the drain estimate and whether
the agent is alive. Missing file = never synced: acked 0, everything waits.

The file may lag the agent's own ``agent.db`` by one write; that only ever shows
more waiting, never less.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from appliance.boundedio import read_bounded
from appliance.datadir import DataDir
from appliance.errors import TillError
from appliance.fsutil import atomic_write

STATE_FILE = "state.json"
DEFAULT_INTERVAL_S = 5.0  # [sync] state_interval_s: the agent rewrites the file this often
STALE_INTERVALS = 3  # missed rewrites before the agent counts as not running


@dataclass
class SyncState:
    online: bool = False
    acked_seq: int = 0  # every event up to here is stored at the edge (its signed ack says so)
    last_seq: int = 0  # the log's tail when the state was written
    queued_events: int = 0
    queued_bytes: int = 0
    last_ack_wall_ms: int = 0
    drain_estimate_s: float | None = None  # from recent throughput; None when unknown
    updated_wall_ms: int = 0
    detail: str = ""
    running: bool = False  # False in the agent's last write as it stops

    def to_json(self) -> dict:
        return asdict(self)


MAX_STATE_BYTES = 64 * 1024  # the agent writes a few hundred bytes; read no more than this


def _fits(default: object, value: object) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if default is None or isinstance(default, float):
        return value is None or isinstance(value, int | float)
    return isinstance(value, type(default))


def read(sync_dir: Path) -> SyncState:
    """The agent's last write; a missing, oversized or garbled file reads as never synced."""
    try:
        data = json.loads(read_bounded(sync_dir / STATE_FILE, MAX_STATE_BYTES, "sync state"))
    except (TillError, ValueError):  # missing, unreadable, too large, not JSON
        return SyncState()
    if not isinstance(data, dict):
        return SyncState()
    defaults = SyncState()
    return SyncState(
        **{
            k: v
            for k, v in data.items()
            if k in SyncState.__dataclass_fields__ and _fits(getattr(defaults, k), v)
        }
    )


def write(sync_dir: Path, state: SyncState) -> None:
    sync_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(sync_dir / STATE_FILE, json.dumps(state.to_json(), sort_keys=True).encode())


def interval_s(section: dict[str, Any]) -> float:
    """``[sync] state_interval_s`` (the sync agent validates it when it starts)."""
    try:
        value = float(section.get("state_interval_s", DEFAULT_INTERVAL_S))
    except (TypeError, ValueError):
        return DEFAULT_INTERVAL_S
    return value if value > 0 else DEFAULT_INTERVAL_S


@dataclass(frozen=True)
class SyncView:
    """The truth about syncing: the log's tail, the acked seq, and the agent's pulse."""

    state: SyncState
    last_seq: int  # the log's tail now
    acked_seq: int
    agent_running: bool
    stopped_since_ms: int  # when the agent last wrote (0: it never ran here)

    @property
    def waiting(self) -> int:
        # The log's seqs are gapless (a trigger enforces it), so this is a count of events.
        return self.last_seq - self.acked_seq

    @property
    def online(self) -> bool:
        return self.agent_running and self.state.online

    @property
    def drain_estimate_s(self) -> float | None:
        return self.state.drain_estimate_s if self.agent_running else None

    def agent_note(self, now_ms: int | None = None) -> str:
        """Empty while the agent runs; else "sync agent not running since 14:02" (local)."""
        if self.agent_running:
            return ""
        if not self.stopped_since_ms:
            return "sync agent has not run on this till yet"
        return f"sync agent not running since {self.stopped_at_text(now_ms)}"

    def stopped_at_text(self, now_ms: int | None = None) -> str:
        """The agent's last write in local time: "14:02" today, else "2026-11-30 14:02"."""
        when = datetime.fromtimestamp(self.stopped_since_ms / 1000)
        today = datetime.fromtimestamp((now_ms or _now_ms()) / 1000).date()
        return when.strftime("%H:%M") if when.date() == today else when.strftime("%Y-%m-%d %H:%M")

    def to_json(self) -> dict[str, Any]:
        return {
            "online": self.online,
            "acked_seq": self.acked_seq,
            "last_seq": self.last_seq,
            "waiting": self.waiting,
            "agent_running": self.agent_running,
            "agent_stopped_wall_ms": 0 if self.agent_running else self.stopped_since_ms,
            "agent_note": self.agent_note(),
            "drain_estimate_s": self.drain_estimate_s,
            "queued_bytes": self.state.queued_bytes if self.agent_running else None,
            "last_ack_wall_ms": self.state.last_ack_wall_ms,
            "updated_wall_ms": self.state.updated_wall_ms,
            "detail": self.state.detail,
        }


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def view(
    sync_dir: Path, last_seq: int, *, interval_s: float, now_ms: int | None = None
) -> SyncView:
    """Combine the log's tail with the agent's file; stale after STALE_INTERVALS rewrites."""
    state = read(sync_dir)
    now = _now_ms() if now_ms is None else now_ms
    age_ms = abs(now - state.updated_wall_ms)  # a clock stepped back counts as stale too
    running = (
        state.running
        and state.updated_wall_ms > 0
        and age_ms <= STALE_INTERVALS * interval_s * 1000
    )
    # A log restored from the region can be shorter than what was once acked.
    acked = max(0, min(int(state.acked_seq), last_seq))
    return SyncView(state, last_seq, acked, running, state.updated_wall_ms)


def view_for(data_dir: DataDir, now_ms: int | None = None) -> SyncView:
    """:func:`view` for a data folder, reading the log's tail read-only."""
    from appliance.log import EventLog

    log = EventLog.open(data_dir.log_path, readonly=True)
    try:
        last_seq = log.last()[0]
    finally:
        log.close()
    section = data_dir.load_config().section("sync")
    return view(data_dir.sync_dir, last_seq, interval_s=interval_s(section), now_ms=now_ms)
