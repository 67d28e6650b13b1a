"""Inspection bundles: export, verify, and every kind of tampering caught with a reason."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from appliance import keys, privacy
from appliance.formats import receipt as rs
from appliance.formats.canonical import canonical_bytes
from appliance.formats.chain import event_hash
from appliance.till import Till
from compliance.bundle import export_bundle
from compliance.verify import verify_bundle


def rewrite(src: Path, dst: Path, change) -> None:
    """Copy a zip entry by entry; ``change(name, data)`` returns new bytes or None to drop."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info, data)


def resign(src: Path, dst: Path, key: SigningKey, change, *, new_public: str | None = None):
    """What an attacker holding a key would do: change files, rebuild and re-sign the manifest."""
    import hashlib

    with zipfile.ZipFile(src) as zin:
        files = {i.filename: zin.read(i.filename) for i in zin.infolist()}
    for name in list(files):
        if name not in ("manifest.json", "manifest.sig"):
            new = change(name, files[name])
            if new is None:
                del files[name]
            else:
                files[name] = new
    manifest = json.loads(files["manifest.json"])
    if new_public:
        manifest["public_key"] = new_public
        files["device.pub"] = new_public.encode() + b"\n"
    manifest["files"] = [
        {"path": n, "sha256": hashlib.sha256(files[n]).hexdigest(), "size": len(files[n])}
        for n in sorted(files)
        if n not in ("manifest.json", "manifest.sig")
    ]
    files["manifest.json"] = canonical_bytes(manifest)
    files["manifest.sig"] = key.sign(files["manifest.json"]).signature.hex().encode() + b"\n"
    with zipfile.ZipFile(dst, "w") as zout:
        for name, data in files.items():
            zout.writestr(name, data)


@pytest.fixture
def bundle(enrolled, tmp_path) -> Path:
    out = tmp_path / "bundle.zip"
    export_bundle(enrolled, out)
    return out


def device_key(ddir) -> SigningKey:
    return keys.load_signing_key(ddir.private_key_path)


def test_intact_bundle_verifies_with_every_check(bundle, enrolled):
    pub = enrolled.public_key_path.read_text().strip()
    progress = []
    verdict = verify_bundle(bundle, public_key=pub, progress=lambda d, t: progress.append((d, t)))
    assert verdict.ok, verdict.problem
    assert verdict.checks == [
        "public key",
        "manifest signature",
        "file hashes",
        "event chain",
        "receipt signatures",
        "self-test history",
        "enrollment manifests",
        "enrollment reviews",
        "sync segments",
        "region acks",
        "zip container",
    ]
    assert verdict.receipts == 4 and verdict.events == 8
    assert (verdict.acks, verdict.acked_seq) == (0, 0)  # never synced: nothing claimed
    assert progress[-1][0] == progress[-1][1] > 0
    with zipfile.ZipFile(bundle) as zf:
        names = zf.namelist()
        assert names == sorted(names[:-2]) + ["manifest.json", "manifest.sig"]
        assert any(n.startswith("enrollment/0001/photos/") for n in names)
        exif = json.loads(zf.read("enrollment/0001/exif.json"))
        assert list(exif.values())[0]["format"] == "JPEG"
        page = zf.read("index.html").decode()
    assert "Riverside Makers" in page and "TP-2291" in page and "data:image/jpeg;base64," in page
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", page)  # nothing external
    assert "<script" not in page


def test_export_is_deterministic(enrolled, tmp_path):
    # the same log, export time and nonce give the same bytes; the time is signed, so
    # another time gives another bundle
    a, b, c = tmp_path / "a.zip", tmp_path / "b.zip", tmp_path / "c.zip"
    export_bundle(enrolled, a, now_ms=1795784806000, nonce="n-1")
    export_bundle(enrolled, b, now_ms=1795784806000, nonce="n-1")
    export_bundle(enrolled, c, now_ms=1795784807000, nonce="n-1")
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


def test_flipped_byte_in_a_photo_is_caught(bundle, tmp_path):
    bad = tmp_path / "bad.zip"

    def flip(name, data):
        if "/photos/" in name:
            return data[:100] + bytes([data[100] ^ 1]) + data[101:]
        return data

    rewrite(bundle, bad, flip)
    verdict = verify_bundle(bad)
    assert not verdict.ok
    assert "photos/" in verdict.problem and "does not match its SHA-256" in verdict.problem


def test_flipped_byte_in_the_raw_zip_is_caught(bundle, tmp_path):
    data = bytearray(bundle.read_bytes())
    with zipfile.ZipFile(bundle) as zf:
        info = zf.getinfo("events.jsonl")
    data[info.header_offset + 30 + len("events.jsonl") + 20] ^= 0x40  # inside compressed data
    bad = tmp_path / "raw.zip"
    bad.write_bytes(bytes(data))
    verdict = verify_bundle(bad)
    assert not verdict.ok and "events.jsonl" in verdict.problem


def test_removed_event_is_caught_even_when_the_manifest_is_re_signed(bundle, enrolled, tmp_path):
    def drop_seq5(name, data):
        if name == "events.jsonl":
            return b"".join(
                ln for ln in data.splitlines(keepends=True) if json.loads(ln)["seq"] != 5
            )
        return data

    plain = tmp_path / "plain.zip"
    rewrite(bundle, plain, drop_seq5)
    assert "events.jsonl does not match its SHA-256" in verify_bundle(plain).problem
    resigned = tmp_path / "resigned.zip"
    resign(bundle, resigned, device_key(enrolled), drop_seq5)
    verdict = verify_bundle(resigned)
    assert not verdict.ok
    assert "expected seq 5, found 6" in verdict.problem


def test_edited_event_with_recomputed_hash_breaks_the_link(bundle, enrolled, tmp_path):
    def cheaper(name, data):
        if name != "events.jsonl":
            return data
        lines = []
        for ln in data.splitlines():
            obj = json.loads(ln)
            if obj["type"] == "sale.completed" and obj["payload"]["receipt_no"] == 1:
                obj["payload"]["total_minor"] -= 100
                env = {k: v for k, v in obj.items() if k != "hash"}
                obj["hash"] = event_hash(env)
            lines.append(canonical_bytes(obj) + b"\n")
        return b"".join(lines)

    bad = tmp_path / "edited.zip"
    resign(bundle, bad, device_key(enrolled), cheaper)
    verdict = verify_bundle(bad)
    assert not verdict.ok and "previous-hash does not match" in verdict.problem


def test_edited_manifest_is_caught(bundle, tmp_path):
    def edit(name, data):
        if name == "manifest.json":
            return data.replace(b'"personal_data":false', b'"personal_data":true')
        return data

    bad = tmp_path / "manifest.zip"
    rewrite(bundle, bad, edit)
    verdict = verify_bundle(bad)
    assert not verdict.ok and "manifest signature does not verify" in verdict.problem


def test_bundle_signed_by_another_device_is_caught(bundle, enrolled, tmp_path):
    other = SigningKey.generate()
    other_pub = other.verify_key.encode().hex()
    # The other device's key is put everywhere the bundle names a key.
    swapped = tmp_path / "other.zip"
    resign(bundle, swapped, other, lambda n, d: d, new_public=other_pub)
    verdict = verify_bundle(swapped)
    assert not verdict.ok and "another public key" in verdict.problem
    # Against the registry's key, it is refused before anything else.
    real = enrolled.public_key_path.read_text().strip()
    verdict = verify_bundle(swapped, public_key=real)
    assert not verdict.ok and "a bundle from another device" in verdict.problem
    # Signed by another key but claiming ours: the signature fails.
    forged = tmp_path / "forged.zip"
    resign(bundle, forged, other, lambda n, d: d)
    assert "manifest signature does not verify" in verify_bundle(forged).problem


def test_added_file_and_bad_receipt_entry_are_caught(bundle, enrolled, tmp_path):
    added = tmp_path / "added.zip"
    with zipfile.ZipFile(bundle) as zin, zipfile.ZipFile(added, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, zin.read(info.filename))
        zout.writestr("extra.txt", b"hello")
    assert "extra.txt is in the zip but not in the signed manifest" in verify_bundle(added).problem

    def swap_receipts(name, data):
        if name == "receipts.jsonl":
            lines = data.splitlines(keepends=True)
            first, second = json.loads(lines[0]), json.loads(lines[1])
            first["payload"] = second["payload"]
            lines[0] = canonical_bytes(first) + b"\n"
            return b"".join(lines)
        return data

    bad = tmp_path / "receipts.zip"
    resign(bundle, bad, device_key(enrolled), swap_receipts)
    verdict = verify_bundle(bad)
    assert not verdict.ok and "other figures than its event" in verdict.problem


def test_not_a_zip_truncated_and_missing_file_give_verdicts(bundle, tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all")
    assert "not a readable zip" in verify_bundle(junk).problem
    cut = tmp_path / "cut.zip"
    cut.write_bytes(bundle.read_bytes()[: bundle.stat().st_size // 2])
    assert "not a readable zip" in verify_bundle(cut).problem
    assert "no file at" in verify_bundle(tmp_path / "nope.zip").problem


def test_period_bundle_chains_from_the_event_before(enrolled, tmp_path, tamper):
    from datetime import UTC, datetime, timedelta

    # Backdate the first events by two days, as if the till had traded before, and
    # re-chain everything so the log is valid again with the new times.
    two_days = 2 * 86_400_000
    tamper(
        enrolled.log_path, ("UPDATE events SET wall_ms = wall_ms - ? WHERE seq <= 5", (two_days,))
    )
    with Till.open(enrolled) as till:
        last_seq, _ = till.log.last()
        assert till.log.verify().ok
    today = datetime.now(UTC).date()
    out = tmp_path / "today.zip"
    result = export_bundle(enrolled, out, date_from=today.isoformat(), date_to=today.isoformat())
    assert (result.first_seq, result.last_seq) == (6, last_seq)
    verdict = verify_bundle(out)
    assert verdict.ok, verdict.problem
    assert verdict.first_seq == 6 and verdict.receipts == 2  # sale 6, refund 7
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        first_receipt = json.loads(zf.read("receipts.jsonl").splitlines()[0])
    with Till.open(enrolled) as till:
        assert manifest["events"]["prev_hash"] == till.log.event(5).hash
        # a TB2 receipt names its own event (and so the chain before it), not the previous one
        assert first_receipt["seq"] == 6 and manifest["tenant"] == "demo"
        assert (
            rs.parse_payload(first_receipt["payload"])[0].event_ref == (till.log.event(6).hash[:48])
        )
    earlier = tmp_path / "earlier.zip"
    two_days_ago = (today - timedelta(days=2)).isoformat()
    result = export_bundle(enrolled, earlier, date_from=two_days_ago, date_to=two_days_ago)
    assert (result.first_seq, result.last_seq) == (1, 5) and verify_bundle(earlier).ok
    empty = tmp_path / "future.zip"
    assert export_bundle(enrolled, empty, date_from="2099-01-01").events == 0
    assert verify_bundle(empty).ok
    with pytest.raises(Exception, match="YYYY-MM-DD"):
        export_bundle(enrolled, empty, date_from="27/11/2026")
    with pytest.raises(Exception, match="swap them"):
        export_bundle(enrolled, empty, date_from="2026-11-27", date_to="2026-11-01")


def test_personal_data_only_when_asked_and_sync_files_included(enrolled, tmp_path):
    with Till.open(enrolled) as till:
        customer, _ = privacy.record_consent(till, ["receipt_email"])
        privacy.store_personal(till, customer, "receipt_email", {"email": "ann@example.org"})
    (enrolled.sync_dir / "acks").mkdir(parents=True)
    (enrolled.sync_dir / "acks" / "0001.json").write_text('{"acked_seq": 5}')
    (enrolled.sync_dir / "state.json").write_text('{"acked_seq": 5}')
    plain, full = tmp_path / "plain.zip", tmp_path / "full.zip"
    export_bundle(enrolled, plain)
    export_bundle(enrolled, full, include_personal=True)
    with zipfile.ZipFile(plain) as zf:
        blob = b"".join(zf.read(n) for n in zf.namelist())
        assert "sync/acks/0001.json" in zf.namelist() and "sync/state.json" in zf.namelist()
        assert json.loads(zf.read("manifest.json"))["personal_data"] is False
    assert b"ann@example.org" not in blob
    with zipfile.ZipFile(full) as zf:
        body = json.loads(zf.read(f"personal/{customer}.json"))
        assert body["records"][0]["data"] == {"email": "ann@example.org"}
    assert verify_bundle(plain).ok and verify_bundle(full).ok


def test_cli_export_and_verify(enrolled, tmp_path):
    out = tmp_path / "cli.zip"
    run = [sys.executable, "-m", "appliance.cli"]
    exp = subprocess.run(
        [*run, "inspect", "export", "--data-dir", str(enrolled.root), "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert exp.returncode == 0, exp.stderr
    assert json.loads(exp.stdout)["receipts"] == 4
    ok = subprocess.run(
        [*run, "inspect", "verify", str(out), "--progress"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0 and ok.stdout.startswith("VERDICT: INTACT"), ok.stdout
    assert "100%" in ok.stderr
    bad = tmp_path / "bad.zip"
    rewrite(out, bad, lambda n, d: d.replace(b"Riverside", b"Riverfake"))
    res = subprocess.run(
        [*run, "inspect", "verify", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 4 and "VERDICT: NOT INTACT. first problem:" in res.stdout
    missing = subprocess.run(
        [
            *run,
            "inspect",
            "export",
            "--data-dir",
            str(enrolled.root),
            "--out",
            str(tmp_path / "no" / "dir.zip"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_selftest_history_is_in_the_bundle_and_checked(enrolled, probes, tmp_path):
    from compliance.selftest import run_selftest

    for _ in range(2):
        run_selftest(enrolled, probes, time_synced=lambda: False)
    out = tmp_path / "st.zip"
    export_bundle(enrolled, out)
    with zipfile.ZipFile(out) as zf:
        lines = zf.read("selftest.jsonl").splitlines()
        page = zf.read("index.html").decode()
    assert len(lines) == 2 and json.loads(lines[0])["payload"]["checks"][0]["name"] == "printer"
    assert "Self-test history" in page and "no time source confirms it" in page
    assert verify_bundle(out).ok

    def drop_one(name, data):
        return data.splitlines(keepends=True)[0] if name == "selftest.jsonl" else data

    bad = tmp_path / "st-bad.zip"
    resign(out, bad, device_key(enrolled), drop_one)
    assert "selftest.jsonl differs" in verify_bundle(bad).problem


def test_sync_agent_segments_are_exported_and_their_signatures_checked(
    enrolled, tmp_path, seal_segments
):
    from sync_agent.store import AgentStore

    with Till.open(enrolled) as till:
        tail = till.log.last()[0]
    ids = seal_segments(enrolled, [(1, 4), (5, tail)])
    store = AgentStore(enrolled.sync_dir / "agent.db")
    store.mark_acked(ids[0])
    store.close()
    out = tmp_path / "sync.zip"
    export_bundle(enrolled, out)
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        records = [json.loads(ln) for ln in zf.read("sync/segments.jsonl").splitlines()]
        page = zf.read("index.html").decode()
    assert not any("agent.db" in n for n in names)
    assert [r["acked_ms"] is not None for r in records] == [True, False]
    assert records[1]["prev"] == records[0]["id"] and records[1]["file"] in names
    assert "2 signed segments sealed, 1 acknowledged" in page
    verdict = verify_bundle(out)
    assert verdict.ok and "sync segments" in verdict.checks, verdict.problem

    def flip(name, data):
        if name.endswith(".tbsg"):
            return data[:40] + bytes([data[40] ^ 1]) + data[41:]
        return data

    bad = tmp_path / "seg-bad.zip"
    resign(out, bad, device_key(enrolled), flip)
    assert "is not the segment id recorded" in verify_bundle(bad).problem


def test_edited_event_without_new_hash_is_caught(bundle, enrolled, tmp_path):
    def edit(name, data):
        if name != "events.jsonl":
            return data
        return data.replace(b'"opening_float_minor":0', b'"opening_float_minor":5000', 1)

    bad = tmp_path / "edit.zip"
    resign(bundle, bad, device_key(enrolled), edit)
    verdict = verify_bundle(bad)
    assert not verdict.ok and "seq 3: its hash does not match its contents" in verdict.problem


def test_photo_corrupted_on_disk_after_enrollment(enrolled, probes, tmp_path):
    from compliance.selftest import run_selftest

    folder = enrolled.root / "compliance" / "enrollment" / "0001"
    photo = next((folder / "photos").iterdir())
    photo.chmod(0o644)
    photo.write_bytes(b"\xff\xd8\xff garbage, not a JPEG any more")
    scan = next((folder / "permits").iterdir())
    scan.chmod(0o644)
    scan.write_bytes(scan.read_bytes() + b"x")
    report = run_selftest(enrolled, probes, record=False, time_synced=lambda: True)
    permits = {c.name: c for c in report.checks}["permits"]
    assert permits.result == "fail" and "changed since it was enrolled" in permits.value
    out = tmp_path / "corrupt.zip"
    export_bundle(enrolled, out)  # still exports: the inspector must see it
    with zipfile.ZipFile(out) as zf:
        page = zf.read("index.html").decode()
        exif = json.loads(zf.read("enrollment/0001/exif.json"))
    assert "not a readable image" in page
    assert "not a readable image" in next(iter(exif.values()))["error"]
    verdict = verify_bundle(out)
    assert not verdict.ok
    assert "does not match the hash in its signed enrollment" in verdict.problem


def test_leftovers_of_a_crashed_enrollment_are_not_exported(enrolled, tmp_path):
    leftover = enrolled.root / "compliance" / "enrollment" / ".0002.tmp" / "photos"
    leftover.mkdir(parents=True)
    (leftover / "half-written.jpg").write_bytes(b"\xff\xd8")
    out = tmp_path / "clean.zip"
    export_bundle(enrolled, out)
    with zipfile.ZipFile(out) as zf:
        assert not [n for n in zf.namelist() if "0002" in n or "half-written" in n]
    assert verify_bundle(out).ok


@pytest.mark.slow
def test_a_flipped_bit_anywhere_in_the_archive_is_caught(till_dir, tmp_path):
    """Every header byte of every entry, the central directory, the end record, and a
    sample of content bytes: one flipped bit anywhere and the verdict is NOT INTACT."""
    import random
    import struct

    out = tmp_path / "small.zip"
    export_bundle(till_dir, out)
    data = out.read_bytes()
    positions = set()
    offset = 0
    while data[offset : offset + 4] == b"PK\x03\x04":  # local headers: every byte
        size, name_len = (
            struct.unpack_from("<I", data, offset + 18)[0],
            struct.unpack_from("<H", data, offset + 26)[0],
        )
        positions.update(range(offset, offset + 30 + name_len))
        offset += 30 + name_len + size
    positions.update(range(offset, len(data)))  # central directory and end record
    rng = random.Random(6)
    positions.update(rng.sample(range(len(data)), 150))
    bad = tmp_path / "flipped.zip"
    survivors = []
    for pos in sorted(positions):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << rng.randrange(8)
        bad.write_bytes(bytes(flipped))
        if verify_bundle(bad).ok:
            survivors.append(pos)
    assert len(positions) > 500
    assert survivors == []
    grown = tmp_path / "grown.zip"
    grown.write_bytes(data + b"\0")
    assert not verify_bundle(grown).ok
