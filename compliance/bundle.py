"""The inspection bundle: one zip an inspector verifies offline, without this code.

Layout (docs/formats.md, "Inspection bundle", has the exact bytes)::

    device.pub                 the device public key, 64 hex + "\\n"
    events.jsonl               the period's events, canonical JSON, one per line
    receipts.jsonl             the receipt QR payload of every sale/refund in events.jsonl
    selftest.jsonl             the period's selftest.recorded events (same lines as events)
    enrollment/<n>/...         signed enrollment manifests, permits, photos, attestation
    enrollment/<n>/exif.json   the EXIF of every photo, decoded
    sync/segments.jsonl        the sync agent's sealed segments (ids, chain, acked or not)
    sync/segments/*.tbsg       the signed bytes of segments the region has not acked yet
    sync/acks/<id>.tbak        the region's signed acks, exactly as the agent received them
    enrollment/<n>/review.tber the region's signed review of enrollment n (as recorded)
    sync/region.pub            the region's public key from [sync] region_public_key
    sync/...                   any other file the sync agent keeps there, as found
    personal/<customer>.json   only with --include-personal-data
    index.html                 everything above, readable in a browser, offline
    manifest.json              canonical JSON: every file above with SHA-256 and size
    manifest.sig               Ed25519 signature of manifest.json by the device key, hex

Entries are stored uncompressed, sorted, with fixed metadata (appliance/formats/zipcanon.py):
the archive is a pure function of its contents, so the same log gives the same bytes
and a verifier catches a changed byte anywhere by rebuilding it.
The export only reads the data folder (the log is opened read-only).
"""

from __future__ import annotations

import hashlib
import tempfile
import time as time_module
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from appliance import events, keys, queries
from appliance.datadir import DataDir
from appliance.errors import TillError
from appliance.formats import inspection
from appliance.formats.canonical import canonical_bytes
from appliance.formats.chain import GENESIS_HASH
from appliance.formats.inspection import (
    FORMAT,
    REVIEW_FILE,
    nonce_problem,
    sha256_file,
    write_signed_zip,
)
from appliance.formats.receipt import (
    RECEIPT_TYPES,
    device_tenant,
    key_id,
    short_code,
    sign_fields,
    tb2_fields_for_event,
)
from appliance.log import EventLog

SELFTEST_TYPE = events.SELFTEST_RECORDED
HTML_EVENT_LIMIT = 2000  # index.html lists at most this many events (the files hold all)
HTML_RECEIPT_LIMIT = 5000  # ... and receipts (receipts.jsonl holds all)
SKIP_SYNC_SUFFIXES = (".tmp", ".lock", "-wal", "-shm", "-journal", ".secret")
REVIEW_LIMIT = 10_000  # enrollment.reviewed events read (a till has a handful)
REVIEW_SHOWN = ("decision", "reason", "reviewer", "decided_wall_ms", "region_key_fingerprint")
SYNC_DB = "agent.db"  # the sync agent's SQLite state: exported as JSON lines, not copied


def parse_day(text: str | None, *, end: bool = False) -> int | None:
    """YYYY-MM-DD (UTC) to wall ms: the day's start, or the next day's start for ``end``."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise TillError(f"date {text!r} must be YYYY-MM-DD, e.g. 2026-11-27") from None
    if end:
        day += timedelta(days=1)
    return int(datetime.combine(day, time(0), tzinfo=UTC).timestamp() * 1000)


@dataclass
class ExportResult:
    path: Path
    files: int
    bytes: int
    events: int
    receipts: int
    first_seq: int
    last_seq: int
    sha256: str
    manifest: dict[str, Any] = field(repr=False, default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "files": self.files,
            "bytes": self.bytes,
            "events": self.events,
            "receipts": self.receipts,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "sha256": self.sha256,
        }


def _seq_range(log: EventLog, start_ms: int | None, end_ms: int | None) -> tuple[int, int]:
    """The contiguous seq range of the period (wall clocks may jump; seqs do not)."""
    tail, _ = log.last()
    first = 1
    last = tail
    if start_ms is not None:
        found = queries.first_seq_from(log, start_ms)
        first = found if found is not None else tail + 1
    if end_ms is not None:
        found = queries.last_seq_before(log, end_ms)
        last = found if found is not None else 0
    if last < first:
        last = first - 1  # an empty period: still a verifiable (empty) run
    return first, last


def _iter_files(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(root).parts)
        # hidden = temp files and folders of a write that crashed (never part of a record)
        if path.is_file() and not path.is_symlink() and not hidden:
            yield path


def export_bundle(
    data_dir: DataDir,
    out: Path,
    *,
    date_from: str | None = None,
    date_to: str | None = None,
    include_personal: bool = False,
    nonce: str | None = None,
    now_ms: int | None = None,
) -> ExportResult:
    """Write the bundle to ``out`` crash-safely (tmp, fsync, rename).

    ``nonce`` is the inspector's challenge, signed into the manifest with the export
    time (``now_ms``, default the wall clock), so a bundle made before the inspector
    asked cannot pass for a fresh one. The same log, time and nonce give the same bytes.
    """
    from compliance import html, photos

    data_dir.require()
    _check_nonce(nonce)
    exported_at_ms = int(time_module.time() * 1000) if now_ms is None else now_ms
    start_ms, end_ms = parse_day(date_from), parse_day(date_to, end=True)
    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        raise TillError(f"--from {date_from} is after --to {date_to}; swap them")
    key = keys.load_signing_key(data_dir.private_key_path)
    public_hex = key.verify_key.encode().hex()
    log = EventLog.open(data_dir.log_path, readonly=True)
    try:
        problem = log.structure_problem()
        if problem:
            raise TillError(
                f"the log fails its structure check ({problem}); run `tillbox log "
                "verify` and keep this card for the inspector"
            )
        first, last = _seq_range(log, start_ms, end_ms)
        before = log.event(first - 1) if first > 1 else None
        prev_hash = before.hash if before else GENESIS_HASH
        tenant = device_tenant(log)
        with tempfile.TemporaryDirectory(prefix="tillbox-bundle-") as tmp_name:
            tmp = Path(tmp_name)
            files: dict[str, Path] = {}
            summary = _write_events(log, key, first, last, prev_hash, tenant, tmp, files)
            (tmp / "device.pub").write_text(public_hex + "\n")
            files["device.pub"] = tmp / "device.pub"
            enrollments = _add_enrollments(data_dir, tmp, files, photos)
            _add_reviews(log, tmp, files, enrollments)
            sync_summary = _add_sync(data_dir, tmp, files)
            personal: dict[str, Any] = {}
            if include_personal:
                from appliance import privacy

                personal = privacy.export_personal(data_dir, log)
                for customer, body in personal.items():
                    target = tmp / f"personal-{customer}.json"
                    target.write_bytes(canonical_bytes(body) + b"\n")
                    files[f"personal/{customer}.json"] = target
            head = {
                "format": FORMAT,
                "device_id": log.device_id,
                "tenant": tenant,
                "public_key": public_hex,
                "exported_at_ms": exported_at_ms,
                "nonce": nonce,
                "period": {"from": date_from, "to": date_to},
                "events": {
                    "first_seq": first,
                    "last_seq": last,
                    "count": summary["count"],
                    "prev_hash": prev_hash,
                    "last_hash": summary["last_hash"],
                    "log_tail_seq": log.last()[0],
                },
                "personal_data": include_personal,
            }
            page = html.render(head, summary, enrollments, sorted(files), personal, sync_summary)
            (tmp / "index.html").write_text(page, encoding="utf-8")
            files["index.html"] = tmp / "index.html"
            return _write_zip(out, head, files, key, summary)
    finally:
        log.close()


def _check_nonce(nonce: str | None) -> None:
    problem = nonce_problem(nonce)
    if problem:
        raise TillError(problem)


def _write_events(
    log: EventLog,
    key: Any,
    first: int,
    last: int,
    prev_hash: str,
    tenant: str,
    tmp: Path,
    files: dict[str, Path],
) -> dict[str, Any]:
    """events.jsonl, receipts.jsonl, selftest.jsonl in one pass; a summary for the page."""
    summary: dict[str, Any] = {
        "count": 0,
        "last_hash": prev_hash,
        "receipts": [],
        "receipt_count": 0,
        "selftests": [],
        "events": [],
        "types": {},
    }
    paths = {n: tmp / n for n in ("events.jsonl", "receipts.jsonl", "selftest.jsonl")}
    signer = key_id(key.verify_key)
    with (
        paths["events.jsonl"].open("wb") as events_f,
        paths["receipts.jsonl"].open("wb") as receipts_f,
        paths["selftest.jsonl"].open("wb") as selftest_f,
    ):
        for event in log.events(first - 1, last):
            line = event.export_line() + b"\n"
            events_f.write(line)
            summary["count"] += 1
            summary["last_hash"] = event.hash
            summary["types"][event.type] = summary["types"].get(event.type, 0) + 1
            if len(summary["events"]) < HTML_EVENT_LIMIT:
                summary["events"].append(event.to_json())
            if event.type == SELFTEST_TYPE:
                selftest_f.write(line)
                summary["selftests"].append(event.to_json())
            if event.type in RECEIPT_TYPES:
                payload = sign_fields(tb2_fields_for_event(event, tenant, signer), key)
                entry = {
                    "seq": event.seq,
                    "receipt_no": event.payload["receipt_no"],
                    "kind": "S" if event.type == events.SALE_COMPLETED else "R",
                    "payload": payload,
                    "code": short_code(payload),
                }
                receipts_f.write(canonical_bytes(entry) + b"\n")
                summary["receipt_count"] += 1
                if len(summary["receipts"]) >= HTML_RECEIPT_LIMIT:
                    continue
                summary["receipts"].append(
                    {
                        **entry,
                        "wall_ms": event.wall_ms,
                        "total_minor": event.payload["total_minor"],
                        "currency": event.payload["currency"],
                    }
                )
    files.update({name: path for name, path in paths.items()})
    return summary


def _add_enrollments(
    data_dir: DataDir, tmp: Path, files: dict[str, Path], photos: Any
) -> list[dict[str, Any]]:
    """Every enrollment folder as stored, plus the decoded EXIF of its photos."""
    import json

    from compliance.enroll import enrollment_root

    out = []
    root = enrollment_root(data_dir)
    for path in _iter_files(root):
        files["enrollment/" + path.relative_to(root).as_posix()] = path
    for manifest_path in sorted(root.glob("*/enrollment.json")) if root.is_dir() else []:
        folder = manifest_path.parent
        try:
            signed = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            signed = {}
        exif = {}
        for photo in _iter_files(folder / "photos"):
            exif[photo.name] = photos.read_exif(photo)
        target = tmp / f"exif-{folder.name}.json"
        target.write_bytes(canonical_bytes(exif) + b"\n")
        files[f"enrollment/{folder.name}/exif.json"] = target
        out.append(
            {
                "folder": folder.name,
                "signed": signed,
                "exif": exif,
                "thumbs": {
                    p.name: photos.thumbnail_data_uri(p) for p in _iter_files(folder / "photos")
                },
            }
        )
    return out


def _add_reviews(
    log: EventLog, tmp: Path, files: dict[str, Path], enrollments: list[dict[str, Any]]
) -> None:
    """``enrollment/<NNNN>/review.tber``: the region's latest signed review of each
    enrollment, byte for byte as the sync agent verified and recorded it (whole log,
    not only the period: it is about the enrollment, not the days exported)."""
    latest: dict[str, dict[str, Any]] = {}
    for _seq, _type, _when, payload in queries.latest_of_types(
        log, (events.ENROLLMENT_REVIEWED,), REVIEW_LIMIT
    ):
        latest.setdefault(str(payload.get("manifest_sha256")), payload)  # newest first
    for entry in enrollments:
        try:
            digest = hashlib.sha256(canonical_bytes(entry["signed"]["manifest"])).hexdigest()
            review = latest.get(digest)
            message = bytes.fromhex(review["message"]) if review else None
        except (KeyError, TypeError, ValueError):
            continue  # an unreadable folder or event: the verifier reports the folder
        if message is None:
            continue
        target = tmp / f"review-{entry['folder']}.tber"
        target.write_bytes(message)
        files[f"enrollment/{entry['folder']}/{REVIEW_FILE}"] = target
        entry["review"] = {k: review.get(k) for k in REVIEW_SHOWN}


def _add_sync(data_dir: DataDir, tmp: Path, files: dict[str, Path]) -> dict[str, Any]:
    """The sync agent's records, read-only: plain files as found, its database as JSON.

    ``sync/segments.jsonl`` lists every sealed segment the agent knows (id = SHA-256
    of the signed bytes, the previous segment's id, the seqs, when sealed and acked);
    segments the edge has not acked yet still hold their signed bytes, exported as
    ``sync/segments/<first_seq>-<id>.tbsg`` so their device signature can be checked.
    The region's signed acks the agent kept are exported byte for byte as
    ``sync/acks/<id>.tbak``, with the region's public key as ``sync/region.pub``: the
    proof, checkable offline, that the region stored the till's segments.
    """
    import sqlite3

    summary: dict[str, Any] = {
        "segments": 0,
        "acked": 0,
        "acked_seq": 0,
        "acks": 0,
        "ack_proven_seq": 0,
        "files": 0,
        "problem": "",
    }
    for path in _iter_files(data_dir.sync_dir):
        if path.name.startswith(SYNC_DB) or path.name.endswith(SKIP_SYNC_SUFFIXES):
            continue
        files["sync/" + path.relative_to(data_dir.sync_dir).as_posix()] = path
        summary["files"] += 1
    _add_region_key(data_dir, tmp, files, summary)
    db = data_dir.sync_dir / SYNC_DB
    if not db.is_file():
        return summary
    try:
        rows = queries.agent_segments(db)
    except sqlite3.Error as exc:
        _sync_note(tmp, files, summary, f"the sync agent's database could not be read ({exc})")
        return summary
    lines = []
    for first, last, seg_id, prev, size, sealed_ms, acked_ms, data, ack in rows:
        record = {
            "first_seq": first,
            "last_seq": last,
            "id": seg_id,
            "prev": prev,
            "size": size,
            "sealed_ms": sealed_ms,
            "acked_ms": acked_ms,
            "file": "",
            "ack": "",
        }
        if data:
            name = inspection.sync_segment_name(first, seg_id)
            target = tmp / f"seg-{first}.tbsg"
            target.write_bytes(bytes(data))
            files[name] = target
            record["file"] = name
        if ack:
            name = inspection.sync_ack_name(seg_id)
            target = tmp / f"ack-{first}.tbak"
            target.write_bytes(bytes(ack))
            files[name] = target
            record["ack"] = name
            summary["acks"] += 1
            summary["ack_proven_seq"] = max(summary["ack_proven_seq"], last)
        lines.append(canonical_bytes(record) + b"\n")
        summary["segments"] += 1
        if acked_ms is not None:
            summary["acked"] += 1
            summary["acked_seq"] = max(summary["acked_seq"], last)
    target = tmp / "segments.jsonl"
    target.write_bytes(b"".join(lines))
    files[inspection.SYNC_SEGMENTS] = target
    return summary


def _sync_note(tmp: Path, files: dict[str, Path], summary: dict[str, Any], text: str) -> None:
    """Say in the bundle itself why a sync record is missing (never fail the export)."""
    summary["problem"] = f"{summary['problem']}; {text}" if summary["problem"] else text
    note = tmp / "sync-note.txt"
    note.write_text(summary["problem"] + "\n")
    files["sync/export-note.txt"] = note


def _add_region_key(
    data_dir: DataDir, tmp: Path, files: dict[str, Path], summary: dict[str, Any]
) -> None:
    """``sync/region.pub``: the key the acks are checked with, as the agent reads it."""
    value = str(data_dir.load_config().section("sync").get("region_public_key") or "")
    if not value:
        return
    try:
        region = keys.load_verify_key(value)
    except TillError as exc:
        _sync_note(tmp, files, summary, f"[sync] region_public_key is unusable ({exc})")
        return
    target = tmp / "region.pub"
    target.write_text(region.encode().hex() + "\n")
    files[inspection.SYNC_REGION_PUB] = target


def _write_zip(
    out: Path, head: dict[str, Any], files: dict[str, Path], key: Any, summary: dict[str, Any]
) -> ExportResult:
    manifest = write_signed_zip(out, head, files, key)
    digest, size = sha256_file(Path(out))
    return ExportResult(
        Path(out),
        len(manifest["files"]) + 2,
        size,
        summary["count"],
        summary["receipt_count"],
        head["events"]["first_seq"],
        head["events"]["last_seq"],
        digest,
        manifest,
    )
