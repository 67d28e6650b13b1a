"""Fixtures for the console's tests: a region whose tills sold, on SQLite and PostgreSQL.

* ``console_db``: an edge database URL, once per module and dialect (module-scoped: the
  tills, their ingest and the users' argon2 hashes take seconds);
* ``populated``: that database with three tills' logs ingested by the edge
  (``systest.console``; ingest keeps the rollups), t1's enrollment imported, the
  receipt index caught up, and the users of ``systest.console.USERS`` (password
  ``systest.console.PASSWORD``);
* ``app``: the console over it (no background indexer: tests catch up themselves);
* ``signed_in(name)``: a TestClient over HTTPS (the cookie is Secure) with a session,
  and its CSRF token.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from appliance.datadir import DataDir
from systest.console import (
    PASSWORD,
    Figures,
    add_users,
    build_tills,
    import_enrollments,
    ingest,
    till_figures,
)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def console_db(request, tmp_path_factory):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('console') / 'edge.db'}"
        return
    server = request.getfixturevalue("pg_server")
    url = server.create_database("console")
    yield url
    server.drop_database(url)


@dataclass
class Populated:
    db: str
    folders: dict[str, DataDir]
    figures: Figures


@pytest.fixture(scope="module")
def populated(console_db, region, tmp_path_factory) -> Populated:
    from console import receipts, tables
    from edge.store import Store

    root = tmp_path_factory.mktemp("tills")
    folders = build_tills(root, region)
    ingest(console_db, region, folders.values())
    import_enrollments(console_db, folders, root)
    add_users(console_db)
    store = Store.open(console_db)
    try:
        tables.ensure_schema(store)
        receipts.catch_up(store, 0)
    finally:
        store.close()
    return Populated(console_db, folders, till_figures(folders.values()))


@pytest.fixture(scope="module")
def app(populated, region):
    from console.app import create_app

    application = create_app(populated.db, region.key_path, index_interval_s=None)
    yield application
    application.state.pool.close()


class Client(TestClient):
    csrf: str = ""


@pytest.fixture(scope="module")
def signed_in(app):
    def sign_in(name: str, password: str = PASSWORD) -> Client:
        client = Client(app, base_url="https://testserver")
        r = client.post("/api/v1/session", json={"name": name, "password": password})
        assert r.status_code == 200, r.text
        client.csrf = r.json()["csrf_token"]
        return client

    return sign_in


@pytest.fixture
def console_with_broker(populated, region, tmp_path):
    """A second console over the same region with broker settings: the region's
    mosquitto (the shipped config, the suite's devices and the publisher) and the
    console's publisher login. Yields (app, broker)."""
    from appliance.formats.brokerurl import BrokerURL
    from console.app import create_app
    from console.routes.enrollments import Publisher
    from edge.broker import LocalBroker
    from systest.sync import (
        ADMIN_PASSWORD,
        DEVICES,
        PUBLISHER_PASSWORD,
        PUBLISHER_USER,
        device_password,
    )

    broker = LocalBroker(
        tmp_path / "broker",
        {d: device_password(d) for d in DEVICES},
        publishers={PUBLISHER_USER: PUBLISHER_PASSWORD},
        admin_password=ADMIN_PASSWORD,
    ).start()
    publisher = Publisher(BrokerURL.parse(broker.url), PUBLISHER_USER, PUBLISHER_PASSWORD)
    app = create_app(populated.db, region.key_path, index_interval_s=None, publisher=publisher)
    try:
        yield app, broker
    finally:
        app.state.pool.close()
        broker.stop()
