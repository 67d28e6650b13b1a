"""Onboarding review in the console (SQLite and PostgreSQL): an admin uploads a till's
enrollment export (checked against the enrolled key, bounded), sees it pending,
approves or rejects it with a reason; the decision is signed by the region key, bound
to the manifest, audited, and published retained to the till through a real mosquitto
when the console has broker settings."""

from __future__ import annotations

import io
import zipfile

import pytest

from appliance.formats import review as review_format
from console import queries
from console.scope import Scope
from edge.store import Store
from systest.console import PASSWORD, export_enrollment
from systest.sync import retained_for


@pytest.fixture(scope="module")
def t2_export(populated, tmp_path_factory) -> bytes:
    """t2's enrollment export file, as the till writes it (not imported yet)."""
    return export_enrollment(populated.folders["t2"], tmp_path_factory.mktemp("x") / "t2.zip")


def _audit(db: str, action: str) -> list[dict]:
    store = Store.open(db)
    try:
        rows = queries.audit(store, Scope("x", "admin"), 1000)
    finally:
        store.close()
    return [r for r in rows if r["action"] == action]


def _upload(client, data: bytes, name: str = "t2-enrollment.zip", csrf: str | None = None):
    return client.post(
        "/admin/enrollments",
        data={"csrf": client.csrf if csrf is None else csrf},
        files={"export": (name, data, "application/zip")},
        follow_redirects=False,
    )


def test_an_admin_uploads_an_export_and_sees_it_pending(populated, signed_in, t2_export):
    ada = signed_in("ada")
    assert _upload(ada, t2_export, csrf="").status_code == 403  # no CSRF token
    r = _upload(ada, t2_export)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/admin/enrollments/t2?done=imported"
    shown = ada.get(r.headers["location"]).text
    assert "Imported: the till" in shown and "Riverside Makers" in shown
    pending = ada.get("/api/v1/enrollments").json()
    assert {e["device_id"] for e in pending["enrollments"]} == {"t1", "t2"}
    assert pending["counts"]["pending"] == 2 and pending["status"] == "pending"
    page = ada.get("/admin/enrollments").text
    assert 'data-device="t2" data-status="pending"' in page
    again = _upload(ada, t2_export)
    assert again.headers["location"] == "/admin/enrollments/t2?done=already"
    api = ada.post(
        "/api/v1/enrollments",
        content=t2_export,
        headers={"X-CSRF-Token": ada.csrf, "content-type": "application/zip"},
    )
    assert api.status_code == 200 and api.json()["already_imported"], api.text
    [row, *_] = _audit(populated.db, "enrollment.import")
    assert row["user"] == "ada" and row["target"] == "t2"
    detail = ada.get("/api/v1/enrollments/t2").json()
    store = Store.open(populated.db)
    try:
        from edge.enrollments import get_enrollment

        record = get_enrollment(store, "t2")
    finally:
        store.close()
    assert detail["latest"]["manifest_sha256"] == record.manifest_sha256
    assert detail["latest"]["manifest"] == record.manifest


def test_a_tampered_or_foreign_export_is_refused_in_one_line(populated, signed_in, t2_export):
    ada = signed_in("ada")
    data = bytearray(t2_export)
    with zipfile.ZipFile(io.BytesIO(t2_export)) as zf:
        photo = next(i for i in zf.infolist() if i.filename.startswith("photos/"))
    data[photo.header_offset + 30 + len(photo.filename) + 10] ^= 0x01
    r = _upload(ada, bytes(data))
    assert r.status_code == 422 and "SHA-256" in r.text
    r = ada.post(
        "/api/v1/enrollments",
        content=bytes(data),
        headers={"X-CSRF-Token": ada.csrf, "content-type": "application/zip"},
    )
    assert r.status_code == 422 and "SHA-256" in r.json()["error"]
    assert "\n" not in r.json()["error"]
    junk = ada.post(
        "/api/v1/enrollments", content=b"PK\x03\x04 no", headers={"X-CSRF-Token": ada.csrf}
    )
    assert junk.status_code == 422 and set(junk.json()) == {"error"}
    empty = _upload(ada, b"", name="")
    assert empty.status_code == 422 and "enrollment export" in empty.text
    # a body over the console's limit is refused before it is read
    big = ada.post(
        "/api/v1/enrollments",
        content=b"\0" * (64 * 1024 * 1024 + 70 * 1024),
        headers={"X-CSRF-Token": ada.csrf, "content-type": "application/zip"},
    )
    assert big.status_code == 413 and "64 MiB" in big.json()["error"]
    for name in ("mia", "ivan", "tom", "tess"):
        client = signed_in(name)
        assert client.get("/api/v1/enrollments").status_code == 403, name
        assert _upload(client, t2_export).status_code == 403, name


def test_a_decision_is_signed_by_the_region_key_bound_to_the_manifest_and_audited(
    populated, signed_in, region, t2_export
):
    ada = signed_in("ada")
    _upload(ada, t2_export)
    headers = {"X-CSRF-Token": ada.csrf}
    url = "/api/v1/enrollments/t2/review"
    for body, message in (
        ({"decision": "maybe", "reason": "ok"}, "decision must be one of approve, reject"),
        ({"decision": "approve", "reason": " "}, "reason is missing"),
        ({"decision": "approve", "reason": "two\nlines"}, "one line"),
    ):
        r = ada.post(url, json=body, headers=headers)
        assert r.status_code == 422 and message in r.json()["error"], r.text
    assert ada.post(url, json={"decision": "approve", "reason": "ok"}).status_code == 403
    assert (
        signed_in("mia")
        .post(url, json={"decision": "approve", "reason": "mine"}, headers=headers)
        .status_code
        == 403
    )
    form = ada.post(
        "/admin/enrollments/t2/review",
        data={"csrf": ada.csrf, "decision": "reject", "reason": "photo blurred"},
        follow_redirects=False,
    )
    assert form.status_code == 303 and form.headers["location"].endswith("?done=rejected")
    assert "not sent to the till" in ada.get(form.headers["location"]).text
    r = ada.post(url, json={"decision": "approve", "reason": "new photo ok"}, headers=headers)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["review"]["decision"] == "approve" and out["review"]["reviewer"] == "ada"
    assert not out["published"]["sent"] and "--broker" in out["published"]["message"]
    store = Store.open(populated.db)
    try:
        from edge.enrollments import get_enrollment

        record = get_enrollment(store, "t2")
    finally:
        store.close()
    decision = review_format.open_review(record.review.message, region.key.verify_key)
    assert (decision.device_id, decision.tenant, decision.decision) == ("t2", "demo", "approve")
    assert decision.manifest_sha256 == record.manifest_sha256
    assert decision.reason == "new photo ok" and decision.reviewer == "ada"
    detail = ada.get("/api/v1/enrollments/t2").json()["latest"]
    assert detail["status"] == "approved"
    assert [(r["decision"], r["reason"]) for r in detail["reviews"]] == [
        ("reject", "photo blurred"),
        ("approve", "new photo ok"),
    ]
    assert [r["detail"].split(": ", 1)[1] for r in _audit(populated.db, "enrollment.approve")] == [
        "new photo ok"
    ]
    assert _audit(populated.db, "enrollment.reject")[0]["user"] == "ada"
    page = ada.get("/admin/enrollments?status=approved").text
    assert 'data-device="t2" data-status="approved"' in page
    assert ada.post("/api/v1/enrollments/t3/review", json={"decision": "approve", "reason": "x"},
                    headers=headers).status_code == 404  # fmt: skip


def test_with_broker_settings_the_decision_is_published_retained_to_the_till(
    console_with_broker, region, t2_export
):
    from fastapi.testclient import TestClient

    app, broker = console_with_broker
    ada = TestClient(app, base_url="https://testserver")
    csrf = ada.post("/api/v1/session", json={"name": "ada", "password": PASSWORD}).json()[
        "csrf_token"
    ]
    ada.post(
        "/api/v1/enrollments",
        content=t2_export,
        headers={"X-CSRF-Token": csrf, "content-type": "application/zip"},
    )
    r = ada.post(
        "/api/v1/enrollments/t2/review",
        json={"decision": "approve", "reason": "permit TP-2291 checked"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 200, r.text
    published = r.json()["published"]
    assert published["sent"] and published["topic"] == "tillbox/v1/demo/t2/down/enrollment"
    message = retained_for(broker.port, "t2", published["topic"])
    decision = review_format.open_review(message, region.key.verify_key)
    assert (decision.device_id, decision.decision, decision.reason) == (
        "t2",
        "approve",
        "permit TP-2291 checked",
    )
    again = ada.post("/admin/enrollments/t2/publish", data={"csrf": csrf}, follow_redirects=False)
    assert again.headers["location"].endswith("?done=sent")
    broker.stop()  # the broker gone: the decision is kept, the page says it was not sent
    r = ada.post("/api/v1/enrollments/t2/publish", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and not r.json()["published"]["sent"]
    assert "not sent yet" in r.json()["published"]["message"]
