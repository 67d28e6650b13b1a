"""Files from outside are read with a cap: a huge one is refused in one line, unread."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import boundedio

TILLBOX = [sys.executable, "-m", "appliance.cli"]


def tillbox(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*TILLBOX, *args], capture_output=True, text=True, timeout=120)


def sparse(path: Path, size: int) -> Path:
    """A file of ``size`` zero bytes that takes no disk space."""
    with path.open("wb") as f:
        f.truncate(size)
    return path


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    d = tmp_path / "shop"
    assert tillbox("init", "--data-dir", str(d), "--device-id", "b-1", "--demo").returncode == 0
    return d


def log_tail(d: Path) -> int:
    return json.loads(tillbox("log", "verify", "--data-dir", str(d), "--json").stdout)["last_seq"]


def test_a_huge_catalog_is_refused_before_it_is_read(shop, tmp_path):
    big = sparse(tmp_path / "catalog.json", boundedio.CATALOG_LIMIT + 1)
    before = log_tail(shop)
    res = tillbox("catalog", "apply", str(big), "--data-dir", str(shop))
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert "larger than 16 MiB" in res.stderr and str(big) in res.stderr
    assert log_tail(shop) == before


def test_a_huge_permit_scan_is_refused(shop, tmp_path):
    big = sparse(tmp_path / "permit.pdf", boundedio.SCAN_LIMIT + 1)
    res = tillbox(
        "enroll", "--data-dir", str(shop), "--operator", "Ann", "--business", "Stall",
        "--registration", "R-1", "--permit", f"market:TP-1:2099-01-01:{big}",
        "--attestation", "I attest", "--confirm", "--no-labels",
    )  # fmt: skip
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert "larger than 32 MiB" in res.stderr
    assert not (shop / "compliance" / "enrollment").exists()


def test_a_huge_key_file_is_not_read_as_a_key(tmp_path):
    big = sparse(tmp_path / "device.pub", 64 * 1024 * 1024)
    res = tillbox("receipt", "verify", "TB2*x", "--public-key", str(big))
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert "key file" in res.stderr


def test_read_bounded_stops_at_the_cap_of_an_endless_file():
    with pytest.raises(boundedio.TooLarge, match="larger than 1 KiB"):
        boundedio.read_bounded("/dev/zero", 1024, "stream")
    assert boundedio.read_bounded("/dev/null", 0, "empty") == b""
