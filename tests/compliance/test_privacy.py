"""Personal data: consent first, encrypted per customer, crypto-shredded on erasure."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from appliance import privacy
from appliance.errors import TillError
from appliance.till import Till


def test_consent_store_read_erase(till_dir):
    with Till.open(till_dir) as till:
        customer, consent = privacy.record_consent(
            till, ["receipt_email", "engraving"], sync_allowed=True
        )
        key = privacy.key_path(till_dir, customer)
        assert key.stat().st_mode & 0o077 == 0
        event = privacy.store_personal(till, customer, "engraving", {"text": "For Maria"})
        # in the log: ciphertext only, never the text
        raw = till.log.conn.execute(
            "SELECT payload FROM events WHERE seq = ?", (event.seq,)
        ).fetchone()[0]
        assert "Maria" not in raw and json.loads(raw)["consent_seq"] == consent.seq
        assert privacy.read_personal(till_dir, till.log, customer)[0]["data"] == {
            "text": "For Maria"
        }
        assert privacy.sync_allowed(till.log, customer)
        privacy.erase(till, customer)
        assert not key.exists()
        with pytest.raises(TillError, match="erased"):
            privacy.read_personal(till_dir, till.log, customer)
        with pytest.raises(TillError, match="asked to be erased"):
            privacy.store_personal(till, customer, "engraving", {"text": "again"})
        assert not privacy.sync_allowed(till.log, customer)
        assert till.verify().ok  # the log is untouched: still append-only and verifiable
        assert till.log.event(event.seq).payload["box"]  # the ciphertext is still there


def test_no_consent_wrong_purpose_bad_ids(till_dir):
    with Till.open(till_dir) as till:
        last = till.log.last()
        with pytest.raises(TillError, match="no consent recorded"):
            privacy.store_personal(till, "c-0123456789abcdef", "receipt_email", {"e": "x"})
        with pytest.raises(TillError, match="not a customer id"):
            privacy.store_personal(till, "../../keys/device", "receipt_email", {"e": "x"})
        customer, _ = privacy.record_consent(till, ["receipt_email"])
        with pytest.raises(TillError, match="not\\s+marketing"):
            privacy.store_personal(till, customer, "marketing", {"e": "x"})
        with pytest.raises(TillError, match="purposes"):
            privacy.record_consent(till, ["selling_to_third_parties"])
        assert till.log.last()[0] == last[0] + 1  # only the one consent was recorded
        assert not privacy.sync_allowed(till.log, customer)  # consent did not allow sync


def test_cli_privacy_flow(till_dir):
    run = [sys.executable, "-m", "appliance.cli", "privacy"]
    d = ["--data-dir", str(till_dir.root)]
    res = subprocess.run(
        [*run, "consent", *d, "--purpose", "receipt_email", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    customer = json.loads(res.stdout)["customer"]
    res = subprocess.run(
        [
            *run,
            "store",
            *d,
            "--customer",
            customer,
            "--purpose",
            "receipt_email",
            "--field",
            "email=ann@example.org",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    res = subprocess.run(
        [*run, "show", *d, "--customer", customer, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(res.stdout)["records"][0]["data"]["email"] == "ann@example.org"
    res = subprocess.run(
        [*run, "erase", *d, "--customer", customer], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0 and "erased" in res.stdout
    res = subprocess.run(
        [*run, "show", *d, "--customer", customer], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 1 and "erased" in res.stderr


def test_region_gets_the_key_only_when_consent_allows_sync(till_dir):
    import base64

    from nacl.public import SealedBox
    from nacl.secret import SecretBox
    from nacl.signing import SigningKey

    region = SigningKey.generate()
    region_pub = region.verify_key.encode().hex()
    with Till.open(till_dir) as till:
        allowed, _ = privacy.record_consent(till, ["receipt_email"], sync_allowed=True)
        local, _ = privacy.record_consent(till, ["receipt_email"])
        event = privacy.store_personal(till, allowed, "receipt_email", {"email": "a@b.c"})
        assert privacy.key_for_region(till_dir, till.log, local, region_pub) is None
        sealed = privacy.key_for_region(till_dir, till.log, allowed, region_pub)
        # the region opens the key, then the ciphertext it received in the segment
        key = SealedBox(region.to_curve25519_private_key()).decrypt(sealed)
        plain = SecretBox(key).decrypt(base64.b64decode(event.payload["box"]))
        assert json.loads(plain) == {"email": "a@b.c"}
        privacy.erase(till, allowed)
        assert privacy.key_for_region(till_dir, till.log, allowed, region_pub) is None
