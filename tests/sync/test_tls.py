"""TLS to the broker: the agent verifies the broker's certificate against [sync] tls_ca."""

from __future__ import annotations

import shutil
import signal
import subprocess

import pytest

from edge.broker import LocalBroker
from systest.sync import (
    EDGE_PASSWORD,
    EDGE_USER,
    check_exactly_once,
    device_password,
    edge_proc,
    edge_ready,
    enroll,
    make_till,
    read_state,
    sell,
    sync_once,
    wait_for,
)

pytestmark = pytest.mark.slow


def openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def certs(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path / "pki"
    d.mkdir()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=tillbox test region CA",
        cwd=d,
    )
    openssl(
        "req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d
    )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        cwd=d,
    )
    return d


def test_agent_over_tls_with_the_region_ca(tmp_path, certs, db_url, region):
    broker = LocalBroker(
        tmp_path / "broker",
        {"t1": device_password("t1")},
        workers={EDGE_USER: EDGE_PASSWORD},
        tls=(certs / "server.crt", certs / "server.key"),
    ).start()
    try:
        till = make_till(tmp_path, "t1", region, tls_ca=str(certs / "ca.crt"))
        untrusting = make_till(tmp_path / "other", "t1", region)  # no CA: must not connect
        sell(till, 20)
        enroll(db_url, till)
        edge = edge_proc(tmp_path, db_url, broker.url, region).start()
        try:
            wait_for(lambda: edge_ready(edge), 20, "the edge")
            done = sync_once(till, broker.tls_url, 30)
            assert done.returncode == 0, done.stderr[-2000:]
            refused = sync_once(untrusting, broker.tls_url, 2)
            assert refused.returncode == 1
            assert read_state(untrusting)["acked_seq"] == 0
            assert "SSL" in refused.stderr or "certificate" in refused.stderr.lower()
        finally:
            edge.stop()
        check_exactly_once(db_url, [till])
    finally:
        broker.stop(sig=signal.SIGKILL)
