"""Onboarding at the region: a till's enrollment export imported (SQLite and PostgreSQL),
reviewed, the signed decision sent down a real mosquitto to the till's agent, and the
region's own inspection package checked by the real `tillbox inspect verify`."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from appliance.datadir import DataDir
from appliance.formats import review as review_format
from appliance.formats import wire
from compliance.testing import enroll_till, forge_bundle, jpeg_bytes
from edge.enrollments import enrollment_media, get_enrollment, import_enrollment, list_enrollments
from edge.ingest import Ingestor
from edge.review import review_enrollment
from edge.store import Store
from systest.sync import (
    PUBLISHER_PASSWORD,
    PUBLISHER_USER,
    Region,
    edge_proc,
    edge_ready,
    enroll,
    make_till,
    run_tillbox,
    seal_log,
    sell,
    sync_once,
    wait_for,
)

NOW = 1795784806000


def enrolled_till(tmp_path: Path, region: Region, device: str = "t1") -> DataDir:
    """A till that sold, enrolled with a permit scan and a photo, as a stall would be."""
    till = make_till(tmp_path, device, region)
    sell(till, 12)
    permit = tmp_path / f"{device}-permit.pdf"
    permit.write_bytes(b"%PDF-1.4\n% trading permit TP-2291\n")
    photo = tmp_path / f"{device}-engraver.jpg"
    photo.write_bytes(jpeg_bytes())
    enroll_till(till, permit, photo)
    return till


def export(till: DataDir, out: Path) -> Path:
    res = run_tillbox("enrollment", "export", "--data-dir", str(till.root), "--out", str(out))
    assert res.returncode == 0, res.stderr
    return out


def ingest_all(db: str, till: DataDir, region: Region) -> None:
    """Store the till's whole log at the region as the edge would (no broker needed)."""
    store = Store.open(db)
    try:
        ingestor = Ingestor(store, region.key)
        device = till.load_config().device_id
        for data in seal_log(till, size=5):  # several segments
            outcome = ingestor.handle(wire.topic_seg("demo", device), data, "ab" * 16)
            assert outcome.status == "stored", outcome
    finally:
        store.close()


def test_import_stores_the_signed_manifest_and_media_and_refuses_tampering(
    tmp_path, any_db, region
):
    till = enrolled_till(tmp_path, region)
    enroll(any_db, till)
    path = export(till, tmp_path / "t1-enrollment.zip")
    res = run_tillbox("edge", "enrollment", "import", "--db", any_db, str(path), "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert (info["device_id"], info["tenant"], info["status"]) == ("t1", "demo", "pending")
    assert {m["kind"] for m in info["media"]} == {"permit", "photo", "file"}
    store = Store.open(any_db)
    try:
        record = get_enrollment(store, "t1")
        signed = json.loads(
            (till.root / "compliance" / "enrollment" / "0001" / "enrollment.json").read_text()
        )
        assert record.manifest == signed["manifest"] and record.signature == signed["signature"]
        folder = till.root / "compliance" / "enrollment" / "0001"
        assert record.signed_file() == (folder / "enrollment.json").read_bytes()
        for item in record.media:
            assert enrollment_media(store, "t1", item.sha256) == (folder / item.path).read_bytes()
        assert [r.device_id for r in list_enrollments(store, "demo")] == ["t1"]
        assert list_enrollments(store, "other") == []
        again = import_enrollment(store, path.read_bytes(), NOW)
        assert again.already_imported and len(list_enrollments(store)) == 1
    finally:
        store.close()

    # one byte of the photo changed: refused, exit 4, one line, nothing stored
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        photo = next(i for i in zf.infolist() if i.filename.startswith("photos/"))
    data[photo.header_offset + 30 + len(photo.filename) + 10] ^= 0x01
    bad = tmp_path / "tampered.zip"
    bad.write_bytes(bytes(data))
    res = run_tillbox("edge", "enrollment", "import", "--db", any_db, str(bad))
    assert res.returncode == 4, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "SHA-256" in res.stderr
    # another till's export: its key is not enrolled here
    stranger = enrolled_till(tmp_path, region, "t2")
    res = run_tillbox(
        "edge", "enrollment", "import", "--db", any_db, str(export(stranger, tmp_path / "t2.zip"))
    )
    assert res.returncode == 1 and "not enrolled" in res.stderr, res.stderr
    assert "tillbox edge enroll" in res.stderr
    # a file that is not an export at all
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04 not really")
    res = run_tillbox("edge", "enrollment", "import", "--db", any_db, str(junk))
    assert res.returncode == 4 and len(res.stderr.strip().splitlines()) == 1


def test_review_is_signed_bound_to_the_manifest_and_stored(tmp_path, any_db, region):
    till = enrolled_till(tmp_path, region)
    enroll(any_db, till)
    store = Store.open(any_db)
    try:
        with pytest.raises(Exception, match="no enrollment of device t1 has been imported"):
            review_enrollment(store, "t1", "approve", "ok", "R. Inspector", region.key, NOW)
        record = import_enrollment(store, export(till, tmp_path / "e.zip").read_bytes(), NOW)
        with pytest.raises(Exception, match="approve or reject"):
            review_enrollment(store, "t1", "maybe", "ok", "R. Inspector", region.key, NOW)
        with pytest.raises(Exception, match="reason"):
            review_enrollment(store, "t1", "reject", "two\nlines", "R. Inspector", region.key, NOW)
        first = review_enrollment(
            store, "t1", "reject", "photo blurred", "R. Inspector", region.key, NOW
        )
        second = review_enrollment(
            store, "t1", "approve", "new photo ok", "A. Chief", region.key, NOW
        )
        assert second.decided_ms == NOW + 1  # strictly later, so it supersedes on the till
        decision = review_format.open_review(second.message, region.key.verify_key)
        assert (decision.device_id, decision.tenant, decision.sequence) == ("t1", "demo", 1)
        assert decision.manifest_sha256 == record.manifest_sha256
        assert decision.region_key_fingerprint == review_format.fingerprint(region.key.verify_key)
        assert second.topic == "tillbox/v1/demo/t1/down/enrollment"
        latest = get_enrollment(store, "t1")
        assert latest.status == "approved" and latest.review.message == second.message
        assert first.message != second.message
    finally:
        store.close()


def test_the_region_package_verifies_with_the_real_cli_and_tampering_is_refused(
    tmp_path, any_db, region
):
    till = enrolled_till(tmp_path, region)
    enroll(any_db, till)
    ingest_all(any_db, till, region)
    store = Store.open(any_db)
    try:
        import_enrollment(store, export(till, tmp_path / "e.zip").read_bytes(), NOW)
        review_enrollment(store, "t1", "approve", "permit checked", "R. Inspector", region.key, NOW)
    finally:
        store.close()
    out = tmp_path / "package.zip"
    res = run_tillbox(
        "edge", "inspect-package", "--db", any_db, "--device", "t1", "--nonce", "oak-42",
        "--key", str(region.key_path), "--out", str(out), "--json",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    built = json.loads(res.stdout)
    device_pub = till.public_key_path.read_text().strip()

    def verify(path: Path, *extra: str) -> tuple[int, dict]:
        done = run_tillbox("inspect", "verify", str(path), "--json", *extra)
        return done.returncode, json.loads(done.stdout)

    code, verdict = verify(
        out, "--region-key", region.pub_hex, "--public-key", device_pub, "--nonce", "oak-42"
    )
    assert code == 0 and verdict["ok"], verdict["problem"]
    assert verdict["built_by"] == "region" and verdict["complete"]
    assert verdict["events"] == built["events"] == verdict["acked_seq"]
    assert verdict["proved"]["built_by"].endswith("proved with the pinned region key")
    assert "approved by the region" in verdict["proved"]["enrollment_review"]
    assert "enrollment reviews" in verdict["checks"] and "region segments" in verdict["checks"]
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        folder = till.root / "compliance" / "enrollment" / "0001"
        assert (
            zf.read("enrollment/0001/enrollment.json") == (folder / "enrollment.json").read_bytes()
        )
        events = zf.read("events.jsonl").decode().splitlines()
    assert "receipts.jsonl" not in names and "region.pub" in names
    assert len(events) == built["events"]
    text = run_tillbox("inspect", "verify", str(out)).stdout  # no pins: intact, not proved
    assert "region-built package for device t1" in text
    assert "built by: the region (region.pub signed the manifest): NOT proved" in text

    # any one byte changed: refused (exit 4)
    raw = out.read_bytes()
    with zipfile.ZipFile(out) as zf:
        info = zf.getinfo("events.jsonl")
    at = info.header_offset + 30 + len(info.filename) + 5
    bad = tmp_path / "tampered.zip"
    bad.write_bytes(raw[:at] + bytes([raw[at] ^ 0x01]) + raw[at + 1 :])
    code, verdict = verify(bad)
    assert code == 4 and not verdict["ok"] and "events.jsonl" in verdict["problem"]
    # another region's key, or the package passed off as a till's bundle: refused
    code, verdict = verify(out, "--region-key", "11" * 32)
    assert code == 4 and "another region" in verdict["problem"]
    stripped = tmp_path / "no-region-pub.zip"
    with zipfile.ZipFile(out) as zin, zipfile.ZipFile(stripped, "w") as zout:
        for item in zin.infolist():
            if item.filename != "region.pub":
                zout.writestr(item, zin.read(item.filename))
    code, verdict = verify(stripped)
    assert code == 4 and "does not verify with the device key" in verdict["problem"]
    # even the region's own key cannot slip till-side records or a segment gap past it
    receipts = tmp_path / "with-receipts.zip"
    forge_bundle(out, receipts, None, lambda n, d: d, add={"receipts.jsonl": b""}, key=region.key)
    code, verdict = verify(receipts)
    assert code == 4 and "receipts.jsonl is in a region-built package" in verdict["problem"]
    gap = tmp_path / "gap.zip"
    forge_bundle(
        out,
        gap,
        None,
        lambda n, d: (
            b"".join(d.splitlines(keepends=True)[1:]) if n == "region/segments.jsonl" else d
        ),
        key=region.key,
    )
    code, verdict = verify(gap)
    assert code == 4 and "expected a segment from seq 1" in verdict["problem"]


@pytest.mark.slow
def test_an_approval_travels_down_and_the_till_shows_it_after_its_next_sync(
    tmp_path, broker, db_url, region
):
    till = enrolled_till(tmp_path, region)
    enroll(db_url, till)
    path = export(till, tmp_path / "e.zip")
    assert run_tillbox("edge", "enrollment", "import", "--db", db_url, str(path)).returncode == 0
    pw = tmp_path / "publisher-pw"
    pw.write_text(PUBLISHER_PASSWORD)
    res = run_tillbox(
        "edge", "enrollment", "review", "--db", db_url, "--device", "t1", "--approve",
        "--reason", "permit TP-2291 and photos checked", "--reviewer", "R. Inspector",
        "--key", str(region.key_path), "--broker", broker.url, "--username", PUBLISHER_USER,
        "--password-file", str(pw), "--json",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["published"]["topic"] == "tillbox/v1/demo/t1/down/enrollment"
    before = run_tillbox("selftest", "--data-dir", str(till.root), "--only", "enrollment")
    assert "not reviewed by the region yet" in before.stdout

    edge = edge_proc(tmp_path, db_url, broker.url, region).start()
    try:
        wait_for(lambda: edge_ready(edge), 20, "the edge to subscribe")

        def reviewed() -> bool:
            done = sync_once(till, broker.url, 30)
            assert done.returncode == 0, done.stderr[-2000:]
            status = json.loads(
                run_tillbox("sync", "status", "--data-dir", str(till.root), "--json").stdout
            )
            return status["counters"].get("reviews_recorded") == 1

        wait_for(reviewed, 60, "the retained review to reach the till", interval=0.5)
        done = sync_once(till, broker.url, 30)  # the enrollment.reviewed event goes up too
        assert done.returncode == 0, done.stderr[-2000:]
    finally:
        edge.stop()
    shown = run_tillbox("selftest", "--data-dir", str(till.root), "--only", "enrollment", "--json")
    check = json.loads(shown.stdout)["checks"][0]
    assert check["result"] == "pass"
    assert check["value"].startswith("enrollment approved by the region on ")
    assert check["value"].endswith(" (R. Inspector)")
    store = Store.open(db_url)
    try:
        stored = store.all("SELECT type FROM events WHERE device_id = 't1'")
    finally:
        store.close()
    assert ("enrollment.reviewed",) in stored  # synced up like any event
    bundle = tmp_path / "bundle.zip"
    assert (
        run_tillbox(
            "inspect", "export", "--data-dir", str(till.root), "--out", str(bundle)
        ).returncode
        == 0
    )
    verify = run_tillbox("inspect", "verify", str(bundle), "--region-key", region.pub_hex)
    assert verify.returncode == 0, verify.stdout
    assert "enrollment review: enrollment 1 approved by the region on" in verify.stdout
    assert "proved with the pinned region key" in verify.stdout


def test_a_huge_export_file_is_refused_before_it_is_read(tmp_path, db_url):
    from appliance.boundedio import ENROLLMENT_EXPORT_LIMIT

    big = tmp_path / "huge.zip"
    with big.open("wb") as f:
        f.truncate(ENROLLMENT_EXPORT_LIMIT + 1)  # sparse: no disk space taken
    res = run_tillbox("edge", "enrollment", "import", "--db", db_url, str(big))
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert "larger than 256 MiB" in res.stderr
