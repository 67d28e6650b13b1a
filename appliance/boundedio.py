"""Reading what comes from outside the till, never more than a stated size.

A catalog, a provisioning file, a permit scan, a key file, a piece of an inspection
bundle: each has a cap (below, documented in docs/formats.md "Size limits"). The file
is read in chunks and the read stops one byte past the cap, so a huge (or endless,
e.g. ``/dev/zero``) file costs at most the cap in memory, and the error says which
file, how big it may be, and what to do.

The caps are generous (ten to a hundred times what a real file needs) but finite.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from appliance.errors import TillError

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

CATALOG_LIMIT = 16 * MiB  # a catalog JSON (thousands of items are well under 1 MiB)
PROVISION_LIMIT = 256 * KiB  # tillbox.toml on the boot partition (a few KiB)
KEY_FILE_LIMIT = 4 * KiB  # a public-key file: 64 hex digits and a newline
TEXT_FILE_LIMIT = 1 * MiB  # an attestation statement, a password file
SCAN_LIMIT = 32 * MiB  # one permit scan or equipment photo for an enrollment
# an enrollment export (its manifest, scans and photos) as the region imports it
ENROLLMENT_EXPORT_LIMIT = 256 * MiB
UPDATE_BUNDLE_LIMIT = 2 * GiB  # a release bundle (a compressed root file system: ~250 MiB)
CHUNK = 1 << 16


class TooLarge(TillError):
    """The file (or zip member) is larger than what tillbox reads of that kind."""


def read_stream(stream: BinaryIO, limit: int, what: str) -> bytes:
    """At most ``limit`` bytes of ``stream``, read in chunks; TooLarge past that."""
    parts: list[bytes] = []
    size = 0
    while chunk := stream.read(min(CHUNK, limit + 1 - size)):
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            raise TooLarge(
                f"{what} is larger than {_size(limit)}, more than tillbox reads; "
                "check it is the right file"
            )
    return b"".join(parts)


def read_bounded(path: str | Path, limit: int, what: str) -> bytes:
    """The bytes of the file at ``path``, refusing one over ``limit`` (TillError, one line)."""
    try:
        with open(path, "rb") as f:
            return read_stream(f, limit, f"{what} {path}")
    except OSError as exc:
        raise TillError(
            f"cannot read {what} {path} ({exc.strerror or exc}); check the path"
        ) from None


def read_text_bounded(path: str | Path, limit: int, what: str) -> str:
    """Like read_bounded, decoded as UTF-8 (TillError when it is not)."""
    data = read_bounded(path, limit, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise TillError(f"{what} {path} is not UTF-8 text; save it as UTF-8") from None


def _size(n: int) -> str:
    if n >= MiB and n % MiB == 0:
        return f"{n // MiB} MiB"
    if n >= KiB and n % KiB == 0:
        return f"{n // KiB} KiB"
    return f"{n} bytes"
