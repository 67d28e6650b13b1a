"""Release signing at the region, checked with the real tools: `rauc info`, `openssl`.

The release key is an X.509 code-signing certificate + EC key (what RAUC signs with),
written 0600; a bundle's version, hardware and image hash are in its signed manifest;
every way a bundle can be wrong is one line and exit 4 (not trusted, not whole) or 1.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from appliance.formats.release import certificates, key_id
from appliance.testing import run_cli
from edge import releases
from systest.updates import rootfs_image

from .conftest import COMPATIBLE


def rauc_info(bundle: Path, keyring: Path) -> subprocess.CompletedProcess:
    """Real RAUC's own check, with the keyring settings a till uses (not our code)."""
    conf = Path(tempfile.mkdtemp()) / "system.conf"
    conf.write_text(
        "[system]\ncompatible=x\nbootloader=noop\n[keyring]\n"
        f"path={keyring}\ncheck-purpose=codesign\nuse-bundle-signing-time=true\n"
    )
    return subprocess.run(
        ["rauc", "--conf", str(conf), "info", "--output-format=json", str(bundle)],
        capture_output=True,
        text=True,
    )


def one_line_error(result, code: int) -> str:
    assert result.code == code, result
    assert result.err.count("\n") == 1 and result.err.startswith("tillbox: error: "), result
    assert "internal error" not in result.err
    return result.err


def test_keygen_writes_a_private_key_and_a_code_signing_certificate(tmp_path):
    key, cert = tmp_path / "keys" / "release.key", tmp_path / "keys" / "release.pem"
    result = run_cli("edge", "release", "keygen", "--key", str(key), "--cert", str(cert), "--json")
    assert result.code == 0, result
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert [p.name for p in key.parent.iterdir() if p.name.startswith(".")] == []  # no leftovers
    assert key.read_bytes() not in (result.out + result.err).encode()
    text = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-text"], capture_output=True, text=True
    ).stdout
    assert "Code Signing" in text and "CN = tillbox release" in text
    # the key id is what openssl (and `rauc info`, as "SPKI sha256") compute
    spki = subprocess.run(
        f"openssl x509 -in {cert} -pubkey -noout | openssl pkey -pubin -outform DER",
        shell=True,
        capture_output=True,
        check=True,
    ).stdout
    assert result.json()["key_id"] == hashlib.sha256(spki).hexdigest()
    assert key_id(certificates(cert.read_bytes())[0]) == hashlib.sha256(spki).hexdigest()
    again = run_cli("edge", "release", "keygen", "--key", str(key), "--cert", str(cert))
    assert "already exists" in one_line_error(again, 1)


@pytest.mark.parametrize("bundle_format", ["verity", "plain"])
def test_version_hardware_and_image_hash_are_in_the_signed_manifest(kit, bundle_format):
    bundle = kit.bundle("2.1.0", COMPATIBLE, bundle_format=bundle_format)
    checked = rauc_info(bundle, kit.cert)
    assert checked.returncode == 0, checked.stderr
    manifest = json.loads(checked.stdout)
    assert (manifest["version"], manifest["compatible"]) == ("2.1.0", COMPATIBLE)
    [image] = manifest["images"]
    rootfs = kit.folder / "rootfs-2.1.0.ext4"
    assert image["rootfs"]["checksum"] == hashlib.sha256(rootfs.read_bytes()).hexdigest()
    assert "Verified" in checked.stderr and "tillbox test release" in checked.stderr
    # and our verify says the same
    result = run_cli("edge", "release", "verify", str(bundle), "--keyring", str(kit.cert), "--json")
    assert result.code == 0, result
    assert result.json()["images"][0]["sha256"] == image["rootfs"]["checksum"]


def test_build_from_the_cli(kit, tmp_path):
    files = {"etc/tillbox-release": b"3.0.0\n", "opt/blob": os.urandom(20000)}
    rootfs = rootfs_image(tmp_path / "root.ext4", files)
    out = tmp_path / "out" / "v3.raucb"
    argv = ["edge", "release", "build", "--rootfs", str(rootfs), "--version", "3.0.0"]
    argv += ["--compatible", "tillbox-rpi4", "--out", str(out), "--cert", str(kit.cert)]
    argv += ["--key", str(kit.key_path), "--description", "market season build"]
    result = run_cli(*argv)
    assert result.code == 0, result
    assert "version 3.0.0 for tillbox-rpi4" in result.out
    assert rauc_info(out, kit.cert).returncode == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["v3.raucb"]  # no work files left
    assert "already exists" in one_line_error(run_cli(*argv), 1)


@pytest.mark.parametrize("bundle_format", ["verity", "plain"])
def test_each_broken_bundle_is_one_line_and_exit_4(kit, other_kit, tmp_path, flip, bundle_format):
    good = kit.bundle("2.1.0", COMPATIBLE, bundle_format=bundle_format)

    def verify(bundle: Path, keyring: Path = kit.cert, *more: str):
        return run_cli("edge", "release", "verify", str(bundle), "--keyring", str(keyring), *more)

    # a byte changed inside the signed payload (the squashfs), one in the signature
    payload = flip(good, tmp_path / "payload.raucb", 6000)
    assert "changed or damaged after it was signed" in one_line_error(verify(payload), 4)
    # truncated (a download cut off), and something that is not a bundle at all
    truncated = tmp_path / "cut.raucb"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert "not a complete RAUC bundle" in one_line_error(verify(truncated), 4)
    junk = tmp_path / "junk.raucb"
    junk.write_bytes(b"hello\n")
    assert "not a complete RAUC bundle" in one_line_error(verify(junk), 4)
    # signed by a key the keyring does not hold: both ways round
    assert "not signed by a release key" in one_line_error(verify(good, other_kit.cert), 4)
    foreign = other_kit.bundle("2.1.0", COMPATIBLE, bundle_format=bundle_format)
    assert "not signed by a release key" in one_line_error(verify(foreign), 4)
    # other hardware: a rule, exit 1
    err = one_line_error(verify(good, kit.cert, "--compatible", "tillbox-rpi4"), 1)
    assert "is for 'tillbox-test' hardware" in err
    # rauc agrees on every one
    for bad in (truncated, junk, foreign):
        assert rauc_info(bad, kit.cert).returncode != 0


def test_only_a_code_signing_certificate_can_sign_a_release(kit, tmp_path):
    """A certificate for something else (TLS, e-mail, a plain self-signed one) signs a
    bundle rauc itself will build, but a till's keyring refuses it."""
    key, cert = tmp_path / "tls.key", tmp_path / "tls.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "30",
         "-subj", "/CN=tls server", "-addext", "extendedKeyUsage=serverAuth"],
        check=True, capture_output=True,
    )  # fmt: skip
    content = tmp_path / "content"
    content.mkdir()
    (content / "manifest.raucm").write_text(
        "[update]\ncompatible=tillbox-test\nversion=9.0.0\n\n[image.rootfs]\nfilename=rootfs.ext4\n"
    )
    rootfs_image(content / "rootfs.ext4", {"x": b"x"})
    bundle = tmp_path / "tls.raucb"
    subprocess.run(
        ["rauc", "bundle", "--cert", str(cert), "--key", str(key), str(content), str(bundle)],
        check=True, capture_output=True,
    )  # fmt: skip
    result = run_cli("edge", "release", "verify", str(bundle), "--keyring", str(cert))
    assert "unsuitable certificate purpose" in one_line_error(result, 4)


def test_resign_a_ci_build_with_the_release_key(kit, other_kit, tmp_path):
    ci_build = other_kit.bundle("2.2.0", COMPATIBLE)  # signed by the CI's own key
    out = tmp_path / "release.raucb"
    argv = ["edge", "release", "sign", str(ci_build), "--trusted", str(other_kit.cert)]
    argv += ["--out", str(out), "--cert", str(kit.cert), "--key", str(kit.key_path)]
    result = run_cli(*argv)
    assert result.code == 0, result
    assert rauc_info(out, kit.cert).returncode == 0
    assert rauc_info(out, other_kit.cert).returncode != 0
    # a bundle that does not verify against --trusted is not re-signed
    out2 = tmp_path / "never.raucb"
    argv = ["edge", "release", "sign", str(ci_build), "--trusted", str(kit.cert)]
    argv += ["--out", str(out2), "--cert", str(kit.cert), "--key", str(kit.key_path)]
    one_line_error(run_cli(*argv), 4)
    assert not out2.exists()


def test_build_refuses_what_a_till_would_not_take(kit, tmp_path):
    rootfs = rootfs_image(tmp_path / "root.ext4", {"a": b"a"})

    def build(version="2.1.0", root=rootfs, key=kit.key_path):
        out = tmp_path / f"{os.urandom(4).hex()}.raucb"
        return run_cli(
            "edge", "release", "build", "--rootfs", str(root), "--compatible", COMPATIBLE,
            "--version", version, "--cert", str(kit.cert), "--key", str(key), "--out", str(out),
        )  # fmt: skip

    assert "MAJOR.MINOR.PATCH" in one_line_error(build(version="2.1"), 1)
    assert "MAJOR.MINOR.PATCH" in one_line_error(build(version="02.1.0"), 1)
    not_ext4 = tmp_path / "blob.img"
    not_ext4.write_bytes(b"\0" * 4096)
    assert "not an ext4" in one_line_error(build(root=not_ext4), 1)
    wide = tmp_path / "wide.key"
    wide.write_bytes(kit.key_path.read_bytes())
    wide.chmod(0o644)
    assert "others can read" in one_line_error(build(key=wide), 1)
    assert not list(tmp_path.glob("*.raucb"))


def test_the_release_key_is_not_the_region_key(kit, tmp_path):
    """The region's Ed25519 key cannot sign a bundle: RAUC needs the X.509 pair."""
    region = tmp_path / "region.key"
    assert run_cli("edge", "keygen", "--out", str(region)).code == 0
    rootfs = kit.rootfs("4.0.0")
    result = run_cli(
        "edge", "release", "build", "--rootfs", str(rootfs), "--version", "4.0.0",
        "--compatible", COMPATIBLE, "--out", str(tmp_path / "r.raucb"),
        "--cert", str(kit.cert), "--key", str(region),
    )  # fmt: skip
    one_line_error(result, 1)
    assert not (tmp_path / "r.raucb").exists()


def test_release_kit_keys_are_private(kit):
    assert stat.S_IMODE(kit.key_path.stat().st_mode) == 0o600
    assert releases.cert_key_ids(kit.cert) == [key_id(certificates(kit.cert.read_bytes())[0])]
