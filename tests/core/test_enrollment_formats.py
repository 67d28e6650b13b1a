"""The enrollment export archive and the region's signed review (TBER), byte for byte."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from appliance.formats import enrollment as export_format
from appliance.formats import review, wire, zipcanon
from appliance.formats.canonical import canonical_bytes

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats.md"
DEVICE = SigningKey(bytes(range(32)))
REGION = SigningKey(bytes(range(32, 64)))
OTHER = SigningKey(bytes(32))


def _review(**changes) -> review.Review:
    fields = {
        "tenant": "demo",
        "device_id": "t1",
        "sequence": 1,
        "manifest_sha256": hashlib.sha256(b"manifest").hexdigest(),
        "decision": "approve",
        "reason": "permit TP-2291 and photos checked",
        "reviewer": "R. Inspector",
        "decided_wall_ms": 1767225600000,
        "region_key_fingerprint": review.fingerprint(REGION.verify_key),
    }
    return review.Review(**{**fields, **changes})


def _doc_review_hex() -> str:
    text = DOC.read_text()
    section = text[text.index("**Enrollment review** (region key)") :]
    blocks = ["".join(b.split()) for b in section.split("```")[1::2]]
    return next(b for b in blocks if b.startswith("54424552"))


def test_the_documented_review_vector_is_what_the_code_signs_and_reads():
    data = review.seal_review(REGION, _review())
    assert data.hex() == _doc_review_hex()
    assert f"{len(data)} bytes; JSON part" in DOC.read_text()
    assert review.open_review(data, REGION.verify_key) == _review()
    assert review.fingerprint(REGION.verify_key) in DOC.read_text()


def test_a_review_read_from_the_doc_alone():
    """What an inspector's own tool does with formats.md: magic, signature, JSON, fingerprint."""
    data = bytes.fromhex(_doc_review_hex())
    assert data[:5] == b"TBER\x01"
    REGION.verify_key.verify(data[:-64], data[-64:])
    body = json.loads(data[5:-64])
    assert canonical_bytes(body) == data[5:-64]
    assert body["region_key_fingerprint"] == hashlib.sha256(REGION.verify_key.encode()).hexdigest()


def test_reviews_are_refused_signature_first_then_fields_then_signer():
    data = review.seal_review(REGION, _review())
    with pytest.raises(wire.WireError) as bad:
        review.open_review(data, OTHER.verify_key)
    assert bad.value.reason == "bad_signature"
    flipped = bytearray(data)
    flipped[40] ^= 1
    with pytest.raises(wire.WireError) as bad:
        review.open_review(bytes(flipped), REGION.verify_key)
    assert bad.value.reason == "bad_signature"
    # signed by the region key, but naming another key: refused (a review names its signer)
    body = canonical_bytes(
        {**_review().to_json(), "region_key_fingerprint": review.fingerprint(OTHER.verify_key)}
    )
    signed = b"TBER\x01" + body
    with pytest.raises(wire.WireError) as bad:
        review.open_review(signed + REGION.sign(signed).signature, REGION.verify_key)
    assert bad.value.reason == "wrong_key"
    for change in (
        {"decision": "maybe"},
        {"reason": ""},
        {"reason": "two\nlines"},
        {"reviewer": "x" * 101},
        {"device_id": "a/b"},
        {"sequence": 0},
        {"manifest_sha256": "AB" * 32},
    ):
        body = canonical_bytes({**_review().to_json(), **change})
        signed = b"TBER\x01" + body
        with pytest.raises(wire.WireError) as bad:
            review.open_review(signed + REGION.sign(signed).signature, REGION.verify_key)
        assert bad.value.reason == "malformed", change
        with pytest.raises(ValueError):
            review.seal_review(REGION, _review(**change))
    with pytest.raises(wire.WireError) as bad:
        review.open_review(data + b"x" * review.MAX_BYTES, REGION.verify_key)
    assert bad.value.reason == "oversize"


def test_a_recorded_review_must_say_what_its_message_says():
    data = review.seal_review(REGION, _review())
    payload = review.event_payload(_review(), data)
    assert review.from_event(payload, REGION.verify_key) == _review()
    with pytest.raises(wire.WireError) as bad:
        review.from_event({**payload, "decision": "reject"}, REGION.verify_key)
    assert bad.value.reason == "mismatch"


# -- the export archive ---------------------------------------------------------------------
PERMIT = b"%PDF-1.4 permit TP-7\n"
PHOTO = b"\xff\xd8 a photo \xff\xd9"
ATTEST = b"Earth checked.\n"


def _manifest(**changes) -> dict:
    def item(sub, name, blob):
        digest = hashlib.sha256(blob).hexdigest()
        return f"{sub}/{digest[:16]}-{name}", digest

    permit_path, permit_sha = item("permits", "permit.pdf", PERMIT)
    photo_path, photo_sha = item("photos", "engraver.jpg", PHOTO)
    m = {
        "format": export_format.FORMAT,
        "sequence": 1,
        "device_id": "t1",
        "tenant": "demo",
        "public_key": DEVICE.verify_key.encode().hex(),
        "operator": {"name": "Ann Trader", "contact": ""},
        "business": {"name": "Riverside", "registration": "", "address": ""},
        "permits": [
            {
                "kind": "trading",
                "number": "TP-7",
                "expires": "2099-01-01",
                "file": permit_path,
                "sha256": permit_sha,
                "size": len(PERMIT),
                "source": "file",
            }
        ],
        "photos": [
            {
                "label": "engraver",
                "file": photo_path,
                "sha256": photo_sha,
                "size": len(PHOTO),
                "source": "file",
            }
        ],
        "files": [{"file": "attestation.txt", "sha256": hashlib.sha256(ATTEST).hexdigest()}],
    }
    m.update(changes)
    return m


def _export(
    manifest: dict | None = None, key: SigningKey = DEVICE, media=None, extra=(), hint=None
) -> bytes:
    m = manifest or _manifest()
    body = canonical_bytes(m)
    if media is None:
        media = {m["permits"][0]["file"]: PERMIT, m["photos"][0]["file"]: PHOTO}
        media["attestation.txt"] = ATTEST
    entries = export_format.export_entries(
        hint or m["device_id"],
        body,
        key.sign(body).signature.hex(),
        {path: (lambda b=blob: [b]) for path, blob in {**media, **dict(extra)}.items()},
    )
    out = io.BytesIO()
    zipcanon.write(out, entries)
    return out.getvalue()


def _keys(device: str):
    return DEVICE.verify_key if device == "t1" else None


def _reason(data: bytes, key_for=_keys) -> str:
    with pytest.raises(export_format.ExportError) as exc:
        export_format.open_export(data, key_for)
    return exc.value.reason


def test_an_export_opens_with_the_key_the_reader_holds():
    opened = export_format.open_export(_export(), _keys)
    assert (opened.device_id, opened.tenant, opened.sequence) == ("t1", "demo", 1)
    assert opened.manifest_sha256 == hashlib.sha256(canonical_bytes(_manifest())).hexdigest()
    assert sorted(opened.media.values()) == sorted([PERMIT, PHOTO, ATTEST])
    with zipfile.ZipFile(io.BytesIO(_export())) as zf:  # canonical: sorted, all stored
        names = zf.namelist()
    assert names == sorted(names) and {"device_id", "manifest.json", "manifest.sig"} <= set(names)


def test_exports_that_are_not_what_the_device_signed_are_refused():
    m = _manifest()
    permit = m["permits"][0]["file"]
    assert _reason(_export(key=OTHER)) == "bad_signature"  # another device's key
    assert _reason(_export(), lambda d: None) == "unknown_device"
    assert (
        _reason(
            _export(
                media={
                    permit: PERMIT[:-1] + b"!",  # one byte changed, same size
                    "attestation.txt": ATTEST,
                    m["photos"][0]["file"]: PHOTO,
                }
            )
        )
        == "mismatch"
    )
    assert _reason(_export(media={permit: PERMIT, "attestation.txt": ATTEST})) == "mismatch"
    assert _reason(_export(extra=[("photos/0000000000000000-x.jpg", b"x")])) == "mismatch"
    # t1's key signed a manifest naming t2: the hint picks t1's key, the manifest disagrees
    assert _reason(_export(_manifest(device_id="t2"), hint="t1")) == "mismatch"
    assert _reason(_export(_manifest(public_key=OTHER.verify_key.encode().hex()))) == "mismatch"
    traversal = _manifest()
    traversal["photos"][0]["file"] = "photos/../../../etc/passwd"
    assert _reason(_export(traversal, media={})) == "malformed"
    assert _reason(_export(_manifest(business="Riverside"))) == "malformed"
    assert _reason(b"not a zip at all") == "malformed"
    assert _reason(b"PK\x03\x04" + b"\0" * 100) == "malformed"


def test_a_compressed_or_oversized_export_is_refused_unread():
    good = _export()
    bomb = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as zin, zipfile.ZipFile(bomb, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename), zipfile.ZIP_DEFLATED)
    assert _reason(bomb.getvalue()) == "malformed"
    huge = _manifest()
    huge["permits"][0]["size"] = len(PERMIT) - 1  # stated smaller than the file: capped read
    assert _reason(_export(huge)) == "oversize"


def test_the_export_layout_is_documented():
    text = DOC.read_text()
    section = text[text.index("### C3.1. Enrollment export") :]
    for name in ("device_id", "manifest.json", "manifest.sig", "permits/", "photos/"):
        assert f"`{name}" in section
    assert re.search(r"256 MiB", section)
