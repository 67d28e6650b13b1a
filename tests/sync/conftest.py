"""Fixtures for the sync tests: a real mosquitto, a fault proxy, the region key, databases.

* ``broker``: mosquitto on a free port with the shipped ``edge/mosquitto/mosquitto.conf``
  and identities for t1-t3, two ingest workers and a publisher; SIGKILLed at the end.
* ``proxy``: the TCP fault proxy (``sync_agent.faultproxy``) in front of it.
* ``region``: the region's key pair (acks and updates are signed with it).
* ``db_url``: an SQLite edge database; ``pg_url``: a fresh database in the suite's own
  PostgreSQL cluster (``systest.postgres``, started once per run on a free port; the
  machine's own server is never used); ``any_db``: both.

The helpers (tills with sales, processes, the set checker) live in
``systest.sync`` so ``bench/drain.py`` uses the same ones.
"""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path

import pytest

from edge.broker import LocalBroker
from sync_agent.faultproxy import FaultProxy
from systest.sync import (
    ADMIN_PASSWORD,
    DEVICES,
    EDGE_PASSWORD,
    PUBLISHER_PASSWORD,
    PUBLISHER_USER,
    WORKERS,
    Region,
    device_password,
)


@pytest.fixture(scope="session")
def region(tmp_path_factory) -> Region:
    from appliance.keys import generate, load_signing_key

    folder = tmp_path_factory.mktemp("region")
    generate(folder / "region.key", folder / "region.pub")
    return Region(
        load_signing_key(folder / "region.key"), folder / "region.key", folder / "region.pub"
    )


@pytest.fixture
def broker(tmp_path):
    b = LocalBroker(
        tmp_path / "broker",
        {d: device_password(d) for d in DEVICES},
        workers={w: EDGE_PASSWORD for w in WORKERS},
        publishers={PUBLISHER_USER: PUBLISHER_PASSWORD},
        admin_password=ADMIN_PASSWORD,
    ).start()
    yield b
    b.stop(sig=signal.SIGKILL)


@pytest.fixture
def proxy(broker):
    p = FaultProxy(broker.port).start()
    yield p
    p.close()


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'edge.db'}"


@pytest.fixture(scope="session")
def pg_server():
    """Our own PostgreSQL cluster for the whole run (never the machine's server on 5432)."""
    from systest.postgres import LocalPostgres

    # Outside pytest's basetemp: a second pytest run on the machine prunes old basetemps,
    # which would delete a cluster still in use.
    with tempfile.TemporaryDirectory(prefix="tillbox-pg-") as folder:
        with LocalPostgres(Path(folder)) as server:
            yield server


@pytest.fixture
def pg_url(pg_server):
    url = pg_server.create_database("tillbox_sync")
    yield url
    pg_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def any_db(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'edge.db'}"
    return request.getfixturevalue("pg_url")
