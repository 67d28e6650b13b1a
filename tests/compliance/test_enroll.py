"""Enrollment: signed, immutable, logged; captures geotagged; bad input refused cleanly."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

import pytest
from nacl.signing import VerifyKey
from PIL import Image

from appliance.canonical import canonical_bytes
from appliance.errors import TillError
from appliance.till import Till
from compliance import enroll
from compliance.photos import read_exif


def test_enrollment_is_signed_logged_and_read_only(
    till_dir, permit_file, photo_file, probes, enroll_with
):
    out = enroll_with(till_dir, permit_file, photo_file, probes)
    folder = till_dir.root / "compliance" / "enrollment" / "0001"
    signed = json.loads((folder / "enrollment.json").read_text())
    m = signed["manifest"]
    pub = till_dir.public_key_path.read_text().strip()
    VerifyKey(bytes.fromhex(pub)).verify(canonical_bytes(m), bytes.fromhex(signed["signature"]))
    assert m["device_id"] == "till-1" and m["public_key"] == pub
    assert m["permits"][0]["expires"] == "2099-12-31"
    assert (folder / m["permits"][0]["file"]).read_bytes() == permit_file.read_bytes()
    assert [a["tag"] for a in m["assets"]] == ["ENG-1", "till-1-A02"]
    for path in folder.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o444
    with Till.open(till_dir) as till:
        event = till.log.event(out["seq"])
        assert event.type == "enrollment.signed"
        assert event.payload["manifest"] == m and event.payload["signature"] == signed["signature"]
        assert till.verify().ok
    # the asset tags went to the printer as QR labels
    assert [q for q, _lines in probes.labels] == ["TBA1*till-1*ENG-1", "TBA1*till-1*till-1-A02"]
    # re-enrolling adds a second enrollment, never edits the first
    before = (folder / "enrollment.json").read_bytes()
    second = enroll_with(till_dir, permit_file, photo_file, probes)
    assert second["sequence"] == 2 and (folder / "enrollment.json").read_bytes() == before


def test_camera_captures_are_geotagged_and_timestamped(till_dir, probes):
    config = till_dir.load_config()
    config.section("location").update(latitude=48.2082, longitude=-16.3738)
    till_dir.save_config(config)
    data = enroll.EnrollmentInput(
        operator="Ann",
        business="Stall",
        permits=[enroll.parse_permit("trading:TP-9:2099-01-01:camera")],
        photos=[enroll.parse_photo("stall:camera")],
        attestation="Checked.",
        confirmed=True,
    )
    with Till.open(till_dir) as till:
        out = enroll.enroll(till, data, probes)
    photos = list((till_dir.root / "compliance" / "enrollment" / "0001" / "photos").iterdir())
    exif = read_exif(photos[0])
    assert exif["format"] == "JPEG"
    assert exif["latitude"] == "48.208200" and exif["longitude"] == "-16.373800"
    assert exif["tags"]["DateTimeOriginal"][:4].isdigit()
    assert out["photos"] == 1 and out["permits"] == 1


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(confirmed=False), "must confirm"),
        (dict(attestation=" "), "attestation text is required"),
        (dict(permits=[]), "at least one permit"),
        (dict(operator=""), "operator and business"),
    ],
)
def test_incomplete_input_is_refused_and_nothing_written(till_dir, permit_file, change, message):
    data = enroll.EnrollmentInput(
        operator="Ann",
        business="Stall",
        attestation="Checked.",
        confirmed=True,
        permits=[enroll.PermitInput("trading", "TP-1", "2099-01-01", str(permit_file))],
    )
    for k, v in change.items():
        setattr(data, k, v)
    with Till.open(till_dir) as till:
        last = till.log.last()
        with pytest.raises(TillError, match=message):
            enroll.enroll(till, data)
        assert till.log.last() == last
    assert not (till_dir.root / "compliance").exists()


def test_corrupt_image_and_bad_specs(till_dir, permit_file, tmp_path, make_probes):
    broken = tmp_path / "broken.jpg"
    good = tmp_path / "good.jpg"
    Image.new("RGB", (300, 200), (1, 2, 3)).save(good, "JPEG")
    broken.write_bytes(good.read_bytes()[:400])  # a truncated JPEG
    data = enroll.EnrollmentInput(
        operator="Ann",
        business="Stall",
        attestation="Checked.",
        confirmed=True,
        permits=[enroll.PermitInput("trading", "TP-1", "2099-01-01", str(permit_file))],
        photos=[enroll.PhotoInput("engraver", str(broken))],
    )
    with Till.open(till_dir) as till:
        last = till.log.last()
        with pytest.raises(TillError, match="not a readable image"):
            enroll.enroll(till, data)
        data.photos = [enroll.PhotoInput("engraver", "camera")]
        with pytest.raises(TillError, match="camera captured nothing"):
            enroll.enroll(till, data, make_probes(missing={"camera"}))
        assert till.log.last() == last
    for bad, message in [
        ("trading:TP:2026-13-01:x.pdf", "YYYY-MM-DD"),
        ("trading:x.pdf", "KIND:NUMBER"),
    ]:
        with pytest.raises(TillError, match=message):
            enroll.parse_permit(bad)
    with pytest.raises(TillError, match="LABEL:FILE"):
        enroll.parse_photo("nolabel")


def test_cli_enroll_and_export_for_the_region(till_dir, permit_file, photo_file, tmp_path):
    out = tmp_path / "region.json"
    run = [sys.executable, "-m", "appliance.cli"]
    res = subprocess.run(
        [
            *run,
            "enroll",
            "--data-dir",
            str(till_dir.root),
            "--operator",
            "Ann Trader",
            "--business",
            "Riverside",
            "--permit",
            f"trading:TP-7:2099-05-31:{permit_file}",
            "--photo",
            f"engraver:{photo_file}",
            "--attestation",
            "Earth checked.",
            "--confirm",
            "--asset",
            "ENG-1:Laser",
            "--no-labels",
            "--out",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    region = json.loads(out.read_text())
    assert region["manifest"]["device_id"] == "till-1"
    assert region["manifest"]["public_key"] == info["public_key"]
    show = subprocess.run(
        [*run, "enrollment", "show", "--data-dir", str(till_dir.root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "trading TP-7 until 2099-05-31" in show.stdout
    refused = subprocess.run(
        [
            *run,
            "enroll",
            "--data-dir",
            str(till_dir.root),
            "--operator",
            "A",
            "--business",
            "B",
            "--permit",
            f"trading:TP-7:2099-05-31:{permit_file}",
            "--attestation",
            "x",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert refused.returncode == 1 and "must confirm" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
