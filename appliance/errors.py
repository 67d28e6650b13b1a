"""Errors a person can act on.

Every error the till raises carries a one-line message that says what went
wrong *and what to do*. The CLI prints it as is; the kiosk shows it as is.
"""


class TillError(Exception):
    """Base class: ``str(err)`` is a complete one-line instruction for a person."""

    exit_code = 1


class NotFound(TillError):
    """An id, SKU or receipt that the till does not know."""


class RuleViolation(TillError):
    """The request is well-formed but a business rule forbids it."""


class StorageError(TillError):
    """The log cannot be read or written (disk full, read-only, corrupt, foreign)."""

    exit_code = 3


class IntegrityError(TillError):
    """The log's hash chain or append-only guarantee is broken."""

    exit_code = 4
