"""`tillbox sync --once` and `tillbox edge serve` over a real mosquitto move the log."""

from __future__ import annotations

import json

import pytest

from appliance.catalog import demo_catalog
from appliance.formats import wire
from appliance.formats.brokerurl import BrokerURL
from appliance.till import Till
from edge.publish import send_bytes
from systest.sync import (
    ADMIN_PASSWORD,
    PUBLISHER_PASSWORD,
    PUBLISHER_USER,
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

pytestmark = pytest.mark.slow


def test_once_moves_two_tills_to_the_edge(tmp_path, broker, any_db, region):
    tills = [make_till(tmp_path, d, region) for d in ("t1", "t2")]
    for n, till in zip((120, 45), tills, strict=True):
        sell(till, n)
    enroll(any_db, *tills)
    edge = edge_proc(tmp_path, any_db, broker.url, region).start()
    try:
        wait_for(lambda: edge_ready(edge), 20, "the edge to subscribe")
        for till in tills:
            done = sync_once(till, broker.url, 40)
            assert done.returncode == 0, done.stderr[-2000:]
        stats = check_exactly_once(any_db, tills)
        assert {d["device_id"]: d["segments_rejected"] for d in stats["devices"]} == {
            "t1": 0,
            "t2": 0,
        }
        for till in tills:
            state = read_state(till)
            assert state["acked_seq"] == state["last_seq"] > 40
            assert (state["queued_events"], state["online"]) == (0, False)
        status = run_tillbox("sync", "status", "--data-dir", str(tills[0].root), "--json")
        info = json.loads(status.stdout)
        assert info["queued_events"] == 0 and info["segments"]["unacked"] == 0
        assert info["acked_seq"] == info["last_seq"]
        stats_cli = json.loads(run_tillbox("edge", "stats", "--db", any_db, "--json").stdout)
        assert [d["events_stored"] for d in stats_cli["devices"]] == [
            info["last_seq"],
            read_state(tills[1])["last_seq"],
        ]
    finally:
        edge.stop()
    assert edge.proc.returncode == 0


def test_region_catalog_update_is_verified_then_applied(tmp_path, broker, db_url, region):
    till = make_till(tmp_path, "t1", region)
    enroll(db_url, till)
    catalog = demo_catalog().to_json()
    catalog["version"] = "region-7"
    catalog["items"][0]["price_minor"] = 1300
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    (tmp_path / "publisher-pw").write_text(PUBLISHER_PASSWORD)
    published = run_tillbox(
        "edge",
        "publish-update",
        "--broker",
        broker.url,
        "--username",
        PUBLISHER_USER,
        "--password-file",
        str(tmp_path / "publisher-pw"),
        "--key",
        str(region.key_path),
        "--tenant",
        "demo",
        "--catalog",
        str(tmp_path / "catalog.json"),
        "--version",
        "7",
        "--json",
    )
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["topic"] == "tillbox/v1/demo/region/catalog"
    edge = edge_proc(tmp_path, db_url, broker.url, region).start()
    agent = agent_proc(till, broker.url).start()
    try:

        def catalog_version():
            with Till.open(till) as t:
                return t.catalog().version

        wait_for(lambda: catalog_version() == "region-7", 20, "the region catalog")
        with Till.open(till) as t:
            applied = [e for e in t.log.events() if e.type == "catalog.applied"]
            assert applied[-1].payload["source"] == "region"
            assert t.catalog().items["MUG-01"].price_minor == 1300
        # A forged update (another key) on the same topic: refused, counted, not applied.
        from nacl.signing import SigningKey

        forged = wire.seal_update(
            SigningKey.generate(),
            wire.RegionUpdate("demo", "catalog", 8, 0, {**catalog, "version": "forged"}),
        )
        send_bytes(
            BrokerURL.parse(broker.url),
            "tillbox-test-admin",
            ADMIN_PASSWORD,
            wire.topic_region("demo"),
            forged,
            retain=True,
        )

        def rejected():
            info = json.loads(
                run_tillbox("sync", "status", "--data-dir", str(till.root), "--json").stdout
            )
            return info["counters"].get("updates_rejected.bad_signature") == 1

        wait_for(rejected, 20, "the forged update to be counted")
        assert catalog_version() == "region-7"
        assert agent.alive()
        # the applied catalog event itself syncs up like any other event
        wait_for(
            lambda: (
                read_state(till)["queued_events"] == 0
                and read_state(till)["acked_seq"] == read_state(till)["last_seq"]
            ),
            20,
            "the catalog event to be acked",
        )
    finally:
        agent.stop()
        edge.stop()
    assert ADMIN_PASSWORD not in agent.log() and "pw-t1" not in agent.log()


def test_services_tell_systemd_ready_and_ping_the_watchdog(tmp_path, broker, db_url, region):
    import socket

    till = make_till(tmp_path, "t1", region)
    enroll(db_url, till)
    sockets = {}
    for name in ("edge", "agent"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(tmp_path / f"{name}.notify"))
        sock.settimeout(15)
        sockets[name] = sock
    env = {"WATCHDOG_USEC": "400000"}  # ping every 0.2 s
    edge = edge_proc(tmp_path, db_url, broker.url, region)
    edge.env.update(env, NOTIFY_SOCKET=str(tmp_path / "edge.notify"))
    agent = agent_proc(till, broker.url)
    agent.env.update(env, NOTIFY_SOCKET=str(tmp_path / "agent.notify"))
    edge.start()
    agent.start()
    try:
        for name, sock in sockets.items():
            messages = [sock.recv(100) for _ in range(4)]
            assert b"READY=1" in messages, (name, messages)
            assert messages.count(b"WATCHDOG=1") >= 2, (name, messages)
    finally:
        agent.stop()
        edge.stop()
        for sock in sockets.values():
            sock.close()


def test_an_offline_agent_is_ready_for_systemd_and_says_offline(tmp_path, region):
    """Offline is a till's normal state: READY=1 and watchdog pings must not wait for a network."""
    import socket

    till = make_till(tmp_path, "t1", region)
    with socket.socket() as probe:  # a port nobody listens on: the broker is unreachable
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "agent.notify"))
    notify.settimeout(15)
    agent = agent_proc(till, f"mqtt://127.0.0.1:{dead_port}")
    agent.env.update(WATCHDOG_USEC="400000", NOTIFY_SOCKET=str(tmp_path / "agent.notify"))
    agent.start()
    try:
        messages = [notify.recv(300) for _ in range(6)]
    finally:
        agent.stop()
        notify.close()
    assert b"READY=1" in messages, messages
    assert messages.count(b"WATCHDOG=1") >= 1, messages
    assert any(m.startswith(b"STATUS=offline") for m in messages), messages


def test_a_segment_the_region_refuses_stays_queued_and_is_reported(
    tmp_path, broker, db_url, region
):
    from appliance.log import EventLog

    till = make_till(tmp_path, "t1", region)
    log = EventLog.open(till.log_path)  # no projector: write what the till itself never would
    log.append("sale.completed", {"note": "a sale without lines or taxes"})
    log.close()
    enroll(db_url, till)
    edge = edge_proc(tmp_path, db_url, broker.url, region).start()
    try:
        wait_for(lambda: edge_ready(edge), 20, "the edge")
        done = sync_once(till, broker.url, 4)
        assert done.returncode == 1
        assert "refused by the region" in done.stderr
        info = json.loads(
            run_tillbox("sync", "status", "--data-dir", str(till.root), "--json").stdout
        )
        assert info["counters"].get("segments_refused.malformed", 0) >= 1
        assert info["queued_events"] == info["last_seq"] and info["acked_seq"] == 0
        assert "refuses events" in info["detail"]
    finally:
        edge.stop()
