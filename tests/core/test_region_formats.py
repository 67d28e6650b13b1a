"""The region's lists for the tills (schedule, roster, bookings) and the booking code,
byte for byte: the vectors of docs/formats.md (section 4, "Region lists"), checked
with the code and with a from-scratch reader (hashlib-free: json and PyNaCl only), and
the strict checks a till makes before it trusts a list."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from nacl.signing import SigningKey, VerifyKey

from appliance.formats import region as fmt
from appliance.formats import wire

REGION = SigningKey(bytes(range(32, 64)))
ISSUED = 1767225600000
DOC = Path(__file__).resolve().parents[2] / "docs" / "formats.md"

SCHEDULE_HEX = (
    "54425255017b2264617461223a7b226576656e7473223a5b7b2261646472657373223a225175617920537420"
    "312c2042726973746f6c222c22656e645f6d73223a313736373239303430303030302c226964223a22666169"
    "722d31222c226a7572697364696374696f6e223a2247422d425354222c226c61745f6537223a353134353030"
    "3030302c226c6f6e5f6537223a2d32353930303030302c226e616d65223a2252697665727369646520466169"
    "72222c227065726d6974223a22502d3737222c2270726f6d6f746572223a22706174222c227374616c6c7322"
    "3a5b227331225d2c2273746172745f6d73223a313736373235383030303030302c227461785f70726f66696c"
    "65223a2265752d6d61726b6574227d5d7d2c226973737565645f77616c6c5f6d73223a313736373232353630"
    "303030302c226b696e64223a227363686564756c65222c2274656e616e74223a2264656d6f222c2276657273"
    "696f6e223a317dc3fbf2c45c64c1fb4ce4b2aee091e502050e6c503fe272bc0fb1fb66e1deb7ada1ee81bdf3"
    "956743f5e9e6cf00d573cf5dd6d2b70f8c4b507aec07be1406a10a"
)

ROSTER_HEX = (
    "54425255017b2264617461223a7b2264657669636573223a5b7b226465766963655f6964223a227431222c22"
    "7075626c69635f6b6579223a2230336131303762666633636531306265316437306464313865373462633039"
    "393637653464363330396261353064356631646463383636343132353533316238222c227374616c6c223a22"
    "7331227d5d7d2c226973737565645f77616c6c5f6d73223a313736373232353630303030302c226b696e6422"
    "3a22726f73746572222c2274656e616e74223a2264656d6f222c2276657273696f6e223a327d656cdd32b9eb"
    "cbb3cd06ab2ef3a945dbcb755df10741e7d9e3836ec443401a77a3578f5ffeea23320a62b2c39e92ac0d6f0e"
    "1829dd408ee3a38821f90273f901"
)

BOOKINGS_HEX = (
    "54425255017b2264617461223a7b22626f6f6b696e6773223a5b7b226964223a22626b2d31222c226974656d"
    "73223a5b7b22656e67726176696e67223a224164612026204d6178222c22717479223a312c22736b75223a22"
    "424f4152442d454e47227d5d2c226e616d65223a22416461204c2e222c226e756d626572223a372c22706179"
    "6d656e74223a22706169645f6f6e6c696e65222c227374616c6c223a227331227d5d7d2c226973737565645f"
    "77616c6c5f6d73223a313736373232353630303030302c226b696e64223a22626f6f6b696e6773222c227465"
    "6e616e74223a2264656d6f222c2276657273696f6e223a337d8c44b66e25227f268c01252f14a329a7f36512"
    "7368896474fc326bbd18b728d343ed66a9ca1bef7228c0d8a3f0647f215b231d7455873f0699c93bd0a265ff"
    "0a"
)
BOOKING_QR = (
    "TBB1*demo*bk-1*7*Q55zqGhcEd2-1PiMdLzLhflY0Q3l4bnCVMiKxk8fY2WDCiFkwkbCgthtpie3mv7QgMXcOZA"
    "oAomToH8TDmb4Dg"
)

EVENT = {
    "id": "fair-1",
    "name": "Riverside Fair",
    "address": "Quay St 1, Bristol",
    "lat_e7": 514500000,
    "lon_e7": -25900000,
    "start_ms": 1767258000000,
    "end_ms": 1767290400000,
    "tax_profile": "eu-market",
    "jurisdiction": "GB-BST",
    "permit": "P-77",
    "promoter": "pat",
    "stalls": ["s1"],
}
DEVICE = {
    "device_id": "t1",
    "public_key": "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8",
    "stall": "s1",
}
BOOKING = {
    "id": "bk-1",
    "number": 7,
    "name": "Ada L.",
    "payment": "paid_online",
    "items": [{"sku": "BOARD-ENG", "qty": 1, "engraving": "Ada & Max"}],
    "stall": "s1",
}


def _values():
    return [
        (fmt.Schedule.from_json({"events": [EVENT]}), 1, SCHEDULE_HEX),
        (fmt.Roster.from_json({"devices": [DEVICE]}), 2, ROSTER_HEX),
        (fmt.Bookings.from_json({"bookings": [BOOKING]}), 3, BOOKINGS_HEX),
    ]


def test_the_vectors_are_what_the_code_seals_and_the_doc_shows():
    doc = DOC.read_text(encoding="utf-8")
    blocks = ["".join(b.split()) for b in doc.split("```")[1::2]]
    for value, version, hex_text in _values():
        sealed = fmt.seal_region_data(REGION, "demo", value, version, ISSUED)
        assert sealed.hex() == hex_text
        assert hex_text in blocks
        assert sealed[5:-64].decode() in doc  # the JSON part, as the doc prints it
        update, parsed = fmt.open_region_data(sealed, REGION.verify_key)
        assert parsed == value and update.version == version and update.tenant == "demo"
    assert fmt.booking_qr(REGION, "demo", "bk-1", 7) == BOOKING_QR
    assert BOOKING_QR in doc


STOCK_HEX = (
    "54425255017b2264617461223a7b2264657669636573223a5b7b226465766963655f6964223a227431222c22"
    "6d6f766573223a5b7b22717479223a312c22736b75223a22484f4e4559227d2c7b22717479223a2d332c2273"
    "6b75223a224d55472d3031227d5d2c22736571223a34327d2c7b226465766963655f6964223a227432222c22"
    "6d6f766573223a5b5d2c22736571223a377d5d2c227374616c6c223a227331227d2c226973737565645f7761"
    "6c6c5f6d73223a313736373232353630303030302c226b696e64223a2273746f636b222c2274656e616e7422"
    "3a2264656d6f222c2276657273696f6e223a347ddff20ac069741d6cf9f0e14c539ba880ae210ed5be92cd5a"
    "cf90e6e4c71558440bc40d71070bddb3f4a364088ef7c944b3cc820359c682171bd2d6aa0eeb2203"
)
STOCK = {
    "stall": "s1",
    "devices": [
        {"device_id": "t2", "seq": 7, "moves": []},
        {
            "device_id": "t1",
            "seq": 42,
            "moves": [{"sku": "MUG-01", "qty": -3}, {"sku": "HONEY", "qty": 1}],
        },
    ],
}


def test_the_stock_vector_is_what_the_code_seals_and_the_doc_shows():
    doc = DOC.read_text(encoding="utf-8")
    blocks = ["".join(b.split()) for b in doc.split("```")[1::2]]
    value = fmt.StallStock.from_json(STOCK)
    sealed = fmt.seal_stock(REGION, "demo", value, 4, ISSUED)
    assert sealed.hex() == STOCK_HEX and STOCK_HEX in blocks
    assert sealed[5:-64].decode() in doc
    update, parsed = fmt.open_stock(sealed, REGION.verify_key)
    assert (parsed, update.version, update.kind) == (value, 4, "stock")
    assert value.moved("MUG-01") == -3 and value.moved("MUG-01", without="t1") == 0
    obj = _independent(sealed, REGION.verify_key)  # the doc's reader
    assert obj["kind"] == "stock" and obj["data"]["devices"][0]["moves"][1] == {
        "qty": -3,
        "sku": "MUG-01",
    }
    assert fmt.topic_stock("demo", "s1") == "tillbox/v1/demo/region/stock/s1"


@pytest.mark.parametrize(
    "data",
    [
        {"stall": "s 1", "devices": []},
        {"stall": "s1", "devices": [{"device_id": "t1", "seq": -1, "moves": []}]},
        {"stall": "s1", "devices": [{"device_id": "t1", "seq": 1, "moves": [{"sku": "A"}]}]},
        {"stall": "s1", "devices": [{"device_id": "t1", "seq": 1, "moves": [], "x": 1}]},
        {
            "stall": "s1",
            "devices": [
                {"device_id": "t1", "seq": 1, "moves": [{"sku": "A", "qty": 1}] * 2},
            ],
        },
        {"stall": "s1", "devices": [{"device_id": "t1", "seq": 1, "moves": []}] * 2},
        {
            "stall": "s1",
            "devices": [{"device_id": "t1", "seq": 1, "moves": [{"sku": "A", "qty": True}]}],
        },
    ],
)
def test_a_bad_stock_snapshot_is_refused_whole(data):
    signed = wire.seal_update(REGION, wire.RegionUpdate("demo", "stock", 1, ISSUED, data))
    with pytest.raises(wire.WireError) as err:
        fmt.open_stock(signed, REGION.verify_key)
    assert err.value.reason == "malformed"
    forged = wire.seal_update(SigningKey(bytes(32)), wire.RegionUpdate("demo", "stock", 1, 0, data))
    with pytest.raises(wire.WireError) as err:
        fmt.open_stock(forged, REGION.verify_key)
    assert err.value.reason == "bad_signature"  # checked before anything is parsed
    roster = wire.seal_update(REGION, wire.RegionUpdate("demo", "roster", 1, 0, {"devices": []}))
    with pytest.raises(wire.WireError) as err:
        fmt.open_stock(roster, REGION.verify_key)
    assert err.value.reason == "wrong_kind"


def _independent(data: bytes, key: VerifyKey) -> dict:
    """A reader written from the doc alone: magic, version, signature, then JSON."""
    assert data[:4] == b"TBRU" and data[4] == 1
    key.verify(data[:-64], data[-64:])  # raises when it does not verify
    obj = json.loads(data[5:-64])
    canon = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canon.encode() == data[5:-64]
    return obj


def test_an_independent_reader_agrees():
    kinds = ["schedule", "roster", "bookings"]
    for (value, version, hex_text), kind in zip(_values(), kinds, strict=True):
        obj = _independent(bytes.fromhex(hex_text), REGION.verify_key)
        assert obj["kind"] == kind and obj["version"] == version and obj["tenant"] == "demo"
        assert obj["data"] == value.to_json()
    signed, sig = BOOKING_QR.rsplit("*", 1)
    REGION.verify_key.verify((signed + "*").encode(), base64.urlsafe_b64decode(sig + "=="))
    assert signed.split("*") == ["TBB1", "demo", "bk-1", "7"]


def test_the_signature_is_checked_before_anything_is_parsed():
    other = SigningKey(bytes(32))
    garbage = wire.seal_update(
        other, wire.RegionUpdate("demo", "schedule", 1, ISSUED, {"events": "not a list"})
    )
    with pytest.raises(wire.WireError) as err:
        fmt.open_region_data(garbage, REGION.verify_key)
    assert err.value.reason == "bad_signature"  # not "malformed": nothing was parsed
    flipped = bytearray(bytes.fromhex(SCHEDULE_HEX))
    flipped[40] ^= 1
    with pytest.raises(wire.WireError) as err:
        fmt.open_region_data(bytes(flipped), REGION.verify_key)
    assert err.value.reason == "bad_signature"


def test_size_is_capped_per_kind_before_the_signature():
    big = b"TBRU\x01" + b"x" * fmt.MAX_BYTES["roster"]
    with pytest.raises(wire.WireError) as err:
        fmt.open_region_data(big, REGION.verify_key, "roster")
    assert err.value.reason == "oversize"
    items = tuple(fmt.BookingItem(f"SKU-{j}", 1, "x" * 64) for j in range(fmt.MAX_BOOKING_ITEMS))
    huge = fmt.Bookings(
        tuple(fmt.Booking(f"b{i}", i + 1, "n", "paid_online", items, "") for i in range(1000))
    )
    with pytest.raises(wire.WireError) as err:  # fits the list bound, not the byte cap
        fmt.seal_region_data(REGION, "demo", huge, 1, ISSUED)
    assert err.value.reason == "oversize"


def test_the_kind_must_be_the_one_the_topic_or_file_names():
    sealed = bytes.fromhex(ROSTER_HEX)
    with pytest.raises(wire.WireError) as err:
        fmt.open_region_data(sealed, REGION.verify_key, "schedule")
    assert err.value.reason == "wrong_kind"
    catalog = wire.seal_update(REGION, wire.RegionUpdate("demo", "catalog", 1, ISSUED, {}))
    with pytest.raises(wire.WireError) as err:
        fmt.open_region_data(catalog, REGION.verify_key)
    assert err.value.reason == "wrong_kind"


def _signed(kind: str, data: object, version: object = 1, tenant: str = "demo") -> bytes:
    update = wire.RegionUpdate(tenant, kind, version, ISSUED, data)  # type: ignore[arg-type]
    return wire.seal_update(REGION, update)


BAD_SCHEDULES = [
    {"events": [{**EVENT, "end_ms": EVENT["start_ms"]}]},  # ends when it starts
    {"events": [{**EVENT, "lat_e7": 900000001}]},
    {"events": [{**EVENT, "name": "two\nlines"}]},
    {"events": [{**EVENT, "name": ""}]},
    {"events": [{**EVENT, "tax_profile": "a/b"}]},
    {"events": [{**EVENT, "colour": "red"}]},  # unknown key
    {"events": [{k: v for k, v in EVENT.items() if k != "permit"}]},
    {"events": [EVENT, EVENT]},  # id twice
    {"events": [{**EVENT, "start_ms": True}]},
    {"events": [{**EVENT, "stalls": ["s1", "s1"]}]},
    {"events": {"fair-1": EVENT}},
    {"events": [EVENT], "extra": 1},
]


@pytest.mark.parametrize("data", BAD_SCHEDULES)
def test_a_bad_schedule_is_refused_whole(data):
    with pytest.raises(wire.WireError) as err:
        fmt.open_region_data(_signed("schedule", data), REGION.verify_key)
    assert err.value.reason == "malformed"


BAD_BOOKINGS = [
    {"bookings": [{**BOOKING, "payment": "free"}]},
    {"bookings": [{**BOOKING, "items": []}]},
    {"bookings": [{**BOOKING, "items": [{"sku": "MUG-01", "qty": 0}]}]},
    {"bookings": [{**BOOKING, "items": [{"sku": "MUG-01", "qty": 1, "engraving": "x" * 65}]}]},
    {"bookings": [BOOKING, {**BOOKING, "id": "bk-2"}]},  # number twice
    {"bookings": [{**BOOKING, "number": 0}]},
    {"bookings": [{**BOOKING, "name": "tab\there"}]},
]


@pytest.mark.parametrize("data", BAD_BOOKINGS)
def test_a_bad_bookings_list_is_refused_whole(data):
    with pytest.raises(wire.WireError) as err:
        fmt.open_region_data(_signed("bookings", data), REGION.verify_key)
    assert err.value.reason == "malformed"


@pytest.mark.parametrize(
    "data",
    [
        {"devices": [{**DEVICE, "public_key": "AB" * 32}]},
        {"devices": [{**DEVICE, "public_key": "ab" * 31}]},
        {"devices": [DEVICE, DEVICE]},
        {"devices": [{**DEVICE, "stall": "a stall"}]},
    ],
)
def test_a_bad_roster_is_refused_whole(data):
    with pytest.raises(wire.WireError) as err:
        fmt.open_region_data(_signed("roster", data), REGION.verify_key)
    assert err.value.reason == "malformed"


@pytest.mark.parametrize("version", [0, -1, True, "2"])
def test_the_version_is_a_whole_number_from_one(version):
    with pytest.raises(wire.WireError):
        fmt.open_region_data(_signed("roster", {"devices": []}, version), REGION.verify_key)


def test_a_booking_code_is_the_regions():
    ref = fmt.open_booking_qr(BOOKING_QR, REGION.verify_key)
    assert ref == fmt.BookingRef("demo", "bk-1", 7)
    for bad in (
        BOOKING_QR.replace("*7*", "*8*"),  # another number, same signature
        BOOKING_QR.replace("bk-1", "bk-2"),
        fmt.booking_qr(SigningKey(bytes(32)), "demo", "bk-1", 7),  # not the region's key
        BOOKING_QR[:-2],
        "TBB1*demo*bk-1*07*" + BOOKING_QR.rsplit("*", 1)[1],
        "TB2*x",
        "",
        "TBB1*" + "é" * 10,
    ):
        with pytest.raises(ValueError):
            fmt.open_booking_qr(bad, REGION.verify_key)


RELEASE_HEX = (
    "54425255017b2264617461223a7b22636f6d70617469626c65223a2274696c6c626f782d72706934222c226b65795f69"
    "64223a226331363732313036343630616466363836663466346264386235393831313431643334333532383765623031"
    "3938313866653766383236616663656561396661222c22736861323536223a2264643737333435393738663864363136"
    "393563386336666639623932366164313530316565613036313264333838663862393631616233616130376335666639"
    "222c2273697a65223a3236323134343030302c2275726c223a2268747470733a2f2f726567696f6e2e6578616d706c65"
    "2f72656c65617365732f74696c6c626f782d727069342d322e312e302e7261756362222c2276657273696f6e223a2232"
    "2e312e30227d2c226973737565645f77616c6c5f6d73223a313736373232353630303030302c226b696e64223a227265"
    "6c65617365222c2274656e616e74223a2264656d6f222c2276657273696f6e223a357db207d80bd068e87f9025a419a0"
    "73174691c06d99f30e4b55b07a2d9f87b9a8dfc7b88afdb6ba173539be3e6de8bf8c1ee373726083bcb9b08c5d5d05bd"
    "75150b"
)


def test_the_release_vector_is_what_the_code_seals_and_the_doc_shows():
    import hashlib

    doc = DOC.read_text(encoding="utf-8")
    blocks = ["".join(b.split()) for b in doc.split("```")[1::2]]
    value = fmt.ReleaseNotice(
        version="2.1.0",
        compatible="tillbox-rpi4",
        url="https://region.example/releases/tillbox-rpi4-2.1.0.raucb",
        sha256=hashlib.sha256(b"tillbox 2.1.0").hexdigest(),
        size=262144000,
        key_id="c1672106460adf686f4f4bd8b5981141d3435287eb019818fe7f826afceea9fa",
    )
    sealed = fmt.seal_region_data(REGION, "demo", value, 5, ISSUED)
    assert sealed.hex() == RELEASE_HEX and RELEASE_HEX in blocks
    assert sealed[5:-64].decode() in doc
    update, parsed = fmt.open_region_data(sealed, REGION.verify_key, fmt.RELEASE)
    assert parsed == value and update.kind == "release" and update.version == 5
    assert _independent(sealed, REGION.verify_key)["data"] == value.to_json()
