"""The signed receipt block: the compact payload printed as a QR code on every receipt.

One ASCII line, fields separated by ``*``. New receipts print TB2::

    TB2*<key_id>*<tenant>*<device>*<receipt_no>*<kind>*<unix_s>*<currency>*<totals>*<method>*<refunded>*<event>*<sig>

- ``key_id`` names the signing key (the first 8 bytes of SHA-256 of the 32-byte
  public key, base64url), so a device's key can be rotated and a verifier picks
  the right one;
- ``tenant`` is the tenant the device's log was created for (``device.initialised``);
- ``kind`` is ``S`` (``sale.completed``) or ``R`` (``refund.issued``);
- ``totals`` is ``rate_bp:gross_minor`` per tax rate, ascending by ``rate_bp``,
  joined with ``,`` (refunds are negative, ``-`` prefixed);
- ``method`` is the payment method (``cash``, ``card``);
- ``refunded`` is, for a refund, the receipt number of the sale it refunds (empty
  for a sale);
- ``event`` is the first 24 bytes of the receipt event's own log hash (unpadded
  base64url): it commits to the event's every field and, through the chain, to the
  whole log before it;
- ``sig`` is the Ed25519 signature (64 bytes, unpadded base64url) by the device
  key over the ASCII bytes of everything before it, including the last ``*``.

TB1 (``TB1*<device>*<receipt_no>*<kind>*<unix_s>*<currency>*<totals>*<prev>*<sig>``,
``prev`` the log hash of the previous receipt event) is what receipts printed before
TB2 carry; it is still verified, never printed. docs/formats.md gives the bytes and
test vectors of both.

Pure core: uses the appliance package and PyNaCl only.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from appliance import events as ev
from appliance import queries
from appliance.errors import TillError
from appliance.formats.chain import GENESIS_HASH, Event
from appliance.identifiers import IDENTIFIER_RULE, is_identifier

if TYPE_CHECKING:  # the Till imports nothing from here; keep the import one-way
    from appliance.log import EventLog
    from appliance.till import Till

TB1 = "TB1"  # receipts printed before TB2: verified, never printed
TB2 = "TB2"
VERSION = TB2  # what new receipts print
SEP = "*"
KINDS = {ev.SALE_COMPLETED: "S", ev.REFUND_ISSUED: "R"}
RECEIPT_TYPES = frozenset(KINDS)
KEY_ID_BYTES = 8  # of SHA-256(public key): names the key, so keys can rotate
EVENT_REF_BYTES = 24  # of the event's log hash: 192 bits, collision-safe (2^96 work)
METHOD_MAX = 8  # the payment method's length on the receipt (cash, card)
# The longest TB2 (64-character tenant and device, three 11-digit amounts) is 361 bytes:
# a QR code version 14 at level M (73 modules), 5 dots a module on 58 mm (384 dots) paper.
MAX_PAYLOAD_BYTES = 362


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: str) -> bytes:
    if any(c not in _B64U for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_B64U = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def key_id(public_key: VerifyKey) -> str:
    """The TB2 key id: the first 8 bytes of SHA-256 of the 32-byte public key, base64url."""
    return b64u(hashlib.sha256(public_key.encode()).digest()[:KEY_ID_BYTES])


def _totals_text(totals: tuple[tuple[int, int], ...]) -> str:
    return ",".join(f"{bp}:{gross}" for bp, gross in totals)


@dataclass(frozen=True)
class ReceiptFields:
    """What a TB1 receipt block states; ``prev_hash`` is hex (the log's own spelling)."""

    version: ClassVar[str] = TB1
    device_id: str
    receipt_no: int
    kind: str  # "S" or "R"
    unix_s: int
    currency: str
    totals: tuple[tuple[int, int], ...]  # (rate_bp, gross_minor), ascending rate_bp
    prev_hash: str

    def signed_part(self) -> str:
        prev = b64u(bytes.fromhex(self.prev_hash))
        return (
            SEP.join(
                [
                    TB1,
                    self.device_id,
                    str(self.receipt_no),
                    self.kind,
                    str(self.unix_s),
                    self.currency,
                    _totals_text(self.totals),
                    prev,
                ]
            )
            + SEP
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": TB1,
            "device_id": self.device_id,
            "receipt_no": self.receipt_no,
            "kind": self.kind,
            "unix_s": self.unix_s,
            "currency": self.currency,
            "totals": [{"rate_bp": bp, "gross_minor": g} for bp, g in self.totals],
            "prev_hash": self.prev_hash,
        }


@dataclass(frozen=True)
class TB2Fields:
    """What a TB2 receipt block states; ``event_ref`` is hex, the first 24 bytes of the
    receipt event's log hash."""

    version: ClassVar[str] = TB2
    key_id: str
    tenant: str
    device_id: str
    receipt_no: int
    kind: str  # "S" or "R"
    unix_s: int
    currency: str
    totals: tuple[tuple[int, int], ...]  # (rate_bp, gross_minor), ascending rate_bp
    method: str
    refunded_receipt_no: int | None  # the sale a refund refunds; None for a sale
    event_ref: str

    def signed_part(self) -> str:
        refunded = "" if self.refunded_receipt_no is None else str(self.refunded_receipt_no)
        return (
            SEP.join(
                [
                    TB2,
                    self.key_id,
                    self.tenant,
                    self.device_id,
                    str(self.receipt_no),
                    self.kind,
                    str(self.unix_s),
                    self.currency,
                    _totals_text(self.totals),
                    self.method,
                    refunded,
                    b64u(bytes.fromhex(self.event_ref)),
                ]
            )
            + SEP
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": TB2,
            "key_id": self.key_id,
            "tenant": self.tenant,
            "device_id": self.device_id,
            "receipt_no": self.receipt_no,
            "kind": self.kind,
            "unix_s": self.unix_s,
            "currency": self.currency,
            "totals": [{"rate_bp": bp, "gross_minor": g} for bp, g in self.totals],
            "method": self.method,
            "refunded_receipt_no": self.refunded_receipt_no,
            "event_ref": self.event_ref,
        }


AnyFields = ReceiptFields | TB2Fields


def _kind(event: Event) -> str:
    kind = KINDS.get(event.type)
    if kind is None:
        raise TillError(
            f"event {event.seq} is a {event.type}, not a receipt; pass a sale or refund event"
        )
    return kind


def _per_rate(event: Event, kind: str) -> tuple[tuple[int, int], ...]:
    sign = -1 if kind == "R" else 1
    per_rate: dict[int, int] = {}
    for tax in event.payload["taxes"]:
        per_rate[tax["rate_bp"]] = per_rate.get(tax["rate_bp"], 0) + tax["gross_minor"]
    return tuple((bp, sign * gross) for bp, gross in sorted(per_rate.items()))


def fields_for_event(event: Event, prev_hash: str) -> ReceiptFields:
    """The TB1 receipt block fields of a ``sale.completed`` or ``refund.issued`` event."""
    kind = _kind(event)
    p = event.payload
    return ReceiptFields(
        event.device_id,
        p["receipt_no"],
        kind,
        event.wall_ms // 1000,
        p["currency"],
        _per_rate(event, kind),
        prev_hash,
    )


def tb2_fields_for_event(event: Event, tenant: str, signer_key_id: str) -> TB2Fields:
    """The TB2 receipt block fields of a receipt event, for the device's tenant and key."""
    kind = _kind(event)
    p = event.payload
    return TB2Fields(
        signer_key_id,
        tenant,
        event.device_id,
        p["receipt_no"],
        kind,
        event.wall_ms // 1000,
        p["currency"],
        _per_rate(event, kind),
        p["payment"]["method"],
        p["sale_receipt_no"] if kind == "R" else None,
        event.hash[: 2 * EVENT_REF_BYTES],
    )


def sign_fields(fields: AnyFields, key: SigningKey) -> str:
    """The complete payload: the signed part followed by its signature.

    Checked by the parser first, so the till never prints a block nobody can read.
    """
    signed = fields.signed_part()
    payload = signed + b64u(key.sign(signed.encode("ascii")).signature)
    try:
        parse_payload(payload)
    except ValueError as exc:
        raise TillError(
            f"receipt {fields.receipt_no} cannot be signed ({exc}); fix the till's "
            "device id or tenant (1-64 letters, digits, - or _)"
        ) from None
    return payload


def short_code(payload: str) -> str:
    """The human-readable code printed under the QR: 10 base32 characters of SHA-256."""
    digest = base64.b32encode(hashlib.sha256(payload.encode("ascii")).digest()).decode()
    return f"{digest[:5]}-{digest[5:10]}"


def previous_receipt_hash(log: EventLog, seq: int, receipt_no: int | None = None) -> str:
    """The log hash of the latest receipt event before ``seq`` (zeros when none); TB1's prev.

    Reads the ``sales``/``refunds`` projections, which hold the seq of every receipt
    event (``tillbox log rebuild-check`` proves they match the log). Given the
    event's ``receipt_no`` it uses their primary keys (O(log n)): receipt numbers
    are assigned in log order, so the previous number is the previous receipt.
    Without it (a period that starts at an arbitrary seq) it scans by seq.
    """
    prev_seq = queries.previous_receipt_seq(log, seq, receipt_no)
    if prev_seq is None:
        return GENESIS_HASH
    prev = log.event(prev_seq)
    assert prev is not None  # the projections only name seqs that exist
    return prev.hash


def device_tenant(log: EventLog) -> str:
    """The tenant the log was created for: its ``device.initialised`` event's (seq 1).

    The log's, not the config's: the config can be edited, the first event cannot.
    """
    first = log.event(1)
    if first is None or first.type != ev.DEVICE_INITIALISED:
        return ""
    return str(first.payload.get("tenant", ""))


def expected_fields(
    log: EventLog, event: Event, version: str, public_key: VerifyKey | str
) -> AnyFields:
    """The fields a receipt of ``version`` for ``event`` states, recomputed from the log.

    ``public_key`` (a key or 64 hex digits) is the device key the receipt names.
    """
    if version == TB1:
        prev = previous_receipt_hash(log, event.seq, event.payload["receipt_no"])
        return fields_for_event(event, prev)
    if isinstance(public_key, str):
        public_key = VerifyKey(bytes.fromhex(public_key.strip()))
    return tb2_fields_for_event(event, device_tenant(log), key_id(public_key))


def receipt_qr_payload(till: Till, event: Event) -> str:
    """The exact TB2 QR payload for a sale or refund event; the same bytes every time."""
    from appliance import keys  # local: keeps this module importable without a data dir

    _kind(event)  # raises the one-line error
    key = keys.load_signing_key(till.data_dir.private_key_path)
    return sign_fields(expected_fields(till.log, event, TB2, key.verify_key), key)


@dataclass(frozen=True)
class ReceiptCheck:
    """The verdict on a scanned payload; ``problem`` is one line when ``ok`` is False."""

    ok: bool
    problem: str = ""
    fields: AnyFields | None = None
    code: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problem": self.problem,
            "code": self.code,
            **(self.fields.to_json() if self.fields else {}),
        }


def _check_id(text: str, what: str) -> None:
    if not is_identifier(text):
        raise ValueError(f"{what} must be {IDENTIFIER_RULE}")


def _number(text: str, what: str) -> int:
    if not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise ValueError(f"{what} must be a whole number without leading zeros")
    return int(text)


def _common(
    kind: str, number: str, unix_s: str, currency: str, totals_text: str
) -> tuple[int, int, tuple[tuple[int, int], ...]]:
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
    return int(number), int(unix_s), tuple(totals)


def _decode(text: str, size: int, what: str) -> bytes:
    try:
        raw = unb64u(text)
    except ValueError:
        raise ValueError(f"{what} is not base64url") from None
    if len(raw) != size:
        raise ValueError(f"{what} must be {size} bytes")
    return raw


def _parse_tb1(parts: list[str]) -> ReceiptFields:
    if len(parts) != 9:
        raise ValueError(f"expected 9 fields separated by '*', found {len(parts)}")
    _v, device, number, kind, unix_s, currency, totals_text, prev, _sig = parts
    if not device or not all(c.isalnum() or c in "-_" for c in device):
        raise ValueError("device id is empty or has characters other than letters, digits, - _")
    receipt_no, when, totals = _common(kind, number, unix_s, currency, totals_text)
    try:
        prev_raw = unb64u(prev)
    except ValueError:
        raise ValueError("previous-receipt hash or signature is not base64url") from None
    if len(prev_raw) != 32:
        raise ValueError("previous-receipt hash must be 32 bytes and the signature 64 bytes")
    return ReceiptFields(device, receipt_no, kind, when, currency, totals, prev_raw.hex())


def _parse_tb2(parts: list[str]) -> TB2Fields:
    if len(parts) != 13:
        raise ValueError(f"expected 13 fields separated by '*', found {len(parts)}")
    _v, kid, tenant, device, number, kind, unix_s, currency, totals_text = parts[:9]
    method, refunded, event_ref, _sig = parts[9:]
    _decode(kid, KEY_ID_BYTES, "key id")
    _check_id(tenant, "tenant")
    _check_id(device, "device id")
    receipt_no, when, totals = _common(kind, number, unix_s, currency, totals_text)
    if not (0 < len(method) <= METHOD_MAX and method.isalpha() and method.islower()):
        raise ValueError(f"payment method {method!r} is not 1-{METHOD_MAX} lower-case letters")
    if (kind == "R") != bool(refunded):
        raise ValueError("a refund names the refunded receipt and a sale names none")
    refunded_no = _number(refunded, "refunded receipt number") if refunded else None
    ref = _decode(event_ref, EVENT_REF_BYTES, "event hash")
    return TB2Fields(
        kid,
        tenant,
        device,
        receipt_no,
        kind,
        when,
        currency,
        totals,
        method,
        refunded_no,
        ref.hex(),
    )


def parse_payload(payload: str) -> tuple[AnyFields, bytes, str]:
    """Split and type-check a TB1 or TB2 payload; raise ValueError with what is wrong."""
    payload = payload.strip()
    if not payload.isascii():
        raise ValueError("the payload has non-ASCII characters (a bad scan?)")
    parts = payload.split(SEP)
    if parts[0] == TB2:
        fields: AnyFields = _parse_tb2(parts)
    elif parts[0] == TB1:
        fields = _parse_tb1(parts)
    elif not payload:
        raise ValueError("the payload is empty (nothing was scanned)")
    else:
        raise ValueError(f"unknown format {parts[0][:8]!r} (this tool reads {TB2} and {TB1})")
    sig = parts[-1]
    sig_raw = _decode(sig, 64, "signature")
    if fields.signed_part() != payload[: -len(sig)] or b64u(sig_raw) != sig:
        raise ValueError("fields are not in canonical spelling (leading zeros or padding?)")
    return fields, sig_raw, payload[: -len(sig)]


def verify_receipt_payload(payload: str, public_key_hex: str | VerifyKey) -> ReceiptCheck:
    """Check a scanned TB1 or TB2 payload offline against a device's public key (hex)."""
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
    if isinstance(fields, TB2Fields) and fields.key_id != key_id(key):
        return ReceiptCheck(
            False,
            f"the receipt was signed by key id {fields.key_id}, and this public key's id is "
            f"{key_id(key)}: give the device's key with that id (keys may have rotated), "
            "or the receipt comes from another device",
            fields,
            code,
        )
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
