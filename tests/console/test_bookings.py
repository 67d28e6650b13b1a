"""Bookings from a merchant's microsite through the console's JSON API (SQLite and
PostgreSQL): the merchant signs in, posts with the session's CSRF token, and gets the
customer's QR; the signed list reaches a stall's till (through the real broker with
the shipped config when the console has broker settings) and the till finds the booking
by that QR. Another tenant, another role or a missing token is refused."""

from __future__ import annotations

from appliance import bookings as till_bookings
from appliance import region as till_region
from appliance.formats import region as fmt
from appliance.till import Till
from edge import regionlists
from edge.store import Store
from systest.console import PASSWORD
from systest.multitill import make_tills
from systest.sync import retained_for

ORDER = {
    "name": "Grace Hopper",
    "payment": "paid_online",
    "items": [{"sku": "BOARD-ENG", "qty": 1, "engraving": "GRACE"}, {"sku": "HONEY", "qty": 2}],
    "id": "shop-1001",
}
ORDER_KEYS = ("shop-1001", "Grace Hopper", "paid_online")


def _post(client, body, csrf=None):
    token = client.csrf if csrf is None else csrf
    return client.post("/api/v1/bookings", json=body, headers={"X-CSRF-Token": token})


def _kept(db: str, tenant: str = "demo") -> regionlists.Kept | None:
    store = Store.open(db)
    try:
        return regionlists.kept(store, tenant, fmt.BOOKINGS)
    finally:
        store.close()


def test_a_merchants_microsite_books_and_the_stalls_till_finds_it_by_its_qr(
    populated, signed_in, region, tmp_path
):
    mia = signed_in("mia")
    r = _post(mia, ORDER)
    assert r.status_code == 200, r.text
    body = r.json()
    booking = body["booking"]
    assert (booking["id"], booking["name"], booking["payment"]) == ORDER_KEYS
    assert booking["items"][0] == {"sku": "BOARD-ENG", "qty": 1, "engraving": "GRACE"}
    ref = fmt.open_booking_qr(body["qr"], region.key.verify_key)  # the customer's code
    assert (ref.tenant, ref.booking_id, ref.number) == ("demo", "shop-1001", booking["number"])
    assert not body["published"]["sent"] and "--broker" in body["published"]["message"]

    # the kept list is what a till applies (from USB or the broker): it finds the booking
    kept = _kept(populated.db)
    assert kept is not None and kept.version == body["version"]
    (till_folder,) = make_tills(tmp_path, region, ("b9",))
    with Till.open(till_folder) as till:
        till_region.apply_signed(till, kept.data, fmt.BOOKINGS)
        found, how = till_bookings.find(till, qr=body["qr"])
    assert (found.id, found.number, how) == ("shop-1001", booking["number"], "qr")

    listed = mia.get("/api/v1/bookings").json()
    assert listed["tenant"] == "demo" and listed["version"] == kept.version
    assert [b["id"] for b in listed["bookings"]] == ["shop-1001"]


def test_scope_roles_tokens_and_bad_orders_are_refused_in_words(populated, signed_in):
    mia, otto, tom = signed_in("mia"), signed_in("otto"), signed_in("tom")
    before = _kept(populated.db)
    assert _post(mia, {**ORDER, "id": "x1"}, csrf="").status_code == 403  # no CSRF token
    assert _post(mia, {**ORDER, "id": "x2", "tenant": "other"}).status_code == 403
    assert otto.get("/api/v1/bookings?tenant=demo").status_code == 403
    assert _post(tom, {**ORDER, "id": "x3", "tenant": "demo"}).status_code == 403
    bad = _post(mia, {**ORDER, "id": "x4", "payment": "on_credit"})
    assert bad.status_code == 422 and "payment" in bad.json()["error"]
    assert "\n" not in bad.json()["error"]
    unknown = _post(mia, {**ORDER, "id": "x5", "items": [{"sku": "no such", "qty": 1}]})
    assert unknown.status_code == 422
    assert _kept(populated.db) == before  # nothing refused was kept


def test_with_broker_settings_the_list_is_published_retained_to_the_tenants_tills(
    console_with_broker, region
):
    from fastapi.testclient import TestClient

    app, broker = console_with_broker
    mia = TestClient(app, base_url="https://testserver")
    csrf = mia.post("/api/v1/session", json={"name": "mia", "password": PASSWORD}).json()[
        "csrf_token"
    ]
    order = {**ORDER, "id": "shop-1002", "payment": "pay_at_pickup"}
    r = mia.post("/api/v1/bookings", json=order, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    published = r.json()["published"]
    assert published["sent"] and published["topic"] == "tillbox/v1/demo/region/bookings"
    message = retained_for(broker.port, "t1", published["topic"])
    update, value = fmt.open_region_data(message, region.key.verify_key, fmt.BOOKINGS)
    assert update.tenant == "demo" and update.version == r.json()["version"]
    assert "shop-1002" in {b.id for b in value.bookings}


def test_the_kept_list_is_sent_again_from_the_command_line(populated, signed_in, tmp_path):
    from systest.sync import run_tillbox

    mia = signed_in("mia")
    assert _post(mia, {**ORDER, "id": "shop-1003"}).status_code == 200
    out = tmp_path / "bookings.tbru"
    done = run_tillbox(
        "edge", "booking", "publish", "--db", populated.db, "--tenant", "demo", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == _kept(populated.db).data
    for args, words in (
        (["--tenant", "nobody", "--out", str(out)], "no bookings are kept for nobody"),
        (["--tenant", "demo"], "--broker URL and/or --out FILE"),
    ):
        refused = run_tillbox("edge", "booking", "publish", "--db", populated.db, *args)
        assert refused.returncode == 1 and words in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
