"""The sync agent's published state: the one file the till and the kiosk read.

The agent (its own process) rewrites ``DIR/sync/state.json`` atomically; the
core reads ``acked_seq`` from it to bound offline card exposure, and the kiosk
shows the rest in its status bar. Missing file = never synced.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from appliance.fsutil import atomic_write

STATE_FILE = "state.json"


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

    def to_json(self) -> dict:
        return asdict(self)


def read(sync_dir: Path) -> SyncState:
    try:
        data = json.loads((sync_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return SyncState()
    known = SyncState.__dataclass_fields__
    return SyncState(**{k: v for k, v in data.items() if k in known})


def write(sync_dir: Path, state: SyncState) -> None:
    sync_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(sync_dir / STATE_FILE, json.dumps(state.to_json(), sort_keys=True).encode())
