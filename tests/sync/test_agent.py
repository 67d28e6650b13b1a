"""The agent on its own: exact export bytes, published state, lost state, the CLI."""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime

import pytest
import tomli_w

from appliance import sync_state
from appliance.formats.canonical import canonical_bytes
from appliance.pricing import CartLine
from appliance.till import Till
from edge.broker import free_port
from sync_agent.reader import LogReader
from systest.sync import (
    agent_proc,
    check_exactly_once,
    edge_proc,
    edge_ready,
    enroll,
    make_till,
    read_state,
    run_tillbox,
    sell,
    sync_once,
    wait_for,
)


def test_reader_lines_are_exactly_the_export_form(tmp_path, region):
    till = make_till(tmp_path, "t1", region)
    sell(till, 8)
    with Till.open(till) as t:
        t.record("drawer.opened", {"reason": "float", "note": 'Łódź "quoted"\n\t\u0001'})
        t.close_shift()
        events = list(t.log.events())
    reader = LogReader(till.log_path)
    try:
        lines = reader.lines(0, 1000)
        assert reader.tail() == (events[-1].seq, events[-1].hash)
        assert reader.lines(3, 2) == lines[3:5]
    finally:
        reader.close()
    assert {e.type for e in events} >= {
        "device.initialised",
        "catalog.applied",
        "shift.opened",
        "sale.completed",
        "refund.issued",
        "drawer.opened",
        "shift.closed",
    }
    assert lines == [canonical_bytes(e.to_json()) for e in events]


def test_no_broker_or_no_region_key_is_one_actionable_line(tmp_path, region):
    till = make_till(tmp_path, "t1", region)
    done = run_tillbox("sync", "--data-dir", str(till.root), "--once", "--timeout", "1")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "--broker" in done.stderr
    done = run_tillbox("sync", "--data-dir", str(till.root), "--broker", "http://x", "--once")
    assert done.returncode == 1 and "mqtt://HOST:PORT" in done.stderr
    config = till.load_config()
    config.update("sync", region_public_key="")
    till.config_path.write_text(tomli_w.dumps(config.data))
    done = run_tillbox(
        "sync", "--data-dir", str(till.root), "--broker", "mqtt://127.0.0.1:1", "--once"
    )
    assert done.returncode == 1 and "region_public_key" in done.stderr
    assert done.stderr.count("\n") == 1


def test_offline_state_counts_queue_and_never_leaks_the_password(tmp_path, region):
    till = make_till(tmp_path, "t1", region, password="s3cret-pw")
    last = sell(till, 12)
    port = free_port()
    # A password in the URL is refused (every local user sees it in `ps`), unechoed.
    leaky = f"mqtt://t1:url-secret@127.0.0.1:{port}"
    refused = run_tillbox("sync", "--data-dir", str(till.root), "--broker", leaky, "--once")
    assert refused.returncode == 1 and "password_file" in refused.stderr
    assert "url-secret" not in refused.stderr and refused.stderr.count("\n") == 1
    dead = f"mqtt://t1@127.0.0.1:{port}"
    done = run_tillbox("sync", "--data-dir", str(till.root), "--broker", dead, "--timeout", "1.5")
    assert done.returncode == 1  # --timeout without --once: ran, stopped, not drained
    state = read_state(till)
    assert state["online"] is False
    assert state["acked_seq"] == 0 and state["last_seq"] == last
    assert state["queued_events"] == last and state["queued_bytes"] > 0
    assert "offline" in state["detail"]
    assert "s3cret-pw" not in done.stderr + json.dumps(state)
    assert "url-secret" not in done.stderr + json.dumps(state)
    status = run_tillbox("sync", "status", "--data-dir", str(till.root))
    assert status.returncode == 0
    assert status.stdout.startswith(f"offline: {last} events")
    # The agent's last write says it stopped: the status names when, in local time.
    assert state["running"] is False
    stopped = datetime.fromtimestamp(state["updated_wall_ms"] / 1000).strftime("%H:%M")
    assert status.stdout.splitlines()[1].startswith(f"sync agent not running since {stopped}")


def test_a_killed_agent_is_reported_not_running_after_a_few_intervals(tmp_path, region):
    """SIGKILL leaves "running" in state.json; its age alone tells the truth."""
    till = make_till(tmp_path, "t1", region)
    config = till.load_config()
    config.update("sync", state_interval_s=0.5)
    till.config_path.write_text(tomli_w.dumps(config.data))
    last = sell(till, 5)
    agent = agent_proc(till, f"mqtt://127.0.0.1:{free_port()}").start()
    try:
        state_file = till.sync_dir / sync_state.STATE_FILE
        wait_for(lambda: sync_state.read(till.sync_dir).running, 20, "the agent's state")
        assert state_file.is_file()
        alive = run_tillbox("sync", "status", "--data-dir", str(till.root), "--json")
        info = json.loads(alive.stdout)
        assert info["agent_running"] is True and info["agent_note"] == ""
        assert info["waiting"] == last  # nothing acked: every event waits
    finally:
        agent.kill()
    written = read_state(till)["updated_wall_ms"]
    assert read_state(till)["running"] is True  # killed: no last write
    wait_for(lambda: time.time() * 1000 - written > 3 * 500 + 200, 10, "three intervals to pass")
    dead = run_tillbox("sync", "status", "--data-dir", str(till.root))
    stamp = datetime.fromtimestamp(written / 1000).strftime("%H:%M")
    assert dead.stdout.splitlines() == [
        f"offline: {last} events waiting, acked up to seq 0 of {last}",
        f"sync agent not running since {stamp}; start it (`systemctl start tillbox-sync`) "
        "so the sales reach the region",
        read_state(till)["detail"],
    ]


@pytest.mark.slow
def test_sync_bounds_card_exposure_and_estimates_drain(tmp_path, broker, db_url, region):
    till = make_till(tmp_path, "t1", region, card_limit_minor=5000)
    with Till.open(till) as t:
        t.sell([CartLine("TEE-M", 2)], "card")  # 40.00 of the 50.00 allowed offline
        with pytest.raises(Exception, match="unsynced card payments"):
            t.sell([CartLine("TEE-L", 1)], "card")
    enroll(db_url, till)
    edge = edge_proc(tmp_path, db_url, broker.url, region).start()
    try:
        wait_for(lambda: edge_ready(edge), 20, "the edge")
        done = sync_once(till, broker.url, 30)
        assert done.returncode == 0, done.stderr
        with Till.open(till) as t:
            assert t.card_exposure_minor() == 0  # the core reads acked_seq from the agent
            t.sell([CartLine("TEE-L", 1)], "card")
        sell(till, 30, refund_every=0, card_every=0)
        # offline again: the estimate comes from the throughput measured while online
        dead = f"mqtt://127.0.0.1:{free_port()}"
        run_tillbox("sync", "--data-dir", str(till.root), "--broker", dead, "--timeout", "1")
        state = sync_state.read(till.sync_dir)
        assert state.queued_events == 31 and not state.online
        assert state.drain_estimate_s is not None and state.drain_estimate_s > 0
    finally:
        edge.stop()


@pytest.mark.slow
def test_lost_agent_state_rebases_on_the_edges_signed_tip(tmp_path, broker, db_url, region):
    till = make_till(tmp_path, "t1", region, segment_max_events=20)
    sell(till, 60)
    enroll(db_url, till)
    edge = edge_proc(tmp_path, db_url, broker.url, region).start()
    try:
        wait_for(lambda: edge_ready(edge), 20, "the edge")
        assert agent_proc(till, broker.url, "--once", "--timeout", "30").start().wait(40) == 0
        shutil.rmtree(till.sync_dir)  # the SD card's sync folder is lost ...
        config = till.load_config()
        config.update("sync", segment_max_events=7)  # ... and segments cut differently
        till.config_path.write_text(tomli_w.dumps(config.data))
        sell(till, 10)
        agent = agent_proc(till, broker.url, "--once", "--timeout", "30").start()
        assert agent.wait(40) == 0, agent.log()[-2000:]
        assert "rebasing onto the edge's tip" in agent.log()
    finally:
        edge.stop()
    stats = check_exactly_once(db_url, [till])
    assert stats["rejected"].get("overlap", 0) >= 1


def test_edge_commands_fail_with_one_actionable_line(tmp_path):
    cases = [
        (["edge", "stats", "--db", "mysql://x"], "sqlite:///PATH"),
        (
            [
                "edge",
                "serve",
                "--db",
                f"sqlite:///{tmp_path}/e.db",
                "--broker",
                "mqtt://127.0.0.1:1",
            ],
            "tillbox edge keygen",
        ),
        (
            [
                "edge",
                "serve",
                "--db",
                f"sqlite:///{tmp_path}/e.db",
                "--broker",
                "mqtt://127.0.0.1:1",
                "--key",
                str(tmp_path / "missing.key"),
            ],
            "does not exist",
        ),
        (
            [
                "edge",
                "enroll",
                "--db",
                f"sqlite:///{tmp_path}/e.db",
                "--device-id",
                "t1",
                "--public-key",
                "zz",
            ],
            "64-hex-digit",
        ),
        (
            [
                "edge",
                "enroll",
                "--db",
                f"sqlite:///{tmp_path}/e.db",
                "--device-id",
                "region",
                "--public-key",
                "00" * 32,
            ],
            "reserved",
        ),
    ]
    for args, hint in cases:
        done = run_tillbox(*args)
        assert done.returncode == 1, args
        assert done.stderr.count("\n") == 1 and hint in done.stderr, (args, done.stderr)


def test_enrolling_again_is_idempotent_but_a_new_key_is_refused(tmp_path):
    db = f"sqlite:///{tmp_path}/e.db"
    first = run_tillbox(
        "edge", "enroll", "--db", db, "--device-id", "t1", "--public-key", "11" * 32, "--json"
    )
    again = run_tillbox(
        "edge", "enroll", "--db", db, "--device-id", "t1", "--public-key", "11" * 32, "--json"
    )
    assert json.loads(first.stdout)["already_enrolled"] is False
    assert json.loads(again.stdout)["already_enrolled"] is True
    other = run_tillbox(
        "edge", "enroll", "--db", db, "--device-id", "t1", "--public-key", "22" * 32
    )
    assert other.returncode == 1 and "another key" in other.stderr
