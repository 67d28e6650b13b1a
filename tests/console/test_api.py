"""The console's pages and API over a region whose tills sold (SQLite and PostgreSQL):
sign-in, roles and tenant scope, and the numbers against the tills' own logs."""

from __future__ import annotations

import io
import time

import pytest
import qrcode

from appliance.formats.receipt import receipt_qr_payload
from appliance.till import Till
from systest.console import send_health


def _figures(populated, *devices):
    rows = [populated.figures.per_device[d] for d in devices]
    return {k: sum(r[k] for r in rows) for k in rows[0]}


def _payload(populated, device, receipt_no):
    with Till.open(populated.folders[device]) as till:
        return receipt_qr_payload(till, till.find_sale(receipt_no))


# -- signing in ---------------------------------------------------------------------------
def test_a_wrong_password_is_401_and_the_right_one_sets_a_strict_cookie(app):
    from fastapi.testclient import TestClient

    client = TestClient(app, base_url="https://testserver")
    r = client.post("/api/v1/session", json={"name": "mia", "password": "not her password"})
    assert r.status_code == 401
    assert r.json() == {"error": "wrong name or password"}
    r = client.post("/api/v1/session", json={"name": "nobody", "password": "not a password"})
    assert r.status_code == 401 and r.json() == {"error": "wrong name or password"}
    r = client.post("/api/v1/session", json={"name": "mia", "password": "correct horse battery"})
    assert r.status_code == 200
    assert r.json()["role"] == "merchant" and r.json()["tenant"] == "demo"
    cookie = r.headers["set-cookie"].lower()
    for attribute in ("httponly", "secure", "samesite=strict", "path=/"):
        assert attribute in cookie, cookie
    assert client.get("/api/v1/session").json()["user"] == "mia"


def test_without_a_session_the_api_says_401_and_pages_send_to_sign_in(app):
    from fastapi.testclient import TestClient

    client = TestClient(app, base_url="https://testserver")
    r = client.get("/api/v1/fleet")
    assert r.status_code == 401 and "error" in r.json()
    r = client.get("/sales?from=2026-01-01", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Fsales%3Ffrom%3D2026-01-01"
    client.cookies.set("tillbox_session", "forged-token")
    assert client.get("/api/v1/sales").status_code == 401


# -- tenant scope -------------------------------------------------------------------------
def test_a_merchant_sees_their_tills_and_their_numbers_equal_the_tills_logs(populated, signed_in):
    mia = signed_in("mia")
    days = sorted(populated.figures.days)
    r = mia.get("/api/v1/sales", params={"from": days[0], "to": days[-1], "group": "till"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["tenant"] == "demo"
    by_till = {row["key"]: row for row in data["rows"]}
    assert set(by_till) == {"t1", "t2"}  # never t3, the other tenant's till
    for device in ("t1", "t2"):
        want = populated.figures.per_device[device]
        got = by_till[device]
        assert {k: got[k] for k in want} == want
    total = _figures(populated, "t1", "t2")
    [totals] = data["totals"]
    assert totals["gross_minor"] == total["gross_minor"]
    assert totals["net_minor"] == total["gross_minor"] - total["refund_minor"]
    # the page shows the same figures
    page = mia.get("/sales", params={"from": days[0], "to": days[-1], "group": "till"})
    assert page.status_code == 200
    assert f'data-gross="{populated.figures.per_device["t1"]["gross_minor"]}"' in page.text
    assert 'data-key="t3"' not in page.text


def test_a_merchant_gets_403_for_another_tenants_pages_and_api(signed_in):
    mia = signed_in("mia")
    for path in (
        "/api/v1/sales?tenant=other",
        "/api/v1/refunds?tenant=other",
        "/api/v1/stock?tenant=other",
        "/api/v1/exposure?tenant=other",
        "/api/v1/receipts?q=1&tenant=other",
        "/api/v1/receipts/t3/1",
    ):
        r = mia.get(path)
        assert r.status_code == 403, (path, r.text)
        assert set(r.json()) == {"error"}
        assert "t3" not in r.json()["error"] or "outside your scope" in r.json()["error"]
    for path in ("/sales?tenant=other", "/stock?tenant=other", "/receipts/t3/1"):
        r = mia.get(path)
        assert r.status_code == 403, path
        assert "outside your scope" in r.text


def test_each_role_opens_only_its_own_areas(signed_in):
    allowed = {
        "mia": ["/sales", "/refunds", "/stock", "/exposure", "/receipts", "/verify"],
        "tess": ["/fleet", "/exposure", "/admin/region"],
        "ada": ["/sales", "/fleet", "/admin/users", "/admin/devices", "/admin/audit"],
        "tom": ["/verify"],
        "ivan": ["/verify"],
    }
    refused = {
        "mia": ["/fleet", "/admin/users", "/admin/devices", "/admin/audit", "/api/v1/users"],
        "tess": ["/sales", "/stock", "/receipts", "/admin/users", "/api/v1/sales"],
        "tom": ["/sales", "/fleet", "/admin/users"],
        "pia": ["/sales", "/fleet", "/stock", "/api/v1/fleet"],
        "ivan": ["/sales", "/fleet", "/admin/devices"],
    }
    for name, paths in allowed.items():
        client = signed_in(name)
        for path in paths:
            assert client.get(path).status_code == 200, (name, path)
    for name, paths in refused.items():
        client = signed_in(name)
        for path in paths:
            assert client.get(path).status_code == 403, (name, path)


def test_the_navigation_offers_only_what_the_role_may_open(signed_in):
    page = signed_in("tess").get("/fleet").text
    assert 'href="/fleet"' in page
    assert 'href="/sales"' not in page and 'href="/admin/users"' not in page


def test_an_admin_sees_every_tenant(populated, signed_in):
    days = sorted(populated.figures.days)
    rows = (
        signed_in("ada")
        .get("/api/v1/sales", params={"from": days[0], "to": days[-1], "group": "till"})
        .json()["rows"]
    )
    assert {r["key"] for r in rows} == {"t1", "t2", "t3"}
    only = signed_in("ada").get("/api/v1/sales", params={"tenant": "other", "group": "till"})
    assert {r["key"] for r in only.json()["rows"]} == {"t3"}


# -- merchant pages -----------------------------------------------------------------------
def test_top_items_equal_what_the_tills_sold(populated, signed_in):
    from systest.console import till_figures

    days = sorted(populated.figures.days)
    items = signed_in("mia").get("/api/v1/sales", params={"from": days[0], "to": days[-1]})
    want = till_figures([populated.folders["t1"], populated.folders["t2"]]).per_sku
    got = {i["sku"]: i for i in items.json()["top_items"]}
    assert set(got) == set(want)
    for sku, item in want.items():
        assert (got[sku]["qty"], got[sku]["gross_minor"]) == (item["qty"], item["gross_minor"])
    top = items.json()["top_items"]
    assert [i["gross_minor"] for i in top] == sorted((i["gross_minor"] for i in top), reverse=True)


def test_refunds_are_the_tills_refund_receipts(populated, signed_in):
    days = sorted(populated.figures.days)
    data = signed_in("mia").get("/api/v1/refunds", params={"from": days[0], "to": days[-1]}).json()
    want = sorted(
        (r["device_id"], r["receipt_no"], r["total_minor"])
        for r in populated.figures.receipts
        if r["kind"] == "R" and r["device_id"] in ("t1", "t2")
    )
    assert sorted((r["device_id"], r["receipt_no"], r["total_minor"]) for r in data["refunds"]) == (
        want
    )
    per_day = sum(r["refund_minor"] for r in data["per_till_day"])
    assert per_day == _figures(populated, "t1", "t2")["refund_minor"]


def test_receipts_are_found_by_number_and_by_the_code_under_the_qr(populated, signed_in):
    mia = signed_in("mia")
    found = mia.get("/api/v1/receipts", params={"q": "2"}).json()["receipts"]
    assert {(r["device_id"], r["receipt_no"]) for r in found} == {("t1", 2), ("t2", 2)}
    printed = next(r for r in populated.figures.receipts if r["device_id"] == "t2" and r["code"])
    # the till logged the code it printed under the QR: the short code of that QR's payload
    from appliance.formats.receipt import short_code

    assert printed["code"] == short_code(_payload(populated, "t2", printed["receipt_no"]))
    found = mia.get("/api/v1/receipts", params={"q": printed["code"].lower()}).json()["receipts"]
    assert [(r["device_id"], r["receipt_no"]) for r in found] == [("t2", printed["receipt_no"])]
    other = next(r for r in populated.figures.receipts if r["device_id"] == "t3" and r["code"])
    assert mia.get("/api/v1/receipts", params={"q": other["code"]}).json()["receipts"] == []
    r = mia.get("/api/v1/receipts", params={"q": "DROP TABLE"})
    assert r.status_code == 422 and "receipt number" in r.json()["error"]


def test_a_receipt_shows_its_lines_and_the_view_is_audited(populated, signed_in):
    mia = signed_in("mia")
    r = mia.get("/receipts/t1/2")
    assert r.status_code == 200
    with Till.open(populated.folders["t1"]) as till:
        sale = till.find_sale(2).payload
    assert f'data-total="{sale["total_minor"]}"' in r.text
    for line in sale["lines"]:
        assert line["name"] in r.text
    rows = signed_in("ada").get("/api/v1/audit").json()["rows"]
    assert any(
        row["action"] == "receipt.view" and row["user"] == "mia" and row["target"] == "t1/2"
        for row in rows
    )
    assert mia.get("/api/v1/receipts/t1/99999").status_code == 404


def test_a_pasted_qr_payload_is_verified_against_the_key_and_the_regions_copy(populated, signed_in):
    mia = signed_in("mia")
    payload = _payload(populated, "t1", 3)
    r = mia.post(
        "/api/v1/receipts/verify", json={"payload": payload}, headers={"X-CSRF-Token": mia.csrf}
    )
    assert r.status_code == 200, r.text
    assert r.json()["ok"] and r.json()["at_region"]
    parts = payload.split("*")
    parts[8] = parts[8].replace(":", ":1", 1)  # a total changed by hand
    tampered = "*".join(parts)
    r = mia.post(
        "/api/v1/receipts/verify", json={"payload": tampered}, headers={"X-CSRF-Token": mia.csrf}
    )
    assert r.status_code == 200 and not r.json()["ok"]
    assert "signature" in r.json()["message"]
    other = _payload(populated, "t3", 1)
    r = mia.post(
        "/api/v1/receipts/verify", json={"payload": other}, headers={"X-CSRF-Token": mia.csrf}
    )
    assert r.status_code == 403
    r = mia.post(
        "/api/v1/receipts/verify", json={"payload": "hello"}, headers={"X-CSRF-Token": mia.csrf}
    )
    assert r.status_code == 200 and "not a tillbox receipt" in r.json()["message"]


def test_a_photo_of_a_receipt_is_read_and_verified(populated, signed_in):
    mia = signed_in("mia")
    image = qrcode.make(_payload(populated, "t2", 1), border=4, box_size=6)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    r = mia.post(
        "/verify",
        data={"csrf": mia.csrf},
        files={"photo": ("receipt.png", buffer.getvalue(), "image/png")},
    )
    assert r.status_code == 200, r.text
    assert "Genuine" in r.text and "as the region stored it" in r.text
    r = mia.post(
        "/verify",
        data={"csrf": mia.csrf},
        files={"photo": ("receipt.png", b"not a picture", "image/png")},
    )
    assert r.status_code == 422 and "JPEG or PNG" in r.text


def test_an_upload_over_the_limit_is_refused_before_it_is_read(signed_in):
    from console.receipts import UPLOAD_LIMIT

    mia = signed_in("mia")
    big = b"\xff" * (UPLOAD_LIMIT + 128 * 1024)
    r = mia.post(
        "/verify", data={"csrf": mia.csrf}, files={"photo": ("big.jpg", big, "image/jpeg")}
    )
    assert r.status_code == 413


def test_the_stock_page_shows_the_ledger_and_its_negative_flags(populated, signed_in):
    from edge.store import Store

    data = signed_in("mia").get("/api/v1/stock").json()
    store = Store.open(populated.db)
    try:
        ledger = {(t, s): int(q) for t, s, q in store.stock_levels() if t == "demo"}
        flags = [f for f in store.stock_flags() if f[0] == "demo"]
    finally:
        store.close()
    assert {(x["tenant"], x["sku"]): x["qty"] for x in data["levels"]} == ledger
    assert ledger[("demo", "HONEY")] < 0
    assert len(data["open_flags"]) == len(flags) > 0
    assert all(f["tenant"] == "demo" for f in data["open_flags"])


# -- fleet and exposure -------------------------------------------------------------------
def test_the_fleet_flags_a_silent_till_and_shows_each_tills_health(populated, signed_in):
    now = int(time.time() * 1000)
    three_hours = 3 * 3600_000
    send_health(populated.db, populated.folders["t1"], now - three_hours, now - three_hours)
    send_health(
        populated.db,
        populated.folders["t2"],
        now - 1000,
        now - 1000 + 2500,  # the till's clock is 2.5 s ahead
        printer_paper="low",
        queued_events=17,
        drain_estimate_s=4,
    )
    data = signed_in("tess").get("/api/v1/fleet").json()
    tills = {d["device_id"]: d for d in data["devices"]}
    assert set(tills) == {"t1", "t2", "t3"}
    assert tills["t1"]["silent"] and any("silent for 3 h" in f for f in tills["t1"]["flags"])
    assert not tills["t2"]["silent"] and tills["t2"]["flags"] == ["paper low"]
    assert tills["t2"]["queued_events"] == 17 and tills["t2"]["drain_estimate_s"] == 4
    assert tills["t2"]["clock_skew_ms"] == 2500
    assert tills["t2"]["version"]
    assert tills["t3"]["flags"] == ["never reported"]
    page = signed_in("tess").get("/fleet").text
    assert 'data-device="t1" class="flag"' in page and "silent for 3 h" in page
    # the card payments each till holds unsynced, as its health message says (these tills'
    # own agents never ran, so to them every card sale is still unsynced)
    from appliance.till import Till

    held = {}
    for device in ("t1", "t2"):
        with Till.open(populated.folders[device]) as till:
            held[device] = till.card_exposure_minor()
    assert all(held.values())
    exposure = signed_in("mia").get("/api/v1/exposure").json()["tills"]
    assert {t["device_id"]: t["card_exposure_minor"] for t in exposure} == held


def test_the_fleet_shows_each_tills_update_and_filters_by_version(populated, signed_in):
    """The update state the tills' signed health messages carry (TBHL ``update``), through
    the edge's ingest, on the API and the page; the tills not yet on a version."""
    from appliance.formats import telemetry

    now = int(time.time() * 1000)
    rolled_back = telemetry.Update(
        "rolled_back", "2.1.0", "A", "2.2.0", "2.2.0 was not healthy: the kiosk did not "
        "draw its first frame", 40, now - 60_000,
    )  # fmt: skip
    trial = telemetry.Update("trial", "2.2.0", "B", "2.2.0", None, 41, now - 30_000)
    send_health(populated.db, populated.folders["t1"], now, now, update=rolled_back)
    send_health(populated.db, populated.folders["t2"], now, now, update=trial)
    tess = signed_in("tess")
    tills = {d["device_id"]: d for d in tess.get("/api/v1/fleet").json()["devices"]}
    t1, t2 = tills["t1"]["update"], tills["t2"]["update"]
    assert t1["text"] == (
        "rolled back from 2.2.0: 2.2.0 was not healthy: the kiosk did not draw its first "
        "frame; runs 2.1.0 in slot A"
    )
    assert (t1["state"], t1["running"], t1["slot"], t1["version"]) == (
        "rolled_back", "2.1.0", "A", "2.2.0",
    )  # fmt: skip
    assert "update rolled back" in tills["t1"]["flags"]
    assert t2["text"] == "2.2.0 on trial in slot B" and tills["t2"]["flags"] == []
    assert tills["t3"]["update"]["state"] is None  # never reported
    behind = tess.get("/api/v1/fleet", params={"not_version": "2.2.0"}).json()
    assert behind["not_version"] == "2.2.0"
    assert [d["device_id"] for d in behind["devices"]] == ["t1", "t3"]
    page = tess.get("/fleet", params={"not_version": "2.2.0"}).text
    assert "rolled back from 2.2.0" in page and 'data-device="t2"' not in page
    assert 'value="2.2.0"' in page
    bad = tess.get("/api/v1/fleet", params={"not_version": "2.2 beta"})
    assert bad.status_code == 422 and "not_version must be a version" in bad.json()["error"]


# -- admin --------------------------------------------------------------------------------
def test_the_region_page_shows_the_keys_fingerprint(region, signed_in):
    data = signed_in("ada").get("/api/v1/region").json()
    assert data["configured"] and data["public_key"] == region.pub_hex
    from appliance.formats.receipt import key_id

    assert data["key_id"] == key_id(region.key.verify_key)
    assert region.pub_hex in signed_in("tess").get("/admin/region").text


def test_admin_lists_show_users_tenants_and_devices(signed_in):
    ada = signed_in("ada")
    users = {u["name"]: u for u in ada.get("/api/v1/users").json()["users"]}
    assert users["mia"]["tenant"] == "demo" and users["pia"]["events"] == ["fair"]
    assert all("hash" not in key for u in users.values() for key in u)
    tenants = {t["tenant"]: t for t in ada.get("/api/v1/tenants").json()["tenants"]}
    assert tenants["demo"]["devices"] == 2 and tenants["other"]["devices"] == 1
    assert tenants["demo"]["share_stall_takings"] is False
    devices = {d["device_id"] for d in ada.get("/api/v1/devices").json()["devices"]}
    assert devices == {"t1", "t2", "t3"}


# -- errors -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/sales?from=2026-13-01", 422),
        ("/api/v1/sales?from=2026-02-03&to=2026-02-01", 422),
        ("/api/v1/sales?group=minute", 422),
        ("/api/v1/sales?tenant=a%20b", 422),
        ("/api/v1/receipts/t1/abc", 422),
        ("/api/v1/receipts/t%2F1/1", 404),
        ("/api/v1/audit?limit=0", 422),
        ("/api/v1/nothing-here", 404),
    ],
)
def test_bad_input_gets_one_json_message_never_a_500(signed_in, path, status):
    r = signed_in("ada").get(path)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"} and r.json()["error"]


def test_the_api_documents_itself(app):
    from fastapi.testclient import TestClient

    schema = TestClient(app, base_url="https://testserver").get("/api/v1/openapi.json").json()
    for path in ("/api/v1/session", "/api/v1/fleet", "/api/v1/sales", "/api/v1/stock/count"):
        assert path in schema["paths"], path
    assert not any(not p.startswith("/api/v1/") for p in schema["paths"])
    fleet = schema["components"]["schemas"]["FleetDevice"]["properties"]
    for field in ("device_id", "tenant", "last_seen_ms", "version", "queued_events", "selftest"):
        assert field in fleet
    assert "update" in fleet
    # the ledger's routes read their query through one dependency: named and described
    for path in ("/api/v1/tax", "/api/v1/tax/export.csv", "/api/v1/tax/export.pdf"):
        params = {p["name"]: p for p in schema["paths"][path]["get"]["parameters"]}
        assert set(params) == {"tenant", "from", "to", "month", "event", "tax_profile"}, path
        assert all(p["in"] == "query" and p.get("description") for p in params.values()), path


def test_each_role_lands_on_its_own_work_after_signing_in(signed_in):
    """The front door sends a role to its own first page, not to one it shares (a tax
    reporter may verify receipts, but came for the ledger)."""
    landing = {
        "mia": "/sales",
        "tess": "/fleet",
        "ada": "/sales",
        "tom": "/tax",
        "pia": "/promoter",
        "ivan": "/inspector",
    }
    for name, path in landing.items():
        r = signed_in(name).get("/", follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, path), name
