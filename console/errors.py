"""The refusals the console's routes raise; :mod:`console.web` answers each with its status
(JSON ``{"error": message}`` under /api/, the same message in a page elsewhere)."""

from __future__ import annotations


class BadInput(Exception):
    """A form field or query parameter that is wrong: 422, with what to type instead."""


class Missing(Exception):
    """No such receipt, user, device (within the caller's scope): 404."""


class TooLarge(Exception):
    """An upload over its limit: 413."""


class NeedLogin(Exception):
    """No live session: 401 for the API, a redirect to the sign-in page for pages."""
