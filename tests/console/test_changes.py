"""What changes state through the console: CSRF on every such route, the login limit,
stock counts that resolve negative-stock flags, users, tenants, devices, and the audit
rows each leaves (SQLite and PostgreSQL)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from nacl.signing import SigningKey

from edge import admin
from edge.store import Store
from systest.console import PASSWORD


def _audit(signed_in, action):
    return [
        r for r in signed_in("ada").get("/api/v1/audit").json()["rows"] if r["action"] == action
    ]


def _routes(routes):
    for route in routes:
        inner = getattr(route, "original_router", None)  # an included router
        if inner is not None:
            yield from _routes(inner.routes)
        else:
            yield route


def _unsafe_routes(app):
    for route in _routes(app.routes):
        methods = getattr(route, "methods", None) or set()
        for method in sorted(methods & {"POST", "PUT", "PATCH", "DELETE"}):
            yield method, route.path


# The state-changing routes of the tax, inspector and enrollment pages: listed so that a
# route renamed or dropped is noticed; the loop below refuses each without its token.
REPORT_AND_ONBOARDING_CHANGES = {
    ("POST", "/tax/file"),
    ("POST", "/api/v1/tax/filings"),
    ("POST", "/inspector/devices/{device_id}/package"),
    ("POST", "/api/v1/inspector/devices/{device_id}/package"),
    ("POST", "/admin/enrollments"),
    ("POST", "/api/v1/enrollments"),
    ("POST", "/admin/enrollments/{device_id}/review"),
    ("POST", "/api/v1/enrollments/{device_id}/review"),
    ("POST", "/admin/enrollments/{device_id}/publish"),
    ("POST", "/api/v1/enrollments/{device_id}/publish"),
}


def test_every_route_that_changes_state_refuses_a_request_without_its_csrf_token(app, signed_in):
    ada = signed_in("ada")
    routes = list(_unsafe_routes(app))
    assert len(routes) >= 12  # the guard is app-wide: a new route is covered without asking
    assert REPORT_AND_ONBOARDING_CHANGES <= set(routes)
    for method, path in routes:
        if path in ("/login", "/api/v1/session") and method == "POST":
            continue  # signing in has its own rules (tested below)
        url = re.sub(r"\{[^}]+\}", "t1", path)
        for headers in ({}, {"X-CSRF-Token": "not-the-token"}):
            if path.startswith("/api/"):
                r = ada.request(method, url, json={}, headers=headers)
            else:
                r = ada.request(method, url, data={"csrf": headers.get("X-CSRF-Token", "")})
            assert r.status_code == 403, (method, path, r.status_code, r.text[:200])
    # and the session was not ended by the refused DELETE /api/v1/session
    assert ada.get("/api/v1/session").status_code == 200


def test_a_stock_count_form_without_its_token_changes_nothing(populated, signed_in):
    mia = signed_in("mia")
    before = mia.get("/api/v1/stock").json()
    r = mia.post("/stock/count", data={"sku": "HONEY", "qty": "50", "note": "forged"})
    assert r.status_code == 403 and "CSRF" in r.text
    assert mia.get("/api/v1/stock").json() == before


def test_the_sign_in_form_needs_its_double_submit_token(app):
    client = TestClient(app, base_url="https://testserver")
    r = client.post("/login", data={"name": "mia", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403  # no token cookie: a form posted from another site
    page = client.get("/login?next=/stock")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = client.post(
        "/login",
        data={"name": "mia", "password": PASSWORD, "csrf": token, "next": "/stock"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/stock"
    assert "tillbox_session=" in r.headers["set-cookie"]
    evil = TestClient(app, base_url="https://testserver")
    evil.get("/login")
    r = evil.post(
        "/login",
        data={"name": "mia", "password": PASSWORD, "csrf": token, "next": "//evil.example"},
        follow_redirects=False,
    )
    assert r.status_code == 403  # someone else's token does not match this browser's cookie


def test_an_open_redirect_after_sign_in_goes_home_instead(app):
    client = TestClient(app, base_url="https://testserver")
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = client.post(
        "/login",
        data={"name": "mia", "password": PASSWORD, "csrf": token, "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/"


def test_the_json_sign_in_must_be_json(app):
    client = TestClient(app, base_url="https://testserver")
    r = client.post("/api/v1/session", data={"name": "mia", "password": PASSWORD})
    assert r.status_code == 422 and "application/json" in r.json()["error"]


def test_a_count_resolves_the_skus_negative_flags_through_the_edges_rule(populated, signed_in):
    mia = signed_in("mia")
    open_flags = [f for f in mia.get("/api/v1/stock").json()["open_flags"] if f["sku"] == "HONEY"]
    assert open_flags
    for bad, message in (
        ({"qty": "-1", "note": "x"}, "between 0"),
        ({"qty": "seven", "note": "x"}, "whole number"),
        ({"qty": "7", "note": ""}, "note is missing"),
        ({"qty": "7", "note": "x" * 501}, "longer than 500"),
    ):
        r = mia.post("/stock/count", data={"csrf": mia.csrf, "sku": "HONEY", **bad})
        assert r.status_code == 422 and message in r.text, (bad, r.text[-400:])
    r = mia.post(
        "/stock/count",
        data={"csrf": mia.csrf, "sku": "HONEY", "qty": "7", "note": "counted at close"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/stock?done=HONEY"
    data = mia.get("/api/v1/stock").json()
    assert {x["sku"]: x["qty"] for x in data["levels"]}["HONEY"] == 7
    assert not [f for f in data["open_flags"] if f["sku"] == "HONEY"]
    resolved = [f for f in data["resolved_flags"] if f["sku"] == "HONEY"]
    assert len(resolved) == len(open_flags)
    assert resolved[0]["resolution"]["note"] == "counted at close"
    assert resolved[0]["resolution"]["by"] == "mia"
    assert data["adjustments"][0]["note"] == "counted at close (mia)"
    store = Store.open(populated.db)
    try:
        assert admin.check(store)["ok"]  # the count is an adjustment the check explains
        assert store.stock_qty("demo", "HONEY") == 7
    finally:
        store.close()
    [row] = [r for r in _audit(signed_in, "stock.count") if r["target"] == "HONEY"]
    assert row["user"] == "mia" and row["tenant"] == "demo" and "counted 7" in row["detail"]
    # the API does the same, with the header
    r = mia.post(
        "/api/v1/stock/count",
        json={"sku": "HONEY", "qty": 8, "note": "recount"},
        headers={"X-CSRF-Token": mia.csrf},
    )
    assert r.status_code == 200 and r.json()["delta"] == 1


def test_a_merchant_cannot_count_another_tenants_stock(signed_in):
    mia = signed_in("mia")
    r = mia.post(
        "/stock/count",
        data={"csrf": mia.csrf, "tenant": "other", "sku": "HONEY", "qty": "1", "note": "x"},
    )
    assert r.status_code == 403
    r = mia.post(
        "/api/v1/stock/count",
        json={"tenant": "other", "sku": "HONEY", "qty": 1, "note": "x"},
        headers={"X-CSRF-Token": mia.csrf},
    )
    assert r.status_code == 403 and set(r.json()) == {"error"}


def test_users_are_added_by_admins_only_and_a_disabled_user_is_signed_out(signed_in):
    ada, mia = signed_in("ada"), signed_in("mia")
    body = {"name": "newbie", "role": "merchant", "tenant": "demo", "password": "long enough pw"}
    r = mia.post("/api/v1/users", json=body, headers={"X-CSRF-Token": mia.csrf})
    assert r.status_code == 403
    r = ada.post("/api/v1/users", json=body, headers={"X-CSRF-Token": ada.csrf})
    assert r.status_code == 200, r.text
    again = ada.post("/api/v1/users", json=body, headers={"X-CSRF-Token": ada.csrf})
    assert again.status_code == 422 and "already exists" in again.json()["error"]
    short = ada.post(
        "/api/v1/users",
        json={**body, "name": "b", "password": "short"},
        headers={"X-CSRF-Token": ada.csrf},
    )
    assert short.status_code == 422 and "10 to" in short.json()["error"]
    newbie = signed_in("newbie", "long enough pw")
    assert newbie.get("/api/v1/sales").status_code == 200
    r = ada.post("/admin/users/newbie/disable", data={"csrf": ada.csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert newbie.get("/api/v1/sales").status_code == 401
    r = TestClient(newbie.app, base_url="https://testserver").post(
        "/api/v1/session", json={"name": "newbie", "password": "long enough pw"}
    )
    assert r.status_code == 401
    r = ada.post(
        "/admin/users",
        data={"csrf": ada.csrf, "name": "x y", "role": "admin", "password": "long enough pw"},
    )
    assert r.status_code == 422 and "user name" in r.text
    assert {r["target"] for r in _audit(signed_in, "user.add")} >= {"newbie"}
    assert {r["target"] for r in _audit(signed_in, "user.disable")} >= {"newbie"}


def test_an_admin_enrolls_a_device_and_sets_a_tenants_opt_in(signed_in):
    ada = signed_in("ada")
    key = SigningKey.generate().verify_key.encode().hex()
    r = ada.post(
        "/admin/devices",
        data={"csrf": ada.csrf, "device_id": "t9", "tenant": "demo", "public_key": key},
        follow_redirects=False,
    )
    assert r.status_code == 303
    devices = {d["device_id"]: d for d in ada.get("/api/v1/devices").json()["devices"]}
    assert devices["t9"]["public_key"] == key and devices["t9"]["tenant"] == "demo"
    other = SigningKey.generate().verify_key.encode().hex()
    r = ada.post(
        "/api/v1/devices",
        json={"device_id": "t9", "tenant": "demo", "public_key": other},
        headers={"X-CSRF-Token": ada.csrf},
    )
    assert r.status_code == 422 and "already enrolled" in r.json()["error"]
    r = ada.post(
        "/admin/devices",
        data={"csrf": ada.csrf, "device_id": "t8", "tenant": "demo", "public_key": "zz"},
    )
    assert r.status_code == 422 and "64 hex digits" in r.text
    r = ada.post(
        "/settings/stall-sharing",
        data={
            "csrf": ada.csrf,
            "tenant": "demo",
            "share_stall_takings": "on",
            "back": "/admin/tenants",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/admin/tenants"
    tenants = {t["tenant"]: t for t in ada.get("/api/v1/tenants").json()["tenants"]}
    assert tenants["demo"]["share_stall_takings"] and not tenants["other"]["share_stall_takings"]
    assert [r["target"] for r in _audit(signed_in, "device.enroll")] == ["t9"]


def test_an_admin_revokes_a_device_and_its_segments_are_then_refused(populated, signed_in, region):
    from appliance.formats import wire
    from edge.ingest import Ingestor
    from systest.sync import seal_log, sell

    ada = signed_in("ada")
    r = ada.post(
        "/admin/devices/t2/profile",
        data={"csrf": ada.csrf, "stall": "honey-stall", "label": "Honey, till 2"},
    )
    assert r.status_code == 200 or r.status_code == 303
    r = ada.post("/admin/devices/t2/revoke", data={"csrf": ada.csrf, "reason": "stolen"})
    assert r.status_code in (200, 303), r.text
    devices = {d["device_id"]: d for d in ada.get("/api/v1/devices").json()["devices"]}
    assert devices["t2"]["revoked"]["reason"] == "stolen"
    assert devices["t2"]["stall"] == "honey-stall"
    fleet = {d["device_id"]: d for d in ada.get("/api/v1/fleet").json()["devices"]}
    assert "key revoked" in fleet["t2"]["flags"]
    # the edge now refuses the till's next segment, and the devices page counts it
    folder = populated.folders["t2"]
    sell(folder, 2)
    store = Store.open(populated.db)
    try:
        last = seal_log(folder, size=40)[-1]
        out = Ingestor(store, region.key).handle(wire.topic_seg("demo", "t2"), last)
        assert out.status in ("rejected", "nack"), out
    finally:
        store.close()
    devices = {d["device_id"]: d for d in ada.get("/api/v1/devices").json()["devices"]}
    assert devices["t2"]["rejected"].get("revoked", 0) >= 1, devices["t2"]["rejected"]
    [row] = _audit(signed_in, "device.revoke")
    assert (row["target"], row["detail"], row["tenant"]) == ("t2", "stolen", "demo")
    r = ada.post(
        "/api/v1/devices/nope/revoke", json={"reason": "x"}, headers={"X-CSRF-Token": ada.csrf}
    )
    assert r.status_code == 404


def test_signing_out_ends_the_session(signed_in):
    tess = signed_in("tess")
    r = tess.post("/logout", data={"csrf": tess.csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert tess.get("/api/v1/fleet").status_code == 401
    tom = signed_in("tom")
    assert tom.delete("/api/v1/session", headers={"X-CSRF-Token": tom.csrf}).status_code == 200
    assert tom.get("/api/v1/session").status_code == 401


def test_failed_sign_ins_are_limited_and_the_limit_survives_a_restart(populated, region, app):
    from console.app import create_app

    client = TestClient(app, base_url="https://testserver")
    for _ in range(5):
        r = client.post("/api/v1/session", json={"name": "ivan", "password": "guess guess"})
        assert r.status_code == 401
    r = client.post("/api/v1/session", json={"name": "ivan", "password": PASSWORD})
    assert r.status_code == 429 and "wait" in r.json()["error"]
    assert 0 < int(r.headers["retry-after"]) <= 15 * 60
    again = create_app(populated.db, region.key_path, index_interval_s=None)
    try:
        r = TestClient(again, base_url="https://testserver").post(
            "/api/v1/session", json={"name": "ivan", "password": PASSWORD}
        )
        assert r.status_code == 429  # counted in the database, not in the process
    finally:
        again.state.pool.close()
    # another user from the same place is not locked out by ivan's failures
    r = client.post("/api/v1/session", json={"name": "pia", "password": PASSWORD})
    assert r.status_code == 200
    # the sign-in page says the same, in words
    browser = TestClient(app, base_url="https://testserver")
    page = browser.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = browser.post("/login", data={"name": "ivan", "password": PASSWORD, "csrf": token})
    assert r.status_code == 429 and "too many failed sign-ins" in r.text


def test_the_audit_log_records_sign_ins(signed_in):
    signed_in("pia")
    rows = _audit(signed_in, "session.login")
    assert any(r["user"] == "pia" and r["client"] == "testclient" for r in rows)


def test_a_merchant_opts_in_to_stall_takings_for_promoters_only_for_their_tenant(
    populated, signed_in
):
    from console.reports import settings
    from console.scope import Scope

    otto = signed_in("otto")
    assert 'name="share_stall_takings"' in otto.get("/sales").text
    r = otto.post(
        "/api/v1/settings/stall-sharing",
        json={"share_stall_takings": True},
        headers={"X-CSRF-Token": otto.csrf},
    )
    assert r.status_code == 200 and r.json() == {"tenant": "other", "share_stall_takings": True}
    r = otto.post(
        "/api/v1/settings/stall-sharing",
        json={"tenant": "demo", "share_stall_takings": True},
        headers={"X-CSRF-Token": otto.csrf},
    )
    assert r.status_code == 403
    tess = signed_in("tess")
    r = tess.post("/settings/stall-sharing", data={"csrf": tess.csrf, "tenant": "other"})
    assert r.status_code == 403 and "technician" in r.text
    rows = [r for r in _audit(signed_in, "settings.share_stall_takings") if r["user"] == "otto"]
    assert rows and "tenant=other" in rows[0]["detail"]
    store = Store.open(populated.db)
    try:  # the reports' own setting: the one the promoter pages read
        assert settings.stall_sharing(store, Scope("ada", "admin"), "other")
    finally:
        store.close()
