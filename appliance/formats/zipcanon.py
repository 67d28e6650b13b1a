"""The container of inspection bundles and enrollment exports: a ZIP whose every byte
follows from its contents (the till's bundle, the region's package, the enrollment export).

Entries are STORED (no compression), with fixed metadata, in a fixed order. So
the whole archive is a pure function of the (name, bytes) list: a verifier
rebuilds it from what it extracted and compares, and a changed byte anywhere,
in a header, a timestamp, the order, a padding bit, is caught, not only in the
files the manifest hashes. No zlib is involved, so any tool on any machine
rebuilds the same bytes (docs/formats.md, "Inspection bundle", gives the layout).

Limits (no ZIP64): fewer than 65 535 entries, each and the whole under 4 GiB.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

VERSION = 20  # 2.0: stored files, folders in names
MADE_BY = (3 << 8) | VERSION  # Unix
DOS_TIME = 0  # 00:00:00
DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01
EXTERNAL_ATTR = 0o100644 << 16  # a regular file, rw-r--r--
UTF8_FLAG = 0x800  # general purpose bit 11: the name is UTF-8 (only set for non-ASCII)
LIMIT = 0xFFFFFFFF

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")

Opener = Callable[[], Iterable[bytes]]  # returns the entry's bytes, in chunks


def _flags(name: str) -> int:
    return 0 if name.isascii() else UTF8_FLAG


def is_stored(info: zipfile.ZipInfo) -> bool:
    """Whether an entry read back is STORED, as this container writes every one: a reader
    refuses any other before a byte of it is inflated (a zip bomb's way in)."""
    return info.compress_type == zipfile.ZIP_STORED and info.compress_size == info.file_size


def local_header(name: str, crc: int, size: int) -> bytes:
    raw = name.encode("utf-8")
    return (
        _LOCAL.pack(
            0x04034B50, VERSION, _flags(name), 0, DOS_TIME, DOS_DATE, crc, size, size, len(raw), 0
        )
        + raw
    )


def central_header(name: str, crc: int, size: int, offset: int) -> bytes:
    raw = name.encode("utf-8")
    return (
        _CENTRAL.pack(
            0x02014B50,
            MADE_BY,
            VERSION,
            _flags(name),
            0,
            DOS_TIME,
            DOS_DATE,
            crc,
            size,
            size,
            len(raw),
            0,
            0,
            0,
            0,
            EXTERNAL_ATTR,
            offset,
        )
        + raw
    )


def end_record(count: int, cd_size: int, cd_offset: int) -> bytes:
    return _END.pack(0x06054B50, 0, 0, count, count, cd_size, cd_offset, 0)


def _crc_size(chunks: Iterable[bytes]) -> tuple[int, int]:
    crc, size = 0, 0
    for chunk in chunks:
        crc = zlib.crc32(chunk, crc)
        size += len(chunk)
    return crc, size


def stream(entries: list[tuple[str, Opener]]) -> Iterator[bytes]:
    """The archive's bytes, in chunks. Each opener is called twice (CRC pass, data pass)."""
    if len(entries) >= 0xFFFF:
        raise ValueError(f"{len(entries)} entries is more than a ZIP without ZIP64 holds")
    central = []
    offset = 0
    for name, opener in entries:
        crc, size = _crc_size(opener())
        if size >= LIMIT or offset >= LIMIT:
            raise ValueError(f"{name}: the bundle would exceed 4 GiB; export a shorter period")
        head = local_header(name, crc, size)
        yield head
        yield from opener()
        central.append(central_header(name, crc, size, offset))
        offset += len(head) + size
    cd = b"".join(central)
    yield cd
    yield end_record(len(entries), len(cd), offset)


def write(out: BinaryIO, entries: list[tuple[str, Opener]]) -> None:
    for chunk in stream(entries):
        out.write(chunk)
