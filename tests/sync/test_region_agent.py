"""The region's lists reach the tills through the broker: the edge publishes what it signs
and keeps (retained, on tillbox/v1/{tenant}/region/{kind}), and the sync agent verifies and
applies each one (appliance.region.apply_signed), counting every refusal. Real mosquitto
with the shipped config, real agent and edge processes."""

from __future__ import annotations

import json

import pytest
from nacl.signing import SigningKey

from appliance import projections
from appliance.catalog import demo_catalog
from appliance.formats import region as fmt
from appliance.formats import wire
from appliance.formats.brokerurl import BrokerURL
from appliance.till import Till
from edge.publish import send_bytes
from edge.store import Store
from systest.multitill import scheduled, sign
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
    run_tillbox,
    sync_once,
    wait_for,
)

pytestmark = pytest.mark.slow

T0 = 1_767_258_000_000


def publisher_args(tmp_path, broker) -> list[str]:
    pw = tmp_path / "publisher-pw"
    pw.write_text(PUBLISHER_PASSWORD)
    return ["--broker", broker.url, "--username", PUBLISHER_USER, "--password-file", str(pw)]


def edge_cli(*args: str) -> dict:
    out = run_tillbox("edge", *args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def versions(folder) -> dict[str, int]:
    with Till.open(folder) as till:
        return {
            kind: (row[0] if (row := projections.region_row(till.log.conn, kind)) else 0)
            for kind in (fmt.SCHEDULE, fmt.ROSTER, fmt.BOOKINGS)
        }


def counters(folder) -> dict[str, int]:
    out = run_tillbox("sync", "status", "--data-dir", str(folder.root), "--json")
    return json.loads(out.stdout)["counters"]


def test_once_applies_every_retained_list_before_it_exits(tmp_path, broker, db_url, region):
    till = make_till(tmp_path, "t1", region)
    enroll(db_url, till)
    store = Store.open(db_url)
    store.execute("INSERT INTO device_profiles (device_id, stall) VALUES ('t1', 's1')")
    store.close()
    edge = edge_proc(tmp_path, db_url, broker.url, region).start()
    try:
        wait_for(lambda: edge_ready(edge), 20, "the edge to subscribe")
        # drained first: the next --once has nothing of its own to wait for
        assert sync_once(till, broker.url, 40).returncode == 0
        publish_lists_and_sync(tmp_path, broker, db_url, region, till)
    finally:
        edge.stop()


def publish_lists_and_sync(tmp_path, broker, db_url, region, till) -> None:
    pub = publisher_args(tmp_path, broker)
    common = ["--db", db_url, "--key", str(region.key_path), "--tenant", "demo", *pub]
    events = tmp_path / "events.json"
    events.write_text(json.dumps({"events": [scheduled("fair-1", T0, T0 + 3_600_000)]}))
    schedule = edge_cli("event", "publish", *common, "--file", str(events), "--version", "5")
    assert schedule["delivered"] == ["published retained on tillbox/v1/demo/region/schedule"]
    edge_cli("roster", "publish", *common, "--version", "6")
    booking = edge_cli(
        "booking", "add", *common, "--name", "Ada", "--payment", "paid_online",
        "--item", "HONEY:1", "--version", "7",
    )  # fmt: skip
    assert booking["topic"] == "tillbox/v1/demo/region/bookings"
    catalog = demo_catalog().to_json()
    (tmp_path / "catalog.json").write_text(json.dumps({**catalog, "version": "region-4"}))
    edge_cli(
        "publish-update", *pub, "--key", str(region.key_path), "--tenant", "demo",
        "--catalog", str(tmp_path / "catalog.json"), "--version", "4",
    )  # fmt: skip
    done = sync_once(till, broker.url, 40)
    assert done.returncode == 0, done.stderr[-2000:]
    # applied before it exited, and the applied events themselves synced up
    assert versions(till) == {"schedule": 5, "roster": 6, "bookings": 7}
    with Till.open(till) as t:
        assert t.lists.stall(t.log.conn, "t1") == "s1"
        assert t.catalog().version == "region-4"
        applied = [e.type for e in t.log.events() if e.type.endswith(".applied")]
    assert sorted(applied[-4:]) == [
        "bookings.applied",
        "catalog.applied",
        "roster.applied",
        "schedule.applied",
    ]
    check_exactly_once(db_url, [till])
    status = json.loads(
        run_tillbox("sync", "status", "--data-dir", str(till.root), "--json").stdout
    )
    assert status["region_versions"] == {
        "catalog": 4,
        "schedule": 5,
        "roster": 6,
        "bookings": 7,
        "release": 0,
    }
    assert status["counters"]["updates_applied"] == 4
    # again: the retained copies change nothing (the versions are in force)
    done = sync_once(till, broker.url, 40)
    assert done.returncode == 0, done.stderr[-2000:]
    with Till.open(till) as t:
        assert [e.type for e in t.log.events() if e.type.endswith(".applied")] == applied
    assert counters(till)["updates_applied"] == 4


def test_the_agent_refuses_and_counts_what_is_not_the_regions(tmp_path, broker, db_url, region):
    till = make_till(tmp_path, "t1", region)
    enroll(db_url, till)
    url = BrokerURL.parse(broker.url)

    def put(kind: str, data: bytes) -> None:
        # the test's admin identity may write anywhere (the region's publisher could too)
        send_bytes(
            url, "tillbox-test-admin", ADMIN_PASSWORD, wire.topic_region("demo", kind), data,
            retain=True,
        )  # fmt: skip

    schedule = fmt.Schedule.from_json({"events": [scheduled("fair-1", T0, T0 + 3_600_000)]})
    roster = fmt.Roster.from_json({"devices": []})
    put("schedule", fmt.seal_region_data(SigningKey.generate(), "demo", schedule, 9, 0))
    put("roster", sign(region, roster, 3, tenant="other"))  # the region's, another tenant
    put("bookings", sign(region, roster, 4))  # a roster on the bookings topic
    put("unheard-of", sign(region, roster, 5))  # a kind this till does not know
    agent = agent_proc(till, broker.url).start()
    try:
        want = {
            "updates_rejected.bad_signature": 1,
            "updates_rejected.wrong_tenant": 1,
            "updates_rejected.wrong_kind": 1,
            "updates_ignored.unknown_kind": 1,
        }

        def counted(expect: dict[str, int]):
            got = counters(till)
            return all(got.get(k) == v for k, v in expect.items()) and got

        wait_for(lambda: counted(want), 20, "the refusals to be counted")
        assert versions(till) == {"schedule": 0, "roster": 0, "bookings": 0}
        # the real one applies; an older one after it changes nothing and is no refusal
        put("schedule", sign(region, schedule, 8))
        wait_for(lambda: versions(till)["schedule"] == 8, 20, "the signed schedule")
        put("schedule", sign(region, schedule, 2))
        put("schedule", b"")  # the region clears the topic: ignored
        put("roster", sign(region, roster, 3))
        wait_for(lambda: versions(till)["roster"] == 3, 20, "the signed roster")
        assert versions(till)["schedule"] == 8
        got = counters(till)
        assert {k: v for k, v in got.items() if k.startswith("updates_")} == {
            **want,
            "updates_applied": 2,
        }
        assert agent.alive()
    finally:
        agent.stop()
    assert "Traceback" not in agent.log()


def roster_of_till(folder) -> dict[str, str]:
    with Till.open(folder) as till:
        roster = till.lists.roster(till.log.conn)
        return {d.device_id: d.stall for d in roster.devices} if roster else {}


def test_the_roster_follows_enroll_stall_and_revoke(tmp_path, broker, db_url, region):
    t1, t2 = make_till(tmp_path, "t1", region), make_till(tmp_path, "t2", region)
    pub = [*publisher_args(tmp_path, broker), "--key", str(region.key_path)]
    db = ["--db", db_url]
    first = edge_cli(
        "enroll", *db, "--device-id", "t1", "--public-key", str(t1.public_key_path), *pub
    )
    assert first["roster"]["published"] and first["roster"]["signed"]
    agent = agent_proc(t1, broker.url).start()
    try:
        wait_for(lambda: roster_of_till(t1) == {"t1": ""}, 20, "t1's first roster")
        edge_cli("enroll", *db, "--device-id", "t2", "--public-key", str(t2.public_key_path), *pub)
        wait_for(lambda: roster_of_till(t1) == {"t1": "", "t2": ""}, 20, "t2 in the roster")
        moved = edge_cli("device", "set", *db, "--device", "t2", "--stall", "s2", *pub)
        assert moved["roster"]["signed"]
        wait_for(lambda: roster_of_till(t1) == {"t1": "", "t2": "s2"}, 20, "t2 at stall s2")
        # a label is not in the roster: the kept one goes out again, no new version
        labelled = edge_cli("device", "set", *db, "--device", "t2", "--label", "back", *pub)
        assert (labelled["roster"]["signed"], labelled["roster"]["version"]) == (
            False,
            moved["roster"]["version"],
        )
        edge_cli("device", "revoke", *db, "--device", "t2", "--reason", "stolen", *pub)
        wait_for(lambda: roster_of_till(t1) == {"t1": ""}, 20, "t2 out of the roster")
        # without --broker: changed at the region, and the line says how to tell the tills
        out = run_tillbox("edge", "device", "set", *db, "--device", "t1", "--stall", "s1")
        assert out.returncode == 0 and "tillbox edge roster publish" in out.stdout
        # a stall the roster cannot carry is refused before anything changes
        bad = run_tillbox("edge", "device", "set", *db, "--device", "t1", "--stall", "a b", *pub)
        assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "--stall" in bad.stderr
    finally:
        agent.stop()
    # the broker gone: the change is made, and the one line says what to run
    broker.stop()
    out = run_tillbox("edge", "device", "set", *db, "--device", "t1", "--stall", "s3", *pub)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert "not published" in out.stderr and "tillbox edge roster publish" in out.stderr
    assert (
        json.loads(run_tillbox("edge", "device", "list", *db, "--json").stdout)["devices"][0][
            "stall"
        ]
        == "s3"
    )
