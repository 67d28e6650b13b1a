"""The SHA-256 hash chain over log events, as pure functions.

An event's hash is SHA-256 over the canonical JSON of its envelope (every
field except ``hash`` itself, with ``payload`` nested as an object). Each
envelope carries the previous event's hash, so editing, inserting or removing
any event breaks every hash after it. docs/formats.md states the exact bytes
and gives test vectors; nothing here needs this package to be reproduced.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from appliance.formats.canonical import canonical_bytes, canonical_text, canonical_text_checked

FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class Event:
    """One log entry exactly as stored and exported."""

    seq: int
    event_id: str
    device_id: str
    type: str
    payload: dict[str, Any]
    wall_ms: int
    boot_id: str
    mono_us: int
    prev_hash: str
    hash: str

    def envelope(self) -> dict[str, Any]:
        return envelope(
            seq=self.seq,
            event_id=self.event_id,
            device_id=self.device_id,
            type=self.type,
            payload=self.payload,
            wall_ms=self.wall_ms,
            boot_id=self.boot_id,
            mono_us=self.mono_us,
            prev_hash=self.prev_hash,
        )

    def to_json(self) -> dict[str, Any]:
        """The export form: the envelope plus its hash (one JSON line per event)."""
        return {**self.envelope(), "hash": self.hash}

    def export_line(self) -> bytes:
        """The canonical bytes of :meth:`to_json`: one line of an export (no newline)."""
        return export_line(
            (
                self.seq,
                self.event_id,
                self.device_id,
                self.type,
                canonical_text(self.payload),
                self.wall_ms,
                self.boot_id,
                self.mono_us,
                self.prev_hash,
                self.hash,
            )
        )

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Event:
        return cls(
            seq=obj["seq"],
            event_id=obj["id"],
            device_id=obj["device"],
            type=obj["type"],
            payload=obj["payload"],
            wall_ms=obj["wall_ms"],
            boot_id=obj["boot"],
            mono_us=obj["mono_us"],
            prev_hash=obj["prev"],
            hash=obj["hash"],
        )


def envelope(
    *,
    seq: int,
    event_id: str,
    device_id: str,
    type: str,
    payload: dict[str, Any],
    wall_ms: int,
    boot_id: str,
    mono_us: int,
    prev_hash: str,
) -> dict[str, Any]:
    """The object whose canonical bytes are hashed. Key names are part of the format."""
    return {
        "v": FORMAT_VERSION,
        "seq": seq,
        "id": event_id,
        "device": device_id,
        "type": type,
        "payload": payload,
        "wall_ms": wall_ms,
        "boot": boot_id,
        "mono_us": mono_us,
        "prev": prev_hash,
    }


def event_hash(env: dict[str, Any]) -> str:
    """Hex SHA-256 of the envelope's canonical bytes."""
    return hashlib.sha256(canonical_bytes(env)).hexdigest()


# The log's columns, in order: seq, event_id, device_id, type, payload (its canonical
# text), wall_ms, boot_id, mono_us, prev_hash, then hash.
EventRow = tuple[int, str, str, str, str, int, str, int, str, str]


def _spliced(row: EventRow | tuple[int, str, str, str, str, int, str, int, str, None]) -> str:
    """The envelope's canonical text with the payload's canonical text spliced in, and
    ``"hash"`` too unless the row's hash is None (the export line; its key sorts between
    ``"device"`` and ``"id"``). The one encoder of both forms: keys in canonical order."""
    seq, event_id, device_id, type_, payload_text, wall_ms, boot_id, mono_us, prev, digest = row
    enc = canonical_text_checked
    hash_field = "" if digest is None else f'"hash":{enc(digest)},'
    return (
        f'{{"boot":{enc(boot_id)},"device":{enc(device_id)},{hash_field}"id":{enc(event_id)},'
        f'"mono_us":{int(mono_us)},"payload":{payload_text},"prev":{enc(prev)},'
        f'"seq":{int(seq)},"type":{enc(type_)},"v":{FORMAT_VERSION},"wall_ms":{int(wall_ms)}}}'
    )


def envelope_hash(
    *,
    seq: int,
    event_id: str,
    device_id: str,
    type: str,
    payload_text: str,
    wall_ms: int,
    boot_id: str,
    mono_us: int,
    prev_hash: str,
) -> str:
    """:func:`event_hash` for a writer that already holds the payload's canonical text.

    Splices the payload text into the envelope instead of encoding it again. A test
    checks it against :func:`event_hash`.
    """
    row = (seq, event_id, device_id, type, payload_text, wall_ms, boot_id, mono_us, prev_hash)
    return hashlib.sha256(_spliced((*row, None)).encode("utf-8")).hexdigest()


def export_line(row: EventRow) -> bytes:
    """The export line of one stored event: ``canonical_bytes(Event.to_json())``.

    The stored payload is already canonical, so it is spliced in, ~10x faster than
    parsing and re-encoding it.
    """
    return _spliced(row).encode("utf-8")


def line_hash_matches(line: bytes, digest: object) -> bool:
    """The fast verifier: does the export ``line`` hash to its own ``digest``?

    For a line already known to be canonical JSON with ``"hash": digest`` in it.
    Cutting that field out again leaves the hashed envelope bytes, so nothing is
    re-encoded (a 5x saving over hashing the parsed envelope).
    """
    if type(digest) is not str:  # a tampered line may carry any JSON value there
        return False
    field = b'"hash":"' + digest.encode("ascii", "replace") + b'",'
    cut = line.find(field)
    if cut < 0:
        return False
    view = memoryview(line)
    hasher = hashlib.sha256(view[:cut])
    hasher.update(view[cut + len(field) :])
    return hasher.hexdigest() == digest


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    checked: int
    last_seq: int
    last_hash: str
    first_bad_seq: int | None = None
    reason: str = ""


class ChainVerifier:
    """Checks events one at a time: sequence continuity, back-link, hash."""

    def __init__(self, start_prev_hash: str = GENESIS_HASH, start_seq: int = 1) -> None:
        self.expected_seq = start_seq
        self.prev = start_prev_hash
        self.checked = 0
        self.failure: ChainReport | None = None

    def feed(self, ev: Event, stored_payload: str | None = None) -> bool:
        """Check ``ev``; False (and ``failure`` set) at the first problem.

        ``stored_payload`` is the payload text as stored, when known: it must
        already be canonical, so a row re-spelled into equivalent JSON is caught.
        """
        if self.failure is not None:
            return False
        problem = ""
        if ev.seq != self.expected_seq:
            problem = f"sequence gap: expected {self.expected_seq}, found {ev.seq}"
        elif ev.prev_hash != self.prev:
            problem = "previous-hash link does not match the event before it"
        elif stored_payload is not None and stored_payload != canonical_text(ev.payload):
            problem = "payload is not in canonical form"
        elif self._hash(ev, stored_payload) != ev.hash:
            problem = "hash does not match the event's contents"
        if problem:
            self.failure = ChainReport(
                False, self.checked, self.expected_seq - 1, self.prev, self.expected_seq, problem
            )
            return False
        self.prev = ev.hash
        self.expected_seq += 1
        self.checked += 1
        return True

    @staticmethod
    def _hash(ev: Event, stored_payload: str | None) -> str:
        if stored_payload is None:  # no canonical text at hand: encode (and check) it
            return event_hash(ev.envelope())
        return envelope_hash(
            seq=ev.seq,
            event_id=ev.event_id,
            device_id=ev.device_id,
            type=ev.type,
            payload_text=stored_payload,
            wall_ms=ev.wall_ms,
            boot_id=ev.boot_id,
            mono_us=ev.mono_us,
            prev_hash=ev.prev_hash,
        )

    def report(self) -> ChainReport:
        return self.failure or ChainReport(True, self.checked, self.expected_seq - 1, self.prev)
