"""The preflight self-test: verdicts per check, fatal configuration, recorded history."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from datetime import date, timedelta

import pytest
import tomli_w

from appliance.datadir import DataDir
from appliance.log import EventLog
from compliance.probes import DriversProbes
from compliance.selftest import CHECK_NAMES, SELFTEST_RECORDED, run_selftest

ALWAYS = dict(time_synced=lambda: True)
# an old sale's quantity edited in place
EDIT_A_SALE = (
    "UPDATE events SET payload = replace(payload, '\"qty\":2', '\"qty\":1') WHERE seq = 4",
    (),
)


def by_name(report) -> dict:
    return {c.name: c for c in report.checks}


def set_config(ddir: DataDir, **sections) -> None:
    config = ddir.load_config()
    for name, values in sections.items():
        config.update(name, **values)
    ddir.config_path.write_text(tomli_w.dumps(config.data))


def recorded(ddir: DataDir) -> list[dict]:
    log = EventLog.open(ddir.log_path, readonly=True)
    try:
        return [e.payload for e in log.events() if e.type == SELFTEST_RECORDED]
    finally:
        log.close()


def test_all_good_passes_and_is_recorded(enrolled, probes):
    enrolled.config_path.write_text(enrolled.config_path.read_text())
    report = run_selftest(enrolled, probes, **ALWAYS)
    checks = by_name(report)
    assert list(checks) == list(CHECK_NAMES)
    offline = ("broker", "sync", "enrollment")
    assert all(checks[n].result == "pass" for n in CHECK_NAMES if n not in offline), [
        (c.name, c.result, c.value) for c in report.checks
    ]
    assert checks["broker"].result == "warn"  # none configured: offline is fine
    assert checks["sync"].result == "warn"  # and no sync agent has run
    assert checks["enrollment"].result == "warn"  # so the region has not reviewed it yet
    assert report.ok and report.recorded_seq
    history = recorded(enrolled)
    assert history[-1]["verdict"] == "pass"
    assert [c["name"] for c in history[-1]["checks"]] == list(CHECK_NAMES)
    assert history[-1]["log_verified"]["seq"] == report.recorded_seq - 1


def test_every_device_missing_gives_clear_verdicts_no_crash(enrolled, make_probes):
    missing = make_probes(missing={"printer", "engraver", "camera", "gpio"})
    report = run_selftest(enrolled, missing, **ALWAYS)
    checks = by_name(report)
    for name in ("printer", "engraver", "camera", "power", "earth"):
        assert checks[name].result == "fail", name
        assert checks[name].value and checks[name].fix, name
    assert not report.ok  # power and earth are fatal by default
    assert {c.name for c in report.checks if c.fatal and c.result == "fail"} == {"power", "earth"}
    assert report.recorded_seq  # the log is fine, so the failure is on record


def test_real_drivers_probe_with_every_device_unreachable(enrolled):
    """Through the drivers package (or its absence): URLs that point nowhere."""
    set_config(
        enrolled,
        hardware={
            "printer": "tcp://127.0.0.1:9",
            "engraver": "serial:///dev/ttyNOPE0",
            "camera": "none://",
            "gpio": "none://",
        },
    )
    probes = DriversProbes(enrolled.load_config(), enrolled)
    try:
        report = run_selftest(enrolled, probes, **ALWAYS)
    finally:
        probes.close()
    checks = by_name(report)
    assert checks["printer"].result == "fail" and checks["engraver"].result == "fail"
    for name in ("camera", "power", "earth"):  # not fitted: said so, not failed
        assert checks[name].result == "warn" and "none://" in checks[name].value
    assert report.ok


def test_device_faults_are_named(enrolled, make_probes):
    p = make_probes(
        paper="out",
        grbl_state="Alarm",
        alarm=1,
        frame=b"\xff\xd8broken jpeg",
        power_good=False,
        earth_ok=None,
    )
    checks = by_name(run_selftest(enrolled, p, record=False, **ALWAYS))
    assert checks["printer"].result == "fail" and "paper" in checks["printer"].fix
    assert checks["engraver"].result == "fail" and "alarm" in checks["engraver"].value.lower()
    assert checks["camera"].result == "fail" and "not a readable image" in checks["camera"].value
    assert checks["power"].result == "fail" and checks["earth"].result == "warn"
    checks = by_name(
        run_selftest(
            enrolled, make_probes(laser_mode=False, paper="near_end"), record=False, **ALWAYS
        )
    )
    assert checks["engraver"].result == "fail" and "$32=1" in checks["engraver"].fix
    assert checks["printer"].result == "warn"
    checks = by_name(run_selftest(enrolled, make_probes(grbl_state="Run"), record=False, **ALWAYS))
    assert checks["engraver"].result == "fail" and "Run" in checks["engraver"].value


def test_fatal_is_configurable(enrolled, make_probes):
    out_of_paper = make_probes(paper="out")
    assert run_selftest(enrolled, out_of_paper, record=False, **ALWAYS).ok
    set_config(enrolled, selftest={"fatal": ["printer"]})
    report = run_selftest(enrolled, out_of_paper, record=False, **ALWAYS)
    assert not report.ok and by_name(report)["printer"].fatal
    set_config(enrolled, selftest={"fatal": ["printer", "warp_drive"]})
    with pytest.raises(Exception, match="unknown check.*warp_drive"):
        run_selftest(enrolled, out_of_paper, record=False, **ALWAYS)


def test_permits_expired_soon_and_missing(till_dir, probes, permit_file, photo_file, enroll_with):
    checks = by_name(run_selftest(till_dir, probes, record=False, **ALWAYS))
    assert checks["permits"].result == "fail" and "no enrollment" in checks["permits"].value
    enroll_with(till_dir, permit_file, photo_file, expires="2020-01-31")
    report = run_selftest(till_dir, probes, record=False, **ALWAYS)
    assert by_name(report)["permits"].result == "fail"
    assert "expired on 2020-01-31" in by_name(report)["permits"].value and not report.ok
    soon = (date.today() + timedelta(days=3)).isoformat()
    enroll_with(till_dir, permit_file, photo_file, expires=soon)  # re-enrolled: the latest counts
    assert (
        by_name(run_selftest(till_dir, probes, record=False, **ALWAYS))["permits"].result == "warn"
    )
    checks = by_name(run_selftest(till_dir, probes, record=False, today=date(2020, 1, 1), **ALWAYS))
    assert checks["permits"].result == "pass"
    scan = next((till_dir.root / "compliance" / "enrollment" / "0002" / "permits").iterdir())
    scan.chmod(0o644)
    scan.unlink()
    checks = by_name(run_selftest(till_dir, probes, record=False, **ALWAYS))
    assert checks["permits"].result == "fail" and "missing" in checks["permits"].value


def test_tail_verification_and_tampered_log(enrolled, probes, tamper):
    first = run_selftest(enrolled, probes, **ALWAYS)
    second = run_selftest(enrolled, probes, **ALWAYS)
    assert f"tail since seq {first.recorded_seq - 1}" in by_name(second)["log"].value
    assert "1 events chained" in by_name(second)["log"].value
    run_selftest(enrolled, probes, only=["disk"], **ALWAYS)  # no log check: no new point
    third = run_selftest(enrolled, probes, **ALWAYS)
    assert f"tail since seq {second.recorded_seq - 1}" in by_name(third)["log"].value
    # Someone edits an old sale with the guards removed: the tail check alone would miss it,
    # but the last verified point's hash is checked, and --full re-checks everything.
    tamper(enrolled.log_path, EDIT_A_SALE, rechain=False)
    full = run_selftest(enrolled, probes, full_log=True, **ALWAYS)
    assert by_name(full)["log"].result == "fail" and "seq 4" in by_name(full)["log"].value
    assert not full.ok and full.recorded_seq is None
    assert "broken log" in full.record_problem


def test_unreadable_log_and_bad_key(enrolled, probes):
    os.chmod(enrolled.keys_dir, 0o777)
    checks = by_name(run_selftest(enrolled, probes, record=False, **ALWAYS))
    assert checks["device_key"].result == "fail" and "chmod 700" in checks["device_key"].fix
    os.chmod(enrolled.keys_dir, 0o700)
    os.chmod(enrolled.private_key_path, 0o644)
    checks = by_name(run_selftest(enrolled, probes, record=False, **ALWAYS))
    assert checks["device_key"].result == "fail" and "chmod 600" in checks["device_key"].fix
    enrolled.private_key_path.unlink()
    checks = by_name(run_selftest(enrolled, probes, record=False, **ALWAYS))
    assert checks["device_key"].result == "fail" and "missing" in checks["device_key"].value
    enrolled.log_path.write_bytes(b"this is not sqlite" * 100)
    for suffix in ("-wal", "-shm"):
        (enrolled.root / f"log.db{suffix}").unlink(missing_ok=True)
    report = run_selftest(enrolled, probes, **ALWAYS)
    checks = by_name(report)
    assert checks["log"].result == "fail" and checks["clock"].result in ("pass", "warn")
    assert not report.ok and report.recorded_seq is None


def test_clock_behind_last_event_and_no_time_source(enrolled, probes):
    checks = by_name(
        run_selftest(enrolled, probes, record=False, now_ms=1_000_000_000_000, **ALWAYS)
    )
    assert checks["clock"].result == "fail" and "before the last event" in checks["clock"].value
    checks = by_name(run_selftest(enrolled, probes, record=False, time_synced=lambda: None))
    assert checks["clock"].result == "warn"


def test_disk_threshold(enrolled, probes):
    set_config(enrolled, selftest={"min_free_mb": 10**9})
    checks = by_name(run_selftest(enrolled, probes, record=False, **ALWAYS))
    assert checks["disk"].result == "fail" and "minimum 1000000000 MB" in checks["disk"].value


def test_sync_check_counts_waiting_from_the_log_and_says_when_the_agent_stopped(enrolled, probes):
    from datetime import datetime

    from appliance import sync_state

    def sync_check(now_ms):
        report = run_selftest(enrolled, probes, only=["sync"], now_ms=now_ms, record=False)
        return report.checks[0]

    conn = sqlite3.connect(enrolled.log_path)
    tail = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
    conn.close()
    never = sync_check(1_800_000_000_000)
    assert never.result == "warn" and not never.fatal
    assert never.value.startswith(f"{tail} events waiting, acked up to seq 0 of {tail}")
    assert "has not run on this till" in never.value and "tillbox-sync" in never.fix

    # The agent said at 14:02 local time that all but one event were acked, then died.
    stopped = datetime(2026, 11, 30, 14, 2, 30).timestamp() * 1000
    state = sync_state.SyncState(
        acked_seq=tail - 1, queued_events=0, updated_wall_ms=int(stopped), running=True
    )
    sync_state.write(enrolled.sync_dir, state)
    fresh = sync_check(int(stopped) + 4_000)  # within 3 x 5 s: the agent is alive
    assert fresh.result == "pass" and fresh.value.startswith("1 events waiting")
    later = datetime(2026, 11, 30, 14, 9).timestamp() * 1000
    stale = sync_check(int(later))
    assert stale.result == "warn"
    assert stale.value.endswith("sync agent not running since 14:02")
    assert "1 events waiting" in stale.value  # the log's count, not the file's 0
    # A stopped agent never blocks trading, even when named fatal.
    set_config(enrolled, selftest={"fatal": ["sync", "log"]})
    assert run_selftest(enrolled, probes, only=["sync", "log"], now_ms=int(later), record=False).ok


def test_broker_reachable_and_unreachable(enrolled, probes):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        set_config(enrolled, sync={"broker": f"mqtt://127.0.0.1:{port}"})
        checks = by_name(run_selftest(enrolled, probes, record=False, **ALWAYS))
        assert checks["broker"].result == "pass" and str(port) in checks["broker"].value
    finally:
        server.close()
    checks = by_name(run_selftest(enrolled, probes, record=False, **ALWAYS))
    assert checks["broker"].result == "warn" and "unreachable" in checks["broker"].value
    set_config(enrolled, selftest={"fatal": ["broker", "log"]})  # the broker never blocks trading
    assert run_selftest(enrolled, probes, record=False, **ALWAYS).ok


def test_cli_json_exit_code_and_table(enrolled):
    set_config(
        enrolled,
        hardware={
            "printer": "none://",
            "engraver": "none://",
            "camera": "none://",
            "gpio": "none://",
        },
    )
    run = [sys.executable, "-m", "appliance.cli", "selftest", "--data-dir", str(enrolled.root)]
    res = subprocess.run([*run, "--json"], capture_output=True, text=True, timeout=60)
    out = json.loads(res.stdout)
    assert res.returncode == 0, res.stdout + res.stderr
    assert out["ok"] and out["recorded_seq"] and len(out["checks"]) == len(CHECK_NAMES)
    set_config(enrolled, selftest={"fatal": ["printer"]}, hardware={"printer": "tcp://127.0.0.1:9"})
    res = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "FAIL!" in res.stdout and "fix:" in res.stdout
    res = subprocess.run([*run, "--only", "bogus"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "unknown check 'bogus'" in res.stderr


def test_rechained_history_is_caught_by_the_tail_check(enrolled, probes, tamper):
    """Rewriting an old event and recomputing every hash after it changes the hash of the
    point the last self-test verified: the quick tail check alone catches it."""
    run_selftest(enrolled, probes, **ALWAYS)
    tamper(enrolled.log_path, EDIT_A_SALE)
    report = run_selftest(enrolled, probes, **ALWAYS)
    log_check = by_name(report)["log"]
    assert log_check.result == "fail" and "differs from when it was last verified" in (
        log_check.value
    )
    assert not report.ok and report.recorded_seq is None
