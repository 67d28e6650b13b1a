"""The self-test gate in the core: every front end's sale goes through it."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest

from appliance import projections, schema, techpin
from appliance.errors import RuleViolation
from appliance.gate import SellingBlocked
from appliance.pricing import CartLine
from appliance.till import Till

PIN = "2468"


def _checks(**results: str) -> list[dict]:
    """name=result pairs; names ending in _nf are not fatal."""
    out = []
    for key, result in results.items():
        name = key.removesuffix("_nf")
        out.append(
            {
                "name": name,
                "result": result,
                "fatal": not key.endswith("_nf"),
                "value": f"{name} measured {result}",
                "fix": f"do the {name} fix" if result != "pass" else "",
            }
        )
    return out


def record(till: Till, **results: str) -> int:
    checks = _checks(**results)
    verdict = "fail" if any(c["fatal"] and c["result"] == "fail" for c in checks) else "pass"
    return till.record_selftest({"verdict": verdict, "trigger": "cli", "checks": checks}).seq


def set_pin(till: Till, pin: str = PIN) -> None:
    config = till.data_dir.load_config()
    config.update("ui", technician_pin_hash=techpin.hash_pin(pin, iterations=1000))
    till.data_dir.save_config(config)


def count_events(data_dir) -> int:
    """Counted with sqlite3 directly, not through the log class under test."""
    conn = sqlite3.connect(data_dir.log_path)
    try:
        return conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    finally:
        conn.close()


def sell(till: Till):
    return till.sell([CartLine("CAFE", 1)], "cash")


def test_a_till_with_no_recorded_self_test_may_sell(till):
    assert not till.selftest_gate().ran
    assert sell(till).event.seq > 0


def test_a_failed_fatal_check_refuses_the_sale_and_writes_nothing(till):
    record(till, log="pass", earth="fail")
    before = count_events(till.data_dir)
    with pytest.raises(SellingBlocked) as err:
        sell(till)
    message = str(err.value)
    assert "\n" not in message and "earth failed (earth measured fail)" in message
    assert "fix: do the earth fix" in message and "tillbox selftest override" in message
    assert count_events(till.data_dir) == before
    with pytest.raises(SellingBlocked, match="refunding is blocked"):
        till.refund(1)


def test_a_non_fatal_failure_or_a_warning_does_not_block(till):
    record(till, log="pass", printer_nf="fail", disk="warn")
    assert not till.selftest_gate().blocked
    assert sell(till).event.seq > 0


def test_an_override_after_the_failure_lets_it_sell_until_the_next_failure(till):
    record(till, permits="fail", earth="pass")
    set_pin(till)
    event = till.override_selftest(PIN)
    assert event.type == "selftest.override" and event.payload["failed"] == ["permits"]
    assert "permits failed" in event.payload["reason"]
    assert till.selftest_gate().overridden
    sell(till)
    record(till, permits="fail", earth="pass")  # a later self-test fails again
    with pytest.raises(SellingBlocked, match="permits failed"):
        sell(till)


def test_a_partial_self_test_updates_only_the_checks_it_ran(till):
    record(till, log="pass", earth="fail", disk="pass")
    record(till, disk="pass")  # `tillbox selftest --only disk`: earth is still failed
    with pytest.raises(SellingBlocked, match="earth failed"):
        sell(till)
    record(till, earth="pass")  # the earth was fixed and checked again
    assert not till.selftest_gate().blocked
    sell(till)


@pytest.mark.parametrize(
    ("pin", "configured", "needle"),
    [("1111", True, "wrong technician PIN"), (PIN, False, "--set-technician-pin")],
)
def test_override_refusals_write_nothing(till, pin, configured, needle):
    record(till, earth="fail")
    if configured:
        set_pin(till)
    before = count_events(till.data_dir)
    with pytest.raises(RuleViolation, match=needle):
        till.override_selftest(pin)
    assert count_events(till.data_dir) == before


def test_override_with_nothing_blocked_is_refused(till):
    set_pin(till)
    record(till, earth="pass")
    with pytest.raises(RuleViolation, match="nothing to override"):
        till.override_selftest(PIN)


def test_gate_events_are_written_only_through_the_till(till):
    for etype in ("selftest.override", "selftest.recorded"):
        with pytest.raises(RuleViolation, match="written by the till's own methods"):
            till.record(etype, {"failed": [], "checks": []})
    with pytest.raises(RuleViolation, match="needs checks"):
        till.record_selftest({"checks": [{"name": "earth", "result": "ok", "fatal": True}]})


def test_the_gate_projection_matches_a_rebuild(till):
    record(till, earth="fail", log="pass")
    set_pin(till)
    till.override_selftest(PIN)
    record(till, log="fail")
    live = projections.snapshot(till.log.conn)
    assert live["selftest_checks"] and live["selftest_overrides"]
    assert projections.rebuild(till.log.conn) == live


def test_a_schema_1_log_is_backfilled_from_its_recorded_self_tests(data_dir):
    with Till.open(data_dir) as till:
        till.open_shift()
        record(till, earth="pass", log="pass")
        record(till, earth="fail")
    # Turn it back into a schema-1 file: no gate tables.
    conn = sqlite3.connect(data_dir.log_path)
    conn.execute("DROP TABLE selftest_checks")
    conn.execute("DROP TABLE selftest_overrides")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    with Till.open(data_dir) as till:
        assert till.log.conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        assert [c.name for c in till.selftest_gate().failed] == ["earth"]
        with pytest.raises(SellingBlocked):
            sell(till)
        assert projections.rebuild(till.log.conn) == projections.snapshot(till.log.conn)
    assert schema.SCHEMA_VERSION == 3


# -- the CLI -------------------------------------------------------------------------------
def _sale(cli, d):
    return cli("sale", "--data-dir", d, "--item", "CAFE", "--pay", "card")


def test_cli_sale_is_refused_after_a_real_failed_self_test(cli, shop):
    from appliance.datadir import DataDir

    # The real self-test: a demo till has no enrollment, so the fatal permits check fails.
    run = cli("selftest", "--data-dir", shop, "--only", "log,permits")
    assert run.code == 1 and "permits" in run.out
    before = count_events(DataDir(Path(shop)))
    refused = _sale(cli, shop)
    assert refused.code == 1 and refused.out == ""
    assert refused.err.count("\n") == 1 and refused.err.startswith("tillbox: error: selling is")
    assert "permits failed (no enrollment recorded); fix: enroll the till" in refused.err
    assert count_events(DataDir(Path(shop))) == before


def test_cli_override_takes_the_pin_on_stdin(cli, shop, monkeypatch):
    from appliance.datadir import DataDir

    assert cli("selftest", "--data-dir", shop, "--only", "permits").code == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("97531\n"))
    assert cli("kiosk", "--data-dir", shop, "--set-technician-pin").code == 0
    before = count_events(DataDir(Path(shop)))
    monkeypatch.setattr("sys.stdin", io.StringIO("1111\n"))
    wrong = cli("selftest", "override", "--data-dir", shop)
    assert wrong.code == 1 and wrong.err.count("\n") == 1 and "wrong technician PIN" in wrong.err
    assert count_events(DataDir(Path(shop))) == before
    assert _sale(cli, shop).code == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("97531\n"))
    ok = cli("selftest", "override", "--data-dir", shop, "--json")
    assert ok.code == 0 and ok.json()["failed"] == ["permits"]
    assert _sale(cli, shop).code == 0
