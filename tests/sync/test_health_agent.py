"""The till's side of telemetry: what the agent reads from the log (read-only), and the
agent publishing it over the real broker (shipped config) to a real edge: at start, on
a change, every interval; a revoked device is refused, its segments NACKed for good."""

from __future__ import annotations

import json
import time

import pytest
import tomli_w

from appliance import __version__
from appliance.formats import telemetry
from appliance.keys import load_signing_key
from appliance.till import Till
from edge.store import Store
from sync_agent.health import HealthReader
from sync_agent.reader import LogReader
from systest.sync import (
    agent_proc,
    edge_proc,
    edge_ready,
    enroll,
    make_till,
    run_tillbox,
    sell,
    wait_for,
)

CHECKS = [
    {"name": "printer", "result": "warn", "value": "paper near end", "fix": "", "fatal": False},
    {"name": "log", "result": "pass", "value": "chain ok", "fix": "", "fatal": True},
    {"name": "Not A Name!", "result": "pass", "value": "", "fix": "", "fatal": False},
]


def _health(folder, acked_seq: int = 0) -> telemetry.Health:
    reader = LogReader(folder.log_path)
    try:
        config = folder.load_config()
        health = HealthReader(reader.log, config, config.device_id, "demo").health(
            tail=reader.tail()[0], acked_seq=acked_seq, drain_estimate_s=4.2, now_ms=77
        )
    finally:
        reader.close()
    return health


def test_health_is_read_from_what_the_till_recorded(tmp_path, region):
    folder = make_till(tmp_path, "t1", region)
    empty = _health(folder)
    assert (empty.selftest, empty.printer_paper, empty.engraver_alarm) == (None, "unknown", None)
    assert (empty.power_source, empty.battery_pct, empty.version) == ("unknown", None, __version__)
    sell(folder, 7, refund_every=0, card_every=2)
    with Till.open(folder) as till:
        exposure = till.card_exposure_minor()
        selftest = till.record_selftest({"verdict": "pass", "trigger": "boot", "checks": CHECKS})
        till.record("receipt.printed", {"receipt_no": 1, "paper": "near_end"})
        till.record("receipt.failed", {"receipt_no": 2, "reason": "out of paper", "paper": "out"})
        till.record(
            "engraving.failed",
            {"outcome": "alarm", "message": "engraver alarm 1:\n hard limit; home it"},
        )
        till.record("power.lost", {"source": "ups", "pin": 17})
        tail = till.log.last()[0]
    assert exposure > 0
    health = _health(folder)
    assert health.selftest == telemetry.Selftest(
        selftest.wall_ms, True, (("printer", "warn"), ("log", "pass"))
    )
    assert (health.printer_paper, health.engraver_alarm) == (
        "out",
        "engraver alarm 1: hard limit; home it",
    )
    assert (health.power_source, health.battery_pct) == ("battery", None)
    assert (health.card_exposure_minor, health.currency) == (exposure, "EUR")
    assert (health.queued_events, health.drain_estimate_s, health.sent_ms) == (tail, 5, 77)
    # acked events are no longer exposure nor queued
    acked = _health(folder, acked_seq=tail)
    assert (acked.card_exposure_minor, acked.queued_events) == (0, 0)
    key = load_signing_key(folder.private_key_path)
    assert telemetry.open_health(telemetry.seal_health(key, health), key.verify_key) == health


def test_later_events_replace_earlier_ones_and_each_is_read_once(tmp_path, region):
    folder = make_till(tmp_path, "t1", region)
    reader = LogReader(folder.log_path)
    config = folder.load_config()
    health = HealthReader(reader.log, config, "t1", "demo")

    def now() -> telemetry.Health:
        return health.health(tail=reader.tail()[0], acked_seq=0, drain_estimate_s=None, now_ms=1)

    try:
        with Till.open(folder) as till:
            till.record("engraving.failed", {"outcome": "alarm", "message": "alarm 2"})
            till.record("power.lost", {"source": "ups", "battery_pct": 64})
        first = now()
        assert (first.engraver_alarm, first.power_source, first.battery_pct) == (
            "alarm 2",
            "battery",
            64,
        )
        seen = health.seen
        with Till.open(folder) as till:
            till.record("engraving.completed", {"outcome": "completed", "message": "done"})
            till.record("power.restored", {"source": "ups"})
            till.record("z_report.printed", {"shift_no": 1, "paper": "ok"})
            # a job refused because the engraver was already in alarm names it in its message
            till.record("engraving.failed", {"message": "engraver is in Alarm; unlock it"})
        later = now()
        assert health.seen > seen
        assert (later.engraver_alarm, later.power_source, later.printer_paper) == (
            "engraver is in Alarm; unlock it",
            "mains",
            "ok",
        )
        with Till.open(folder) as till:
            till.record("engraving.failed", {"outcome": "failed", "message": "error 20"})
        assert now().engraver_alarm is None  # a failure that is not an alarm
        assert later.status_key() != now().status_key()
    finally:
        reader.close()


# -- over the broker -----------------------------------------------------------------------
def _settings(folder, **sync) -> None:
    config = folder.load_config()
    config.update("sync", **sync)
    folder.config_path.write_text(tomli_w.dumps(config.data))


def _history(db: str, device: str) -> list[dict]:
    store = Store.open(db)
    try:
        return [json.loads(body) for _r, body in store.telemetry_history(device)]
    finally:
        store.close()


def _rejections(db: str) -> dict[str, int]:
    store = Store.open(db)
    try:
        return {reason: int(n) for _d, reason, n in store.rejection_counts()}
    finally:
        store.close()


@pytest.mark.slow
def test_the_agent_publishes_at_start_on_a_change_and_the_edge_keeps_it(
    tmp_path, broker, any_db, region
):
    folder = make_till(tmp_path, "t1", region)
    _settings(folder, state_interval_s=0.5, health_interval_s=300)
    sell(folder, 12, refund_every=0, card_every=2)
    with Till.open(folder) as till:
        exposure = till.card_exposure_minor()
        till.record_selftest({"verdict": "pass", "trigger": "boot", "checks": CHECKS[:2]})
    enroll(any_db, folder)
    edge = edge_proc(tmp_path, any_db, broker.url, region).start()
    agent = None
    try:
        wait_for(lambda: edge_ready(edge), 20, "the edge to subscribe")
        assert "health" in edge.log()  # it joined the shared health subscription too
        agent = agent_proc(folder, broker.url).start()
        rows = wait_for(
            lambda: [h for h in _history(any_db, "t1") if h["queued_events"] == 0],
            30,
            "a health message after the drain",
        )
        history = _history(any_db, "t1")
        first = history[0]
        assert first["queued_events"] > 0 and first["card_exposure_minor"] == exposure
        assert rows[-1]["card_exposure_minor"] == 0  # acked: no longer at risk
        assert first["selftest"]["checks"] == [
            {"name": "printer", "status": "warn"},
            {"name": "log", "status": "pass"},
        ]
        assert first["version"] == __version__ and first["currency"] == "EUR"
        store = Store.open(any_db)
        try:
            _t, received, sent, _b = store.telemetry_latest("t1")
        finally:
            store.close()
        assert abs(received - sent) < 10_000 and abs(time.time() * 1000 - sent) < 60_000
        # a change goes out at once, not at the next 300 s interval
        with Till.open(folder) as till:
            till.record("power.lost", {"source": "ups", "pin": 17})
        wait_for(
            lambda: _history(any_db, "t1")[-1]["power"]["source"] == "battery",
            15,
            "the change to reach the edge",
        )
        assert len(_history(any_db, "t1")) <= len(history) + 3  # no publish per loop
    finally:
        if agent is not None:
            agent.stop()
        edge.stop()
    assert _rejections(any_db) == {}


@pytest.mark.slow
def test_the_agent_repeats_its_health_every_interval(tmp_path, broker, db_url, region):
    folder = make_till(tmp_path, "t1", region)
    _settings(folder, state_interval_s=0.5, health_interval_s=1)
    enroll(db_url, folder)
    edge = edge_proc(tmp_path, db_url, broker.url, region).start()
    agent = None
    try:
        wait_for(lambda: edge_ready(edge), 20, "the edge to subscribe")
        agent = agent_proc(folder, broker.url).start()
        wait_for(
            lambda: len([h for h in _history(db_url, "t1") if h["queued_events"] == 0]) >= 4,
            30,
            "four health messages once nothing changes",
        )
    finally:
        if agent is not None:
            agent.stop()
        edge.stop()
    # once drained nothing changes: each message is the interval's repeat, not a change
    idle = [h for h in _history(db_url, "t1") if h["queued_events"] == 0]
    assert len({telemetry.health_from_json(h).status_key() for h in idle}) == 1
    sent = [h["sent_ms"] for h in idle]
    assert min(b - a for a, b in zip(sent, sent[1:], strict=False)) >= 900


@pytest.mark.slow
def test_a_revoked_till_is_refused_and_stops_resending(tmp_path, broker, any_db, region):
    folder = make_till(tmp_path, "t1", region)
    _settings(folder, state_interval_s=0.5, health_interval_s=1)
    sell(folder, 5)
    enroll(any_db, folder)
    edge = edge_proc(tmp_path, any_db, broker.url, region).start()
    agent = None
    try:
        wait_for(lambda: edge_ready(edge), 20, "the edge to subscribe")
        assert run_tillbox("sync", "--data-dir", str(folder.root), "--broker", broker.url,
                           "--once", "--timeout", "30").returncode == 0  # fmt: skip
        done = run_tillbox(
            "edge", "device", "revoke", "--db", any_db, "--device", "t1", "--reason", "stolen"
        )
        assert done.returncode == 0, done.stderr
        stored_before = _history(any_db, "t1")
        sell(folder, 3)
        agent = agent_proc(folder, broker.url).start()
        wait_for(
            lambda: (
                _rejections(any_db).get("health:revoked", 0) >= 2
                and _rejections(any_db).get("revoked", 0) >= 1
            ),
            30,
            "the edge to refuse the revoked till's health and segments",
        )
        wait_for(
            lambda: "rejected:revoked" in (folder.root / "agent.log").read_text(),
            20,
            "the agent to log the refusal",
        )
        refused = _rejections(any_db)["revoked"]
        time.sleep(2)  # four state intervals: the refused segment is not sent again
        assert _rejections(any_db)["revoked"] == refused
        status = json.loads(
            run_tillbox("sync", "status", "--data-dir", str(folder.root), "--json").stdout
        )
        assert status["counters"]["segments_refused.revoked"] == refused
        assert "rejected:revoked" in status["detail"]
    finally:
        if agent is not None:
            agent.stop()
        edge.stop()
    assert _history(any_db, "t1") == stored_before  # nothing of it stored after the revocation
    store = Store.open(any_db)
    try:
        stored = store.one("SELECT MAX(seq) FROM events WHERE device_id = 't1'")[0]
    finally:
        store.close()
    with Till.open(folder) as till:
        assert stored < till.log.last()[0]  # the sales after the revocation stay on the till
