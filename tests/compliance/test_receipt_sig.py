"""Signed receipt blocks: pinned bytes, real sales, chaining, tampering, the CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys

import pytest
import qrcode
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey, VerifyKey

from appliance.formats import receipt as rs
from appliance.formats.chain import GENESIS_HASH
from appliance.testing import worst_case_tb2_fields
from appliance.till import Till

# The vectors in docs/formats.md (section 5): seed bytes 00..1f, these fields.
SEED = bytes(range(32))
PUB = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
KEY_ID = "Vkdap1RjR0w"  # base64url of SHA-256(public key)[:8] = 56475aa75463474c
SALE_EVENT = hashlib.sha256(b"sale event").hexdigest()
REFUND_EVENT = hashlib.sha256(b"refund event").hexdigest()
TB2_SALE = (
    "TB2*Vkdap1RjR0w*demo*till-1*42*S*1795784806*EUR*700:550,2000:2400*card**"
    "rkdESrbVeHN9VuSvnwh_55Kfj_tqHZTj*"
    "ub9_9hmXfa_9Kkf1DCtLlvwH1S_yRiDdr11DBs6rJr2fWt08b5rbanVxo44ntyIlvgQuDuH1Z_rJA1ZXcISNAw"
)
TB2_REFUND = (
    "TB2*Vkdap1RjR0w*demo*till-1*43*R*1795784900*EUR*2000:-1200*cash*42*"
    "2HxKyOeluBQCD-OfqOgCzSdbFa5G8Eid*"
    "UZfhmicZ7CxcbCDGx_xXp4pu6TcLfpTBmeDMDnbwi7IVU2fqloXfEvc0SgTgJsAygyVUaQC3YoGb5oWUooQZAg"
)
# TB1: what receipts printed before TB2 carry; still verified.
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


def read_tb2(payload: str, public_hex: str) -> dict:
    """An independent TB2 reader, written from docs/formats.md alone (no tillbox code)."""
    parts = payload.split("*")
    assert len(parts) == 13 and parts[0] == "TB2"
    signed, sig = payload[: -len(parts[-1])], parts[-1]
    pub = bytes.fromhex(public_hex)
    assert base64.urlsafe_b64decode(parts[1] + "=") == hashlib.sha256(pub).digest()[:8]
    VerifyKey(pub).verify(signed.encode("ascii"), base64.urlsafe_b64decode(sig + "=="))
    names = "tenant device receipt_no kind unix_s currency totals method refunded event"
    out = dict(zip(names.split(), parts[2:12], strict=True))
    out["event"] = base64.urlsafe_b64decode(out["event"] + "==").hex()
    return out


def test_pinned_tb2_vectors_are_reproduced_byte_for_byte():
    key = SigningKey(SEED)
    assert key.verify_key.encode().hex() == PUB and rs.key_id(key.verify_key) == KEY_ID
    sale = rs.TB2Fields(
        KEY_ID, "demo", "till-1", 42, "S", 1795784806, "EUR", ((700, 550), (2000, 2400)),
        "card", None, SALE_EVENT[:48],
    )  # fmt: skip
    refund = rs.TB2Fields(
        KEY_ID, "demo", "till-1", 43, "R", 1795784900, "EUR", ((2000, -1200),),
        "cash", 42, REFUND_EVENT[:48],
    )  # fmt: skip
    assert rs.sign_fields(sale, key) == TB2_SALE
    assert rs.sign_fields(refund, key) == TB2_REFUND
    assert rs.short_code(TB2_SALE) == "OT72J-ZPI3E" and rs.short_code(TB2_REFUND) == "6BNFJ-F5WY6"
    check = rs.verify_receipt_payload(TB2_REFUND, PUB)
    assert check.ok and check.fields == refund
    assert read_tb2(TB2_REFUND, PUB)["event"] == REFUND_EVENT[:48]


def test_tb1_receipts_already_printed_still_verify():
    key = SigningKey(SEED)
    sale = rs.ReceiptFields("till-1", 42, "S", 1795784806, "EUR", ((700, 550), (2000, 2400)), PREV)
    assert sale.signed_part() == VECTOR.rsplit("*", 1)[0] + "*"
    assert rs.sign_fields(sale, key) == VECTOR
    assert rs.short_code(VECTOR) == "G2JJT-Z5KJW"
    refund = rs.ReceiptFields("till-1", 43, "R", 1795784900, "EUR", ((2000, -1200),), GENESIS_HASH)
    assert rs.sign_fields(refund, key) == VECTOR_REFUND
    check = rs.verify_receipt_payload(VECTOR, PUB)
    assert check.ok and check.fields == sale and check.code == "G2JJT-Z5KJW"


def test_worst_case_payload_fits_a_thermal_printer_qr():
    key = SigningKey(SEED)
    fields = worst_case_tb2_fields(KEY_ID, SALE_EVENT[:48])
    payload = rs.sign_fields(fields, key)
    assert len(payload.encode("ascii")) <= rs.MAX_PAYLOAD_BYTES
    assert rs.verify_receipt_payload(payload, PUB).ok
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(payload.encode("ascii"))
    qr.make(fit=True)
    assert qr.version <= 14  # 73 modules: 5 dots a module on a 58 mm (384-dot) printer


def test_real_sales_print_tb2_binding_event_method_tenant_and_refunded_receipt(till_dir):
    with Till.open(till_dir) as till:
        pub = till.public_key_hex()
        receipts = till.log.conn.execute(
            "SELECT seq FROM sales UNION ALL SELECT seq FROM refunds ORDER BY seq"
        ).fetchall()
        events = [till.log.event(seq) for (seq,) in receipts]
        payloads = [rs.receipt_qr_payload(till, e) for e in events]
        for e in events:  # TB1's receipt-number fast path agrees with the seq definition
            assert rs.previous_receipt_hash(
                till.log, e.seq, e.payload["receipt_no"]
            ) == rs.previous_receipt_hash(till.log, e.seq)
        assert payloads == [rs.receipt_qr_payload(till, e) for e in events]  # deterministic
    sale_numbers = {}
    for event, payload in zip(events, payloads, strict=True):
        assert rs.verify_receipt_payload(payload, pub).ok
        read = read_tb2(payload, pub)
        p = event.payload
        assert read["event"] == event.hash[:48]
        assert read["method"] == p["payment"]["method"]
        assert read["tenant"] == "demo" and read["device"] == "till-1"
        assert read["receipt_no"] == str(p["receipt_no"])
        if event.type == "sale.completed":
            assert read["kind"] == "S" and read["refunded"] == ""
            sale_numbers[p["sale_id"]] = p["receipt_no"]
        else:
            assert read["kind"] == "R" and read["refunded"] == str(p["sale_receipt_no"])
            assert p["sale_receipt_no"] == sale_numbers[p["sale_id"]]
        assert len(payload) <= rs.MAX_PAYLOAD_BYTES
    refund = rs.verify_receipt_payload(payloads[-1], pub).fields
    assert refund.kind == "R" and all(gross < 0 for _bp, gross in refund.totals)
    assert sum(g for _bp, g in refund.totals) == -events[-1].payload["gross_minor"]


@pytest.mark.parametrize(
    "mutate, expect",
    [
        (lambda p: p.replace("*card*", "*cash*"), "signature does not verify"),
        (lambda p: p.replace("*demo*", "*demo2*"), "signature does not verify"),
        (lambda p: p.replace("*rkdE", "*AkdE"), "signature does not verify"),
        (lambda p: p.replace("*S*", "*R*"), "names the refunded receipt"),
        (lambda p: p.replace("*card**", "*card*41*"), "names the refunded receipt"),
        (lambda p: p.replace("Vkdap1RjR0w", "Vkdap1RjR0A"), "key id"),
        (lambda p: p.replace("*card*", "*Card*"), "lower-case letters"),
        (lambda p: p.replace("*demo*", "**"), "tenant must be"),
        (lambda p: p.rsplit("*", 1)[0], "expected 13 fields"),
    ],
)
def test_altered_tb2_payloads_are_refused_with_a_reason(mutate, expect):
    altered = mutate(TB2_SALE)
    assert altered != TB2_SALE
    check = rs.verify_receipt_payload(altered, PUB)
    assert not check.ok
    assert expect in check.problem


def test_tb2_names_its_key_so_another_key_is_refused_by_id():
    other = SigningKey(bytes(32)).verify_key
    check = rs.verify_receipt_payload(TB2_SALE, other.encode().hex())
    assert not check.ok and f"key id {KEY_ID}" in check.problem
    assert rs.key_id(other) in check.problem


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
        (lambda p: "", "empty"),
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
    assert not rs.verify_receipt_payload("TB2*" + text, PUB).ok


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
    assert ok.returncode == 0 and ok.stdout.startswith("VALID TB2 receipt"), ok.stdout
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


def test_cli_receipt_verify_accepts_tb1_and_shows_what_tb2_binds(till_dir):
    old = _tillbox("receipt", "verify", VECTOR, "--public-key", PUB)
    assert old.returncode == 0 and old.stdout.startswith("VALID TB1 receipt 42"), old.stdout
    new = _tillbox("receipt", "verify", TB2_REFUND, "--public-key", PUB)
    assert new.returncode == 0, new.stdout
    assert "tenant demo, paid by cash, key id Vkdap1RjR0w" in new.stdout
    assert "refunds receipt 42" in new.stdout
    rotated = _tillbox("receipt", "verify", TB2_SALE, "--public-key", "00" * 32)
    assert rotated.returncode == 1 and "key id" in rotated.stdout
