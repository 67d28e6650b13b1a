"""Till health at the edge, without a broker: verified against the enrolled key before it
is read, kept as the latest with a bounded history, and every refusal counted, never
stored. Device revocation: its segments get a signed ``rejected:revoked`` NACK."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from nacl.signing import SigningKey

from appliance.formats import telemetry, wire
from appliance.keys import load_signing_key
from edge import admin
from edge.ingest import Ingestor
from edge.store import Store
from edge.telemetry import HealthIngestor
from systest.sync import enroll, make_till, run_tillbox, seal_log, sell


def health_of(folder, **changes) -> telemetry.Health:
    base = telemetry.Health(
        device=folder.load_config().device_id,
        tenant="demo",
        sent_ms=1_767_225_600_000,
        version="0.1.0",
        queued_events=3,
        drain_estimate_s=None,
        selftest=None,
        printer_paper="ok",
        engraver_alarm=None,
        power_source="mains",
        battery_pct=None,
        card_exposure_minor=0,
        currency="EUR",
    )
    return replace(base, **changes)


def sealed(folder, health: telemetry.Health, key: SigningKey | None = None) -> bytes:
    return telemetry.seal_health(key or load_signing_key(folder.private_key_path), health)


def htopic(device: str, tenant: str = "demo") -> str:
    return wire.topic_health(tenant, device)


@pytest.fixture
def store(any_db):
    s = Store.open(any_db)
    yield s
    s.close()


def test_a_verified_message_is_the_latest_and_joins_the_history(tmp_path, any_db, store, region):
    till = make_till(tmp_path, "t1", region)
    enroll(any_db, till)
    ingest = HealthIngestor(store)
    first = health_of(till, printer_paper="out", sent_ms=1_000_000)
    out = ingest.handle(htopic("t1"), sealed(till, first), received_ms=1_000_250)
    assert (out.status, out.device, out.health) == ("stored", "t1", first)
    tenant, received, sent, body = store.telemetry_latest("t1")
    assert (tenant, received, sent) == ("demo", 1_000_250, 1_000_000)
    assert json.loads(body) == first.to_json()
    assert received - sent == 250  # the clock skew the fleet page shows
    second = health_of(till, sent_ms=1_300_000, queued_events=0)
    ingest.handle(htopic("t1"), sealed(till, second), received_ms=1_299_000)
    assert store.telemetry_latest("t1")[1:3] == (1_299_000, 1_300_000)  # skew may be negative
    assert [json.loads(b)["sent_ms"] for _r, b in store.telemetry_history("t1")] == [
        1_000_000,
        1_300_000,
    ]
    # a QoS 1 redelivery of the same message is not a second history row, and a replay
    # of an older one does not become the latest
    again = ingest.handle(htopic("t1"), sealed(till, second), received_ms=1_299_500)
    assert again.status == "duplicate" and len(store.telemetry_history("t1")) == 2
    replay = ingest.handle(htopic("t1"), sealed(till, first), received_ms=1_400_000)
    assert replay.status == "duplicate" and store.telemetry_latest("t1")[2] == 1_300_000
    devices = {d["device_id"]: d for d in admin.devices(store)}
    assert devices["t1"]["last_seen_ms"] == 1_299_000
    assert devices["t1"]["clock_skew_ms"] == -1_000


def test_the_history_keeps_the_newest_rows_per_device(tmp_path, any_db, store, region):
    t1, t2 = make_till(tmp_path, "t1", region), make_till(tmp_path, "t2", region)
    enroll(any_db, t1, t2)
    ingest = HealthIngestor(store, history_keep=5)
    for n in range(12):
        ingest.handle(htopic("t1"), sealed(t1, health_of(t1, sent_ms=n)), received_ms=10 + n)
    ingest.handle(htopic("t2"), sealed(t2, health_of(t2, sent_ms=99)), received_ms=5)
    assert [json.loads(b)["sent_ms"] for _r, b in store.telemetry_history("t1")] == [
        7,
        8,
        9,
        10,
        11,
    ]
    assert len(store.telemetry_history("t2")) == 1  # another device's rows are its own
    assert store.telemetry_latest("t1")[2] == 11


def test_refused_messages_are_counted_and_never_stored(tmp_path, any_db, store, region):
    t1, t2 = make_till(tmp_path, "t1", region), make_till(tmp_path, "t2", region)
    stranger = make_till(tmp_path, "t9", region)
    enroll(any_db, t1, t2)
    ingest = HealthIngestor(store)
    good = sealed(t1, health_of(t1))
    forged = sealed(t1, health_of(t1), key=SigningKey(bytes(32)))
    flipped = bytearray(good)
    flipped[20] ^= 1
    cases = [
        (htopic("t9"), sealed(stranger, health_of(stranger)), "unknown_device"),
        (htopic("t1", "acme"), good, "wrong_tenant"),
        (htopic("t1"), forged, "bad_signature"),
        (htopic("t1"), bytes(flipped), "bad_signature"),
        (htopic("t1"), good + bytes(5000), "oversize"),
        (htopic("t2"), sealed(t2, health_of(t1)), "device_mismatch"),  # t2 signs t1's body
        (htopic("t1"), b"TBHL\x01" + b"{}" + bytes(64), "bad_signature"),
    ]
    for topic, data, reason in cases:
        out = ingest.handle(topic, data, received_ms=1)
        assert (out.status, out.reason) == ("rejected", reason), reason
    assert ingest.handle("tillbox/v1/demo/t1/seg", good).status == "ignored"
    for device in ("t1", "t2", "t9"):
        assert store.telemetry_latest(device) is None
        assert store.telemetry_history(device) == []
    stats = admin.stats(store)
    assert stats["rejected"] == {
        "health:unknown_device": 1,
        "health:wrong_tenant": 1,
        "health:bad_signature": 3,
        "health:oversize": 1,
        "health:device_mismatch": 1,
    }
    # health refusals are not segment rejections
    assert {d["device_id"]: d["segments_rejected"] for d in stats["devices"]} == {"t1": 0, "t2": 0}
    assert ingest.handle(htopic("t1"), good).status == "stored"


def test_a_revoked_devices_segments_get_a_signed_nack_and_its_health_is_refused(
    tmp_path, any_db, store, region
):
    till, other = make_till(tmp_path, "t1", region), make_till(tmp_path, "t2", region)
    sell(till, 20)
    sell(other, 3)
    enroll(any_db, till, other)
    edge = Ingestor(store, region.key)
    first, second, *_ = seal_log(till, size=10)
    assert edge.handle(wire.topic_seg("demo", "t1"), first).status == "stored"
    info = admin.revoke(store, "t1", "card copied\nat the fair", now_ms=1234)
    assert info == {
        "device_id": "t1",
        "revoked_ms": 1234,
        "reason": "card copied at the fair",
        "already_revoked": False,
    }
    assert store.revocation("t1") == (1234, "card copied at the fair")
    assert store.revocation("t2") is None
    for data in (second, first):  # a new segment, and a resend of a stored one
        out = edge.handle(wire.topic_seg("demo", "t1"), data, "ab" * 16)
        assert (out.status, out.reason) == ("rejected", "revoked")
        nack = wire.open_ack(out.ack, region.key.verify_key)
        assert (nack.status, nack.reason, nack.resend_from, nack.nonce) == (
            "nack",
            "rejected:revoked",
            0,
            "ab" * 16,
        )
    assert [s for s, _h in admin.stored_events(store, "t1")] == list(range(1, 11))
    out = HealthIngestor(store).handle(htopic("t1"), sealed(till, health_of(till)))
    assert (out.status, out.reason) == ("rejected", "revoked")
    assert store.telemetry_latest("t1") is None
    stats = admin.stats(store)
    assert stats["rejected"] == {"revoked": 2, "health:revoked": 1}
    by_device = {d["device_id"]: d for d in stats["devices"]}
    assert by_device["t1"]["segments_rejected"] == 2
    # another device is untouched, and revoking again keeps the first time and reason
    for data in seal_log(other):
        assert edge.handle(wire.topic_seg("demo", "t2"), data).status == "stored"
    again = admin.revoke(store, "t1", "another reason", now_ms=9999)
    assert again["already_revoked"] and (again["revoked_ms"], again["reason"]) == (
        1234,
        "card copied at the fair",
    )
    assert admin.check(store)["ok"]


def test_store_methods_the_console_calls(tmp_path, any_db, store, region):
    till = make_till(tmp_path, "t1", region)
    enroll(any_db, till)
    store.revoke_device("t1", 5, "lost")
    store.revoke_device("t1", 6, "again")
    assert store.revocation("t1") == (5, "lost")
    store.set_device_profile("t1", "Stall 4", "front till")
    store.set_device_profile("t1", "Stall 5", "")
    assert store.device_profile("t1") == ("Stall 5", "")


# -- the commands -------------------------------------------------------------------------
def test_device_commands_revoke_list_and_set(tmp_path, any_db, region):
    t1, t2 = make_till(tmp_path, "t1", region), make_till(tmp_path, "t2", region)
    enroll(any_db, t1, t2)
    db = ["--db", any_db]
    done = run_tillbox("edge", "device", "set", *db, "--device", "t1", "--stall", "Stall 4")
    assert done.returncode == 0, done.stderr
    done = run_tillbox("edge", "device", "set", *db, "--device", "t1", "--label", "front")
    assert done.returncode == 0 and "Stall 4" in done.stdout  # the stall stayed
    done = run_tillbox(
        "edge", "device", "revoke", *db, "--device", "t2", "--reason", "stolen", "--json"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["already_revoked"] is False
    listed = json.loads(run_tillbox("edge", "device", "list", *db, "--json").stdout)
    rows = {d["device_id"]: d for d in listed["devices"]}
    assert (rows["t1"]["stall"], rows["t1"]["label"], rows["t1"]["revoked"]) == (
        "Stall 4",
        "front",
        False,
    )
    assert (rows["t2"]["revoked"], rows["t2"]["revoked_reason"]) == (True, "stolen")
    assert rows["t1"]["last_seen_ms"] is None
    text = run_tillbox("edge", "device", "list", *db).stdout
    assert "REVOKED" in text and "stolen" in text and "Stall 4" in text
    again = run_tillbox("edge", "device", "revoke", *db, "--device", "t2", "--reason", "x")
    assert again.returncode == 0 and "already revoked" in again.stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (["revoke", "--device", "nobody", "--reason", "x"], "not enrolled"),
        (["revoke", "--device", "t1", "--reason", "  \n "], "--reason is empty"),
        (["revoke", "--device", "t1", "--reason", "x" * 501], "keep it to 500"),
        (["revoke", "--device", "a/b", "--reason", "x"], "device id must be"),
        (["set", "--device", "t1"], "give --stall, --label"),
        (["set", "--device", "t1", "--stall", "\x07bell"], "control characters"),
        (["set", "--device", "nobody", "--stall", "S"], "not enrolled"),
    ],
)
def test_device_commands_refuse_bad_input_in_one_line(tmp_path, db_url, region, args, words):
    till = make_till(tmp_path, "t1", region)
    enroll(db_url, till)
    done = run_tillbox("edge", "device", *args[:1], "--db", db_url, *args[1:])
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and words in done.stderr, done.stderr
    store = Store.open(db_url)
    try:
        assert store.revocation("t1") is None and store.device_profile("t1") is None
    finally:
        store.close()
