"""The inspection package's signed frame, shared by its two builders.

A till writes an inspection *bundle* signed by its device key (``tillbox inspect
export``, compliance/bundle.py); the region writes an inspection *package* signed by
the region key from what it stored (``tillbox edge inspect-package``,
edge/inspection_package.py). Both are the same format: a canonical ZIP
(:mod:`appliance.formats.zipcanon`) of content files, then ``manifest.json`` (the
canonical JSON of the head plus every file's SHA-256 and size), then
``manifest.sig``. A region-built one says so inside the signed manifest
(``"built_by": "region"`` and the signing key) and carries ``region.pub`` at the
top; ``tillbox inspect verify`` (compliance/verify.py) reads both and says which it
checked. docs/formats.md (C4) gives the bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from appliance.errors import TillError
from appliance.formats import zipcanon
from appliance.formats.canonical import canonical_bytes
from appliance.fsutil import atomic_write_stream

FORMAT = "tillbox-inspection/2"  # /2: export time, nonce and tenant signed; TB2 receipts
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
NONCE_MAX = 200  # characters of an inspector's challenge (--nonce)
BUILT_BY_REGION = "region"  # manifest "built_by" of a region-built package (absent: the till)
REGION_PUB = "region.pub"  # a region-built package's signer, 64 hex + "\n"
REGION_SEGMENTS = "region/segments.jsonl"  # the segments the region stored, in chain order
# A till-built package's sync records: compliance.bundle writes them, the verifier reads them.
SYNC_SEGMENTS = "sync/segments.jsonl"  # every segment the agent sealed: id, seqs, acked or not
SYNC_REGION_PUB = "sync/region.pub"  # the till's [sync] region_public_key, 64 hex + "\n"
SYNC_SEGMENT_DIR = "sync/segments/"  # the signed bytes of the segments not acked yet
SYNC_ACK_DIR = "sync/acks/"  # the region's signed acks, exactly as the agent received them
REVIEW_FILE = "review.tber"  # enrollment/<NNNN>/review.tber: the region's signed review


def sync_segment_name(first_seq: int, segment_id: str) -> str:
    """A segment's member: ``sync/segments/<first seq, 12 digits>-<id>.tbsg``."""
    return f"{SYNC_SEGMENT_DIR}{first_seq:012d}-{segment_id}.tbsg"


def sync_ack_name(segment_id: str) -> str:
    """The region's ack of a segment: ``sync/acks/<segment id>.tbak``."""
    return f"{SYNC_ACK_DIR}{segment_id}.tbak"


def nonce_problem(nonce: str | None) -> str:
    """Why ``nonce`` cannot be an inspector's challenge ("" when it can, or is None)."""
    if nonce is None:
        return ""
    if not nonce or len(nonce) > NONCE_MAX or not nonce.isprintable():
        return (
            f"--nonce must be 1-{NONCE_MAX} printable characters (the inspector's "
            "challenge, e.g. a date and a random word); give it again"
        )
    return ""


def sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _file_chunks(path: Path) -> Callable[[], Iterator[bytes]]:
    def chunks() -> Iterator[bytes]:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk

    return chunks


def write_signed_zip(
    out: Path, head: dict[str, Any], files: dict[str, Path], key: SigningKey
) -> dict[str, Any]:
    """Hash every file, sign the manifest, write the canonical ZIP crash-safely (tmp,
    fsync, rename); return the signed manifest. TillError (one line) on a write failure."""
    out = Path(out)
    if not out.parent.is_dir():
        raise TillError(
            f"folder {out.parent} does not exist; plug in the USB stick or give "
            "an existing folder in --out"
        )
    listing = []
    for name in sorted(files):
        digest, size = sha256_file(files[name])
        listing.append({"path": name, "sha256": digest, "size": size})
    manifest = {**head, "files": listing}
    manifest_bytes = canonical_bytes(manifest)
    signature = key.sign(manifest_bytes).signature.hex() + "\n"
    entries = [(name, _file_chunks(files[name])) for name in sorted(files)]
    entries += [
        (MANIFEST, lambda: [manifest_bytes]),
        (SIGNATURE, lambda: [signature.encode("ascii")]),
    ]
    try:
        atomic_write_stream(out, lambda f: zipcanon.write(f, entries))
    except OSError as exc:
        raise TillError(
            f"cannot write {out} ({exc.strerror or exc}); check the USB stick has "
            "space and is writable, then export again"
        ) from None
    except ValueError as exc:  # beyond what a ZIP without ZIP64 holds
        raise TillError(f"{exc}") from None
    return manifest
