"""Reading an inspection bundle's ZIP, never more than a stated size, never inflating.

Every read of the verifier goes through here: a whole member (``member``, capped), a
``.jsonl`` line by line (``lines``, each line capped and ending in a newline), a line
as canonical JSON (``json_line``). ``stored_only`` refuses a compressed entry before a
byte of it is inflated, and ``container`` compares every byte the manifest does not
hash with the canonical ZIP (appliance/formats/zipcanon.py). ``Meter`` reports the
bytes read so far.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from appliance.boundedio import MiB, TooLarge, read_stream
from appliance.formats import zipcanon
from appliance.formats.canonical import CanonicalFormError, canonical_bytes
from compliance.verdict import Problem

Progress = Callable[[int, int], None]
LINE_LIMIT = 32 * MiB  # one line of a .jsonl (an event; a catalog is capped at 16 MiB)


class Meter:
    """Work done over work to do, in bytes: hashing every file, then the chain and receipt
    passes over events.jsonl and receipts.jsonl. Reports at most every 256 KiB."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total, self.done, self.reported = progress, max(total, 1), 0, 0

    def add(self, n: int) -> None:
        self.done += n
        if self.progress and self.done - self.reported >= 1 << 18:
            self.reported = self.done
            self.progress(min(self.done, self.total), self.total)

    def finish(self) -> None:
        if self.progress:
            self.progress(self.total, self.total)


def lines(zf: zipfile.ZipFile, name: str) -> Iterator[tuple[int, bytes]]:
    """Each line of a ``.jsonl`` entry with its number, without its newline; one longer
    than ``LINE_LIMIT`` or without a newline (a truncated file) is a Problem."""
    with zf.open(name) as f:
        number = 0
        while line := f.readline(LINE_LIMIT + 1):
            number += 1
            if len(line) > LINE_LIMIT:
                raise Problem(f"{name} line {number} is longer than {LINE_LIMIT >> 20} MiB")
            if not line.endswith(b"\n"):
                raise Problem(f"{name} line {number} has no line ending (truncated file)")
            yield number, line[:-1]


def member(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """A whole entry, read in chunks and never more than ``limit`` bytes."""
    with zf.open(name) as f:
        try:
            return read_stream(f, limit, name)
        except TooLarge as exc:
            raise Problem(str(exc)) from None


def stored_only(infos: list[zipfile.ZipInfo]) -> None:
    """Every entry STORED, as the canonical container is: nothing is ever inflated."""
    for info in infos:
        if not zipcanon.is_stored(info):
            raise Problem(
                f"{info.filename} is compressed (method {info.compress_type}); a tillbox "
                "bundle stores every entry uncompressed: not a bundle as exported (a zip bomb?)"
            )


def json_line(name: str, number: int, raw: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except ValueError:
        raise Problem(f"{name} line {number} is not JSON") from None
    try:
        canonical = canonical_bytes(obj)
    except CanonicalFormError as exc:
        raise Problem(f"{name} line {number} cannot be canonical JSON ({exc})") from None
    if canonical != raw:
        raise Problem(f"{name} line {number} is not in canonical form (re-spelled?)")
    return obj


def container(path: Path, order: list[str], crcs: dict[str, tuple[int, int]]) -> None:
    """The archive must be exactly the canonical ZIP of its own entries (zipcanon).

    Every content byte is already checked against the manifest (read by zipfile from
    the offsets the central directory gives); this checks every other byte: each local
    header at its canonical offset, then the central directory and end record, and
    nothing after them. So headers, timestamps, attributes, the order of entries and
    anything appended or hidden between entries are covered too.
    """
    central = b""
    offset = 0
    with path.open("rb") as f:
        for name in order:
            crc, size = crcs[name]
            head = zipcanon.local_header(name, crc, size)
            f.seek(offset)
            if f.read(len(head)) != head:
                raise Problem(
                    f"the zip header of {name} differs from its canonical form (a header, "
                    "timestamp or attribute was changed, or the entries were reordered)"
                )
            central += zipcanon.central_header(name, crc, size, offset)
            offset += len(head) + size
        tail = central + zipcanon.end_record(len(order), len(central), offset)
        f.seek(offset)
        if f.read(len(tail) + 1) != tail:
            raise Problem(
                "the zip container differs from its canonical form (the central directory "
                "or end record was changed, or bytes were added)"
            )
