"""docs/formats.md (section 5) cannot drift: its vectors are recomputed and verified here."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from nacl.signing import SigningKey

from appliance.formats import receipt as rs
from appliance.formats import zipcanon
from compliance.verify import verify_bundle

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats.md"
SEED = bytes(range(32))


def _indented_blocks(text: str) -> list[str]:
    return [m.strip() for m in re.findall(r"\n\n    (\S[^\n]*)\n", text)]


def test_receipt_vectors_in_the_doc_verify_and_are_reproduced():
    text = DOC.read_text()
    key = SigningKey(SEED)
    pub = key.verify_key.encode().hex()
    assert pub in text
    payloads = [b for b in _indented_blocks(text) if b.startswith("TB1*") and "<" not in b]
    assert len(payloads) == 2
    for payload in payloads:
        check = rs.verify_receipt_payload(payload, pub)
        assert check.ok, check.problem
        assert rs.sign_fields(check.fields, key) == payload  # the doc's bytes, exactly
        assert f"`{rs.short_code(payload)}`" in text


def test_smallest_bundle_from_the_doc_verifies(tmp_path):
    text = DOC.read_text()
    blocks = _indented_blocks(text)
    manifest = next(b for b in blocks if b.startswith('{"device_id"')).encode()
    signature = next(b for b in blocks if re.fullmatch(r"[0-9a-f]{128}", b))
    key = SigningKey(SEED)
    pub = key.verify_key.encode().hex()
    assert key.sign(manifest).signature.hex() == signature
    assert hashlib.sha256(manifest).hexdigest() in text
    assert f"is these {len(manifest)} bytes" in text
    bundle = tmp_path / "smallest.zip"
    entries = [("device.pub", (pub + "\n").encode())]
    entries += [(name, b"") for name in ("events.jsonl", "receipts.jsonl", "selftest.jsonl")]
    entries += [("manifest.json", manifest), ("manifest.sig", (signature + "\n").encode())]
    with bundle.open("wb") as f:
        zipcanon.write(f, [(n, (lambda d=d: [d])) for n, d in entries])
    data = bundle.read_bytes()
    assert f"is {len(data)} bytes with SHA-256" in text
    assert hashlib.sha256(data).hexdigest() in text
    ref = tmp_path / "verify.py"
    ref.write_text(_reference_verifier())
    res = subprocess.run(
        [sys.executable, str(ref), str(bundle), pub], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0 and res.stdout.startswith("INTACT: till-1 0 events"), res.stdout
    verdict = verify_bundle(bundle, public_key=pub)
    assert verdict.ok, verdict.problem
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "appliance.cli",
            "inspect",
            "verify",
            str(bundle),
            "--public-key",
            pub,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0 and "INTACT" in res.stdout


def _reference_verifier() -> str:
    match = re.search(r"\*\*Reference verifier\.\*\*.*?```python\n(.*?)```", DOC.read_text(), re.S)
    assert match, "the reference verifier is missing from docs/formats.md (section 5)"
    return match.group(1)


def test_reference_verifier_from_the_doc_agrees_on_real_bundles(enrolled, tmp_path):
    from compliance.bundle import export_bundle

    script = tmp_path / "verify.py"
    script.write_text(_reference_verifier())
    good = tmp_path / "good.zip"
    export_bundle(enrolled, good)
    pub = enrolled.public_key_path.read_text().strip()

    def run(path, *extra):
        return subprocess.run(
            [sys.executable, str(script), str(path), *extra],
            capture_output=True,
            text=True,
            timeout=60,
        )

    ok = run(good, pub)
    assert ok.returncode == 0 and ok.stdout.startswith("INTACT: till-1 8 events 4 receipts")
    assert run(good, "00" * 32).returncode == 1
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "events.jsonl":
                data = data.replace(b'"qty":2', b'"qty":1', 1)
            zout.writestr(info, data)
    res = run(bad)
    assert res.returncode == 1 and res.stdout.startswith("NOT INTACT: events.jsonl")
    assert verify_bundle(bad).ok is False  # and tillbox agrees
    stamped = tmp_path / "stamped.zip"  # only a timestamp in the central directory changed
    data = bytearray(good.read_bytes())
    cd = data.index(b"PK\x01\x02")
    data[cd + 12] ^= 0x01
    stamped.write_bytes(bytes(data))
    res = run(stamped)
    assert res.returncode == 1 and "zip container" in res.stdout
    assert "zip container differs" in verify_bundle(stamped).problem


def test_tb2_vectors_in_the_doc_verify_bind_their_event_and_are_reproduced():
    import base64

    text = DOC.read_text()
    key = SigningKey(SEED)
    pub = key.verify_key.encode().hex()
    payloads = [b for b in _indented_blocks(text) if b.startswith("TB2*") and "<" not in b]
    assert len(payloads) == 2
    key_id = base64.urlsafe_b64encode(hashlib.sha256(bytes.fromhex(pub)).digest()[:8])
    for payload, event_text, method, refunded in zip(
        payloads, (b"sale event", b"refund event"), ("card", "cash"), ("", "42"), strict=True
    ):
        parts = payload.split("*")
        assert parts[1] == key_id.rstrip(b"=").decode() and parts[2] == "demo"
        assert (parts[9], parts[10]) == (method, refunded)
        ref = base64.urlsafe_b64decode(parts[11] + "==")
        assert ref == hashlib.sha256(event_text).digest()[:24]
        assert hashlib.sha256(event_text).hexdigest() in text
        check = rs.verify_receipt_payload(payload, pub)
        assert check.ok, check.problem
        assert rs.sign_fields(check.fields, key) == payload  # the doc's bytes, exactly
        assert f"`{rs.short_code(payload)}`" in text
    assert f"`OT72J-ZPI3E`, {len(payloads[0])} bytes" in text


def test_reference_verifier_checks_the_nonce_and_refuses_a_zip_bomb(enrolled, tmp_path):
    from compliance.bundle import export_bundle

    script = tmp_path / "verify.py"
    script.write_text(_reference_verifier())
    bundle = tmp_path / "fresh.zip"
    export_bundle(enrolled, bundle, nonce="walnut-7", now_ms=1795784806000)

    def run(path, *extra):
        return subprocess.run(
            [sys.executable, str(script), str(path), *extra],
            capture_output=True,
            text=True,
            timeout=60,
        )

    ok = run(bundle, "", "", "walnut-7")
    assert ok.returncode == 0, ok.stdout
    assert 'exported_at_ms 1795784806000 nonce "walnut-7"' in ok.stdout
    stale = run(bundle, "", "", "oak-3")
    assert stale.returncode == 1 and "does not carry your nonce" in stale.stdout
    bomb = tmp_path / "bomb.zip"  # the same entries, manifest.json deflated
    with zipfile.ZipFile(bundle) as zin, zipfile.ZipFile(bomb, "w") as zout:
        for info in zin.infolist():
            method = zipfile.ZIP_DEFLATED if info.filename == "manifest.json" else 0
            zout.writestr(info.filename, zin.read(info.filename), compress_type=method)
    res = run(bomb)
    assert res.returncode == 1 and "a compressed entry" in res.stdout
    assert "compressed" in verify_bundle(bomb).problem
