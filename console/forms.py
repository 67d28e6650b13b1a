"""Checking what a person typed (form fields and query parameters), one clear message each.

Pages and the JSON API take the same parameters and check them here, so the same wrong
input gets the same one-line answer (:class:`console.errors.BadInput`, 422) on both.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from appliance.formats.canonical import MAX_SAFE_INT
from appliance.formats.telemetry import VERSION
from appliance.identifiers import IDENTIFIER_RULE, is_identifier
from console.errors import BadInput

MAX_PERIOD_DAYS = 366
SHORT_CODE = re.compile(r"^[A-Z2-7]{5}-[A-Z2-7]{5}$")


def today() -> date:
    return datetime.now(UTC).date()


def day(text: str | None, what: str) -> date | None:
    if text is None or text == "":
        return None
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{what} must be a date written YYYY-MM-DD, like 2026-07-14") from None


def period(start: str | None, end: str | None, default_days: int = 7) -> tuple[date, date]:
    """(first day, last day), both included; the last week when neither is given."""
    last = day(end, "to") or today()
    first = day(start, "from") or last - timedelta(days=default_days - 1)
    if first > last:
        raise BadInput("from must be on or before to")
    if (last - first).days >= MAX_PERIOD_DAYS:
        raise BadInput(f"a period is at most {MAX_PERIOD_DAYS} days; choose a shorter one")
    return first, last


def day_ms(d: date) -> int:
    """Milliseconds since the epoch at the start of the UTC day ``d``."""
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)


def ident(text: str | None, what: str, required: bool = False) -> str | None:
    if text is None or text == "":
        if required:
            raise BadInput(f"{what} is missing; give one")
        return None
    if not is_identifier(text):
        raise BadInput(f"{what} must be {IDENTIFIER_RULE}")
    return text


def version(text: str | None, what: str = "version") -> str | None:
    """A software version as tills report it (``2.1.0``); None when not given."""
    if text is None or text == "":
        return None
    if VERSION.fullmatch(text) is None:
        raise BadInput(f"{what} must be a version like 2.1.0 (letters, digits and . + _ -)")
    return text


def whole(
    text: str | int | None, what: str, lo: int = -MAX_SAFE_INT, hi: int = MAX_SAFE_INT
) -> int:
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        raw = (text or "").strip() if isinstance(text, str) else ""
        if not re.fullmatch(r"-?[0-9]{1,16}", raw):
            raise BadInput(f"{what} must be a whole number")
        value = int(raw)
    if not lo <= value <= hi:
        raise BadInput(f"{what} must be between {lo} and {hi}")
    return value


def choice(text: str | None, what: str, options: tuple[str, ...] | list[str], default: str) -> str:
    if text is None or text == "":
        return default
    if text not in options:
        raise BadInput(f"{what} must be one of {', '.join(options)}")
    return text


def note(text: str | None, what: str = "note", limit: int = 500) -> str:
    value = (text or "").strip()
    if not value:
        raise BadInput(f"{what} is missing; say why (for example: counted at close)")
    if len(value) > limit:
        raise BadInput(f"{what} is longer than {limit} characters; shorten it")
    if any(ord(c) < 32 and c not in "\t" for c in value):
        raise BadInput(f"{what} must be one line of text")
    return value


def receipt_query(text: str | None) -> tuple[str, int | str | None]:
    """What a receipt search asks for: ("number", n), ("code", CODE) or ("", None)."""
    q = (text or "").strip()
    if not q:
        return "", None
    if re.fullmatch(r"[0-9]{1,15}", q):
        return "number", int(q)
    code = q.upper().replace(" ", "")
    if len(code) == 10 and "-" not in code:
        code = f"{code[:5]}-{code[5:]}"
    if SHORT_CODE.match(code):
        return "code", code
    raise BadInput(
        "search by receipt number (digits, like 42) or by the code printed under the QR "
        "(like OT72J-ZPI3E)"
    )
