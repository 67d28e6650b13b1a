"""The refusals the console's routes raise; :mod:`console.web` answers each with its status
(JSON ``{"error": message}`` under /api/, the same message in a page elsewhere)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class BadInput(Exception):
    """A form field or query parameter that is wrong: 422, with what to type instead."""


class BadRequest(Exception):
    """A report parameter that is malformed (the reports' ReportInputError): 400."""


class Conflict(Exception):
    """Well-formed, but a rule forbids it now (a period already filed, not over yet): 409."""


class Unavailable(Exception):
    """The console was started without what this needs (the region key, a broker): 503."""


class Missing(Exception):
    """No such receipt, user, device (within the caller's scope): 404."""


class TooLarge(Exception):
    """An upload over its limit: 413."""


class NeedLogin(Exception):
    """No live session: 401 for the API, a redirect to the sign-in page for pages."""


@contextmanager
def from_reports() -> Iterator[None]:
    """The report library's refusals as the console's: a malformed parameter
    (ReportInputError) 400, a rule (RuleViolation: already filed, not over yet) 409, an
    unknown filing (NotFound) 404. OutOfScope passes through (403)."""
    from appliance.errors import NotFound, RuleViolation
    from console.reports.period import ReportInputError

    try:
        yield
    except ReportInputError as exc:
        raise BadRequest(str(exc)) from None
    except RuleViolation as exc:
        raise Conflict(str(exc)) from None
    except NotFound as exc:
        raise Missing(str(exc)) from None
