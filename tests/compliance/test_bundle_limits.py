"""Bundles from outside: zip bombs and oversized pieces, freshness, and what was proved."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from nacl.signing import SigningKey

from appliance.formats import zipcanon
from compliance.bundle import export_bundle
from compliance.testing import REGION_PUB, till_with_sales
from compliance.verify import verify_bundle

MiB = 1 << 20
BOMB_MIB = 200  # what the bomb's manifest.json inflates to (about 200 KiB deflated)


def tillbox(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args], capture_output=True, text=True, timeout=300
    )


def peak_rss_mib(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``tillbox ARGS`` from a fresh parent, so RUSAGE_CHILDREN is that run's alone."""
    probe = (
        "import json, resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(json.dumps([r.returncode, r.stdout, r.stderr, peak]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, sys.executable, "-m", "appliance.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    code, stdout, stderr, peak_kib = json.loads(out.stdout)
    return subprocess.CompletedProcess(args, code, stdout, stderr), peak_kib / 1024


def write_bomb(path: Path, deflated: str) -> None:
    """A bundle whose ``deflated`` entry inflates to BOMB_MIB MiB of spaces."""
    key = SigningKey(bytes(range(32)))
    pub = key.verify_key.encode().hex()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("device.pub", pub + "\n")
        for name in ("events.jsonl", "receipts.jsonl", "selftest.jsonl", "manifest.json"):
            if name == deflated:
                info = zipfile.ZipInfo(name)
                info.compress_type = zipfile.ZIP_DEFLATED
                with zf.open(info, "w") as f:
                    block = b" " * MiB
                    for _ in range(BOMB_MIB):
                        f.write(block)
            else:
                zf.writestr(name, b"{}" if name == "manifest.json" else b"")
        zf.writestr("manifest.sig", key.sign(b"{}").signature.hex() + "\n")


def test_a_zip_bomb_is_refused_without_inflating_it(tmp_path):
    for deflated in ("manifest.json", "events.jsonl"):
        bomb = tmp_path / f"bomb-{deflated}.zip"
        write_bomb(bomb, deflated)
        assert bomb.stat().st_size < 2 * MiB
        res, peak = peak_rss_mib("inspect", "verify", str(bomb))
        assert res.returncode == 4, res.stdout + res.stderr
        assert res.stdout.count("\n") == 1 and res.stderr == ""
        assert f"{deflated} is compressed" in res.stdout and "zip bomb" in res.stdout
        assert peak < BOMB_MIB / 2, f"peak RSS {peak:.0f} MiB"  # far below the inflated size


def test_an_oversized_manifest_is_refused_before_it_is_parsed(tmp_path):
    key = SigningKey(bytes(range(32)))
    pub = key.verify_key.encode().hex()
    entries = [("device.pub", (pub + "\n").encode())]
    entries += [(n, b"") for n in ("events.jsonl", "receipts.jsonl", "selftest.jsonl")]
    big = b"[" + b" " * (9 * MiB) + b"]"  # stored, valid JSON, 9 MiB: over the 8 MiB cap
    entries += [("manifest.json", big), ("manifest.sig", key.sign(big).signature.hex().encode())]
    path = tmp_path / "big.zip"
    with path.open("wb") as f:
        zipcanon.write(f, [(n, (lambda d=d: [d])) for n, d in entries])
    verdict = verify_bundle(path)
    assert not verdict.ok and "manifest.json is larger than 8 MiB" in verdict.problem
    sig = tmp_path / "sig.zip"  # an oversized signature file the same way
    entries[-2:] = [("manifest.json", b"{}"), ("manifest.sig", b"0" * 4096)]
    with sig.open("wb") as f:
        zipcanon.write(f, [(n, (lambda d=d: [d])) for n, d in entries])
    assert "manifest.sig is larger than 1 KiB" in verify_bundle(sig).problem


def test_an_unsigned_manifest_is_never_parsed(tmp_path, monkeypatch):
    """Signature first: a manifest that does not verify reaches no JSON parser."""
    import compliance.verify as verify

    key = SigningKey(bytes(range(32)))
    entries = [("device.pub", (key.verify_key.encode().hex() + "\n").encode())]
    entries += [("manifest.json", b'{"format":"tillbox-inspection/2"}')]
    entries += [("manifest.sig", b"00" * 64 + b"\n")]
    path = tmp_path / "unsigned.zip"
    with path.open("wb") as f:
        zipcanon.write(f, [(n, (lambda d=d: [d])) for n, d in entries])
    parsed = []
    monkeypatch.setattr(verify, "_manifest", lambda raw: parsed.append(raw) or {})
    verdict = verify_bundle(path)
    assert "manifest signature does not verify" in verdict.problem and parsed == []


def test_the_nonce_and_export_time_are_signed_and_checked(enrolled, tmp_path):
    fresh, stale = tmp_path / "fresh.zip", tmp_path / "stale.zip"
    exp = tillbox(
        "inspect", "export", "--data-dir", str(enrolled.root), "--out", str(fresh),
        "--nonce", "inspector 2026-12-01 walnut",
    )  # fmt: skip
    assert exp.returncode == 0, exp.stderr
    export_bundle(enrolled, stale, now_ms=1795784806000)  # made before anyone asked
    with zipfile.ZipFile(fresh) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["nonce"] == "inspector 2026-12-01 walnut"
    assert isinstance(manifest["exported_at_ms"], int) and manifest["tenant"] == "demo"
    ok = tillbox("inspect", "verify", str(fresh), "--nonce", "inspector 2026-12-01 walnut")
    assert ok.returncode == 0 and "nonce: matches --nonce" in ok.stdout, ok.stdout
    other = tillbox("inspect", "verify", str(fresh), "--nonce", "inspector 2026-12-02 oak")
    assert other.returncode == 5 and "another nonce" in other.stdout, other.stdout
    old = tillbox("inspect", "verify", str(stale), "--nonce", "inspector 2026-12-01 walnut")
    assert old.returncode == 5 and "carries no nonce" in old.stdout
    assert f"exported {datetime.fromtimestamp(1795784806, UTC):%Y-%m-%d %H:%M:%S} UTC" in old.stdout
    plain = tillbox("inspect", "verify", str(stale), "--json")
    verdict = json.loads(plain.stdout)
    assert plain.returncode == 0 and verdict["complete"] and verdict["nonce"] is None
    assert verdict["exported_at_ms"] == 1795784806000
    bad = tillbox(
        "inspect", "export", "--data-dir", str(enrolled.root), "--out", str(stale),
        "--nonce", "line\nbreak",
    )  # fmt: skip
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "--nonce must be" in bad.stderr


def test_verify_says_which_parts_it_proved(synced, tmp_path):
    ddir, _ids = synced
    acked = tmp_path / "acked.zip"
    export_bundle(ddir, acked)
    pub = ddir.public_key_path.read_text().strip()
    # acks signed by the bundle's own region.pub: a till could have signed them itself
    plain = tillbox("inspect", "verify", str(acked))
    assert plain.returncode == 0, plain.stdout
    assert "device signature: checked with the bundle's own device.pub only" in plain.stdout
    assert "chain: proved" in plain.stdout
    assert "region acks: NOT proved" in plain.stdout and "pass --region-key" in plain.stdout
    pinned = tillbox(
        "inspect", "verify", str(acked), "--public-key", pub, "--region-key", REGION_PUB
    )
    assert pinned.returncode == 0, pinned.stdout
    assert "device signature: proved with the pinned device key" in pinned.stdout
    assert "region acks: proved with the pinned region key: stored through seq 6" in pinned.stdout
    as_json = json.loads(tillbox("inspect", "verify", str(acked), "--json").stdout)
    assert as_json["proved"]["region_acks"].startswith("NOT proved")
    # asked to prove what the region stored, but the bundle holds no acks: exit 5
    unsynced = tmp_path / "unsynced.zip"
    export_bundle(till_with_sales(tmp_path / "never-synced"), unsynced)
    res = tillbox("inspect", "verify", str(unsynced), "--region-key", REGION_PUB)
    assert res.returncode == 5 and "holds no region acks" in res.stdout, res.stdout
    assert "region acks: none in the bundle" in res.stdout
