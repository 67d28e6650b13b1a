"""The technician PIN: stored as a salted PBKDF2 hash in ``[ui] technician_pin_hash``.

The core checks it when a technician overrides a failed self-test (the kiosk's
pin pad and ``tillbox selftest override``). A PIN is short, so the hash only slows
guessing; every override is recorded in the log, which is what an inspector relies on.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from appliance.datadir import Config
from appliance.errors import TillError

SCHEME = "pbkdf2-sha256"
ITERATIONS = 100_000


def hash_pin(pin: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """``pbkdf2-sha256$ITER$SALTHEX$HASHHEX`` for a 4-12 digit PIN."""
    check_pin_shape(pin)
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode("ascii"), salt, iterations)
    return f"{SCHEME}${iterations}${salt.hex()}${digest.hex()}"


def check_pin_shape(pin: str) -> None:
    if not (pin.isdigit() and pin.isascii() and 4 <= len(pin) <= 12):
        raise TillError("the technician PIN must be 4 to 12 digits; type it again")


def verify_pin(pin: str, stored: str) -> bool:
    """True when ``pin`` matches ``stored``; False for a wrong PIN or no/odd stored hash."""
    try:
        scheme, iterations, salt_hex, digest_hex = stored.split("$")
        if scheme != SCHEME:
            return False
        digest = hashlib.pbkdf2_hmac(
            "sha256", pin.encode("ascii", "replace"), bytes.fromhex(salt_hex), int(iterations)
        )
    except (ValueError, AttributeError):
        return False
    return hmac.compare_digest(digest.hex(), digest_hex)


def configured_hash(config: Config) -> str:
    """The stored hash from ``[ui] technician_pin_hash`` ("" when no PIN is set)."""
    return str(config.section("ui").get("technician_pin_hash", "") or "")
