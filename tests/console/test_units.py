"""The console's pure parts: charts, input checks, the fleet's reading of telemetry, the
listen address."""

from __future__ import annotations

import argparse
from datetime import date

import pytest

from console import charts, fleet, forms
from console.cli import listen_address
from console.errors import BadInput
from console.scope import ACCESS, ROLES, OutOfScope, Scope


def test_a_chart_escapes_its_labels_and_prints_its_values():
    svg = charts.bar_chart(
        [("<script>x</script>", 1200), ("b&c", -300)], "t <1>", lambda v: f"{v}!"
    )
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "b&amp;c" in svg
    assert "1200!" in svg and "-300!" in svg
    assert 'class="bar neg"' in svg
    assert charts.bar_chart([], "empty") == ""


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("42", ("number", 42)),
        (" 7 ", ("number", 7)),
        ("ot72j-zpi3e", ("code", "OT72J-ZPI3E")),
        ("OT72JZPI3E", ("code", "OT72J-ZPI3E")),
        ("", ("", None)),
    ],
)
def test_a_receipt_search_is_a_number_or_a_short_code(text, want):
    assert forms.receipt_query(text) == want


@pytest.mark.parametrize("text", ["OT72J-ZPI3", "1' OR '1'='1", "9" * 16, "OT72J-ZPI31"])
def test_anything_else_is_refused_with_what_to_type(text):
    with pytest.raises(BadInput, match="receipt number"):
        forms.receipt_query(text)


def test_a_period_is_checked_and_bounded():
    assert forms.period("2026-01-01", "2026-01-31") == (date(2026, 1, 1), date(2026, 1, 31))
    first, last = forms.period(None, "2026-03-10")
    assert (last - first).days == 6
    for start, end, message in (
        ("2026-02-30", None, "YYYY-MM-DD"),
        ("2026-1-1", None, "YYYY-MM-DD"),
        ("2026-02-02", "2026-02-01", "on or before"),
        ("2024-01-01", "2026-01-01", "at most 366"),
    ):
        with pytest.raises(BadInput, match=message):
            forms.period(start, end)


def health_body(**changes):
    """A health message's body as the edge stores it (``Health.to_json``)."""
    from appliance.formats.telemetry import Health, Selftest

    health = Health(
        device="t1",
        tenant="demo",
        sent_ms=1_000_000,
        version="0.1.0",
        queued_events=0,
        drain_estimate_s=0,
        selftest=Selftest(999_000, True, (("printer", "pass"), ("clock", "pass"))),
        printer_paper="ok",
        engraver_alarm=None,
        power_source="mains",
        battery_pct=None,
        card_exposure_minor=0,
        currency="EUR",
    )
    return {**health.to_json(), **changes}


def _row(**telemetry):
    body = health_body(**telemetry)
    return {
        "device_id": "t1",
        "tenant": "demo",
        "telemetry": body,
        "received_ms": 1_000_500,
        "sent_ms": 1_000_000,
        "revoked": None,
    }


def test_the_fleet_reads_a_health_message():
    view = fleet.health(_row(queued_events=40, drain_estimate_s=12), 1_001_000)
    assert view["queued_events"] == 40 and view["drain_estimate_s"] == 12
    assert view["clock_skew_ms"] == -500 and view["flags"] == [] and not view["silent"]
    assert view["selftest"]["verdict"] == "pass"


def test_the_fleet_flags_what_needs_a_technician():
    failed = {"at_ms": 1, "ok": False, "checks": [{"name": "printer", "status": "fail"}]}
    view = fleet.health(
        _row(
            printer_paper="out",
            engraver_alarm="ALARM:1 hard limit",
            power={"source": "battery", "battery_pct": 31},
            selftest=failed,
        ),
        1_000_500 + fleet.SILENT_AFTER_MS + 1,
    )
    assert view["flags"] == [
        "silent for 15 min",
        "paper out",
        "engraver alarm: ALARM:1 hard limit",
        "self-test failed: printer",
        "on battery",
    ]
    assert view["power"] == {"source": "battery", "battery_pct": 31}


def test_a_till_that_never_reported_is_flagged_and_odd_values_are_unknown():
    row = {**_row(), "telemetry": None, "received_ms": None, "sent_ms": None}
    assert fleet.health(row, 0)["flags"] == ["never reported"]
    odd = fleet.health(_row(queued_events="many", version=7, selftest="yes"), 1_000_600)
    assert odd["queued_events"] is None and odd["version"] is None and odd["selftest"] is None


def test_listen_addresses():
    assert listen_address("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert listen_address("[::1]:8443") == ("::1", 8443)
    for bad in ("8080", ":8080", "host:0", "host:http", "host:65536"):
        with pytest.raises(argparse.ArgumentTypeError):
            listen_address(bad)


def test_every_role_has_an_area_and_a_merchant_stays_in_their_tenant():
    assert {role for roles in ACCESS.values() for role in roles} <= set(ROLES)
    mia = Scope("mia", "merchant", "demo")
    assert mia.pick_tenant(None) == "demo" and mia.pick_tenant("demo") == "demo"
    with pytest.raises(OutOfScope):
        mia.pick_tenant("other")
    with pytest.raises(OutOfScope):
        Scope("x", "merchant", None).pick_tenant(None)
    assert Scope("ada", "admin").pick_tenant(None) is None
    assert mia.tenant_filter("d.tenant") == ("d.tenant = ?", ("demo",))
    with pytest.raises(OutOfScope):
        mia.allow("fleet")
