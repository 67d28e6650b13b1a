"""The device's Ed25519 key pair (PyNaCl).

The private key is a 32-byte seed stored as hex in a file created with mode
0600 and never logged. It is generated on the device (first boot or ``tillbox
init``), never baked into an image.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from nacl.signing import SigningKey, VerifyKey

from appliance.errors import TillError
from appliance.fsutil import atomic_write


def generate(private_path: Path, public_path: Path) -> VerifyKey:
    """Create a new key pair; refuse to overwrite an existing private key."""
    if private_path.exists():
        raise TillError(f"{private_path} already exists; a device keeps its key for life")
    private_path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(private_path.parent, 0o700)
    key = SigningKey.generate()
    atomic_write(private_path, key.encode().hex().encode() + b"\n", mode=0o600)
    atomic_write(public_path, key.verify_key.encode().hex().encode() + b"\n", mode=0o644)
    return key.verify_key


def unsafe_mode(private_path: Path) -> str:
    """Empty if the key file is private to its owner; else what is wrong."""
    mode = stat.S_IMODE(private_path.stat().st_mode)
    if mode & 0o077:
        return f"{private_path} has mode {mode:04o}; run `chmod 600 {private_path}`"
    return ""


def load_signing_key(private_path: Path) -> SigningKey:
    try:
        text = private_path.read_text().strip()
    except FileNotFoundError:
        raise TillError(
            f"device key {private_path} is missing; restore it from the device's "
            "backup or re-enroll the device"
        ) from None
    problem = unsafe_mode(private_path)
    if problem:
        raise TillError(f"refusing to use a key others can read: {problem}")
    try:
        return SigningKey(bytes.fromhex(text))
    except (ValueError, TypeError):
        raise TillError(
            f"{private_path} is not a valid Ed25519 seed; restore it from the device's backup"
        ) from None


def load_verify_key(value: str | Path) -> VerifyKey:
    """A public key from 64 hex characters or from a file holding them."""
    text = str(value).strip()
    if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
        from appliance.boundedio import KEY_FILE_LIMIT, TooLarge, read_stream

        try:
            with open(value, "rb") as f:
                text = read_stream(f, KEY_FILE_LIMIT, f"key file {value}").decode("ascii").strip()
        except (OSError, UnicodeDecodeError, TooLarge):
            raise TillError(
                f"{value!r} is neither a 64-hex-digit public key nor a readable "
                "key file; pass the device's public key"
            ) from None
    try:
        return VerifyKey(bytes.fromhex(text))
    except (ValueError, TypeError):
        raise TillError("the public key must be 64 hex digits (32 bytes)") from None
