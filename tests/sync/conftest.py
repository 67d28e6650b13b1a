"""Fixtures for the sync tests: a real mosquitto and a fault proxy.

* ``broker``: mosquitto on a free port with the shipped ``edge/mosquitto/mosquitto.conf``
  and identities for t1-t3, two ingest workers and a publisher; SIGKILLed at the end.
* ``proxy``: the TCP fault proxy (``sync_agent.faultproxy``) in front of it.

``region``, ``db_url``, ``pg_url`` and ``any_db`` are shared with the console's tests:
they live in tests/conftest.py.

The helpers (tills with sales, processes, the set checker) live in
``systest.sync`` so ``bench/drain.py`` uses the same ones.
"""

from __future__ import annotations

import signal

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
    device_password,
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
