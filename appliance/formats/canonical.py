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


class NotJSONError(CanonicalFormError):
    """The bytes are not JSON at all (a syntax error, bad UTF-8, nesting too deep)."""


def _fits(value: Any) -> bool:
    """Fast walk (no path bookkeeping): True when ``value`` is in the canonical subset."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -MAX_SAFE_INT <= value <= MAX_SAFE_INT
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii() or not _fits(item):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_fits(item) for item in value)
    return False  # floats, subclasses, anything else: let _explain decide and say why


def _explain(value: Any, path: str) -> None:
    """Slow walk that raises with the path of the first offending value."""
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
            _explain(item, f"{path}.{key}")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _explain(item, f"{path}[{index}]")
        return
    raise CanonicalFormError(f"{path}: {type(value).__name__} is not a JSON value")


def _check(value: Any) -> None:
    if not _fits(value):
        _explain(value, "$")


def canonical_bytes(value: Any) -> bytes:
    """Return the canonical UTF-8 JSON bytes of ``value``; raise CanonicalFormError."""
    _check(value)
    return _encoder.encode(value).encode("utf-8")


def canonical_text(value: Any) -> str:
    """Canonical form as ``str`` (what the log stores in its ``payload`` column)."""
    return canonical_bytes(value).decode("utf-8")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _v in pairs if k in seen or seen.add(k))
        raise CanonicalFormError(f"duplicate key {dup!r}")
    return obj


def _no_float(text: str) -> Any:
    raise CanonicalFormError(f"number {text} is not an integer; use integer minor units")


def _no_constant(text: str) -> Any:
    raise CanonicalFormError(f"{text} is not a JSON value")


_plain_decoder = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_constant)
_strict_decoder = json.JSONDecoder(
    object_pairs_hook=_unique_object, parse_float=_no_float, parse_constant=_no_constant
)


def parse_canonical(data: bytes) -> Any:
    """Parse ``data`` and insist it is exactly the canonical bytes of what it holds.

    The one strict reader for hashed or signed JSON arriving from outside (the
    edge's event lines): it refuses duplicate keys, non-integer numbers, integers
    outside +/-(2**53-1), non-ASCII keys, and any other spelling of the same value
    (spaces, key order, escapes), by re-encoding and comparing bytes. Raises
    CanonicalFormError with a short reason (NotJSONError when it is not JSON at
    all); never anything else for bad input.

    On the edge's hot path: a duplicate key cannot survive the byte comparison (the
    parsed object has one member fewer), so the pair-checking parser runs only to
    name it. (Skipping the subset walk with a regex pre-check was measured: slower.)
    """
    try:
        text = data.decode("utf-8")
        value = _plain_decoder.decode(text)
    except CanonicalFormError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise NotJSONError(f"not JSON ({type(exc).__name__})") from None
    try:
        _check(value)
        same = _encoder.encode(value) == text
    except RecursionError:  # nesting the parser took but these walks cannot
        raise NotJSONError("nested too deeply") from None
    if not same:
        _strict_decoder.decode(text)  # raises for a duplicate key
        raise CanonicalFormError("not in canonical form (spacing, key order or escapes)")
    return value


def canonical_text_checked(value: Any) -> str:
    """Canonical form of a value known to be inside an already-checked payload.

    Skips the subset check (it walks the whole value); used on the sale path for
    the envelope and the projections' copies of lines, whose payload was checked once.
    """
    return _encoder.encode(value)
