"""The event a till trades at: the region's signed schedule applied, the pick by the clock,
the cashier asked when unsure, every sale stamped with the event and taxed under its
profile, the switches in the log, the Z report per event, promoter codes per event."""

from __future__ import annotations

import json

import pytest

from appliance import events as ev
from appliance import projections, schedule
from appliance.catalog import demo_catalog
from appliance.errors import NotFound, RuleViolation
from appliance.formats import region as fmt
from appliance.pricing import CartLine
from appliance.testing import TillClock, confirm_clock
from appliance.till import Till
from systest.multitill import DAY_MS, deliver, make_tills, schedule_of, scheduled, sign

H = 3600 * 1000
T0 = 1_767_258_000_000  # 2026-01-01 09:00 UTC
FAIR = scheduled("fair-1", T0, T0 + 8 * H, "ch-festival", name="Winter Fair")
MARKET = scheduled("market-1", T0 + 8 * H, T0 + 12 * H, "eu-market")
LATER = scheduled("late-1", T0 + DAY_MS, T0 + DAY_MS + H)


# -- the rule, pure ----------------------------------------------------------------------
def test_the_pick_follows_the_clock_when_it_is_confirmed():
    s = schedule_of(FAIR, MARKET, LATER)
    assert schedule.pick(None, "s1", T0, True).how == schedule.NO_SCHEDULE
    got = schedule.pick(s, "s1", T0 + H, True)
    assert (got.how, got.event_id) == (schedule.CLOCK, "fair-1")
    assert schedule.pick(s, "s1", T0 + 8 * H, True).event_id == "market-1"  # end exclusive
    none = schedule.pick(s, "s1", T0 - H, True)
    assert none.how == schedule.ASK and none.question == schedule.Question("none_current")
    assert [e.id for e in none.candidates][:1] == ["fair-1"]  # the nearest first


def test_the_cashier_is_asked_when_unsure_and_the_answer_holds_while_the_question_does():
    s = schedule_of(FAIR, scheduled("talk-1", T0 + H, T0 + 2 * H), LATER)
    unconfirmed = schedule.pick(s, "s1", T0 + H, False)
    assert unconfirmed.question == schedule.Question("clock_unconfirmed")
    assert {e.id for e in unconfirmed.candidates} == {"fair-1", "talk-1", "late-1"}
    overlap = schedule.pick(s, "s1", T0 + H + 1, True)
    assert overlap.question == schedule.Question("overlap", ("fair-1", "talk-1"))
    chosen = schedule.Choice("talk-1", overlap.question)
    held = schedule.pick(s, "s1", T0 + 2 * H - 1, True, chosen)
    assert (held.how, held.event_id) == (schedule.CHOSEN, "talk-1")
    # talk-1 ended: only fair-1 is on, the clock names it; the choice no longer applies
    assert schedule.pick(s, "s1", T0 + 2 * H, True, chosen).event_id == "fair-1"
    # a choice made while the clock was unconfirmed stands only while it stays so
    blind = schedule.Choice("late-1", schedule.Question("clock_unconfirmed"))
    assert schedule.pick(s, "s1", T0, False, blind).event_id == "late-1"
    assert schedule.pick(s, "s1", T0 + 3 * H, True, blind).event_id == "fair-1"
    nothing = schedule.Choice("", schedule.Question("none_current"))
    assert schedule.pick(s, "s1", T0 + 10 * H, True, nothing).how == schedule.CHOSEN
    # a choice of an event a newer schedule dropped asks again
    gone = schedule.Choice("gone-1", schedule.Question("clock_unconfirmed"))
    assert schedule.pick(s, "s1", T0, False, gone).how == schedule.ASK


def test_an_event_for_other_stalls_is_not_this_stalls():
    s = schedule_of(scheduled("fair-1", T0, T0 + H, stalls=["s2"]))
    assert schedule.pick(s, "s1", T0 + 1, True).how == schedule.ASK
    assert schedule.pick(s, "s2", T0 + 1, True).event_id == "fair-1"


def test_the_clock_is_confirmed_only_by_this_boots_passing_check_and_no_jump_back():
    assert schedule.clock_confirmed("pass", "b1", "b1", 100, 100)
    assert not schedule.clock_confirmed("warn", "b1", "b1", 100, 200)
    assert not schedule.clock_confirmed("pass", "b0", "b1", 100, 200)  # an earlier boot
    assert not schedule.clock_confirmed("pass", "b1", "b1", 100, 99)  # before the last event
    assert not schedule.clock_confirmed(None, None, "b1", 0, 200)


# -- at the till ---------------------------------------------------------------------------
@pytest.fixture
def folder(tmp_path, region):
    return make_tills(tmp_path, region, ("a1",))[0]


def _sell(till: Till, sku: str = "MUG-01", **kw):
    return till.sell([CartLine(sku, 1)], "card", **kw).payload


def test_a_till_without_a_schedule_trades_as_before_with_an_empty_event_id(folder):
    with Till.open(folder) as till:
        p = _sell(till)
        assert p["event_id"] == "" and p["tax_profile"] == "eu-market"
        assert till.current_event().how == schedule.NO_SCHEDULE
        z = till.close_shift().payload["z_report"]
        assert "events" not in z and "bookings" not in z


def test_sales_at_an_event_carry_it_and_its_tax_profile_and_the_switches_are_logged(folder, region):
    deliver(folder, region, schedule_of(FAIR, MARKET), 1)
    with TillClock(T0 + H) as clock, Till.open(folder) as till:
        confirm_clock(till)
        assert till.current_event().event_id == "fair-1"
        assert till.profile().id == "ch-festival"
        first = _sell(till)
        assert (first["event_id"], first["tax_profile"], first["currency"]) == (
            "fair-1",
            "ch-festival",
            "CHF",
        )
        clock.set(T0 + 9 * H)  # the fair is over, the market runs
        second = _sell(till)
        assert (second["event_id"], second["tax_profile"]) == ("market-1", "eu-market")
        types = [e.type for e in till.log.events() if e.type.startswith(("event.", "sale."))]
        assert types == [
            ev.EVENT_STARTED,
            ev.SALE_COMPLETED,
            ev.EVENT_ENDED,
            ev.EVENT_STARTED,
            ev.SALE_COMPLETED,
        ]
        started = [e.payload for e in till.log.events() if e.type == ev.EVENT_STARTED]
        assert started[0]["tax_profile"] == "ch-festival" and started[0]["how"] == "clock"
        assert started[0]["schedule_version"] == 1
        assert projections.rebuild(till.log.conn) == projections.snapshot(till.log.conn)


def test_a_sale_is_refused_until_the_cashier_answers_and_the_answer_is_logged(folder, region, cli):
    deliver(folder, region, schedule_of(FAIR, MARKET), 1)
    d = str(folder.root)
    with TillClock(T0 + H):
        # no self-test has confirmed the clock in this boot
        current = cli("event", "current", "--data-dir", d, "--json")
        assert current.code == 0
        info = current.json()
        assert info["how"] == "ask" and info["question"]["reason"] == "clock_unconfirmed"
        refused = cli("sale", "--data-dir", d, "--item", "MUG-01", "--pay", "card")
        assert refused.code == 1 and "tillbox event choose" in refused.err
        assert refused.err.count("\n") == 1
        assert cli("event", "choose", "--data-dir", d, "nope").code == 1
        chosen = cli("event", "choose", "--data-dir", d, "market-1", "--json")
        assert chosen.code == 0 and chosen.json()["question"]["reason"] == "clock_unconfirmed"
        sale = cli("sale", "--data-dir", d, "--item", "MUG-01", "--pay", "card", "--json")
        assert sale.code == 0
    with Till.open(folder) as till:
        last = [e for e in till.log.events() if e.type == ev.SALE_COMPLETED][-1].payload
        assert last["event_id"] == "market-1" and last["tax_profile"] == "eu-market"
        kinds = [e.type for e in till.log.events()][-3:]
        assert kinds == [ev.EVENT_CHOSEN, ev.EVENT_STARTED, ev.SALE_COMPLETED]


def test_no_event_on_and_a_clock_jump_back_both_ask_again(folder, region):
    deliver(folder, region, schedule_of(FAIR), 1)
    with TillClock(T0 + 2 * H) as clock, Till.open(folder) as till:
        confirm_clock(till)
        assert _sell(till)["event_id"] == "fair-1"
        clock.set(T0 + 8 * H + 1)  # the fair ended; nothing else on
        with pytest.raises(RuleViolation, match="no event of the schedule is on now"):
            _sell(till)
        till.choose_event("")
        p = _sell(till)
        assert (p["event_id"], p["tax_profile"]) == ("", "eu-market")
        ended = [e.payload for e in till.log.events() if e.type == ev.EVENT_ENDED]
        assert ended == [{"event_id": "fair-1", "how": "chosen"}]
        clock.set(T0 + H)  # the clock jumps back behind the last event
        pick = till.current_event()
        assert pick.how == schedule.ASK and pick.question.reason == "clock_unconfirmed"
        with pytest.raises(RuleViolation, match="clock is not confirmed"):
            _sell(till)
        # a refund is never refused for it: it carries the event in progress (none here)
        sale = [e for e in till.log.events() if e.type == ev.SALE_COMPLETED][0]
        assert till.refund(sale.payload["sale_id"]).event.payload["event_id"] == ""


def test_after_a_jump_back_the_cashiers_choice_holds_until_the_clock_is_checked(folder, region):
    deliver(folder, region, schedule_of(FAIR, MARKET), 1)
    with TillClock(T0 + 9 * H) as clock, Till.open(folder) as till:
        confirm_clock(till)
        assert _sell(till)["event_id"] == "market-1"
        clock.set(T0 + H)  # back into the fair's hours: the clock is not to be trusted
        till.choose_event("market-1")
        # the choice was written at the jumped-back time, and still the clock is behind
        # what it said before: the sales stay the cashier's, not the clock's
        for _ in range(3):
            p = _sell(till)
            assert (p["event_id"], p["tax_profile"]) == ("market-1", "eu-market")
        assert till.current_event().question.reason == "clock_unconfirmed"
        confirm_clock(till)  # a time source confirms the clock as it is now
        assert _sell(till)["event_id"] == "fair-1"


def test_choosing_is_refused_when_there_is_nothing_to_choose(folder, region):
    with Till.open(folder) as till:
        with pytest.raises(RuleViolation, match="no event schedule"):
            till.choose_event("fair-1")
    deliver(folder, region, schedule_of(FAIR, scheduled("s2-only", T0, T0 + H, stalls=["s2"])), 1)
    with TillClock(T0 + H // 2), Till.open(folder) as till:
        confirm_clock(till)
        with pytest.raises(RuleViolation, match="nothing to choose"):
            till.choose_event("")
        assert till.current_event().event_id == "fair-1"  # s2-only is another stall's


def test_only_a_newer_schedule_of_this_tenant_signed_by_the_region_applies(
    folder, region, cli, tmp_path
):
    d = str(folder.root)
    newer = tmp_path / "v2.tbru"
    newer.write_bytes(sign(region, schedule_of(FAIR, MARKET), 2))
    older = tmp_path / "v1.tbru"
    older.write_bytes(sign(region, schedule_of(LATER), 1))
    applied = cli("event", "apply", "--data-dir", d, str(newer), "--json")
    assert applied.code == 0 and applied.json()["status"] == "applied"
    again = cli("event", "apply", "--data-dir", d, str(newer), "--json")
    assert again.json()["status"] == "unchanged"
    stale = cli("event", "apply", "--data-dir", d, str(older))
    assert stale.code == 0 and "version 2 is already in force" in stale.out
    listed = cli("event", "list", "--data-dir", d, "--json").json()
    assert [e["id"] for e in listed["events"]] == ["fair-1", "market-1"]
    other = tmp_path / "other.tbru"
    other.write_bytes(sign(region, schedule_of(LATER), 3, tenant="acme"))
    refused = cli("event", "apply", "--data-dir", d, str(other))
    assert refused.code == 1 and "tenant acme" in refused.err
    from nacl.signing import SigningKey

    forged = tmp_path / "forged.tbru"
    forged.write_bytes(
        fmt.seal_region_data(SigningKey(bytes(32)), "demo", schedule_of(LATER), 4, 0)
    )
    refused = cli("event", "apply", "--data-dir", d, str(forged))
    assert refused.code == 1 and "bad_signature" in refused.err
    roster = tmp_path / "roster.tbru"
    roster.write_bytes(sign(region, fmt.Roster(()), 5))
    refused = cli("event", "apply", "--data-dir", d, str(roster))
    assert refused.code == 1 and "wrong_kind" in refused.err  # event apply takes a schedule
    assert cli("region", "apply", "--data-dir", d, str(roster)).code == 0
    status = cli("region", "status", "--data-dir", d, "--json").json()
    assert status["lists"]["schedule"]["version"] == 2 and status["lists"]["roster"]["version"] == 5
    huge = tmp_path / "huge.tbru"
    huge.write_bytes(b"TBRU\x01" + b"x" * (3 << 20))
    refused = cli("region", "apply", "--data-dir", d, str(huge))
    assert refused.code == 1 and refused.err.count("\n") == 1


def test_a_region_without_key_on_the_till_says_how_to_set_it(data_dir, region, cli, tmp_path):
    path = tmp_path / "s.tbru"
    path.write_bytes(sign(region, schedule_of(FAIR), 1))
    refused = cli("event", "apply", "--data-dir", str(data_dir.root), str(path))
    assert refused.code == 1 and "region_public_key" in refused.err


def test_the_z_report_totals_each_event(folder, region):
    deliver(folder, region, schedule_of(FAIR, MARKET), 1)
    with TillClock(T0) as clock, Till.open(folder) as till:
        confirm_clock(till)
        clock.set(T0 + H)
        a = _sell(till)
        b = _sell(till, "TEE-M")
        clock.set(T0 + 9 * H)
        c = _sell(till, "HONEY")
        till.refund(a["sale_id"])  # a refund during the market: the market's money moves
        z = till.close_shift().payload["z_report"]
    by_event = {e["event_id"]: e for e in z["events"]}
    assert set(by_event) == {"fair-1", "market-1"}
    assert by_event["fair-1"]["sales_count"] == 2
    assert by_event["fair-1"]["gross_minor"] == a["total_minor"] + b["total_minor"]
    assert by_event["market-1"]["sales_count"] == 1
    assert by_event["market-1"]["gross_minor"] == c["total_minor"] - a["total_minor"]
    assert sum(e["gross_minor"] for e in z["events"]) == z["gross_minor"]
    assert sum(e["tax_minor"] for e in z["events"]) == z["tax_minor"]


def test_an_event_whose_tax_profile_the_catalog_lacks_refuses_with_the_fix(folder, region):
    deliver(folder, region, schedule_of(scheduled("x-1", T0, T0 + H, "no-such-profile")), 1)
    with TillClock(T0 + 1), Till.open(folder) as till:
        confirm_clock(till)
        with pytest.raises(RuleViolation, match="apply the region's catalog"):
            _sell(till)


def _promo_catalog() -> dict:
    data = demo_catalog().to_json()
    data["promotions"].append(
        {
            "id": "PAT10",
            "kind": "percent",
            "value": 1000,
            "code": "PAT10",
            "promoter": "pat",
            "events": ["fair-1"],
        }
    )
    return data


def test_a_promoters_code_works_only_at_its_event_and_names_the_promoter(folder, region):
    deliver(folder, region, schedule_of(FAIR, MARKET), 1)
    with TillClock(T0 + H) as clock, Till.open(folder) as till:
        till.apply_catalog(_promo_catalog())
        confirm_clock(till)
        p = _sell(till, promo_code="pat10")
        assert p["promotions"] == [
            {
                "id": "PAT10",
                "kind": "percent",
                "code": "PAT10",
                "discount_minor": p["discount_minor"],
                "promoter": "pat",
            }
        ]
        assert p["discount_minor"] > 0
        clock.set(T0 + 9 * H)
        with pytest.raises(RuleViolation, match="valid only at event fair-1"):
            _sell(till, promo_code="PAT10")
        plain = _sell(till, promo_code="MARKET10")
        assert "promoter" not in plain["promotions"][0]  # an unowned code stays as it was
    data = _promo_catalog()
    data["promotions"][-1]["events"] = ["not an id"]
    with Till.open(folder) as till, pytest.raises(RuleViolation, match="events"):
        till.apply_catalog(data)


def test_a_catalog_without_promoters_keeps_its_exact_json(folder):
    catalog = demo_catalog().to_json()
    assert all("promoter" not in p and "events" not in p for p in catalog["promotions"])
    assert json.dumps(catalog, sort_keys=True)  # unchanged shape: the old bytes


def test_choose_names_an_unknown_event(folder, region):
    deliver(folder, region, schedule_of(FAIR), 1)
    with TillClock(T0 - H), Till.open(folder) as till:
        with pytest.raises(NotFound, match="fair-1"):
            till.choose_event("fair-2")
