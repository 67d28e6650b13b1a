"""Releases at the region: the release key, and signed RAUC bundles built with it.

The release key signs system updates and nothing else: not the region key (which signs
acks and catalog updates, Ed25519), not a device key. RAUC signs with X.509 (CMS), so
the release key is an EC P-256 key with a self-signed certificate whose only purpose is
code signing; tills trust it through their keyring (``/etc/rauc/keyring.pem``, baked
into the image), which may hold the next key too, so a key can be replaced without
reflashing. The private key is written 0600 and never printed.

A bundle is built from the image build's root file system (an ext4 image): tillbox
writes the manifest (:func:`appliance.formats.release.manifest_text`), ``rauc bundle``
adds the image's sha256 and size and signs, and the result is verified against the
certificate before it is handed out (:func:`verify`: signature first, then manifest).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from appliance.boundedio import CHUNK, KEY_FILE_LIMIT, UPDATE_BUNDLE_LIMIT, MiB, read_bounded
from appliance.errors import RuleViolation, TillError
from appliance.formats import region as region_fmt
from appliance.formats import wire
from appliance.formats.region import ReleaseNotice
from appliance.formats.release import (
    ROOTFS_IMAGE,
    certificates,
    check_compatible,
    key_id,
    manifest_text,
)
from appliance.fsutil import fsync_dir
from appliance.keys import unsafe_mode
from appliance.updates import BundleInfo
from drivers import rauc

CERT_LIMIT = 64 * 1024  # a keyring of a few certificates
EXT4_MAGIC_OFFSET = 1024 + 0x38  # the superblock's s_magic, 0xEF53 little-endian
DEFAULT_DAYS = 3650


@dataclass(frozen=True)
class ReleaseKey:
    key: Path
    cert: Path
    key_id: str  # SHA-256 of the certificate's public key (what `rauc info` prints)
    subject: str


def cert_key_ids(cert: Path) -> list[str]:
    """The key id of each certificate in a PEM file (a release cert or a keyring)."""
    return [key_id(der) for der in certificates(read_bounded(cert, CERT_LIMIT, "certificate"))]


def keygen(
    key: Path, cert: Path, name: str = "tillbox release", days: int = DEFAULT_DAYS
) -> ReleaseKey:
    """Create the release key (0600) and its code-signing certificate; never overwrite."""
    for path in (key, cert):
        if path.exists():
            raise TillError(f"{path} already exists; keep the release key, or choose a new path")
    if not name or any(c in name for c in "/=\\\n\r\0") or len(name) > 64:
        raise TillError("--name must be 1-64 characters without / = or backslash")
    if not 1 <= days <= 36500:
        raise TillError("--days must be 1 to 36500")
    key.parent.mkdir(parents=True, exist_ok=True)
    cert.parent.mkdir(parents=True, exist_ok=True)
    subject = f"/O=tillbox/CN={name}"
    # Made inside a folder only we can enter, next to the key (one file system, so the
    # rename is atomic): the key is never readable by others, not even for a moment.
    work = Path(tempfile.mkdtemp(prefix=".release-key-", dir=key.parent))
    try:
        argv = [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(work / "key.pem"), "-out", str(work / "cert.pem"),
            "-days", str(days), "-subj", subject,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,digitalSignature,keyCertSign",
            "-addext", "extendedKeyUsage=codeSigning",
        ]  # fmt: skip
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        except FileNotFoundError:
            raise TillError("openssl is not installed (`apt-get install openssl`)") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise TillError(f"openssl could not make the release key ({last})")
        os.chmod(work / "key.pem", 0o600)
        os.chmod(work / "cert.pem", 0o644)
        os.replace(work / "key.pem", key)
        fsync_dir(key.parent)
        shutil.move(work / "cert.pem", cert)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ReleaseKey(key, cert, cert_key_ids(cert)[0], subject.lstrip("/").replace("/", ", "))


def _check_signing_pair(cert: Path, key: Path) -> None:
    if not key.is_file():
        raise TillError(
            f"release key {key} does not exist; create one with `tillbox edge release keygen`"
        )
    problem = unsafe_mode(key)
    if problem:
        raise TillError(f"refusing to use a release key others can read: {problem}")
    read_bounded(key, KEY_FILE_LIMIT, "release key")  # readable, and not something huge
    cert_key_ids(cert)


def _is_ext4(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(EXT4_MAGIC_OFFSET)
            return f.read(2) == b"\x53\xef"
    except OSError:
        return False


def build(
    rootfs: Path,
    out: Path,
    *,
    version: str,
    compatible: str,
    cert: Path,
    key: Path,
    bundle_format: str = "verity",
    description: str = "",
    build_id: str = "",
) -> BundleInfo:
    """Build and sign the bundle of ``rootfs`` (ext4) into ``out``, then verify it."""
    check_compatible(compatible, "--compatible")
    manifest = manifest_text(
        compatible, version, bundle_format=bundle_format, description=description, build=build_id
    )
    _check_signing_pair(cert, key)
    if not rootfs.is_file():
        raise TillError(f"root file system image {rootfs} does not exist; build the image first")
    if not _is_ext4(rootfs):
        raise TillError(f"{rootfs} is not an ext4 file system image (the slots are ext4)")
    if out.exists():
        raise TillError(f"{out} already exists; remove it or choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".bundle-", dir=out.parent))
    try:
        content = work / "content"
        content.mkdir()
        (content / "manifest.raucm").write_text(manifest, encoding="ascii")
        try:
            os.link(rootfs, content / ROOTFS_IMAGE)  # no copy of a large image when we can
        except OSError:
            shutil.copyfile(rootfs, content / ROOTFS_IMAGE)
        signed = work / out.name
        rauc.bundle(content, signed, cert=cert, key=key, keyring=cert)
        result = verify(signed, cert, compatible, payload=False)  # we just built it
        os.replace(signed, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return replace(result, path=str(out))


def sign(source: Path, out: Path, *, cert: Path, key: Path, trusted: Path) -> BundleInfo:
    """Re-sign ``source`` (a CI build signed by a key in ``trusted``) with the release key."""
    _check_signing_pair(cert, key)
    if out.exists():
        raise TillError(f"{out} already exists; remove it or choose another --out")
    rauc.resign(source, out, cert=cert, key=key, trusted=trusted, keyring=cert)
    return verify(out, cert)


def notice(bundle: Path, cert: Path, url: str) -> ReleaseNotice:
    """The "update available" notice of ``bundle`` at ``url``: the bundle is verified
    against ``cert`` (the one release certificate that signed it) first, then its
    version and hardware come from its manifest, its SHA-256 and size from its bytes."""
    ids = cert_key_ids(cert)
    if len(ids) != 1:
        raise TillError(f"{cert} holds {len(ids)} certificates; pass the one that signed it")
    info = verify(bundle, cert)
    digest = hashlib.sha256()
    size = 0
    try:
        with open(bundle, "rb") as f:
            while chunk := f.read(CHUNK):
                size += len(chunk)
                if size > UPDATE_BUNDLE_LIMIT:
                    raise TillError(f"{bundle} is over {UPDATE_BUNDLE_LIMIT // MiB} MiB")
                digest.update(chunk)
    except OSError as exc:
        raise TillError(f"cannot read {bundle} ({exc.strerror or exc})") from None
    value = {
        "version": info.version,
        "compatible": info.compatible,
        "url": url,
        "sha256": digest.hexdigest(),
        "size": size,
        "key_id": ids[0],
    }
    try:
        parsed = region_fmt.parse(region_fmt.RELEASE, value)
    except wire.WireError as exc:
        raise RuleViolation(f"not published: {exc}") from None
    assert isinstance(parsed, ReleaseNotice)
    return parsed


def verify(
    bundle: Path, keyring: Path, compatible: str | None = None, *, payload: bool = True
) -> BundleInfo:
    """What a till will check: the signature against ``keyring`` (BundleRejected, exit 4,
    when it fails), then the manifest; with ``compatible``, the hardware too; with
    ``payload``, every block of the contents (unpacked beside the bundle, then removed)."""
    if not Path(keyring).is_file():
        raise TillError(f"keyring {keyring} does not exist; pass the release certificate")
    info = rauc.info(bundle, keyring=keyring)
    if payload:
        rauc.check_payload(bundle, keyring=keyring)
    if compatible is not None and info.compatible != compatible:
        raise RuleViolation(
            f"{Path(bundle).name} is for {info.compatible!r} hardware, not {compatible!r}; "
            "build it with the right --compatible"
        )
    return info
