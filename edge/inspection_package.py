"""The region's inspection package: what the region stored of one till, signed by the region.

An inspector who cannot reach the stall (or does not trust the till) asks the region.
The package has the layout and manifest of the till's own inspection bundle
(appliance/formats/inspection.py, docs/formats.md C4), built from the region's store:

    device.pub                  the device key the region enrolled, 64 hex + "\\n"
    region.pub                  the region key that signs the package, 64 hex + "\\n"
    events.jsonl                every event of the device the region stored (seq 1 to
                                the last), byte for byte as the device signed them
                                in its segments: the chain checks as on the till
    selftest.jsonl              the selftest.recorded lines of events.jsonl
    enrollment/<NNNN>/...       each imported enrollment: enrollment.json (the device's
                                signed manifest), its permit scans, photos and
                                attestation, and review.tber (the region's latest
                                signed review of it) when reviewed
    region/segments.jsonl       the segments the region stored, in chain order
    manifest.json, manifest.sig the manifest (``"built_by": "region"``, the region key,
                                the inspector's nonce, the build time), signed by the
                                region key

It holds no ``receipts.jsonl``: a receipt's QR signature is the device's, and the
region has no device key (each receipt's figures are in its event). Building only
reads the store.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from appliance import events as event_types
from appliance.errors import IntegrityError, NotFound, TillError
from appliance.formats import inspection
from appliance.formats.canonical import canonical_bytes
from appliance.formats.chain import GENESIS_HASH
from appliance.identifiers import check_identifier
from edge.enrollments import get_enrollment
from edge.store import Store


def build_package(
    store: Store,
    device_id: str,
    region_key: SigningKey,
    out: Path,
    nonce: str | None,
    now_ms: int,
) -> dict[str, Any]:
    """Write the package for ``device_id`` to ``out`` (crash-safe); a summary of it.

    Raises NotFound for a device the region does not know, TillError for a bad nonce
    or a write failure, IntegrityError when the stored events are not one gapless
    chain from seq 1 (the store is damaged: the package would not verify).
    """
    check_identifier(device_id, "device id")
    problem = inspection.nonce_problem(nonce)
    if problem:
        raise TillError(problem)
    enrolled = store.device_key(device_id)
    if enrolled is None:
        raise NotFound(
            f"device {device_id} is not enrolled at this region; check the id "
            "(`tillbox edge stats` lists them)"
        )
    tenant, public_hex = enrolled
    region_hex = region_key.verify_key.encode().hex()
    with tempfile.TemporaryDirectory(prefix="tillbox-package-") as tmp_name:
        tmp = Path(tmp_name)
        files: dict[str, Path] = {}

        def put(name: str, data: bytes) -> None:
            target = tmp / f"f{len(files):05d}"
            target.write_bytes(data)
            files[name] = target

        put("device.pub", public_hex.encode("ascii") + b"\n")
        put(inspection.REGION_PUB, region_hex.encode("ascii") + b"\n")
        chain = _write_events(store, device_id, tmp, files)
        enrollments = _add_enrollments(store, device_id, put)
        segments = store.device_segments(device_id)
        put(
            inspection.REGION_SEGMENTS,
            b"".join(
                canonical_bytes(
                    {
                        "first_seq": int(first),
                        "id": seg_id,
                        "last_seq": int(last),
                        "size": int(size),
                        "stored_ms": int(stored),
                    }
                )
                + b"\n"
                for seg_id, first, last, size, stored in segments
            ),
        )
        head = {
            "format": inspection.FORMAT,
            "built_by": inspection.BUILT_BY_REGION,
            "region_public_key": region_hex,
            "device_id": device_id,
            "tenant": tenant,
            "public_key": public_hex,
            "exported_at_ms": now_ms,
            "nonce": nonce,
            "period": {"from": None, "to": None},
            "events": {
                "first_seq": 1,
                "last_seq": chain["count"],
                "count": chain["count"],
                "prev_hash": GENESIS_HASH,
                "last_hash": chain["last_hash"],
                "log_tail_seq": chain["count"],
            },
            "personal_data": False,
        }
        manifest = inspection.write_signed_zip(out, head, files, region_key)
    digest, size = inspection.sha256_file(Path(out))
    return {
        "path": str(out),
        "device_id": device_id,
        "tenant": tenant,
        "events": chain["count"],
        "last_seq": chain["count"],
        "enrollments": enrollments,
        "segments": len(segments),
        "files": len(manifest["files"]) + 2,
        "bytes": size,
        "sha256": digest,
        "nonce": nonce,
        "exported_at_ms": now_ms,
        "region_public_key": region_hex,
    }


def _write_events(
    store: Store, device_id: str, tmp: Path, files: dict[str, Path]
) -> dict[str, Any]:
    """events.jsonl and selftest.jsonl in one pass over the stored lines (paged)."""
    paths = {name: tmp / name for name in ("events.jsonl", "selftest.jsonl")}
    count, last_hash = 0, GENESIS_HASH
    with paths["events.jsonl"].open("wb") as ev, paths["selftest.jsonl"].open("wb") as st:
        for seq, type_, body in store.device_event_lines(device_id):
            if seq != count + 1:
                raise IntegrityError(
                    f"the region's events of {device_id} jump from seq {count} to {seq}; "
                    "run `tillbox edge check` and restore the database before building a package"
                )
            line = body.encode("utf-8") + b"\n"
            ev.write(line)
            if type_ == event_types.SELFTEST_RECORDED:
                st.write(line)
            count, last_hash = seq, json.loads(body)["hash"]
    files.update(paths)
    return {"count": count, "last_hash": last_hash}


def _add_enrollments(store: Store, device_id: str, put: Any) -> int:
    """Each imported enrollment as the till stores it, plus the region's latest review."""
    rows = store.enrollment_rows(device_id=device_id)
    used: set[str] = set()
    for row in rows:
        record = get_enrollment(store, device_id, row[1])
        assert record is not None
        folder = f"{record.sequence:04d}"
        if folder in used:  # two manifests with one number (a re-initialised till)
            folder = f"{record.sequence:04d}-{record.manifest_sha256[:8]}"
        used.add(folder)
        put(f"enrollment/{folder}/enrollment.json", record.signed_file())
        for item in record.media:
            blob = store.enrollment_media(device_id, item.sha256)
            if blob is None:
                raise IntegrityError(
                    f"the region lost {item.path} of enrollment {record.sequence} of "
                    f"{device_id}; import its enrollment export again"
                )
            put(f"enrollment/{folder}/{item.path}", blob)
        if record.review is not None:
            put(f"enrollment/{folder}/{inspection.REVIEW_FILE}", record.review.message)
    return len(rows)
