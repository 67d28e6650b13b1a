"""docs/formats.md section 8 against the code and the real tools: the manifest bytes,
the release key id (openssl computes the same), the U-Boot environment (mkenvimage makes
the same), and the update events' keys."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance import events as ev
from appliance.formats.release import certificates, key_id, manifest_text
from appliance.updates import BundleInfo, SlotState, UpdaterStatus, plan_install
from drivers import uboot

DOC = (Path(__file__).resolve().parents[2] / "docs" / "formats.md").read_text(encoding="utf-8")
SECTION = DOC[DOC.index("## 8. System updates") : DOC.index("## Identifiers and tillbox.toml")]


def test_the_manifest_vector():
    text = manifest_text(
        "tillbox-rpi4", "2.1.0", description="Spring market release", build="20261202T0136Z"
    )
    assert f"```\n{text}```" in SECTION


def test_the_key_id_vector(tmp_path):
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", SECTION, re.S)
    assert pem
    [der] = certificates(pem.group(0).encode())
    doc_id = re.search(r"has key id `([0-9a-f]{64})`", SECTION).group(1)
    assert key_id(der) == doc_id
    if shutil.which("openssl"):
        cert = tmp_path / "c.pem"
        cert.write_text(pem.group(0))
        spki = subprocess.run(
            f"openssl x509 -in {cert} -pubkey -noout | openssl pkey -pubin -outform DER",
            shell=True,
            capture_output=True,
            check=True,
        ).stdout
        assert hashlib.sha256(spki).hexdigest() == doc_id


def test_the_environment_vector(tmp_path):
    env = {"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3"}
    blob = uboot.encode(env)
    assert f"`{blob[:48].hex()}`" in SECTION
    assert f"CRC\n`0x{int.from_bytes(blob[:4], 'little'):08x}`" in SECTION
    assert blob[48:] == b"\xff" * (uboot.ENV_SIZE - 48)
    if shutil.which("mkenvimage") is None:
        pytest.skip("needs mkenvimage (u-boot-tools)")
    src, out = tmp_path / "env.txt", tmp_path / "env.bin"
    src.write_text("".join(f"{k}={env[k]}\n" for k in sorted(env)))
    subprocess.run(["mkenvimage", "-s", "0x4000", "-o", str(out), str(src)], check=True)
    assert out.read_bytes() == blob


def test_the_event_table_names_every_update_type_and_the_plans_keys():
    for type_ in ev.UPDATE_TYPES:
        assert f"| `{type_}` |" in SECTION
    slot = SlotState("A", "rootfs.0", "booted", True, "2.0.0")
    plan = plan_install(
        UpdaterStatus("hw", slot, SlotState("B", "rootfs.1", "inactive", True), "A"),
        BundleInfo("x.raucb", "hw", "2.1.0", "CN=x"),
    )
    row = SECTION[SECTION.index("| `update.started` |") :].splitlines()[0]
    for key in plan.payload():
        assert f"`{key}`" in row, key
