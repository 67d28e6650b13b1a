"""docs/formats.md cannot drift: its vectors and its reference verifier are checked here."""

import re
import subprocess
import sys
from pathlib import Path

from appliance.formats.canonical import canonical_bytes
from appliance.formats.chain import GENESIS_HASH, envelope, event_hash

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats.md"
BOOT = "6c1f0a52-3d1e-4b8e-9a57-0f3b5a6e2c11"


def _vectors():
    p1 = {
        "device_id": "stall-1",
        "tenant": "demo",
        "public_key": "8fe25316c4c8af70c630488da48d5380c2e8b077d4e56389aea6eb32fa1015ec",
    }
    e1 = envelope(
        seq=1,
        event_id="0193a1b2-0000-7000-8000-000000000001",
        device_id="stall-1",
        type="device.initialised",
        payload=p1,
        wall_ms=1795780800000,
        boot_id=BOOT,
        mono_us=12345678,
        prev_hash=GENESIS_HASH,
    )
    p2 = {"note": 'Café Łódź – naïve "quoted"\n', "qty": -3, "zero": 0}
    e2 = envelope(
        seq=2,
        event_id="0193a1b2-0000-7000-8000-000000000002",
        device_id="stall-1",
        type="device.fault",
        payload=p2,
        wall_ms=1795780801000,
        boot_id=BOOT,
        mono_us=13345678,
        prev_hash=event_hash(e1),
    )
    return e1, e2


def test_event_vectors_in_the_doc_match_the_code():
    doc = DOC.read_text(encoding="utf-8")
    e1, e2 = _vectors()
    assert event_hash(e1) == "e1f44e2f244cb14ad590b368f492a702f5c67eca1995aba367b4969f2d99ac2f"
    assert event_hash(e2) == "b61a140ae76e0fd0c0f4b3ca3982a0cc1bc181ed96e74d2dc5d51fe45903a63a"
    for env in (e1, e2):
        assert canonical_bytes(env).decode() in doc
        assert event_hash(env) in doc
    assert canonical_bytes(e2).hex() in doc


def _reference_verifier() -> str:
    doc = DOC.read_text(encoding="utf-8")
    match = re.search(r"\*\*Reference verifier\*\*.*?```python\n(.*?)```", doc, re.S)
    assert match, "the reference verifier snippet is missing from docs/formats.md"
    return match.group(1)


def test_reference_verifier_from_the_doc_checks_a_real_export(tmp_path, cli):
    d = str(tmp_path / "t")
    cli("init", "--data-dir", d, "--device-id", "v-1", "--demo")
    cli("shift", "open", "--data-dir", d)
    for item in ("MUG-01:2", "BRATW", "POSTCARD:3"):
        cli("sale", "--data-dir", d, "--item", item, "--pay", "cash")
    export = cli("log", "export", "--data-dir", d).out
    script = tmp_path / "verify.py"
    script.write_text(_reference_verifier())

    def run(text: str) -> str:
        return subprocess.run(
            [sys.executable, str(script)], input=text, capture_output=True, text=True, check=True
        ).stdout.strip()

    assert run(export) == "ok"
    tail = "\n".join(export.splitlines()[3:]) + "\n"  # an export --since works on its own
    assert run(tail) == "ok"
    tampered = export.replace('"qty":2', '"qty":1', 1)
    assert tampered != export and run(tampered).startswith("bad hash at seq")
    lines = export.splitlines()
    assert run("\n".join(lines[:2] + lines[3:]) + "\n").startswith("gap before seq")
