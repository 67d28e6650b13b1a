"""``tillbox inspect verify``: re-check an inspection bundle, stop at the first problem.

Order of checks (each needs the previous one to mean anything):
1. the file is a zip holding manifest.json and manifest.sig, every entry STORED
   (uncompressed, as the canonical container is): a deflated entry, a zip bomb's
   way in, is refused before a byte of it is inflated;
2. the key is the expected one (``--public-key``), else device.pub;
3. manifest.sig verifies over the manifest bytes (read with a cap) with that key,
   and only then is manifest.json parsed: canonical JSON in the known format,
   naming the same key;
4. the zip holds exactly the files the manifest lists, each with its size (the
   central directory's, before reading) and SHA-256 (read in chunks, never past
   the stated size);
5. events.jsonl: canonical lines, gapless seqs from the manifest's first seq,
   each linked to the previous hash, each hash recomputed, the count and the last
   hash as the manifest states; the device's own events name the same key;
6. receipts.jsonl: one entry per sale/refund event, each payload recomputed from
   its event (fields and previous-receipt hash) and its signature verified;
7. selftest.jsonl: exactly the selftest.recorded lines of events.jsonl;
8. enrollment manifests: signature by the same key, every referenced file's hash;
   each enrollment's review (``review.tber``): signed by the region key (pinned, else
   sync/region.pub), naming that key's fingerprint, this device and tenant and the
   SHA-256 of the manifest beside it;
9. unacked sync segments: id = SHA-256, signed by the device key;
10. the region's signed acks (sync/acks/*.tbak): each verifies with the region key
    (``--region-key``, else sync/region.pub), is a positive ack for this device, and
    names a segment in sync/segments.jsonl with the same seqs; the verdict states the
    highest seq they prove stored (``acked_seq``);
11. the zip container is the canonical one.

A package the region built (``tillbox edge inspect-package``) has ``region.pub`` at the
top: its manifest is checked with the region key instead (``--region-key``, else
region.pub), must say ``"built_by": "region"``, holds no receipts or sync records, and
lists the region's stored segments (``region/segments.jsonl``) in place of acks.

The verdict also says which parts were *proved* and which only checked against
keys the bundle itself carries (``proved``/``unproved``): the device key is pinned
only with ``--public-key``, the region acks only with ``--region-key``, and the
bundle is fresh only when it carries the inspector's ``--nonce``.

This module keeps the order (``_verify``) and steps 1-4; the rest live beside it:
compliance/bundle_reader.py (every bounded read, step 1's stored-only rule, step 11),
compliance/verify_keys.py (which key each signature is checked with),
compliance/verify_records.py (steps 5-8), compliance/verify_region.py (steps 9-10 and
a region-built package's segments), compliance/verdict.py (the verdict).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from appliance.boundedio import KiB, MiB
from appliance.formats import inspection
from appliance.formats.canonical import CanonicalFormError, canonical_bytes
from appliance.formats.inspection import BUILT_BY_REGION, FORMAT, MANIFEST, SIGNATURE
from appliance.formats.wire import SEGMENT_MAGIC
from compliance.bundle_reader import LINE_LIMIT, Meter, Progress, container, member, stored_only
from compliance.verdict import Problem, Verdict
from compliance.verify_keys import REGION_PUB, device_key, package_key, region_key_for
from compliance.verify_records import (
    ENROLLMENT_LIMIT,
    check_enrollments,
    check_events,
    check_receipts,
    check_reviews,
    check_selftests,
)
from compliance.verify_region import (
    ACK_DIR,
    check_acks,
    check_segments,
    region_only,
    region_segments,
)

__all__ = [  # the front door: its public names stay importable from here
    "ACK_DIR",
    "ENROLLMENT_LIMIT",
    "LINE_LIMIT",
    "MANIFEST_LIMIT",
    "REGION_PUB",
    "SEGMENT_MAGIC",
    "SIGNATURE_LIMIT",
    "Problem",
    "Progress",
    "Verdict",
    "verify_bundle",
]

MANIFEST_LIMIT = 8 * MiB  # manifest.json: ~100 bytes a file; a real one is well under 1 MiB
SIGNATURE_LIMIT = 1 * KiB  # manifest.sig: 128 hex digits and a newline


def verify_bundle(
    path: Path,
    *,
    public_key: str | None = None,
    region_key: str | None = None,
    nonce: str | None = None,
    progress: Progress | None = None,
) -> Verdict:
    """Run every check; ``ok`` False with the first problem, never an exception.

    ``public_key``/``region_key`` (hex) are the device's and the region's keys as the
    inspector knows them; without them the keys inside the bundle are used, and the
    verdict says so. ``nonce`` is the challenge the inspector gave the export. What
    was asked (a region key, a nonce) but not proved is listed in ``unproved``.
    """
    verdict = Verdict(False, nonce_asked=nonce)
    try:
        _verify(Path(path), public_key, region_key, progress, verdict)
    except Problem as exc:
        verdict.problem = str(exc)
        return verdict
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        verdict.problem = f"the bundle is not a readable zip ({exc}); copy it again"
        return verdict
    except OSError as exc:
        verdict.problem = f"cannot read the bundle ({exc.strerror or exc}); check the path"
        return verdict
    except Exception as exc:  # noqa: BLE001 - a crafted zip (encrypted flag, odd method,
        # a field of the wrong type) must still give a verdict, never a traceback
        verdict.problem = f"the bundle is malformed ({type(exc).__name__}: {exc})"
        return verdict
    verdict.ok = True
    verdict.device_key_pinned = public_key is not None
    verdict.region_key_pinned = region_key is not None
    if nonce is not None and verdict.nonce != nonce:
        verdict.unproved.append(
            "the bundle carries no nonce (made before you asked, or without --nonce)"
            if verdict.nonce is None
            else "the bundle carries another nonce than --nonce: it was made for another request"
        )
    if region_key is not None and not verdict.acks and verdict.built_by != BUILT_BY_REGION:
        verdict.unproved.append(
            "--region-key was given but the bundle holds no region acks: nothing proves "
            "what the region stored"
        )
    return verdict


def _verify(
    path: Path,
    expected_key: str | None,
    expected_region: str | None,
    progress: Progress | None,
    verdict: Verdict,
) -> None:
    if not path.is_file():
        raise Problem(f"no file at {path}; give the path of the bundle .zip")
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        if len(names) != len(set(names)):
            raise Problem("the zip holds two entries with the same name (a file was added)")
        if MANIFEST not in names or SIGNATURE not in names:
            raise Problem("manifest.json or manifest.sig is missing: not an inspection bundle")
        stored_only(infos)
        key = device_key(expected_key, zf, names)
        verdict.checks.append("public key")
        # A region-built package carries its signer at the top; which key signs is
        # decided here, before anything is parsed, and the signed manifest must agree.
        region_built = inspection.REGION_PUB in names
        signer = package_key(zf, expected_region) if region_built else key
        # The signature first: nothing of the manifest is parsed before it verifies.
        manifest_bytes = member(zf, MANIFEST, MANIFEST_LIMIT)
        sig_bytes = member(zf, SIGNATURE, SIGNATURE_LIMIT)
        try:
            signer.verify(manifest_bytes, bytes.fromhex(sig_bytes.decode("ascii").strip()))
        except (ValueError, BadSignatureError):
            raise Problem(
                "manifest signature does not verify with the region key: the manifest was "
                "edited or signed by another region"
                if region_built
                else "manifest signature does not verify with the device key: the "
                "manifest was edited or signed by another device"
            ) from None
        verdict.checks.append("manifest signature")
        manifest = _manifest(manifest_bytes)
        _builder(manifest, region_built, signer, verdict)
        verdict.device_id = manifest["device_id"]
        verdict.public_key = manifest["public_key"]
        verdict.tenant = manifest["tenant"]
        verdict.exported_at_ms = manifest["exported_at_ms"]
        verdict.nonce = manifest["nonce"]
        if str(manifest["public_key"]).lower() != key.encode().hex():
            raise Problem("device.pub differs from the manifest's public key")
        sizes = {f["path"]: int(f["size"]) for f in manifest["files"]}
        meter = Meter(
            progress,
            sum(sizes.values()) + sizes.get("events.jsonl", 0) + sizes.get("receipts.jsonl", 0),
        )
        crcs = _file_hashes(zf, manifest, names, meter)
        for name, raw in ((MANIFEST, manifest_bytes), (SIGNATURE, sig_bytes)):
            crcs[name] = (zlib.crc32(raw), len(raw))
        verdict.files = len(manifest["files"])
        verdict.checks.append("file hashes")
        receipt_events, self_lines = check_events(zf, manifest, key, verdict, meter)
        verdict.checks.append("event chain")
        if region_built:
            region_only(names)
        else:
            check_receipts(zf, manifest, key, receipt_events, verdict, meter)
            verdict.checks.append("receipt signatures")
        check_selftests(zf, self_lines)
        verdict.checks.append("self-test history")
        digests = check_enrollments(zf, manifest, key)
        verdict.checks.append("enrollment manifests")
        check_reviews(
            zf,
            manifest,
            names,
            digests,
            (lambda first: signer)
            if region_built
            else (lambda first: region_key_for(zf, names, expected_region, first)),
            verdict,
        )
        verdict.checks.append("enrollment reviews")
        if region_built:
            region_segments(zf, manifest, names, verdict)
            verdict.checks.append("region segments")
        else:
            records = check_segments(zf, key, names)
            verdict.checks.append("sync segments")
            check_acks(zf, manifest, names, records, expected_region, verdict)
            verdict.checks.append("region acks")
        container(path, [*sorted(set(names) - {MANIFEST, SIGNATURE}), MANIFEST, SIGNATURE], crcs)
        verdict.checks.append("zip container")
        meter.finish()


def _builder(
    manifest: dict[str, Any], region_built: bool, signer: VerifyKey, verdict: Verdict
) -> None:
    """The signed manifest says who built it, and that must be who signed it."""
    built_by = manifest.get("built_by", "device")
    if region_built != (built_by == BUILT_BY_REGION) or built_by not in ("device", "region"):
        raise Problem(
            f"the manifest says it was built by {built_by!r}, but "
            + ("the region key signed it" if region_built else "the device key signed it")
        )
    if not region_built:
        return
    if str(manifest.get("region_public_key", "")).lower() != signer.encode().hex():
        raise Problem("region.pub differs from the manifest's region_public_key")
    verdict.built_by = BUILT_BY_REGION
    verdict.region_key = signer.encode().hex()


def _manifest(raw: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise Problem("manifest.json is not JSON (edited?)") from None
    try:
        if canonical_bytes(manifest) != raw:
            raise Problem("manifest.json is not in canonical form (edited?)")
    except CanonicalFormError as exc:
        raise Problem(f"manifest.json cannot be canonical JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise Problem(f"manifest format is not {FORMAT}: not a bundle this tool reads")
    for k in ("device_id", "tenant", "public_key", "exported_at_ms", "nonce", "events", "files"):
        if k not in manifest:
            raise Problem(f"manifest.json has no {k!r}: not a complete bundle")
    if not isinstance(manifest["exported_at_ms"], int) or not (
        manifest["nonce"] is None or isinstance(manifest["nonce"], str)
    ):
        raise Problem("manifest.json's exported_at_ms or nonce has the wrong type")
    return manifest


def _file_hashes(
    zf: zipfile.ZipFile, manifest: dict[str, Any], names: list[str], meter: Meter
) -> dict[str, tuple[int, int]]:
    """Check every listed file's SHA-256 and size; return each entry's (CRC-32, size)."""
    listed = {f["path"]: f for f in manifest["files"]}
    crcs: dict[str, tuple[int, int]] = {}
    extra = sorted(set(names) - set(listed) - {MANIFEST, SIGNATURE})
    if extra:
        raise Problem(f"{extra[0]} is in the zip but not in the signed manifest (added later)")
    missing = sorted(set(listed) - set(names))
    if missing:
        raise Problem(f"{missing[0]} is listed in the manifest but missing from the zip")
    for name in sorted(listed):
        stated = listed[name]["size"]
        if zf.getinfo(name).file_size != stated:
            raise Problem(
                f"{name} does not match its SHA-256 and size in the manifest "
                f"({zf.getinfo(name).file_size} bytes, {stated} stated): the file was changed"
            )
        h = hashlib.sha256()
        size = crc = 0
        try:
            with zf.open(name) as f:
                while size <= stated and (chunk := f.read(1 << 20)):
                    h.update(chunk)
                    crc = zlib.crc32(chunk, crc)
                    size += len(chunk)
                    meter.add(len(chunk))
        except (
            zipfile.BadZipFile,
            zlib.error,
            OSError,
        ) as exc:  # CRC mismatch: the zip bytes changed
            raise Problem(
                f"{name} cannot be read from the zip ({exc}): the file was altered"
            ) from None
        if h.hexdigest() != listed[name]["sha256"] or size != listed[name]["size"]:
            raise Problem(
                f"{name} does not match its SHA-256 in the manifest: the file was changed"
            )
        crcs[name] = (crc, size)
    return crcs
