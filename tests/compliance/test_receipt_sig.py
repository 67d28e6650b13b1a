"""Signed receipt blocks: pinned bytes, real sales, chaining, tampering, the CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from appliance import receipt_sig as rs
from appliance.till import Till

# The vector in docs/formats.md (section 5): seed bytes 00..1f, these fields.
SEED = bytes(range(32))
PUB = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
PREV = hashlib.sha256(b"previous receipt event").hexdigest()
VECTOR = (
    "TB1*till-1*42*S*1795784806*EUR*700:550,2000:2400*"
    "0MSDPbHylqaZuZgaSdgPF0VicnxJaBL68xWQf1o3_Fg*"
    "wy6Y5PrNqsyDVMeMcn1-WAi9NHsgAOno7bosmHs-rzGs6d7h1XpuGr09h1KF9M-vy5F1EP3WaURqz_nEbPmCBQ"
)
VECTOR_REFUND = (
    "TB1*till-1*43*R*1795784900*EUR*2000:-1200*"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA*"
    "HFqbrB38M0vv-nJw5DBlhLOJGBoBuXPzktOs6My9BM7jxmGUX8wfJ_vCFMmBsoKRQgW1s-OxnE_8UEjqzQ68CQ"
)


def test_pinned_vectors_are_reproduced_byte_for_byte():
    key = SigningKey(SEED)
    assert key.verify_key.encode().hex() == PUB
    sale = rs.ReceiptFields("till-1", 42, "S", 1795784806, "EUR", ((700, 550), (2000, 2400)), PREV)
    assert sale.signed_part() == VECTOR.rsplit("*", 1)[0] + "*"
    assert rs.sign_fields(sale, key) == VECTOR
    assert rs.short_code(VECTOR) == "G2JJT-Z5KJW"
    refund = rs.ReceiptFields(
        "till-1", 43, "R", 1795784900, "EUR", ((2000, -1200),), rs.GENESIS_PREV
    )
    assert rs.sign_fields(refund, key) == VECTOR_REFUND
    check = rs.verify_receipt_payload(VECTOR, PUB)
    assert check.ok and check.fields == sale and check.code == "G2JJT-Z5KJW"


def test_worst_case_payload_fits_a_thermal_printer_qr():
    key = SigningKey(SEED)
    fields = rs.ReceiptFields(
        "d" * 64,
        999_999_999,
        "R",
        9_999_999_999,
        "EUR",
        ((0, -99_999_999_999), (700, -99_999_999_999), (2000, -99_999_999_999)),
        PREV,
    )
    payload = rs.sign_fields(fields, key)
    assert len(payload.encode("ascii")) <= rs.MAX_PAYLOAD_BYTES
    assert rs.verify_receipt_payload(payload, PUB).ok


def test_real_sales_verify_chain_and_recompute_identically(till_dir):
    with Till.open(till_dir) as till:
        pub = till.public_key_hex()
        receipts = till.log.conn.execute(
            "SELECT seq FROM sales UNION ALL SELECT seq FROM refunds ORDER BY seq"
        ).fetchall()
        events = [till.log.event(seq) for (seq,) in receipts]
        payloads = [rs.receipt_qr_payload(till, e) for e in events]
        for e in events:  # the receipt-number fast path agrees with the seq definition
            assert rs.previous_receipt_hash(
                till.log, e.seq, e.payload["receipt_no"]
            ) == rs.previous_receipt_hash(till.log, e.seq)
        assert payloads == [rs.receipt_qr_payload(till, e) for e in events]  # deterministic
    prev = rs.GENESIS_PREV
    for event, payload in zip(events, payloads, strict=True):
        check = rs.verify_receipt_payload(payload, pub)
        assert check.ok, check.problem
        assert check.fields.prev_hash == prev
        assert check.fields.receipt_no == event.payload["receipt_no"]
        assert check.fields.unix_s == event.wall_ms // 1000
        assert len(payload) < rs.MAX_PAYLOAD_BYTES
        prev = event.hash
    refund = rs.verify_receipt_payload(payloads[-1], pub).fields
    assert refund.kind == "R" and all(gross < 0 for _bp, gross in refund.totals)
    assert sum(g for _bp, g in refund.totals) == -events[-1].payload["gross_minor"]


@pytest.mark.parametrize(
    "mutate, expect",
    [
        (lambda p: p.replace("2000:2400*", "2000:2300*"), "signature does not verify"),
        (lambda p: p[:-1] + "R", "canonical spelling"),  # same bytes, other padding bits
        (lambda p: p.replace("*42*", "*41*"), "signature does not verify"),
        (lambda p: p.replace("till-1", "till-2"), "signature does not verify"),
        (lambda p: p[:-1] + ("A" if p[-1] != "A" else "B"), ""),
        (lambda p: p.replace("*42*", "*042*"), "canonical spelling"),
        (lambda p: p.replace("TB1", "TB9"), "unknown format"),
        (lambda p: p.rsplit("*", 1)[0], "expected 9 fields"),
        (lambda p: p.replace("*S*", "*X*"), "kind must be"),
        (lambda p: p.replace("EUR", "eu"), "3-letter code"),
        (lambda p: p.replace("700:550,2000:2400", "2000:2400,700:550"), "ascending"),
        (lambda p: p + "é", "non-ASCII"),
        (lambda p: "", "expected 9 fields"),
    ],
)
def test_altered_or_malformed_payloads_are_refused_with_a_reason(mutate, expect):
    check = rs.verify_receipt_payload(mutate(VECTOR), PUB)
    assert not check.ok
    assert expect in check.problem


def test_other_device_key_and_bad_key_text():
    other = SigningKey(bytes(32)).verify_key.encode().hex()
    check = rs.verify_receipt_payload(VECTOR, other)
    assert not check.ok and "another device" in check.problem
    assert "64 hex digits" in rs.verify_receipt_payload(VECTOR, "xyz").problem


def test_non_receipt_event_is_refused_with_one_line(till_dir):
    with Till.open(till_dir) as till:
        with pytest.raises(Exception, match="not a receipt"):
            rs.receipt_qr_payload(till, till.log.event(1))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_garbage_never_crashes_or_verifies(text):
    assert not rs.verify_receipt_payload(text, PUB).ok


def _tillbox(*args: str, data_dir=None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "appliance.cli", *args]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir.root)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_cli_sale_json_carries_receipt_qr_and_receipt_verify_exit_codes(till_dir):
    sale = _tillbox("sale", "--item", "MUG-01:1", "--pay", "cash", "--json", data_dir=till_dir)
    assert sale.returncode == 0, sale.stderr
    out = json.loads(sale.stdout)
    pub = till_dir.public_key_path.read_text().strip()
    with Till.open(till_dir) as till:
        assert out["receipt_qr"] == rs.receipt_qr_payload(till, till.log.event(out["seq"]))
    ok = _tillbox("receipt", "verify", out["receipt_qr"], "--public-key", pub)
    assert ok.returncode == 0 and ok.stdout.startswith("VALID receipt"), ok.stdout
    bad = _tillbox(
        "receipt", "verify", out["receipt_qr"].replace("*S*", "*R*"), "--public-key", pub
    )
    assert bad.returncode == 1 and "INVALID" in bad.stdout
    text = _tillbox("sale", "--item", "MUG-01:1", "--pay", "cash", data_dir=till_dir)
    code = text.stdout.strip().splitlines()[-1]
    assert code.startswith("receipt code ") and len(code.split()[-1]) == 11


def test_cli_receipt_show_recomputes_sale_and_refund_payloads(till_dir):
    with Till.open(till_dir) as till:
        sale = till.find_sale(1)
        refund_seq = till.log.conn.execute("SELECT seq FROM refunds").fetchone()[0]
        refund = till.log.event(refund_seq)
        expected = [rs.receipt_qr_payload(till, sale), rs.receipt_qr_payload(till, refund)]
    shown = _tillbox("receipt", "show", "1", "--json", data_dir=till_dir)
    assert json.loads(shown.stdout)["receipt_qr"] == expected[0]
    number = str(refund.payload["receipt_no"])
    shown = _tillbox("receipt", "show", number, "--refund", "--json", data_dir=till_dir)
    assert json.loads(shown.stdout)["receipt_qr"] == expected[1]
    missing = _tillbox("receipt", "show", "999", "--refund", data_dir=till_dir)
    assert missing.returncode == 1 and "no refund receipt 999" in missing.stderr


def test_cli_receipt_verify_takes_a_key_file_and_refuses_a_bad_key(till_dir, tmp_path):
    with Till.open(till_dir) as till:
        payload = rs.receipt_qr_payload(till, till.find_sale(1))
    ok = _tillbox("receipt", "verify", payload, "--public-key", str(till_dir.public_key_path))
    assert ok.returncode == 0 and "VALID" in ok.stdout
    bad = _tillbox("receipt", "verify", payload, "--public-key", "not-a-key")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "public key" in bad.stderr
