"""The signed receipt block: the compact payload printed as a QR code on every receipt.

One ASCII line, fields separated by ``*``::

    TB1*<device>*<receipt_no>*<kind>*<unix_s>*<currency>*<totals>*<prev>*<sig>

- ``kind`` is ``S`` (``sale.completed``) or ``R`` (``refund.issued``);
- ``totals`` is ``rate_bp:gross_minor`` per tax rate, ascending by ``rate_bp``,
  joined with ``,`` (refunds are negative, ``-`` prefixed);
- ``prev`` is the log chain hash of the previous receipt event (the latest
  ``sale.completed``/``refund.issued`` before this one), 32 bytes as unpadded
  base64url; 32 zero bytes for the first receipt;
- ``sig`` is the Ed25519 signature (64 bytes, unpadded base64url) by the device
  key over the ASCII bytes of everything before it, including the last ``*``.

Why the previous receipt's *log hash* rather than a hash of its printed
payload: the log hash commits to every event up to that receipt (nothing can
be removed or edited before it without changing it), and it is found by an
index lookup for any receipt, so a reprint or an inspection bundle recomputes
the exact same bytes (Ed25519 signatures are deterministic) without re-signing
the whole history. docs/formats.md gives the bytes and test vectors.

Pure core: uses the appliance package and PyNaCl only.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from appliance import events as ev
from appliance.chain import Event
from appliance.errors import TillError

if TYPE_CHECKING:  # the Till imports nothing from here; keep the import one-way
    from appliance.log import EventLog
    from appliance.till import Till

VERSION = "TB1"
SEP = "*"
KINDS = {ev.SALE_COMPLETED: "S", ev.REFUND_ISSUED: "R"}
RECEIPT_TYPES = frozenset(KINDS)
GENESIS_PREV = "0" * 64
MAX_PAYLOAD_BYTES = 300  # what an 80 mm (and 58 mm) thermal printer prints as a readable QR


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: str) -> bytes:
    if any(c not in _B64U for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_B64U = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class ReceiptFields:
    """What a receipt block states; ``prev_hash`` is hex (the log's own spelling)."""

    device_id: str
    receipt_no: int
    kind: str  # "S" or "R"
    unix_s: int
    currency: str
    totals: tuple[tuple[int, int], ...]  # (rate_bp, gross_minor), ascending rate_bp
    prev_hash: str

    def signed_part(self) -> str:
        totals = ",".join(f"{bp}:{gross}" for bp, gross in self.totals)
        prev = b64u(bytes.fromhex(self.prev_hash))
        return (
            SEP.join(
                [
                    VERSION,
                    self.device_id,
                    str(self.receipt_no),
                    self.kind,
                    str(self.unix_s),
                    self.currency,
                    totals,
                    prev,
                ]
            )
            + SEP
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "receipt_no": self.receipt_no,
            "kind": self.kind,
            "unix_s": self.unix_s,
            "currency": self.currency,
            "totals": [{"rate_bp": bp, "gross_minor": g} for bp, g in self.totals],
            "prev_hash": self.prev_hash,
        }


def fields_for_event(event: Event, prev_hash: str) -> ReceiptFields:
    """The receipt block fields of a ``sale.completed`` or ``refund.issued`` event."""
    kind = KINDS.get(event.type)
    if kind is None:
        raise TillError(
            f"event {event.seq} is a {event.type}, not a receipt; pass a sale or refund event"
        )
    p = event.payload
    sign = -1 if kind == "R" else 1
    per_rate: dict[int, int] = {}
    for tax in p["taxes"]:
        per_rate[tax["rate_bp"]] = per_rate.get(tax["rate_bp"], 0) + tax["gross_minor"]
    totals = tuple((bp, sign * gross) for bp, gross in sorted(per_rate.items()))
    return ReceiptFields(
        event.device_id,
        p["receipt_no"],
        kind,
        event.wall_ms // 1000,
        p["currency"],
        totals,
        prev_hash,
    )


def sign_fields(fields: ReceiptFields, key: SigningKey) -> str:
    """The complete payload: the signed part followed by its signature."""
    signed = fields.signed_part()
    signature = key.sign(signed.encode("ascii")).signature
    return signed + b64u(signature)


def short_code(payload: str) -> str:
    """The human-readable code printed under the QR: 10 base32 characters of SHA-256."""
    digest = base64.b32encode(hashlib.sha256(payload.encode("ascii")).digest()).decode()
    return f"{digest[:5]}-{digest[5:10]}"


def previous_receipt_hash(log: EventLog, seq: int, receipt_no: int | None = None) -> str:
    """The log hash of the latest receipt event before ``seq`` (zeros when none).

    Reads the ``sales``/``refunds`` projections, which hold the seq of every receipt
    event (``tillbox log rebuild-check`` proves they match the log). Given the
    event's ``receipt_no`` it uses their primary keys (O(log n)): receipt numbers
    are assigned in log order, so the previous number is the previous receipt.
    Without it (a period that starts at an arbitrary seq) it scans by seq.
    """
    if receipt_no is not None:
        row = log.conn.execute(
            "SELECT MAX(s) FROM (SELECT seq AS s FROM sales WHERE receipt_no = "
            "(SELECT MAX(receipt_no) FROM sales WHERE receipt_no < ?) "
            "UNION ALL SELECT seq FROM refunds WHERE receipt_no = "
            "(SELECT MAX(receipt_no) FROM refunds WHERE receipt_no < ?))",
            (receipt_no, receipt_no),
        ).fetchone()
    else:
        row = log.conn.execute(
            "SELECT MAX(s) FROM (SELECT MAX(seq) AS s FROM sales WHERE seq < ? "
            "UNION ALL SELECT MAX(seq) FROM refunds WHERE seq < ?)",
            (seq, seq),
        ).fetchone()
    if row is None or row[0] is None:
        return GENESIS_PREV
    prev = log.event(row[0])
    assert prev is not None  # the projections only name seqs that exist
    return prev.hash


def receipt_qr_payload(till: Till, event: Event) -> str:
    """The exact QR payload for a sale or refund event; the same bytes every time."""
    from appliance import keys  # local: keeps this module importable without a data dir

    if event.type not in RECEIPT_TYPES:
        fields_for_event(event, GENESIS_PREV)  # raises the one-line error
    prev = previous_receipt_hash(till.log, event.seq, event.payload["receipt_no"])
    fields = fields_for_event(event, prev)
    key = keys.load_signing_key(till.data_dir.private_key_path)
    return sign_fields(fields, key)


@dataclass(frozen=True)
class ReceiptCheck:
    """The verdict on a scanned payload; ``problem`` is one line when ``ok`` is False."""

    ok: bool
    problem: str = ""
    fields: ReceiptFields | None = None
    code: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problem": self.problem,
            "code": self.code,
            **(self.fields.to_json() if self.fields else {}),
        }


def parse_payload(payload: str) -> tuple[ReceiptFields, bytes, str]:
    """Split and type-check a payload; raise ValueError with what is wrong."""
    payload = payload.strip()
    if not payload.isascii():
        raise ValueError("the payload has non-ASCII characters (a bad scan?)")
    parts = payload.split(SEP)
    if len(parts) != 9:
        raise ValueError(f"expected 9 fields separated by '*', found {len(parts)}")
    version, device, number, kind, unix_s, currency, totals_text, prev, sig = parts
    if version != VERSION:
        raise ValueError(f"unknown format {version!r} (this tool reads {VERSION})")
    if not device or not all(c.isalnum() or c in "-_" for c in device):
        raise ValueError("device id is empty or has characters other than letters, digits, - _")
    if kind not in ("S", "R"):
        raise ValueError(f"kind must be S (sale) or R (refund), not {kind!r}")
    if not (number.isdigit() and unix_s.isdigit()):
        raise ValueError("receipt number and time must be whole numbers")
    if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        raise ValueError(f"currency {currency!r} is not a 3-letter code")
    totals = []
    for item in totals_text.split(",") if totals_text else []:
        bp, _, gross = item.partition(":")
        if not bp.isdigit() or not gross.lstrip("-").isdigit():
            raise ValueError(f"tax total {item!r} is not rate_bp:gross_minor")
        totals.append((int(bp), int(gross)))
    if [bp for bp, _ in totals] != sorted({bp for bp, _ in totals}):
        raise ValueError("tax totals must be in ascending, distinct rate order")
    try:
        prev_raw, sig_raw = unb64u(prev), unb64u(sig)
    except ValueError:
        raise ValueError("previous-receipt hash or signature is not base64url") from None
    if len(prev_raw) != 32 or len(sig_raw) != 64:
        raise ValueError("previous-receipt hash must be 32 bytes and the signature 64 bytes")
    fields = ReceiptFields(
        device, int(number), kind, int(unix_s), currency, tuple(totals), prev_raw.hex()
    )
    if fields.signed_part() != payload[: -len(sig)] or b64u(sig_raw) != sig:
        raise ValueError("fields are not in canonical spelling (leading zeros or padding?)")
    return fields, sig_raw, payload[: -len(sig)]


def verify_receipt_payload(payload: str, public_key_hex: str | VerifyKey) -> ReceiptCheck:
    """Check a scanned payload offline against a device's public key (hex)."""
    try:
        fields, signature, signed = parse_payload(payload)
    except ValueError as exc:
        return ReceiptCheck(False, f"not a tillbox receipt payload: {exc}")
    try:
        key = (
            public_key_hex
            if isinstance(public_key_hex, VerifyKey)
            else VerifyKey(bytes.fromhex(public_key_hex.strip()))
        )
    except (ValueError, TypeError):
        return ReceiptCheck(False, "the public key must be 64 hex digits (32 bytes)", fields)
    code = short_code(payload.strip())
    try:
        key.verify(signed.encode("ascii"), signature)
    except BadSignatureError:
        return ReceiptCheck(
            False,
            "signature does not verify with this public key: the "
            "receipt was altered or comes from another device",
            fields,
            code,
        )
    return ReceiptCheck(True, "", fields, code)
