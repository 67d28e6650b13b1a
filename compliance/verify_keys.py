"""The keys ``tillbox inspect verify`` checks signatures with: the inspector's, else the bundle's.

A key the inspector gives (``--public-key``, ``--region-key``) is pinned: the key file
the bundle carries must equal it. Without one, the bundle's own key file is used, and
the verdict says that part is not proved. Every key file is read with a cap.
"""

from __future__ import annotations

import zipfile

from nacl.signing import VerifyKey

from appliance.boundedio import KEY_FILE_LIMIT
from appliance.formats import inspection
from compliance.bundle_reader import member
from compliance.verdict import Problem

REGION_PUB = inspection.SYNC_REGION_PUB  # a till bundle's copy of [sync] region_public_key


def device_key(expected: str | None, zf: zipfile.ZipFile, names: list[str]) -> VerifyKey:
    """The key the manifest must verify with: the inspector's, which device.pub must be."""
    if "device.pub" not in names:
        raise Problem("device.pub is missing: not an inspection bundle")
    return _signer(
        zf, "device.pub", expected, "bundle is signed by device key", "a bundle from another device"
    )


def package_key(zf: zipfile.ZipFile, expected: str | None) -> VerifyKey:
    """A region-built package's signer: the inspector's region key (region.pub must be
    it), else region.pub itself (the verdict then says it is not proved)."""
    return _signer(
        zf,
        inspection.REGION_PUB,
        expected,
        "the package is signed by region key",
        "a package from another region",
    )


def _signer(
    zf: zipfile.ZipFile, name: str, expected: str | None, signed_by: str, other: str
) -> VerifyKey:
    """The key in member ``name`` (64 hex digits), which must be ``expected`` when the
    inspector pinned one: "<signed_by> <key>..., not the expected <key>...: <other>"."""
    stated = member(zf, name, KEY_FILE_LIMIT).decode("ascii", "replace").strip().lower()
    if expected is not None and expected.strip().lower() != stated:
        raise Problem(
            f"{signed_by} {stated[:16]}..., not the expected "
            f"{expected.strip().lower()[:16]}...: {other}"
        )
    try:
        return VerifyKey(bytes.fromhex(stated))
    except (ValueError, TypeError):
        raise Problem(f"{name} is not 64 hex digits") from None


def region_key_for(
    zf: zipfile.ZipFile, names: list[str], expected: str | None, first_ack: str
) -> VerifyKey:
    """The region key the acks must verify with: the inspector's, else the bundle's."""
    stated = None
    if REGION_PUB in names:
        stated = member(zf, REGION_PUB, KEY_FILE_LIMIT).decode("ascii", "replace").strip().lower()
    if expected is not None:
        expected = expected.strip().lower()
        if stated is not None and stated != expected:
            raise Problem(
                f"{REGION_PUB} is key {stated[:16]}..., not the expected region key "
                f"{expected[:16]}...: the acks were not signed by that region"
            )
        stated = expected
    if stated is None:
        raise Problem(
            f"{first_ack} cannot be checked: the bundle has no {REGION_PUB}; "
            "pass --region-key with the region's public key"
        )
    try:
        return VerifyKey(bytes.fromhex(stated))
    except (ValueError, TypeError):
        raise Problem(f"the region key {stated[:16]}... is not 64 hex digits") from None
