"""The region serves release bundles to the tills at /releases/<name>: no login, HTTP
Range (a cut download resumes), and names that cannot leave the releases folder."""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient

BODY = os.urandom(200_000)


@pytest.fixture
def client(tmp_path, db_url):
    from console.app import create_app

    releases = tmp_path / "releases"
    releases.mkdir()
    (releases / "tillbox-2.1.0.raucb").write_bytes(BODY)
    (tmp_path / "secret.raucb").write_bytes(b"not for tills")
    (releases / "link.raucb").symlink_to(tmp_path / "secret.raucb")
    (releases / ".hidden.raucb").write_bytes(b"hidden")
    app = create_app(db_url, None, index_interval_s=None, releases_dir=releases)
    with TestClient(app, base_url="https://testserver") as c:
        yield c
    app.state.pool.close()


def test_a_bundle_is_served_whole_without_a_login(client):
    r = client.get("/releases/tillbox-2.1.0.raucb")
    assert r.status_code == 200 and r.content == BODY
    assert r.headers["accept-ranges"] == "bytes"


def test_a_range_is_answered_with_the_rest(client):
    r = client.get("/releases/tillbox-2.1.0.raucb", headers={"Range": "bytes=150000-"})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes 150000-{len(BODY) - 1}/{len(BODY)}"
    assert r.content == BODY[150000:]


@pytest.mark.parametrize(
    "name", ["..%2Fsecret.raucb", "link.raucb", ".hidden.raucb", "missing.raucb", "x.txt"]
)
def test_a_name_cannot_leave_the_folder(client, name):
    r = client.get(f"/releases/{name}")
    assert r.status_code == 404
    assert b"not for tills" not in r.content
