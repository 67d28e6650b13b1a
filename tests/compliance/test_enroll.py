"""Enrollment: signed, immutable, logged; captures geotagged; bad input refused cleanly."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

import pytest
from nacl.signing import VerifyKey
from PIL import Image

from appliance.errors import TillError
from appliance.formats.canonical import canonical_bytes
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
    config.update("location", latitude=48.2082, longitude=-16.3738)
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


def _open_export(path, ddir):
    """The export as the region reads it, with the till's own key as the region's."""
    from appliance.formats.enrollment import open_export

    key = VerifyKey(bytes.fromhex(ddir.public_key_path.read_text().strip()))
    return open_export(path.read_bytes(), lambda device: key)


def test_cli_enroll_and_export_for_the_region(till_dir, permit_file, photo_file, tmp_path):
    out = tmp_path / "region.zip"
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
    region = _open_export(out, till_dir)
    assert region.manifest["device_id"] == "till-1"
    assert region.manifest["public_key"] == info["public_key"]
    assert region.media[region.manifest["permits"][0]["file"]] == permit_file.read_bytes()
    assert region.media[region.manifest["photos"][0]["file"]] == photo_file.read_bytes()
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


class Pty:
    """A child process on a real pseudo-terminal, driven like a person at the keyboard."""

    def __init__(self, argv: list[str]) -> None:
        import os

        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        self.seen = b""

    def expect(self, text: str, timeout: float = 20.0) -> None:
        import os
        import select
        import time

        deadline = time.monotonic() + timeout
        while text.encode() not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {text!r}; saw {self.seen[-400:]!r}"
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    self.seen += os.read(self.master, 4096)
                except OSError:  # the child closed the terminal
                    break
        assert text.encode() in self.seen, f"{text!r} not in {self.seen[-400:]!r}"
        self.seen = self.seen[self.seen.index(text.encode()) + len(text) :]

    def send(self, line: str) -> None:
        import os

        os.write(self.master, line.encode() + b"\n")

    def close(self) -> int:
        import os

        code = self.proc.wait(timeout=30)
        os.close(self.master)
        return code


def test_guided_enrollment_in_a_terminal(till_dir, permit_file, photo_file):
    term = Pty(
        [
            sys.executable,
            "-m",
            "appliance.cli",
            "enroll",
            "--data-dir",
            str(till_dir.root),
            "--no-labels",
        ]
    )
    try:
        term.expect("Operator name: ")
        term.send("Ann Trader")
        term.expect("Business name: ")
        term.send("Riverside Makers")
        term.expect("trader id: ")
        term.send("HRB 99")
        term.expect("(empty line when done): ")
        term.send("trading:TP-1:2099-02-30:x.pdf")  # a bad date is explained, asked again
        term.expect("must be a date YYYY-MM-DD")
        term.expect("(empty line when done): ")
        term.send(f"trading:TP-1:2099-02-28:{permit_file}")
        term.expect("(empty line when done): ")
        term.send("")
        term.expect("Equipment photo")
        term.send(f"engraver:{photo_file}")
        term.expect("(empty line when done): ")
        term.send("")
        term.expect("Self-attestation statement: ")
        term.send("The earth connection was tested today.")
        term.expect("Equipment to tag")
        term.send("ENG-1:Laser engraver")
        term.expect("(empty line when done): ")
        term.send("")
        term.expect("Ann Trader, do you confirm it? [yes/no]: ")
        term.send("yes")
        term.expect("enrolled: enrollment 1 signed")
    finally:
        code = term.close()
    assert code == 0
    with Till.open(till_dir) as till:
        m = enroll.latest_signed(till)["manifest"]
    assert m["business"]["registration"] == "HRB 99" and m["assets"][0]["tag"] == "ENG-1"
    assert m["attestation"]["text"] == "The earth connection was tested today."


def test_region_export_verifies_and_edits_are_refused(enrolled, tmp_path):
    with Till.open(enrolled) as till:
        out = enroll.export_for_region(till, tmp_path / "region.zip")
    assert out["files"] == 3  # the permit scan, the photo, the attestation
    opened = _open_export(tmp_path / "region.zip", enrolled)
    signed = {"manifest": opened.manifest, "signature": opened.signature}
    info = enroll.verify_signed_manifest(signed)
    assert info["device_id"] == "till-1"
    assert info["public_key"] == enrolled.public_key_path.read_text().strip()
    assert info["permits"] == [{"kind": "trading", "number": "TP-2291", "expires": "2099-12-31"}]
    signed["manifest"]["permits"][0]["expires"] = "2199-12-31"
    with pytest.raises(TillError, match="does not verify"):
        enroll.verify_signed_manifest(signed)
    with pytest.raises(TillError, match="malformed"):
        enroll.verify_signed_manifest({"manifest": {"format": enroll.FORMAT}})


def test_export_refuses_a_scan_changed_on_the_card(enrolled, tmp_path):
    folder = enrolled.root / "compliance" / "enrollment" / "0001"
    scan = next((folder / "permits").iterdir())
    scan.chmod(0o644)
    scan.write_bytes(scan.read_bytes() + b"edited")
    with Till.open(enrolled) as till, pytest.raises(TillError, match="changed since"):
        enroll.export_for_region(till, tmp_path / "region.zip")
    assert not (tmp_path / "region.zip").exists()
