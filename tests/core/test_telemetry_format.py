"""The health message (TBHL), byte for byte: docs/formats.md's vector, read twice (with
``appliance.formats.telemetry`` and with a reader written from the page), and what a
receiver refuses: a bad signature before any parsing, a body out of form, the size."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from nacl.signing import SigningKey, VerifyKey

from appliance.formats import telemetry, wire
from appliance.formats.canonical import canonical_bytes

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats.md"
DEVICE_SEED = bytes(range(32))
DEVICE_PUB = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
BODY = (
    '{"card_exposure_minor":12500,"currency":"EUR","device":"t1","drain_estimate_s":5,'
    '"engraver_alarm":null,"power":{"battery_pct":null,"source":"mains"},'
    '"printer_paper":"low","queued_events":42,"selftest":{"at_ms":1767225000000,'
    '"checks":[{"name":"printer","status":"pass"},{"name":"clock","status":"warn"}],'
    '"ok":true},"sent_ms":1767225600000,"tenant":"demo","version":"0.1.0"}'
)
SIGNATURE = (
    "2e70d408a2d6e250f1af4c67550a8d087e18331e44c088e8364f42b0dccbce53"
    "cc3bbfc40dc08cb53ff86d52df66fa67d8e38fe211ac5b3c3c153e5c8f97be04"
)
VECTOR_HEX = b"TBHL\x01".hex() + BODY.encode().hex() + SIGNATURE
# the same till after an update that rolled back (the optional "update" object)
UPDATE = (
    '"update":{"at_ms":1767225300000,"reason":"2.2.0 was not healthy: the kiosk did not '
    'draw its first frame","running":"2.1.0","seq":40,"slot":"A","state":"rolled_back",'
    '"version":"2.2.0"},'
)
UPDATE_BODY = BODY.replace('"version":"0.1.0"}', UPDATE + '"version":"0.1.0"}')
UPDATE_SIGNATURE = (
    "db22d9ff77d442f9f91521a8a5b2d982009b1e80cf5efdd6fb6bd5e21b8181e2"
    "521f66c5990ed728b3c15785e82c504358b6e36747ef307baa854b66e2b5ed0e"
)
UPDATE_HEX = b"TBHL\x01".hex() + UPDATE_BODY.encode().hex() + UPDATE_SIGNATURE


def vector_health() -> telemetry.Health:
    return telemetry.Health(
        device="t1",
        tenant="demo",
        sent_ms=1767225600000,
        version="0.1.0",
        queued_events=42,
        drain_estimate_s=5,
        selftest=telemetry.Selftest(1767225000000, True, (("printer", "pass"), ("clock", "warn"))),
        printer_paper="low",
        engraver_alarm=None,
        power_source="mains",
        battery_pct=None,
        card_exposure_minor=12500,
        currency="EUR",
    )


def rolled_back() -> telemetry.Update:
    return telemetry.Update(
        state="rolled_back",
        running="2.1.0",
        slot="A",
        version="2.2.0",
        reason="2.2.0 was not healthy: the kiosk did not draw its first frame",
        seq=40,
        at_ms=1767225300000,
    )


def key() -> SigningKey:
    return SigningKey(DEVICE_SEED)


def test_the_vector_is_these_bytes_and_reads_back():
    data = telemetry.seal_health(key(), vector_health())
    assert data.hex() == VECTOR_HEX
    assert len(data) == 441
    assert telemetry.open_health(data, key().verify_key) == vector_health()


def test_the_update_vector_is_these_bytes_and_reads_back():
    health = replace(vector_health(), update=rolled_back())
    data = telemetry.seal_health(key(), health)
    assert data.hex() == UPDATE_HEX
    assert len(data) == 625
    assert telemetry.open_health(data, key().verify_key) == health


def test_the_documented_vectors_are_these():
    text = DOC.read_text(encoding="utf-8")
    blocks = ["".join(b.split()) for b in text.split("```")[1::2]]
    assert VECTOR_HEX in blocks and UPDATE_HEX in blocks
    assert BODY in text and UPDATE_BODY in text
    assert "441" in text and "625" in text and DEVICE_PUB in text


def independent_read(data: bytes, public_key_hex: str) -> dict:
    """docs/formats.md alone: size, magic, version, signature, then canonical JSON."""
    assert len(data) <= 4096
    VerifyKey(bytes.fromhex(public_key_hex)).verify(data[:-64], data[-64:])
    assert data[:4] == b"TBHL" and data[4] == 1
    body = data[5:-64]
    obj = json.loads(body)
    assert (
        json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() == body
    )
    return obj


def test_an_independent_reader_agrees():
    obj = independent_read(bytes.fromhex(VECTOR_HEX), DEVICE_PUB)
    assert obj == vector_health().to_json()
    assert set(obj) == {
        "card_exposure_minor", "currency", "device", "drain_estimate_s", "engraver_alarm",
        "power", "printer_paper", "queued_events", "selftest", "sent_ms", "tenant", "version",
    }  # fmt: skip
    assert obj["power"] == {"battery_pct": None, "source": "mains"}
    obj = independent_read(bytes.fromhex(UPDATE_HEX), DEVICE_PUB)
    assert obj["update"] == {
        "at_ms": 1767225300000,
        "reason": "2.2.0 was not healthy: the kiosk did not draw its first frame",
        "running": "2.1.0",
        "seq": 40,
        "slot": "A",
        "state": "rolled_back",
        "version": "2.2.0",
    }


def test_the_update_object_is_optional():
    """A till from before updates sends none (the first vector); null is not absent."""
    assert "update" not in vector_health().to_json()
    assert telemetry.open_health(bytes.fromhex(VECTOR_HEX), key().verify_key).update is None
    body = canonical_bytes({**vector_health().to_json(), "update": None})
    assert _reason(_signed(body)) == "malformed"


def _signed(body: bytes, version: int = 1) -> bytes:
    signed = b"TBHL" + bytes([version]) + body
    return signed + key().sign(signed).signature


def _reason(data: bytes, verify: VerifyKey | None = None) -> str:
    with pytest.raises(wire.WireError) as err:
        telemetry.open_health(data, verify or key().verify_key)
    return err.value.reason


def test_the_signature_is_checked_before_the_body_is_read():
    good = bytes.fromhex(VECTOR_HEX)
    other = SigningKey(bytes(range(32, 64))).verify_key
    assert _reason(good, other) == "bad_signature"
    # garbage a stranger signed is refused for its signature, never parsed
    garbage = b"TBHL\x01" + b"{not json" + bytes(64)
    assert _reason(garbage) == "bad_signature"
    for i in (0, 4, 10, len(good) - 1):
        flipped = bytearray(good)
        flipped[i] ^= 1
        assert _reason(bytes(flipped)) in ("bad_signature", "malformed")
    assert _reason(good[:-1]) == "bad_signature"


def test_a_message_over_4_kib_is_refused_before_its_signature():
    big = _signed(canonical_bytes({**vector_health().to_json(), "update": {"pad": "x" * 5000}}))
    assert _reason(big) == "oversize"


def _with_update(**change):
    return lambda o: {**o, "update": {**rolled_back().to_json(), **change}}


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda o: {**o, "queued_events": -1}, "malformed"),
        (lambda o: {**o, "queued_events": True}, "malformed"),
        (lambda o: {**o, "printer_paper": "near_end"}, "malformed"),
        (lambda o: {**o, "power": {"source": "mains"}}, "malformed"),
        (lambda o: {**o, "power": {"source": "solar", "battery_pct": None}}, "malformed"),
        (lambda o: {**o, "power": {"source": "battery", "battery_pct": 101}}, "malformed"),
        (lambda o: {**o, "selftest": {"at_ms": 1, "ok": "yes", "checks": []}}, "malformed"),
        (lambda o: {**o, "engraver_alarm": ""}, "malformed"),
        (lambda o: {**o, "engraver_alarm": "x" * 201}, "malformed"),
        (lambda o: {**o, "device": "a/b"}, "malformed"),
        (lambda o: {**o, "currency": "eur"}, "malformed"),
        (lambda o: {**o, "extra": 1}, "malformed"),
        (lambda o: {k: v for k, v in o.items() if k != "sent_ms"}, "malformed"),
        (lambda o: {**o, "update": []}, "malformed"),
        (lambda o: {**o, "update": {"slot": "B", "state": "trial"}}, "malformed"),
        (_with_update(extra=1), "malformed"),
        (_with_update(state="staged"), "malformed"),
        (_with_update(slot="b"), "malformed"),
        (_with_update(running=""), "malformed"),
        (_with_update(version="2.2.0 beta"), "malformed"),
        (_with_update(reason=""), "malformed"),
        (_with_update(reason="x" * 161), "malformed"),
        (_with_update(reason="two\nlines"), "malformed"),
        (_with_update(seq=-1), "malformed"),
        (_with_update(at_ms="1767225300000"), "malformed"),
    ],
)
def test_every_field_is_typed_and_bounded(change, reason):
    body = canonical_bytes(change(vector_health().to_json()))
    assert _reason(_signed(body)) == reason


def test_a_body_not_in_canonical_form_is_refused():
    spaced = json.dumps(vector_health().to_json(), sort_keys=True).encode()  # ", " and ": "
    assert _reason(_signed(spaced)) == "non_canonical"
    assert _reason(_signed(b"{oops")) == "malformed"
    assert _reason(_signed(BODY.encode(), version=2)) == "malformed"


def test_the_largest_message_the_agent_can_build_fits():
    """Every bound at its worst (escaped control characters, the longest names)."""
    worst = telemetry.Health(
        device="d" * 64,
        tenant="t" * 64,
        sent_ms=2**53 - 1,
        version="9" * telemetry.MAX_VERSION_CHARS,
        queued_events=2**53 - 1,
        drain_estimate_s=2**53 - 1,
        selftest=telemetry.Selftest(
            2**53 - 1,
            False,
            tuple((f"{i:02d}" + "x" * 30, "fail") for i in range(telemetry.MAX_CHECKS)),
        ),
        printer_paper="unknown",
        engraver_alarm="\x01" * telemetry.MAX_ALARM_CHARS,
        power_source="unknown",
        battery_pct=100,
        card_exposure_minor=2**53 - 1,
        currency="EUR",
        update=telemetry.Update(
            state="awaiting_reboot",
            running="9" * telemetry.MAX_VERSION_CHARS,
            slot="B",
            version="9" * telemetry.MAX_VERSION_CHARS,
            reason="\U0001f600" * telemetry.MAX_REASON_CHARS,  # 4 bytes each in UTF-8
            seq=2**53 - 1,
            at_ms=2**53 - 1,
        ),
    )
    data = telemetry.seal_health(key(), worst)
    assert len(data) <= telemetry.MAX_HEALTH_BYTES
    assert telemetry.open_health(data, key().verify_key) == worst
