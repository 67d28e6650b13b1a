"""The promoter's reports against the tills' own logs, scoped to their events, with stall
takings only where the merchant opted in; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from appliance import events
from appliance.pricing import CartLine
from appliance.till import Till
from console.reports import store as db
from console.reports.period import ReportInputError
from console.reports.promoter import (
    event_report,
    event_takings,
    footfall_per_hour,
    promo_redemptions,
    promoter_events,
)
from console.reports.settings import set_stall_sharing, stall_sharing
from console.scope import OutOfScope, Scope
from systest.reports import set_stall, trading_at
from systest.tradeworld import D1, D2, D3, EVENTS

PROMOTER = Scope("pat", "promoter", events=frozenset({"fair-1"}))
DEMO = Scope("mia", "merchant", tenant="demo")
OTHER = Scope("oli", "merchant", tenant="other")


def logged(world, event_id: str, *devices: str) -> list:
    """The sales and refunds of the pushed tills at ``event_id``, from their own logs."""
    out = []
    for device in devices:
        if EVENTS[device] != event_id:
            continue
        tenant = "other" if device == "t9" else "demo"
        with Till.open(world.tills[device]) as till:
            out += [
                (tenant, device, e)
                for e in till.log.events()
                if e.type in (events.SALE_COMPLETED, events.REFUND_ISSUED)
            ]
    return out


def hour_of(e) -> tuple[str, int]:
    at = dt.datetime.fromtimestamp(e.wall_ms / 1000, dt.UTC)
    return at.date().isoformat(), at.hour


PUSHED = ("t1", "t2", "t9")


def test_footfall_is_the_sales_per_hour_of_every_tenant_at_the_event(world):
    counts: dict[tuple[str, int], int] = {}
    for _t, _d, e in logged(world, "fair-1", *PUSHED):
        if e.type == events.SALE_COMPLETED:
            counts[hour_of(e)] = counts.get(hour_of(e), 0) + 1
    hours = footfall_per_hour(world.store, PROMOTER, "fair-1")
    assert {(h.day, h.hour): h.sales for h in hours if h.sales} == counts
    # every hour from the first sale's to the last's is there, the quiet ones as 0
    first, last = min(counts), max(counts)
    span = dt.datetime.fromisoformat(f"{last[0]}T{last[1]:02d}") - dt.datetime.fromisoformat(
        f"{first[0]}T{first[1]:02d}"
    )
    assert len(hours) == span // dt.timedelta(hours=1) + 1
    assert (hours[0].day, hours[0].hour) == first and (hours[-1].day, hours[-1].hour) == last
    day2 = footfall_per_hour(world.store, PROMOTER, "fair-1", D2, D2)
    assert {(h.day, h.hour): h.sales for h in day2 if h.sales} == {
        k: v for k, v in counts.items() if k[0] == D2
    }


def test_promo_redemptions_per_code(world):
    assert set(expected_promos(world, *PUSHED)) == {("MARKET10", ""), ("FIVEOFF", "")}
    got = promo_redemptions(world.store, PROMOTER, "fair-1")
    assert {(p.code, p.promoter): [p.redemptions, p.discount_minor] for p in got} == (
        expected_promos(world, *PUSHED)
    )
    assert event_report(world.store, PROMOTER, "fair-1").to_json()["promoters"] == []


def expected_promos(world, *devices: str) -> dict[tuple[str, str], list[int]]:
    """(code, promoter) -> [redemptions, discount] at fair-1, from the tills' own logs."""
    expected: dict[tuple[str, str], list[int]] = {}
    for _t, _d, e in logged(world, "fair-1", *devices):
        if e.type == events.SALE_COMPLETED:
            for promo in e.payload["promotions"]:
                if promo["code"]:
                    row = expected.setdefault((promo["code"], promo.get("promoter", "")), [0, 0])
                    row[0] += 1
                    row[1] += promo["discount_minor"]
    return expected


def test_a_promoters_own_code_is_counted_for_that_promoter(world):
    """t3 (offline until now) gets a catalog with pat's code for fair-1 and sells with
    it twice: the region counts both for pat, next to the merchants' codes."""
    with Till.open(world.tills["t3"]) as t3, trading_at(f"{D2}T15:00"):
        catalog = t3.catalog().to_json()
        catalog["promotions"].append(
            {
                "id": "PAT10",
                "kind": "percent",
                "value": 1000,
                "code": "PAT10",
                "promoter": "pat",
                "events": ["fair-1"],
            }
        )
        t3.apply_catalog(catalog)
        for _ in range(2):
            t3.sell([CartLine("MUG-01", 1)], "cash", promo_code="PAT10")
    world.push("t3")
    expected = expected_promos(world, *PUSHED, "t3")
    assert expected[("PAT10", "pat")][0] == 2
    got = promo_redemptions(world.store, PROMOTER, "fair-1")
    assert {(p.code, p.promoter): [p.redemptions, p.discount_minor] for p in got} == expected
    body = event_report(world.store, PROMOTER, "fair-1").to_json()
    assert body["promoters"] == [
        {
            "promoter": "pat",
            "redemptions": 2,
            "discount_minor": expected[("PAT10", "pat")][1],
        }
    ]
    assert {"code": "PAT10", "promoter": "pat"}.items() <= next(
        p for p in body["promos"] if p["code"] == "PAT10"
    ).items()


def takings_from_logs(entries) -> dict[tuple, list[int]]:
    out: dict[tuple, list[int]] = {}
    for key, e in entries:
        row = out.setdefault((*key, e.payload["currency"]), [0, 0, 0, 0])
        gross = sum(t["gross_minor"] for t in e.payload["taxes"])  # before cash rounding
        if e.type == events.SALE_COMPLETED:
            row[0] += 1
            row[1] += gross
        else:
            row[2] += 1
            row[3] += gross
    return out


def test_takings_are_the_events_aggregate_until_a_merchant_opts_in(world):
    entries = logged(world, "fair-1", *PUSHED)
    total, stalls = event_takings(world.store, PROMOTER, "fair-1")
    assert {(t.currency,): [t.sales, t.gross_minor, t.refunds, t.refund_minor] for t in total} == (
        takings_from_logs(((), e) for _t, _d, e in entries)
    )
    assert {t.currency for t in total} == {"EUR", "USD"}  # t1 traded under two profiles
    assert stalls == ()  # nobody opted in: the aggregate only
    assert not stall_sharing(world.store, DEMO, "demo")

    set_stall(world.store, "t1", "honey-stand")
    assert set_stall_sharing(world.store, DEMO, "demo", True, audit=world.audit) is True
    assert world.audit_log[-1][:2] == ("mia", "settings.share_stall_takings")
    _total, stalls = event_takings(world.store, PROMOTER, "fair-1")
    expected = takings_from_logs(
        (("demo", "honey-stand"), e) for t, _d, e in entries if t == "demo"
    )
    assert {
        (s.tenant, s.stall, s.currency): [s.sales, s.gross_minor, s.refunds, s.refund_minor]
        for s in stalls
    } == expected  # t9's tenant did not opt in: its stall is not there
    assert all(s.takings_minor == s.gross_minor - s.refund_minor for s in stalls)

    set_stall_sharing(world.store, DEMO, "demo", False, audit=world.audit)
    assert event_takings(world.store, PROMOTER, "fair-1")[1] == ()


def test_only_a_tenants_own_merchant_sets_its_sharing(world):
    with pytest.raises(OutOfScope):
        set_stall_sharing(world.store, OTHER, "demo", True, audit=world.audit)
    with pytest.raises(OutOfScope):
        set_stall_sharing(world.store, PROMOTER, "demo", True, audit=world.audit)
    with pytest.raises(OutOfScope):
        stall_sharing(world.store, OTHER, "demo")
    assert not stall_sharing(world.store, DEMO, "demo") and world.audit_log == []


def test_a_promoter_sees_only_their_events(world):
    assert promoter_events(PROMOTER) == ("fair-1",)
    for report in (footfall_per_hour, promo_redemptions, event_takings, event_report):
        with pytest.raises(OutOfScope):
            report(world.store, PROMOTER, "fair-2")
        with pytest.raises(OutOfScope):
            report(world.store, DEMO, "fair-1")
    # the statements themselves keep the scope's events, whatever the caller checked
    assert db.footfall(world.store, PROMOTER, "fair-2", None, None) == []
    assert db.event_takings(world.store, PROMOTER, "fair-2", None, None) == []
    assert db.footfall(world.store, Scope("x", "promoter"), "fair-1", None, None) == []
    assert db.footfall(world.store, PROMOTER, "fair-1", None, None)
    fair2 = Scope("pia", "promoter", events=frozenset({"fair-2"}))
    assert event_report(world.store, fair2, "fair-2").takings[0].currency == "CHF"


def test_the_event_page_in_one_call_and_its_bad_input(world):
    report = event_report(world.store, PROMOTER, "fair-1", D1, D3)
    body = report.to_json()
    assert set(body) == {
        "event_id",
        "from",
        "to",
        "footfall",
        "promos",
        "promoters",
        "takings",
        "stalls",
    }
    assert sum(h["sales"] for h in body["footfall"]) == sum(t["sales"] for t in body["takings"])
    with pytest.raises(ReportInputError, match="give both from and to"):
        event_report(world.store, PROMOTER, "fair-1", D1, None)
    with pytest.raises(ReportInputError, match="event must be"):
        event_report(world.store, PROMOTER, "fair 1")
