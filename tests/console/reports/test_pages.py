"""The tax reporter's and the promoter's pages and API over systest.tradeworld's three days
of trade (SQLite and PostgreSQL): the numbers against the edge's own tax ledger and the
tills' own logs, exports audited with the hash of their bytes, a period filed through
the form (CSRF), locked, and amended by a till that syncs late; a promoter's events,
with stall takings only where the merchant opted in."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re

import pytest
from pypdf import PdfReader

from appliance import events
from appliance.till import Till
from console import queries
from console.reports.promoter import event_report
from console.scope import Scope
from edge import admin
from systest.console import add_users
from systest.reports import edge_tax_ledger, tax_by_day_from_logs
from systest.tradeworld import D1, D2, D3, EVENTS, World, build_world

USERS = {
    "tom": ("tax", None, (), ()),
    "pat": ("promoter", None, ("fair-1",), ()),
    "mia": ("merchant", "demo", (), ()),
}
PUSHED = ("t1", "t2", "t9")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(request, tmp_path_factory, region) -> World:
    """The world once per module and dialect; the tests below file disjoint periods and the
    last one pushes the offline till."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('pages') / 'edge.db'}"
    else:
        url = request.getfixturevalue("pg_server").create_database("pages")
    w = build_world(tmp_path_factory.mktemp("tills"), url, region)
    add_users(url, USERS)
    yield w
    w.store.close()


@pytest.fixture(scope="module")
def app(site, region):
    """The console over the world (the shared ``signed_in`` fixture signs in to it)."""
    from console.app import create_app

    application = create_app(site.url, region.key_path, index_interval_s=None)
    yield application
    application.state.pool.close()


def as_dict(rows) -> dict[tuple[str, int], list[int]]:
    return {
        (r["tax_profile"], r["rate_bp"]): [r["net_minor"], r["tax_minor"], r["gross_minor"]]
        for r in rows
    }


def from_logs(site, tenant: str, start: str, end: str, devices=PUSHED) -> dict:
    out: dict[tuple[str, int], list[int]] = {}
    for (t, p, bp, day), v in tax_by_day_from_logs(site.folders(*devices)).items():
        if t == tenant and start <= day <= end:
            row = out.setdefault((p, bp), [0, 0, 0])
            for i in range(3):
                row[i] += v[i]
    return out


def audit_rows(site, action: str) -> list[dict]:
    return [
        r for r in queries.audit(site.store, Scope("x", "admin"), 1000) if r["action"] == action
    ]


# -- the tax ledger -----------------------------------------------------------------------
@pytest.mark.parametrize("tenant", ["demo", "other"])
def test_the_tax_api_is_exactly_rows_and_total_equal_to_the_edges_ledger(site, signed_in, tenant):
    r = signed_in("tom").get("/api/v1/tax", params={"tenant": tenant, "from": D1, "to": D3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"rows", "total_gross_minor"}
    assert all(
        set(row) == {"tax_profile", "rate_bp", "net_minor", "tax_minor", "gross_minor"}
        for row in body["rows"]
    )
    expected = edge_tax_ledger(site.store, tenant)
    assert expected and as_dict(body["rows"]) == expected
    assert as_dict(body["rows"]) == from_logs(site, tenant, D1, D3)
    assert body["total_gross_minor"] == sum(v[2] for v in expected.values())


@pytest.mark.parametrize("day", [D1, D2, D3])
def test_each_day_on_the_page_equals_the_tills_own_logs(site, signed_in, day):
    page = signed_in("tom").get("/tax", params={"tenant": "demo", "from": day, "to": day})
    assert page.status_code == 200, page.text
    shown = {
        (p, int(bp)): [int(n), int(t), int(g)]
        for p, bp, n, t, g in re.findall(
            r'<tr data-profile="([^"]+)" data-rate="(\d+)">.*?data-net="(-?\d+)".*?'
            r'data-tax="(-?\d+)".*?data-gross="(-?\d+)"',
            page.text,
        )
    }
    assert shown == from_logs(site, "demo", day, day)


def test_a_month_and_an_event_are_periods(site, signed_in):
    tom = signed_in("tom")

    def rows(**params):
        r = tom.get("/api/v1/tax", params={"tenant": "demo", **params})
        assert r.status_code == 200, r.text
        return as_dict(r.json()["rows"])

    assert (
        rows(month="2026-11")
        == rows(**{"from": D1, "to": D3})
        == edge_tax_ledger(site.store, "demo")
    )
    assert rows(month="2026-10") == {}
    assert {p for p, _bp in rows(event="fair-2")} == {"ch-festival"}  # every day of it
    # t1's day 2 at fair-1: eu-market (with the refund of a day-1 sale) and us-fair
    assert {p for p, _bp in rows(event="fair-1", **{"from": D2, "to": D2})} == {
        "eu-market",
        "us-fair",
    }
    page = tom.get("/tax", params={"tenant": "demo", "event": "fair-2"})
    assert page.status_code == 200 and f'data-from="{D1}" data-to="{D3}"' in page.text


def test_only_the_tax_role_reads_the_ledger(signed_in, app):
    from fastapi.testclient import TestClient

    for name in ("mia", "pat"):
        for path in (
            f"/api/v1/tax?tenant=demo&from={D1}&to={D3}",
            f"/api/v1/tax/export.csv?tenant=demo&from={D1}&to={D3}",
            "/api/v1/tax/filings",
            "/tax?tenant=demo",
            "/tax/filings",
        ):
            r = signed_in(name).get(path)
            assert r.status_code == 403, (name, path, r.status_code)
    anonymous = TestClient(app, base_url="https://testserver")
    assert anonymous.get(f"/api/v1/tax?tenant=demo&from={D1}&to={D3}").status_code == 401
    nav = signed_in("tom").get("/tax").text
    assert 'href="/tax/filings"' in nav and 'href="/sales"' not in nav


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"tenant": "demo", "from": "2026-13-01", "to": D3}, "not a calendar day"),
        ({"tenant": "demo", "from": D3, "to": D1}, "after to"),
        ({"tenant": "demo", "month": "2026-11", "from": D1}, "not both"),
        ({"tenant": "demo", "month": "Nov"}, "month must be YYYY-MM"),
        ({"tenant": "demo x", "from": D1, "to": D3}, "tenant must be"),
        ({"from": D1, "to": D3}, "tenant must be"),
        ({"tenant": "demo", "from": D1, "to": D3, "event": "fair/1"}, "event must be"),
        ({"tenant": "demo", "from": D1}, "to must be a day"),
    ],
)
def test_a_bad_period_is_400_with_one_line(signed_in, params, message):
    r = signed_in("tom").get("/api/v1/tax", params=params)
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error"} and message in r.json()["error"]
    if "tenant" in params:  # without one, the page offers the tenants to choose from
        page = signed_in("tom").get("/tax", params=params)
        assert page.status_code == 400 and message in page.text


def test_the_exports_equal_the_ledger_and_each_is_audited_with_its_hash(site, signed_in):
    tom = signed_in("tom")
    params = {"tenant": "demo", "from": D1, "to": D3, "event": "fair-1"}
    ledger = as_dict(tom.get("/api/v1/tax", params=params).json()["rows"])
    before = len(audit_rows(site, "tax.export.csv"))
    r = tom.get("/api/v1/tax/export.csv", params=params)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == (
        f'attachment; filename="tax-demo-{D1}-{D3}-fair-1.csv"'
    )
    lines = list(csv.DictReader(io.StringIO(r.content.decode("utf-8"))))
    assert {
        (line["tax_profile"], int(line["rate_bp"])): [
            int(line["net_minor"]),
            int(line["tax_minor"]),
            int(line["gross_minor"]),
        ]
        for line in lines
        if line["record"] == "row"
    } == ledger
    rows = audit_rows(site, "tax.export.csv")
    assert len(rows) == before + 1
    assert rows[0]["user"] == "tom" and rows[0]["role"] == "tax"
    assert f"sha256={hashlib.sha256(r.content).hexdigest()}" in rows[0]["detail"]
    assert f"from={D1} to={D3} event=fair-1" in rows[0]["detail"]
    pdf = tom.get("/api/v1/tax/export.pdf", params=params)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    total = sum(v[2] for v in ledger.values())
    assert f"{total // 100}.{total % 100:02d}" in text
    [audited] = [
        r
        for r in audit_rows(site, "tax.export.pdf")
        if hashlib.sha256(pdf.content).hexdigest() in r["detail"]
    ]
    assert audited["user"] == "tom"
    # the page links the same downloads
    page = tom.get("/tax", params=params).text
    assert "/api/v1/tax/export.csv?tenant=demo&amp;from=" in page
    assert "/api/v1/tax/export.pdf?" in page


# -- the promoter -------------------------------------------------------------------------
def _logged(site, event_id: str) -> list:
    out = []
    for device in PUSHED:
        if EVENTS[device] != event_id:
            continue
        tenant = "other" if device == "t9" else "demo"
        with Till.open(site.tills[device]) as till:
            out += [
                (tenant, e)
                for e in till.log.events()
                if e.type in (events.SALE_COMPLETED, events.REFUND_ISSUED)
            ]
    return out


def test_a_promoter_sees_their_events_footfall_promos_and_takings_from_the_tills(site, signed_in):
    pat = signed_in("pat")
    assert pat.get("/api/v1/promoter/events").json() == {"events": ["fair-1"]}
    r = pat.get("/api/v1/promoter/events/fair-1")
    assert r.status_code == 200, r.text
    body = r.json()
    pat_scope = Scope("pat", "promoter", events=frozenset({"fair-1"}))
    assert body == event_report(site.store, pat_scope, "fair-1").to_json()
    logged = _logged(site, "fair-1")
    per_hour: dict[tuple[str, int], int] = {}
    promos: dict[str, list[int]] = {}
    for _tenant, e in logged:
        if e.type != events.SALE_COMPLETED:
            continue
        at = dt.datetime.fromtimestamp(e.wall_ms / 1000, dt.UTC)
        key = (at.date().isoformat(), at.hour)
        per_hour[key] = per_hour.get(key, 0) + 1
        for promo in e.payload["promotions"]:
            if promo["code"]:
                row = promos.setdefault(promo["code"], [0, 0])
                row[0] += 1
                row[1] += promo["discount_minor"]
    assert {(h["day"], h["hour"]): h["sales"] for h in body["footfall"] if h["sales"]} == per_hour
    assert {p["code"]: [p["redemptions"], p["discount_minor"]] for p in body["promos"]} == promos
    assert {t["currency"] for t in body["takings"]} == {"EUR", "USD"}
    assert body["stalls"] == []  # nobody opted in yet
    page = pat.get("/promoter/events/fair-1")
    assert page.status_code == 200
    assert page.text.count('<rect x="') == len(body["footfall"])  # one column per hour
    for (day, hour), n in per_hour.items():
        assert f'data-day="{day}" data-hour="{hour}"><td>{day}</td>' in page.text
        assert f'data-sales="{n}"' in page.text
    for code, (n, _discount) in promos.items():
        assert f'data-code="{code}"' in page.text and f'data-redemptions="{n}"' in page.text
    day2 = pat.get("/api/v1/promoter/events/fair-1", params={"from": D2, "to": D2}).json()
    assert {h["day"] for h in day2["footfall"]} == {D2}


def test_stall_takings_show_only_once_the_merchant_opted_in(site, signed_in):
    admin.set_profile(site.store, "t1", "honey-stand")
    mia, pat = signed_in("mia"), signed_in("pat")
    assert "No merchant at this event shares" in pat.get("/promoter/events/fair-1").text
    r = mia.post(
        "/api/v1/settings/stall-sharing",
        json={"share_stall_takings": True},
        headers={"X-CSRF-Token": mia.csrf},
    )
    assert r.status_code == 200, r.text
    stalls = pat.get("/api/v1/promoter/events/fair-1").json()["stalls"]
    expected: dict[tuple, list[int]] = {}
    for tenant, e in _logged(site, "fair-1"):
        if tenant != "demo":
            continue
        row = expected.setdefault(("demo", "honey-stand", e.payload["currency"]), [0, 0])
        gross = sum(t["gross_minor"] for t in e.payload["taxes"])
        row[0 if e.type == events.SALE_COMPLETED else 1] += gross
    assert {
        (s["tenant"], s["stall"], s["currency"]): [s["gross_minor"], s["refund_minor"]]
        for s in stalls
    } == expected  # t9's merchant did not opt in: only the total has it
    page = pat.get("/promoter/events/fair-1").text
    assert (
        'data-tenant="demo" data-stall="honey-stand"' in page and 'data-tenant="other"' not in page
    )
    mia.post(
        "/api/v1/settings/stall-sharing",
        json={"share_stall_takings": False},
        headers={"X-CSRF-Token": mia.csrf},
    )
    assert pat.get("/api/v1/promoter/events/fair-1").json()["stalls"] == []


def test_a_promoter_gets_403_for_another_event_and_others_for_theirs(signed_in):
    pat = signed_in("pat")
    for path in ("/api/v1/promoter/events/fair-2", "/promoter/events/fair-2"):
        assert pat.get(path).status_code == 403, path
    assert pat.get("/api/v1/promoter/events/fair%201").status_code == 400
    r = pat.get("/api/v1/promoter/events/fair-1", params={"from": D1})
    assert r.status_code == 400 and "give both from and to" in r.json()["error"]
    for name in ("mia", "tom"):
        assert signed_in(name).get("/api/v1/promoter/events/fair-1").status_code == 403
        assert signed_in(name).get("/promoter").status_code == 403


# -- filing (these change the world: last) ------------------------------------------------
def test_a_period_is_filed_through_the_form_then_locked_and_amended_by_late_sales(site, signed_in):
    tom = signed_in("tom")
    page = tom.get("/tax", params={"tenant": "demo", "from": D1, "to": D2}).text
    assert 'class="row card file" data-profile="eu-market"' in page
    form = {"tenant": "demo", "tax_profile": "eu-market", "from": D1, "to": D2}
    assert tom.post("/tax/file", data=form).status_code == 403  # no CSRF token
    assert tom.post("/tax/file", data={**form, "csrf": "forged"}).status_code == 403
    assert audit_rows(site, "tax.file") == []
    r = tom.post("/tax/file", data={**form, "csrf": tom.csrf}, follow_redirects=False)
    assert r.status_code == 303, r.text
    filing_id = int(r.headers["location"].split("/")[-1].split("?")[0])
    shown = tom.get(r.headers["location"]).text
    assert "is locked" in shown and "locked, unchanged since filing" in shown
    filed = tom.get(f"/api/v1/tax/filings/{filing_id}").json()
    expected = {k: v for k, v in from_logs(site, "demo", D1, D2).items() if k[0] == "eu-market"}
    assert as_dict(filed["filing"]["rows"]) == expected and not filed["amended"]
    [row] = audit_rows(site, "tax.file")
    assert row["user"] == "tom" and f"filing={filing_id}" in row["detail"]

    # locked: the same days again, an overlap, or a period not over are refused, 409
    again = tom.post("/tax/file", data={**form, "csrf": tom.csrf})
    assert again.status_code == 409 and "already filed" in again.text
    headers = {"X-CSRF-Token": tom.csrf}
    r = tom.post(
        "/api/v1/tax/filings",
        json={"tenant": "demo", "tax_profile": "eu-market", "from": D2, "to": D3},
        headers=headers,
    )
    assert r.status_code == 409 and "already filed for" in r.json()["error"]
    today = dt.datetime.now(dt.UTC).date().isoformat()
    r = tom.post(
        "/api/v1/tax/filings",
        json={"tenant": "demo", "tax_profile": "ch-festival", "from": D1, "to": today},
        headers=headers,
    )
    assert r.status_code == 409 and "not over yet" in r.json()["error"]
    page = tom.get("/tax", params={"tenant": "demo", "from": D1, "to": D2}).text
    assert f"filed (filing {filing_id}" in page and 'data-profile="eu-market"' in page
    assert 'class="row card file" data-profile="eu-market"' not in page

    # t3 was offline at fair-1 and syncs now: an amendment, never a silent change
    site.push("t3")
    status = tom.get(f"/api/v1/tax/filings/{filing_id}").json()
    assert status["amended"] and as_dict(status["filing"]["rows"]) == expected
    now = {
        k: v
        for k, v in from_logs(site, "demo", D1, D2, ("t1", "t2", "t3")).items()
        if k[0] == "eu-market"
    }
    assert as_dict(status["current"]["rows"]) == now != expected
    amendment = as_dict(status["amendment"]["rows"])
    assert amendment == {
        k: [now.get(k, [0] * 3)[i] - expected.get(k, [0] * 3)[i] for i in range(3)]
        for k in set(now) | set(expected)
        if now.get(k) != expected.get(k)
    }
    assert {e["device_id"] for e in status["late"]} == {"t3"}
    shown = tom.get(f"/tax/filings/{filing_id}").text
    assert "AMENDED" in shown and shown.count('<tr data-device="t3"') == len(status["late"])
    ledger = tom.get("/tax", params={"tenant": "demo", "from": D2, "to": D2}).text
    assert f'<tr data-filing="{filing_id}" class="flag">' in ledger and "AMENDED" in ledger
    listed = tom.get("/api/v1/tax/filings", params={"tenant": "demo"}).json()["filings"]
    assert [f["filing"]["id"] for f in listed] == [filing_id] and listed[0]["amended"]
    csv_export = tom.get(f"/api/v1/tax/filings/{filing_id}/export.csv")
    assert csv_export.status_code == 200 and b"amendment" in csv_export.content
    pdf_export = tom.get(f"/api/v1/tax/filings/{filing_id}/export.pdf")
    assert pdf_export.content.startswith(b"%PDF")
    for action, out in (
        ("tax.filing.export.csv", csv_export),
        ("tax.filing.export.pdf", pdf_export),
    ):
        [row] = audit_rows(site, action)
        assert hashlib.sha256(out.content).hexdigest() in row["detail"]
    assert tom.get("/api/v1/tax/filings/999999").status_code == 404
    assert tom.get("/api/v1/tax/filings/abc").status_code == 422
