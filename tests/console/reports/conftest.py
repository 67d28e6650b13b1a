"""The console report tests' region: systest.tradeworld's three days of trade on each
database of ``any_db`` (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from systest.tradeworld import World, build_world


@pytest.fixture
def world(tmp_path, any_db, region) -> World:
    w = build_world(tmp_path / "tills", any_db, region)
    yield w
    w.store.close()
