"""The one rule for the names a till is known by: device ids, tenants and SKUs.

They go into MQTT topics (``tillbox/v1/{tenant}/{device}/seg``), the ASCII receipt
QR payload and the ``tillbox sale --item SKU:QTY`` argument, so they are plain
ASCII with no topic wildcards (``+`` ``#``), no level separator (``/``), no ``:``
and no ``*`` (the receipt payload's separator). docs/formats.md names the same set.
"""

from __future__ import annotations

import re

from appliance.errors import TillError

IDENTIFIER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
IDENTIFIER_RULE = "a string of A-Z a-z 0-9 - _ (1-64 chars, starting with a letter or digit)"


def is_identifier(value: object) -> bool:
    """True for a text that is a valid device id, tenant or SKU."""
    return isinstance(value, str) and IDENTIFIER_RE.fullmatch(value) is not None


def shown(value: object, limit: int = 40) -> str:
    """A bad value as an error message shows it: repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_identifier(value: object, what: str) -> str:
    """``value`` when it follows the rule, else a one-line TillError naming ``what``."""
    if not is_identifier(value):
        raise TillError(f"{what} must be {IDENTIFIER_RULE}, got {shown(value)}")
    assert isinstance(value, str)
    return value


# tillbox/v1/<tenant>/region/# is the tenant's broadcast tree (the region's signed
# updates): a till of that name would publish into it and read every other till's
# messages there, so no device may be called so, from init to the broker's logins.
RESERVED_DEVICE_IDS = frozenset({"region"})


def check_device_id(value: object, what: str = "device id") -> str:
    """``value`` when it may name a device (the identifier rule, and not reserved)."""
    device_id = check_identifier(value, what)
    if device_id in RESERVED_DEVICE_IDS:
        raise TillError(
            f"device id {device_id!r} is reserved for the region's topics; choose another"
        )
    return device_id
