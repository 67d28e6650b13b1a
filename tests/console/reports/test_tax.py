"""The tax ledger against the edge's own tax_ledger and the tills' own logs, to the cent."""

from __future__ import annotations

import pytest

from appliance import events
from appliance.till import Till
from console.reports.period import Period, ReportInputError, day_of_ms
from console.reports.tax import tax_ledger
from console.scope import OutOfScope, Scope
from systest.reports import edge_tax_ledger, tax_by_day_from_logs
from systest.tradeworld import D1, D2, D3, EVENTS

TAX = Scope(user="tina", role="tax")


def as_dict(ledger) -> dict[tuple[str, int], list[int]]:
    return {
        (r.tax_profile, r.rate_bp): [r.net_minor, r.tax_minor, r.gross_minor] for r in ledger.rows
    }


def test_the_world_is_the_tills_own_events_as_ingest_rolled_them_up(world):
    """Each sale and refund carries the event its till traded at (its schedule, the
    cashier's answer) and that event's tax profile; the rollups the reports read are
    ingest's own, equal to a recomputation from the stored events (``tillbox edge check``)."""
    from edge import admin

    for device in ("t1", "t2", "t3", "t9"):
        with Till.open(world.tills[device]) as till:
            logged = [
                e
                for e in till.log.events()
                if e.type in (events.SALE_COMPLETED, events.REFUND_ISSUED)
            ]
        assert logged and {e.payload["event_id"] for e in logged} == {EVENTS[device]}, device
    with Till.open(world.tills["t1"]) as t1:
        started = [e.payload for e in t1.log.events() if e.type == events.EVENT_STARTED]
    assert [(s["event_id"], s["tax_profile"]) for s in started] == [("fair-1", "eu-market")]
    assert world.store.all("SELECT COUNT(*) FROM rollup_tax")[0][0] > 0
    assert admin.check(world.store)["ok"]


@pytest.mark.parametrize("tenant", ["demo", "other"])
def test_every_day_traded_equals_the_edge_tax_ledger_to_the_cent(world, tenant):
    ledger = tax_ledger(world.store, TAX, tenant, Period(D1, D3))
    expected = edge_tax_ledger(world.store, tenant)
    assert expected  # the world traded
    assert as_dict(ledger) == expected
    assert ledger.total_gross_minor == sum(v[2] for v in expected.values())
    # a wider period changes nothing: there were no sales outside it
    assert as_dict(tax_ledger(world.store, TAX, tenant, Period.month("2026-11"))) == expected


@pytest.mark.parametrize("day", [D1, D2, D3])
def test_each_day_equals_the_tills_own_logs(world, day):
    oracle = tax_by_day_from_logs(world.folders("t1", "t2", "t9"))
    expected = {(p, bp): v for (t, p, bp, d), v in oracle.items() if t == "demo" and d == day}
    assert as_dict(tax_ledger(world.store, TAX, "demo", Period(day, day))) == expected


def test_a_refund_counts_under_the_refunded_sales_profile_on_its_own_day(world):
    """t1 sold under eu-market on day 1 and refunded that sale on day 2, after it had been
    switched to us-fair: the refund is a negative eu-market row on day 2; day 1 keeps
    the sale; us-fair's day 2 holds only us-fair sales."""
    with Till.open(world.tills["t1"]) as t1:
        logged = list(t1.log.events())
    refund = next(e for e in logged if e.type == events.REFUND_ISSUED)
    sale = next(e for e in logged if e.payload.get("sale_id") == refund.payload["sale_id"])
    assert (day_of_ms(sale.wall_ms), day_of_ms(refund.wall_ms)) == (D1, D2)
    assert sale.payload["tax_profile"] == "eu-market"
    after = [e for e in logged if e.type == events.SALE_COMPLETED and e.seq > sale.seq]
    assert any(e.payload["tax_profile"] == "us-fair" and e.seq < refund.seq for e in after)

    def gross(evs, profile: str, day: str) -> dict[int, int]:
        out: dict[int, int] = {}
        for e in evs:
            if e.payload["tax_profile"] == profile and day_of_ms(e.wall_ms) == day:
                for t in e.payload["taxes"]:
                    out[t["rate_bp"]] = out.get(t["rate_bp"], 0) + t["gross_minor"]
        return out

    sales = [e for e in logged if e.type == events.SALE_COMPLETED]
    day2 = as_dict(tax_ledger(world.store, TAX, "demo", Period(D2, D2, "fair-1")))
    refunded = {t["rate_bp"]: t["gross_minor"] for t in refund.payload["taxes"]}
    eu_sold = gross(sales, "eu-market", D2)
    assert refunded and set(refunded) <= set(eu_sold)
    assert {bp: v[2] for (p, bp), v in day2.items() if p == "eu-market"} == {
        bp: eu_sold.get(bp, 0) - refunded.get(bp, 0) for bp in set(eu_sold) | set(refunded)
    }
    assert {bp: v[2] for (p, bp), v in day2.items() if p == "us-fair"} == gross(
        sales, "us-fair", D2
    )
    day1 = as_dict(tax_ledger(world.store, TAX, "demo", Period(D1, D1, "fair-1")))
    assert {bp: v[2] for (p, bp), v in day1.items()} == gross(sales, "eu-market", D1)


def test_an_event_and_a_month_are_periods(world):
    fair2 = tax_ledger(world.store, TAX, "demo", Period(D1, D3, "fair-2"))
    assert {r.tax_profile for r in fair2.rows} == {"ch-festival"}
    fair1 = tax_ledger(world.store, TAX, "demo", Period(D1, D3, "fair-1"))
    everything = tax_ledger(world.store, TAX, "demo", Period(D1, D3))
    assert fair1.total_gross_minor + fair2.total_gross_minor == everything.total_gross_minor
    assert tax_ledger(world.store, TAX, "demo", Period.month("2026-10")).rows == ()


def test_the_api_body_is_exactly_rows_and_total(world):
    body = tax_ledger(world.store, TAX, "demo", Period(D1, D3)).to_json()
    assert set(body) == {"rows", "total_gross_minor"}
    assert body["rows"] and all(
        set(r) == {"tax_profile", "rate_bp", "net_minor", "tax_minor", "gross_minor"}
        for r in body["rows"]
    )
    assert all(type(v) is int for r in body["rows"] for k, v in r.items() if k != "tax_profile")
    assert body["total_gross_minor"] == sum(r["gross_minor"] for r in body["rows"])


@pytest.mark.parametrize(
    "scope",
    [
        Scope("mia", "merchant", tenant="demo"),
        Scope("pat", "promoter", events=frozenset({"fair-1"})),
        Scope("ivy", "inspector", tenant="demo"),
    ],
)
def test_only_the_tax_role_reads_the_ledger(world, scope):
    with pytest.raises(OutOfScope):
        tax_ledger(world.store, scope, "demo", Period(D1, D3))


def test_the_sql_itself_keeps_a_scope_to_its_tenants(world):
    """A query function called with a tenant-scoped caller returns nothing of another
    tenant even if the role check above it were forgotten."""
    from console.reports import store as db

    merchant = Scope("mia", "merchant", tenant="demo")
    assert db.tax_rows(world.store, merchant, "other", D1, D3) == []
    assert db.tax_rows(world.store, merchant, "demo", D1, D3)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Period.days("2026-11-30", "2026-11-01"), "from 2026-11-30 is after to"),
        (lambda: Period.days("2026-02-30", "2026-03-01"), "not a calendar day"),
        (lambda: Period.days("28.11.2026", "2026-11-30"), "from must be a day YYYY-MM-DD"),
        (lambda: Period.days("2026-11-01", None), "to must be a day YYYY-MM-DD"),
        (lambda: Period.days("2000-01-01", "2026-01-01"), "more than the"),
        (lambda: Period.days("2026-11-01", "2026-11-02", "fair/1"), "event must be"),
        (lambda: Period.month("2026-13"), "month 2026-13 does not exist"),
        (lambda: Period.month("Nov"), "month must be YYYY-MM"),
    ],
)
def test_a_bad_period_is_one_line_that_says_what_to_send(make, message):
    with pytest.raises(ReportInputError) as err:
        make()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_bad_tenant_is_refused_before_any_query(world):
    with pytest.raises(ReportInputError, match="tenant must be"):
        tax_ledger(world.store, TAX, "demo' OR 1=1 --", Period(D1, D3))
