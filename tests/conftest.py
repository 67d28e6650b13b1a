"""Fixtures every test package shares; the helpers behind them live in the packages.

* ``data_dir``/``till``: a demo till on disk, and that till open with a shift.
* ``region``: the region's key pair (acks and updates are signed with it).
* ``db_url``: an SQLite edge database; ``pg_url``: a fresh database in the suite's own
  PostgreSQL cluster (``systest.postgres``, started once per run on a free port; the
  machine's own server is never used); ``any_db``: both (the edge's and the console's
  store tests run on each).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.datadir import DataDir
from appliance.testing import demo_data_dir, open_selling
from appliance.till import Till


@pytest.fixture
def data_dir(tmp_path: Path) -> DataDir:
    """A demo till's folder on disk (no shift open, nothing sold)."""
    return demo_data_dir(tmp_path / "till")


@pytest.fixture
def till(data_dir: DataDir) -> Iterator[Till]:
    """The demo till of ``data_dir``, open, with its shift open."""
    with open_selling(data_dir) as t:
        yield t


@pytest.fixture(scope="session")
def region(tmp_path_factory):
    from appliance.keys import generate, load_signing_key
    from systest.sync import Region

    folder = tmp_path_factory.mktemp("region")
    generate(folder / "region.key", folder / "region.pub")
    return Region(
        load_signing_key(folder / "region.key"), folder / "region.key", folder / "region.pub"
    )


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
