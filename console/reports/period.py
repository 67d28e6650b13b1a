"""The period a report covers: a day range, a month, or an event (optionally within days).

Days are UTC calendar days of the till's wall clock, written ``YYYY-MM-DD``, as the
rollup tables key them; a range includes both ends. Every parser here raises
:class:`ReportInputError` with one line that says what to send instead, so that no
input reaches the database unchecked.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

from appliance.errors import TillError
from appliance.identifiers import IDENTIFIER_RULE, is_identifier, shown

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_MONTH = re.compile(r"\d{4}-\d{2}")
# A report over more than this is a mistake (or a request made to load the server).
MAX_DAYS = 366 * 5


class ReportInputError(TillError):
    """A parameter of a report is malformed: the message says what to send (HTTP 400)."""


def parse_day(value: object, what: str = "day") -> str:
    """``value`` when it is a real calendar day ``YYYY-MM-DD``."""
    if not isinstance(value, str) or not _DAY.fullmatch(value):
        raise ReportInputError(f"{what} must be a day YYYY-MM-DD, got {shown(value)}")
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise ReportInputError(f"{what} {value} is not a calendar day; give YYYY-MM-DD") from None
    return value


def check_ident(value: object, what: str) -> str:
    """A tenant, tax profile or event id, checked against the product's identifier rule."""
    if not is_identifier(value):
        raise ReportInputError(f"{what} must be {IDENTIFIER_RULE}, got {shown(value)}")
    assert isinstance(value, str)
    return value


def day_of_ms(wall_ms: int) -> str:
    """The UTC day of a wall-clock time in milliseconds (the rollups' ``day``)."""
    return dt.datetime.fromtimestamp(wall_ms / 1000, dt.UTC).date().isoformat()


@dataclass(frozen=True)
class Period:
    """Days ``start``..``end`` (inclusive), optionally only the sales of one event."""

    start: str
    end: str
    event_id: str | None = None

    def __post_init__(self) -> None:
        parse_day(self.start, "from")
        parse_day(self.end, "to")
        if self.start > self.end:
            raise ReportInputError(f"from {self.start} is after to {self.end}; swap them")
        days = (dt.date.fromisoformat(self.end) - dt.date.fromisoformat(self.start)).days + 1
        if days > MAX_DAYS:
            raise ReportInputError(
                f"{days} days is more than the {MAX_DAYS} one report covers; ask for less"
            )
        if self.event_id is not None:
            check_ident(self.event_id, "event")

    @classmethod
    def days(cls, start: object, end: object, event_id: object = None) -> Period:
        """From request parameters: ``from``, ``to`` and an optional event."""
        return cls(
            parse_day(start, "from"),
            parse_day(end, "to"),
            None if event_id in (None, "") else check_ident(event_id, "event"),
        )

    @classmethod
    def month(cls, value: object, event_id: object = None) -> Period:
        """A calendar month ``YYYY-MM``."""
        if not isinstance(value, str) or not _MONTH.fullmatch(value):
            raise ReportInputError(f"month must be YYYY-MM, got {shown(value)}")
        year, month = int(value[:4]), int(value[5:])
        if not 1 <= month <= 12 or year < 1:
            raise ReportInputError(f"month {value} does not exist; give YYYY-MM")
        last = calendar.monthrange(year, month)[1]
        return cls.days(f"{value}-01", f"{value}-{last:02d}", event_id)

    def overlaps(self, start: str, end: str) -> bool:
        return self.start <= end and start <= self.end

    def label(self) -> str:
        days = self.start if self.start == self.end else f"{self.start}..{self.end}"
        return days if self.event_id is None else f"{days}, event {self.event_id}"
