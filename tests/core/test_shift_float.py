"""The opening float: counted at shift open, recorded, and the Z report's cash starts from it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from appliance.errors import RuleViolation
from appliance.pricing import CartLine
from appliance.till import Till


def shift_events(log_path: Path) -> list[str]:
    conn = sqlite3.connect(log_path)
    try:
        return [r[0] for r in conn.execute("SELECT payload FROM events WHERE type LIKE 'shift.%'")]
    finally:
        conn.close()


def test_expected_cash_is_float_plus_cash_sales_minus_cash_refunds(data_dir):
    with Till.open(data_dir) as till:
        till.open_shift(15000)
        cash = till.sell([CartLine("MUG-01", 2)], "cash", tendered=5000)  # 24.00, change 26.00
        till.sell([CartLine("CAFE", 1)], "card")  # not in the drawer
        till.refund(cash.payload["receipt_no"], [("MUG-01", 1)])  # 12.00 back in cash
        z = till.close_shift().payload["z_report"]
    assert z["opening_float_minor"] == 15000
    assert z["expected_cash_minor"] == 15000 + 2400 - 1200


def test_cli_shift_open_records_the_float_and_close_prints_the_drawer(cli, data_dir):
    d = str(data_dir.root)
    opened = cli("shift", "open", "--data-dir", d, "--float", "10000", "--json").json()
    assert opened["opening_float_minor"] == 10000
    assert '"opening_float_minor":10000' in shift_events(data_dir.log_path)[-1]
    assert cli("sale", "--data-dir", d, "--item", "CAFE", "--pay", "cash").code == 0
    closed = cli("shift", "close", "--data-dir", d)
    assert "cash in drawer: float EUR 100.00 + cash takings = EUR 102.80" in closed.out


@pytest.mark.parametrize(("value", "code"), [("-5", 1), ("100000000000", 1), ("12.50", 2)])
def test_a_bad_float_is_refused_with_one_line_and_nothing_written(cli, data_dir, value, code):
    d = str(data_dir.root)
    before = shift_events(data_dir.log_path)
    out = cli("shift", "open", "--data-dir", d, "--float", value)
    assert out.code == code and out.err.count("\n") == 1 and out.out == ""
    assert shift_events(data_dir.log_path) == before


def test_float_with_close_is_refused(cli, data_dir):
    d = str(data_dir.root)
    assert cli("shift", "open", "--data-dir", d).code == 0
    out = cli("shift", "close", "--data-dir", d, "--float", "500")
    assert out.code == 1 and out.err.count("\n") == 1 and "shift open" in out.err
    with Till.open(data_dir) as till:
        assert till.current_shift() == 1  # still open: nothing written


def test_the_core_refuses_a_float_that_is_not_whole_minor_units(data_dir):
    with Till.open(data_dir) as till:
        for bad in (True, 1.5, "100"):
            with pytest.raises(RuleViolation, match="opening float"):
                till.open_shift(bad)
        assert till.current_shift() is None
