"""CSRF protection: every state-changing request carries a token a foreign page cannot know.

* A signed-in session has its own random token (``console_sessions.csrf``). Every HTML
  form posts it in the hidden field ``csrf``; a JSON request sends it in the
  ``X-CSRF-Token`` header (a cross-site page cannot set a custom header without a CORS
  preflight, which the console never grants). :func:`guard` runs for EVERY route of the
  app (it is an app-wide dependency), so a route added later is covered without asking.
* Signing in has no session yet. The sign-in form uses a double-submit token: the form
  page sets it in a SameSite=Strict cookie and in the form, and the POST must bring
  both, equal. The JSON sign-in (``POST /api/v1/session``) must be ``application/json``,
  which a cross-site form cannot send.

Session cookies are SameSite=Strict as well; the token is the second lock.
"""

from __future__ import annotations

import hmac
import secrets

FORM_FIELD = "csrf"
HEADER = "x-csrf-token"
LOGIN_COOKIE = "tillbox_login_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfRefused(Exception):
    """A state-changing request without the right token: 403."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same(given: str | None, expected: str | None) -> bool:
    """Constant-time equality of two tokens; a missing one never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))
