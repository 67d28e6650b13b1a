"""What waits to sync is counted from the log; the agent's file only adds its pulse."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

from appliance import sync_state
from appliance.datadir import DataDir
from appliance.pricing import CartLine
from appliance.sync_state import SyncState


def tail(ddir: DataDir) -> int:
    """The log's highest seq, read with sqlite3 directly."""
    conn = sqlite3.connect(ddir.log_path)
    try:
        return conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
    finally:
        conn.close()


def ms(*when: int) -> int:
    return int(datetime(*when).timestamp() * 1000)


def test_a_till_that_never_synced_waits_for_every_event(till):
    for _ in range(3):
        till.sell([CartLine("CAFE", 1)], "card")
    view = till.sync_view()
    assert (view.acked_seq, view.waiting) == (0, tail(till.data_dir))
    assert not view.agent_running and not view.online
    assert view.agent_note() == "sync agent has not run on this till yet"


def test_waiting_ignores_the_agents_own_count(till):
    till.sell([CartLine("CAFE", 1)], "cash")
    now = ms(2026, 12, 1, 9, 30)
    # An agent that crashed mid-way left "online, 0 queued" behind at 09:00.
    stale = SyncState(
        online=True,
        acked_seq=2,
        queued_events=0,
        updated_wall_ms=ms(2026, 12, 1, 9, 0),
        running=True,
        drain_estimate_s=0.0,
    )
    sync_state.write(till.data_dir.sync_dir, stale)
    view = till.sync_view(now_ms=now)
    assert view.waiting == tail(till.data_dir) - 2 > 0
    assert not view.agent_running and not view.online and view.drain_estimate_s is None
    assert view.agent_note(now) == "sync agent not running since 09:00"
    # The same file written 10 s ago (2 of 3 intervals): the agent is alive.
    sync_state.write(
        till.data_dir.sync_dir, SyncState(**{**stale.to_json(), "updated_wall_ms": now - 10_000})
    )
    assert till.sync_view(now_ms=now).agent_running
    # ...unless its last write said it was stopping.
    sync_state.write(
        till.data_dir.sync_dir,
        SyncState(**{**stale.to_json(), "updated_wall_ms": now - 1000, "running": False}),
    )
    assert not till.sync_view(now_ms=now).agent_running


def test_staleness_follows_the_configured_interval(till):
    now = ms(2026, 12, 1, 14, 0)
    sync_state.write(till.data_dir.sync_dir, SyncState(updated_wall_ms=now - 40_000, running=True))
    assert not till.sync_view(now_ms=now).agent_running  # 3 x 5 s by default
    config = till.data_dir.load_config()
    config.update("sync", state_interval_s=20)
    till.data_dir.save_config(config)
    till.config = till.data_dir.load_config()
    assert till.sync_view(now_ms=now).agent_running  # 40 s < 3 x 20 s


def test_an_older_stop_names_the_day(till):
    sync_state.write(
        till.data_dir.sync_dir, SyncState(updated_wall_ms=ms(2026, 11, 28, 14, 2), running=True)
    )
    view = till.sync_view(now_ms=ms(2026, 12, 1, 8, 0))
    assert view.agent_note(ms(2026, 12, 1, 8, 0)) == "sync agent not running since 2026-11-28 14:02"


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[1, 2]",
        json.dumps({"acked_seq": "9", "running": "yes"}).encode(),
        b" " * (sync_state.MAX_STATE_BYTES + 10) + b"{}",
    ],
)
def test_a_garbled_state_file_reads_as_never_synced(till, content):
    till.data_dir.sync_dir.mkdir(parents=True, exist_ok=True)
    (till.data_dir.sync_dir / sync_state.STATE_FILE).write_bytes(content)
    view = till.sync_view()
    assert view.acked_seq == 0 and view.waiting == tail(till.data_dir)
    assert not view.agent_running


def test_an_acked_seq_beyond_a_restored_log_is_clamped(till):
    sync_state.write(till.data_dir.sync_dir, SyncState(acked_seq=10_000))
    assert till.sync_view().waiting == 0


def test_cli_sync_status_with_no_agent_tells_the_truth(cli, data_dir):
    d = str(data_dir.root)
    assert cli("shift", "open", "--data-dir", d).code == 0
    for _ in range(2):
        assert cli("sale", "--data-dir", d, "--item", "CAFE", "--pay", "card").code == 0
    last = tail(data_dir)
    out = cli("sync", "status", "--data-dir", d)
    assert out.code == 0
    lines = out.out.splitlines()
    assert lines[0] == f"offline: {last} events waiting, acked up to seq 0 of {last}"
    assert lines[1].startswith("sync agent has not run on this till yet; start it")
    info = cli("sync", "status", "--data-dir", d, "--json").json()
    assert (info["waiting"], info["queued_events"], info["agent_running"]) == (last, last, False)


def test_cli_sync_status_after_the_agent_stopped(cli, data_dir):
    d = str(data_dir.root)
    stopped = datetime.now().replace(second=0, microsecond=0)
    state = SyncState(
        acked_seq=1,
        queued_events=0,
        updated_wall_ms=int(stopped.timestamp() * 1000) - 60_000,
        running=True,
    )
    sync_state.write(Path(d) / "sync", state)
    out = cli("sync", "status", "--data-dir", d).out.splitlines()
    last = tail(data_dir)
    assert out[0] == f"offline: {last - 1} events waiting, acked up to seq 1 of {last}"
    since = datetime.fromtimestamp(state.updated_wall_ms / 1000)
    stamp = (
        since.strftime("%H:%M")
        if since.date() == datetime.now().date()
        else since.strftime("%Y-%m-%d %H:%M")
    )
    assert out[1].startswith(f"sync agent not running since {stamp}; start it")
