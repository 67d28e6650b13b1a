"""Release bundles: the version rule, the RAUC manifest tillbox writes, the release key id.

A release is a RAUC bundle: a squashfs holding the root file system image and
``manifest.raucm``, signed (CMS) with the release key's X.509 certificate. ``rauc
bundle`` computes each image's sha256 and size into the manifest before it signs, so
the version, the compatible hardware and the image hashes are all in the signed part,
and a till checks the signature before it reads any of them (``rauc info``/``rauc
install`` with the till's keyring).

This module is the one home of the bytes tillbox puts into a manifest, of the version
rule and of how a release key is named (its key id: the SHA-256 of the certificate's
SubjectPublicKeyInfo, the "SPKI sha256" that ``rauc info`` prints). docs/formats.md
section 8 has each with a test vector. No I/O here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import NamedTuple

from appliance.errors import TillError
from appliance.identifiers import IDENTIFIER_RULE, is_identifier, shown

VERSION_RULE = "MAJOR.MINOR.PATCH: three whole numbers without leading zeros, e.g. 2.1.0"
_PART = r"(0|[1-9][0-9]{0,5})"
_VERSION_RE = re.compile(rf"{_PART}\.{_PART}\.{_PART}")
# What a manifest's optional texts may hold: printable ASCII without the characters a
# GLib key file escapes (backslash) or treats as a comment or group start at line start.
_TEXT_RE = re.compile(r"[ -\[\]-~]{1,200}")
_BUILD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,63}")

BUNDLE_FORMATS = ("verity", "plain")  # RAUC's; verity checks every block as it is read
ROOTFS_IMAGE = "rootfs.ext4"  # the slot class "rootfs"; RAUC picks its handler by suffix


class Version(NamedTuple):
    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def parse_version(text: object, what: str = "version") -> Version:
    """``text`` as a Version; a one-line TillError naming ``what`` when it breaks the rule."""
    match = _VERSION_RE.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise TillError(f"{what} must be {VERSION_RULE}, got {shown(text)}")
    return Version(*(int(part) for part in match.groups()))


def check_compatible(value: object, what: str = "compatible") -> str:
    """The hardware name a bundle is for (RAUC's ``compatible``): the identifier rule."""
    if not is_identifier(value):
        raise TillError(f"{what} must be {IDENTIFIER_RULE}, e.g. tillbox-rpi4, got {shown(value)}")
    assert isinstance(value, str)
    return value


def manifest_text(
    compatible: str,
    version: str,
    *,
    bundle_format: str = "verity",
    description: str = "",
    build: str = "",
) -> str:
    """The ``manifest.raucm`` tillbox hands to ``rauc bundle`` (which adds the hashes)."""
    check_compatible(compatible)
    parse_version(version)
    if bundle_format not in BUNDLE_FORMATS:
        raise TillError(f"bundle format must be one of {', '.join(BUNDLE_FORMATS)}")
    lines = ["[update]", f"compatible={compatible}", f"version={version}"]
    if description:
        if not _TEXT_RE.fullmatch(description) or description != description.strip():
            raise TillError(
                "the description must be one line of printable ASCII without backslashes, "
                "at most 200 characters"
            )
        lines.append(f"description={description}")
    if build:
        if not _BUILD_RE.fullmatch(build):
            raise TillError(
                "the build id must be 1-64 of A-Z a-z 0-9 . _ : + -, e.g. 20261202T0136Z"
            )
        lines.append(f"build={build}")
    lines += ["", "[bundle]", f"format={bundle_format}", "", "[image.rootfs]"]
    lines.append(f"filename={ROOTFS_IMAGE}")
    return "\n".join(lines) + "\n"


# -- certificates ---------------------------------------------------------------------------
_PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n(.*?)-----END CERTIFICATE-----", re.S)


def certificates(pem: bytes) -> list[bytes]:
    """The DER bytes of each certificate in a PEM file (a keyring may hold several)."""
    found = []
    for block in _PEM_RE.findall(pem):
        try:
            found.append(base64.b64decode(b"".join(block.split()), validate=True))
        except (binascii.Error, ValueError):
            raise TillError("a certificate in the PEM file is not valid base64") from None
    if not found:
        raise TillError("no certificate (-----BEGIN CERTIFICATE-----) in the PEM file")
    return found


def _tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the DER element at ``pos``."""
    if pos + 2 > len(der):
        raise ValueError("truncated")
    tag, length = der[pos], der[pos + 1]
    start = pos + 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or start + count > len(der):
            raise ValueError("bad length")
        length = int.from_bytes(der[start : start + count], "big")
        start += count
    if start + length > len(der):
        raise ValueError("truncated")
    return tag, start, start + length


def spki(cert_der: bytes) -> bytes:
    """The SubjectPublicKeyInfo element (tag, length and value) of an X.509 certificate."""
    try:
        tag, start, _end = _tlv(cert_der, 0)  # Certificate ::= SEQUENCE
        if tag != 0x30:
            raise ValueError("not a sequence")
        tag, pos, tbs_end = _tlv(cert_der, start)  # tbsCertificate ::= SEQUENCE
        if tag != 0x30:
            raise ValueError("not a sequence")
        fields = []
        while pos < tbs_end and len(fields) < 7:
            tag, _value, end = _tlv(cert_der, pos)
            fields.append((tag, pos, end))
            pos = end
        if fields and fields[0][0] == 0xA0:  # [0] EXPLICIT version; absent means v1
            fields = fields[1:]
        # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
        if len(fields) < 6 or fields[5][0] != 0x30:
            raise ValueError("no public key")
        return cert_der[fields[5][1] : fields[5][2]]
    except ValueError as exc:
        raise TillError(f"the certificate is not valid DER X.509 ({exc})") from None


def key_id(cert_der: bytes) -> str:
    """A release key's id: SHA-256 of its certificate's SubjectPublicKeyInfo, 64 hex digits."""
    return hashlib.sha256(spki(cert_der)).hexdigest()
