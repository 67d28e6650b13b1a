"""Canonical JSON bytes: the one byte form that gets hashed and signed.

The form is RFC 8785 (JCS) restricted so that a plain JSON library reproduces
it: object keys are ASCII, numbers are integers within +/-(2**53 - 1), and no
floats anywhere (money is integer minor units). Then JCS reduces to:
keys sorted, no insignificant whitespace, UTF-8, non-ASCII characters written
as themselves, control characters escaped as ``\\n``-style short forms or
``\\u00xx``. See docs/formats.md, "Canonical JSON".
"""

from __future__ import annotations

import json
from typing import Any

MAX_SAFE_INT = 2**53 - 1

_encoder = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
)


class CanonicalFormError(ValueError):
    """The value cannot be put in canonical form (a float, a huge int, a non-ASCII key)."""


def _check(value: Any, path: str) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            raise CanonicalFormError(f"{path}: integer {value} is outside +/-(2**53-1)")
        return
    if isinstance(value, float):
        raise CanonicalFormError(f"{path}: floats are not allowed; use integer minor units")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise CanonicalFormError(f"{path}: keys must be ASCII strings, got {key!r}")
            _check(item, f"{path}.{key}")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]")
        return
    raise CanonicalFormError(f"{path}: {type(value).__name__} is not a JSON value")


def canonical_bytes(value: Any) -> bytes:
    """Return the canonical UTF-8 JSON bytes of ``value``; raise CanonicalFormError."""
    _check(value, "$")
    return _encoder.encode(value).encode("utf-8")


def canonical_text(value: Any) -> str:
    """Canonical form as ``str`` (what the log stores in its ``payload`` column)."""
    return canonical_bytes(value).decode("utf-8")
