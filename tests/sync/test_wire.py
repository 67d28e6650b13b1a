"""The wire formats, byte for byte: the test vectors of docs/formats.md (section 4).

The vectors are checked twice: against ``appliance.formats.wire`` and against a
from-scratch reader below that uses only hashlib, zlib, json and PyNaCl, as
someone else's tool would.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib

import pytest
from nacl.signing import SigningKey, VerifyKey

from appliance.formats import wire
from appliance.formats.canonical import canonical_bytes
from appliance.formats.chain import GENESIS_HASH, Event, envelope, event_hash

DEVICE_SEED = bytes(range(32))  # 000102...1f
REGION_SEED = bytes(range(32, 64))  # 202122...3f
DEVICE_PUB = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
REGION_PUB = "29acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7"

SEGMENT_NONE_ID = "cba44f7e10f40226cc62c9939e8c64019f2134ca80c0916a5dd36955658951f8"
SEGMENT_NONE_HEX = (
    "5442534701000000fa7b22636f6d70223a226e6f6e65222c22636f756e74223a322c22646576696365223a22"
    "7431222c2266697273745f736571223a312c226c6173745f736571223a322c2270726576223a223030303030"
    "3030303030303030303030303030303030303030303030303030303030303030303030303030303030303030"
    "303030303030303030303030303030222c227261775f6c656e223a3735392c227261775f736861323536223a"
    "2262313964313734643761396263393036303861396238656366663335646233393665656137646466313837"
    "623336323864326230616536623362333138393438222c2274656e616e74223a2264656d6f227d7b22626f6f"
    "74223a22626f6f742d31222c22646576696365223a227431222c2268617368223a2230383137626130333734"
    "3237306333346534323937633962633139343563386132346164363065353930363935386236653635646535"
    "32646365326137313666222c226964223a2230303030303030302d303030302d373030302d383030302d3030"
    "30303030303030303031222c226d6f6e6f5f7573223a313030302c227061796c6f6164223a7b226465766963"
    "655f6964223a227431222c227075626c69635f6b6579223a2230336131303762666633636531306265316437"
    "3064643138653734626330393936376534643633303962613530643566316464633836363431323535333162"
    "38222c2274656e616e74223a2264656d6f227d2c2270726576223a2230303030303030303030303030303030"
    "3030303030303030303030303030303030303030303030303030303030303030303030303030303030303030"
    "30303030222c22736571223a312c2274797065223a226465766963652e696e697469616c69736564222c2276"
    "223a312c2277616c6c5f6d73223a313736373232353630303030317d0a7b22626f6f74223a22626f6f742d31"
    "222c22646576696365223a227431222c2268617368223a223530363466623531323765343138366135303334"
    "3835373563626237346662623435623031316663613037306535336136326437396135373836386437346365"
    "222c226964223a2230303030303030302d303030302d373030302d383030302d303030303030303030303032"
    "222c226d6f6e6f5f7573223a323030302c227061796c6f6164223a7b22726561736f6e223a22666c6f617422"
    "7d2c2270726576223a2230383137626130333734323730633334653432393763396263313934356338613234"
    "616436306535393036393538623665363564653532646365326137313666222c22736571223a322c22747970"
    "65223a226472617765722e6f70656e6564222c2276223a312c2277616c6c5f6d73223a313736373232353630"
    "303030327d0aa386f2cf333f7699074cd0a44965b0525f304ce3df027f1fee0239fa8d8a707d1b0cdf74beed"
    "72497beb0d57232467aea55ebd533bf71480de29a01ccd9f180f"
)
SEGMENT_ZLIB_ID = "e000ab87a11a6136c9ee438797762cf8e1398022728515775b8e39ae775e0a5c"
ACK_HEX = (
    "5442414b017b22646576696365223a227431222c2266697273745f736571223a312c226c6173745f73657122"
    "3a322c22726561736f6e223a22222c22726573656e645f66726f6d223a302c227365676d656e74223a226362"
    "6134346637653130663430323236636336326339393339653863363430313966323133346361383063303931"
    "366135646433363935353635383935316638222c22737461747573223a2261636b222c2273746f7265645f73"
    "6571223a322c2274656e616e74223a2264656d6f222c22746970223a22636261343466376531306634303232"
    "3663633632633939333965386336343031396632313334636138306330393136613564643336393535363538"
    "3935316638227dc768c8e0e59b744ea4a8687aa43a3ceb83a459b757176351fec5646faa21269278ef82c5a1"
    "6ebd4f2538addc9b828b26e1a8d38d154db97252c07b239ac66a08"
)
NONCE = "000102030405060708090a0b0c0d0e0f"  # the correlation data bytes 00..0f, as hex
ACK_V2_HEX = (
    "5442414b027b22646576696365223a227431222c2266697273745f736571223a312c226c6173745f73657122"
    "3a322c226e6f6e6365223a22303030313032303330343035303630373038303930613062306330643065306622"
    "2c22726561736f6e223a22222c22726573656e645f66726f6d223a302c227365676d656e74223a2263626134"
    "3466376531306634303232366363363263393933396538633634303139663231333463613830633039313661"
    "35646433363935353635383935316638222c22737461747573223a2261636b222c2273746f7265645f736571"
    "223a322c2274656e616e74223a2264656d6f222c22746970223a226362613434663765313066343032323663"
    "633632633939333965386336343031396632313334636138306330393136613564643336393535363538393531"
    "6638227da7ac22a261f134c4b7f6d8cc0f64e9fcc673eff35a600b29fcf5479cbb9cfaf3febb4445af2cec22"
    "1f3c01f030814dd449e73ff6db03e0634b84795a77525a00"
)
UPDATE_HEX = (
    "54425255017b2264617461223a7b226974656d73223a5b5d2c227461785f70726f66696c6573223a5b5d2c22"
    "76657273696f6e223a227631227d2c226973737565645f77616c6c5f6d73223a313736373232353630303030"
    "302c226b696e64223a22636174616c6f67222c2274656e616e74223a2264656d6f222c2276657273696f6e22"
    "3a317dbdd6d25b7b88dc4c40bb4c729e936738dfb59964fac69b74e8dfc5960d2af324583aec779270e9b72b"
    "99b7c9ff5bd3227fa53fa5045020dd6feba7cd7803eb0e"
)


def vector_events() -> list[Event]:
    """Two events with every field fixed (docs/formats.md (section 4), "Test vectors")."""
    out, prev = [], GENESIS_HASH
    payloads = [
        ("device.initialised", {"device_id": "t1", "public_key": DEVICE_PUB, "tenant": "demo"}),
        ("drawer.opened", {"reason": "float"}),
    ]
    for i, (type_, payload) in enumerate(payloads, start=1):
        env = envelope(
            seq=i,
            event_id=f"00000000-0000-7000-8000-00000000000{i}",
            device_id="t1",
            type=type_,
            payload=payload,
            wall_ms=1767225600000 + i,
            boot_id="boot-1",
            mono_us=1000 * i,
            prev_hash=prev,
        )
        digest = event_hash(env)
        out.append(
            Event(
                i,
                env["id"],
                "t1",
                type_,
                payload,
                env["wall_ms"],
                "boot-1",
                env["mono_us"],
                prev,
                digest,
            )
        )
        prev = digest
    return out


def vector_lines() -> list[bytes]:
    return [canonical_bytes(e.to_json()) for e in vector_events()]


def seal(comp: str) -> bytes:
    return wire.seal_segment(
        SigningKey(DEVICE_SEED),
        tenant="demo",
        device="t1",
        first_seq=1,
        last_seq=2,
        prev=GENESIS_HASH,
        lines=vector_lines(),
        comp=comp,
    )


def test_keys_from_seeds():
    assert SigningKey(DEVICE_SEED).verify_key.encode().hex() == DEVICE_PUB
    assert SigningKey(REGION_SEED).verify_key.encode().hex() == REGION_PUB


def test_segment_vector_uncompressed_exact_bytes():
    data = seal("none")
    assert data.hex() == SEGMENT_NONE_HEX
    assert wire.segment_id(data) == SEGMENT_NONE_ID


def test_segment_vector_zlib_id_and_determinism():
    data = seal("zlib")
    assert wire.segment_id(data) == SEGMENT_ZLIB_ID
    assert seal("zlib") == data  # re-sealing the same range gives the same bytes


def test_ack_and_update_vectors():
    region = SigningKey(REGION_SEED)
    ack = wire.Ack("demo", "t1", "ack", SEGMENT_NONE_ID, 1, 2, 2, SEGMENT_NONE_ID)
    assert wire.seal_ack(region, ack).hex() == ACK_HEX
    update = wire.RegionUpdate(
        "demo", "catalog", 1, 1767225600000, {"items": [], "tax_profiles": [], "version": "v1"}
    )
    assert wire.seal_update(region, update).hex() == UPDATE_HEX
    assert wire.open_ack(bytes.fromhex(ACK_HEX), region.verify_key) == ack
    assert wire.open_update(bytes.fromhex(UPDATE_HEX), region.verify_key) == update


def test_ack_v2_vector_echoes_the_nonce():
    region = SigningKey(REGION_SEED)
    ack = wire.Ack("demo", "t1", "ack", SEGMENT_NONE_ID, 1, 2, 2, SEGMENT_NONE_ID, nonce=NONCE)
    assert wire.seal_ack(region, ack).hex() == ACK_V2_HEX
    assert wire.open_ack(bytes.fromhex(ACK_V2_HEX), region.verify_key) == ack
    assert wire.nonce_hex(bytes(range(16))) == NONCE
    assert wire.nonce_hex(None) == wire.nonce_hex(b"short") == wire.nonce_hex(bytes(65)) == ""


def independent_ack(data: bytes) -> dict:
    """Verify and read a TBAK of either version from docs/formats.md alone."""
    VerifyKey(bytes.fromhex(REGION_PUB)).verify(data[:-64], data[-64:])
    assert data[:4] == b"TBAK" and data[4] in (1, 2)
    obj = json.loads(data[5:-64])
    keys = {
        "device", "first_seq", "last_seq", "reason", "resend_from", "segment", "status",
        "stored_seq", "tenant", "tip",
    }  # fmt: skip
    assert set(obj) == (keys | {"nonce"} if data[4] == 2 else keys)
    assert canonical_bytes(obj) == data[5:-64]
    return obj


def test_independent_ack_reader_agrees_on_both_versions():
    v1, v2 = independent_ack(bytes.fromhex(ACK_HEX)), independent_ack(bytes.fromhex(ACK_V2_HEX))
    assert v2 == {**v1, "nonce": NONCE}
    assert "nonce" not in v1


def test_an_ack_whose_version_and_nonce_disagree_is_malformed():
    region = SigningKey(REGION_SEED)
    body = json.loads(bytes.fromhex(ACK_HEX)[5:-64])
    for version, obj in ((2, body), (1, {**body, "nonce": NONCE}), (2, {**body, "nonce": ""})):
        signed = b"TBAK" + bytes([version]) + canonical_bytes(obj)
        with pytest.raises(wire.WireError) as err:
            wire.open_ack(signed + region.sign(signed).signature, region.verify_key)
        assert err.value.reason == "malformed"


def independent_read(data: bytes, public_key_hex: str) -> tuple[dict, list[dict]]:
    """Verify and unpack a segment from the spec alone (no tillbox code)."""
    VerifyKey(bytes.fromhex(public_key_hex)).verify(data[:-64], data[-64:])
    magic, version, head_len = struct.unpack(">4sBI", data[:9])
    assert (magic, version) == (b"TBSG", 1)
    header = json.loads(data[9 : 9 + head_len])
    body = data[9 + head_len : -64]
    raw = zlib.decompress(body) if header["comp"] == "zlib" else body
    assert len(raw) == header["raw_len"]
    assert hashlib.sha256(raw).hexdigest() == header["raw_sha256"]
    events = [json.loads(line) for line in raw.split(b"\n")[:-1]]
    prev = "0" * 64
    for ev in events:
        unhashed = {k: v for k, v in ev.items() if k != "hash"}
        text = json.dumps(unhashed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(text.encode()).hexdigest() == ev["hash"]
        assert ev["prev"] == prev
        prev = ev["hash"]
    return header, events


@pytest.mark.parametrize("comp", ["none", "zlib"])
def test_independent_reader_agrees(comp):
    header, events = independent_read(seal(comp), DEVICE_PUB)
    assert header == {
        "comp": comp,
        "count": 2,
        "device": "t1",
        "first_seq": 1,
        "last_seq": 2,
        "prev": "0" * 64,
        "raw_len": 759,
        "raw_sha256": header["raw_sha256"],
        "tenant": "demo",
    }
    assert [e["seq"] for e in events] == [1, 2]
    assert events == [e.to_json() for e in vector_events()]


def test_open_segment_round_trip():
    header, raw = wire.open_segment(seal("zlib"), VerifyKey(bytes.fromhex(DEVICE_PUB)))
    assert (header.first_seq, header.last_seq, header.count) == (1, 2, 2)
    assert raw == b"".join(line + b"\n" for line in vector_lines())


def _reason(data: bytes, key: VerifyKey | None = None, max_len: int = wire.MAX_SEGMENT_BYTES):
    with pytest.raises(wire.WireError) as err:
        wire.open_segment(data, key or VerifyKey(bytes.fromhex(DEVICE_PUB)), max_len)
    return err.value.reason


def test_bad_segments_are_rejected_with_a_reason():
    good = seal("zlib")
    assert _reason(good[:-1]) == "bad_signature"  # truncated
    assert _reason(good[: len(good) // 2]) == "bad_signature"
    for i in (0, 5, 20, len(good) // 2, len(good) - 1):  # one bit flipped anywhere
        flipped = bytearray(good)
        flipped[i] ^= 0x01
        assert _reason(bytes(flipped)) in ("bad_signature", "malformed")
    assert _reason(b"TBSG") == "malformed"
    assert _reason(good, SigningKey(REGION_SEED).verify_key) == "bad_signature"
    assert _reason(good, max_len=100) == "oversize"


def test_signed_garbage_is_malformed_not_a_crash():
    key = SigningKey(DEVICE_SEED)
    head = b'{"not":"a header"}'
    signed = struct.pack(">4sBI", b"TBSG", 1, len(head)) + head + b"zz"
    assert _reason(signed + key.sign(signed).signature) == "malformed"
    bomb = zlib.compress(b"x" * 10_000_000)
    header = canonical_bytes(
        {
            "comp": "zlib",
            "count": 1,
            "device": "t1",
            "first_seq": 1,
            "last_seq": 1,
            "prev": "0" * 64,
            "raw_len": 10,
            "raw_sha256": "0" * 64,
            "tenant": "demo",
        }
    )
    signed = struct.pack(">4sBI", b"TBSG", 1, len(header)) + header + bomb
    assert _reason(signed + key.sign(signed).signature) == "malformed"


def test_the_documented_vectors_are_these():
    from pathlib import Path

    doc = Path(__file__).parents[2] / "docs" / "formats.md"
    text = doc.read_text()
    blocks = ["".join(b.split()) for b in text.split("```")[1::2]]
    for hex_text in (SEGMENT_NONE_HEX, ACK_HEX, ACK_V2_HEX, UPDATE_HEX):
        assert hex_text in blocks
    for value in (SEGMENT_NONE_ID, SEGMENT_ZLIB_ID, DEVICE_PUB, REGION_PUB):
        assert value in text
    for line in vector_lines():
        assert line.decode() in text
