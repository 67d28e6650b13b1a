"""Who is signed in: users with argon2 password hashes, sessions, login rate limiting.

* Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106 low-memory); a hash
  made with older parameters is re-hashed at the next good sign-in.
* A session is 32 random bytes in the browser's cookie; the database keeps only its
  SHA-256, so a copy of the database signs nobody in. Each session has its own CSRF token
  (:mod:`console.csrf`). Sessions end after :data:`SESSION_TTL_MS`, at sign-out, and when
  the user is disabled.
* Failed sign-ins are counted in the database (they survive a restart and are shared by
  every web process) under three keys: the name with the client, the client alone, the
  name alone. Past a key's limit within :data:`WINDOW_MS`, sign-in is refused before the
  password is even checked (:class:`RateLimited`, 429). The per-name limit is high, so a
  stranger cannot lock a merchant out from many addresses for long, but a slow guess
  across many addresses still stops.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from appliance.errors import RuleViolation
from appliance.identifiers import check_identifier
from console import tables
from console.scope import REGION_WIDE, ROLES, TENANT_ROLES, Scope
from edge.store import Store

SESSION_TTL_MS = 12 * 3600 * 1000  # a working day
WINDOW_MS = 15 * 60 * 1000
LIMITS = {"pair": 5, "client": 20, "name": 100}  # failures per window, per key kind
PASSWORD_MIN = 10
PASSWORD_MAX = 1024  # argon2 hashes anything, but a megabyte password is an attack

_hasher = PasswordHasher()
# Verifying against this when the user does not exist costs the same as a real check,
# so the time of an answer does not tell which names exist.
_DUMMY_HASH = _hasher.hash("tillbox: no such user")


class BadLogin(Exception):
    """Wrong name or password (never says which): 401."""


class RateLimited(Exception):
    """Too many failed sign-ins: 429, with the seconds to wait."""

    def __init__(self, retry_after_s: int) -> None:
        minutes = max(1, (retry_after_s + 59) // 60)
        super().__init__(
            f"too many failed sign-ins from here; wait {minutes} minute"
            f"{'s' if minutes > 1 else ''} and try again, or ask an admin"
        )
        self.retry_after_s = retry_after_s


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def check_password(password: str) -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise RuleViolation(
            f"a password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters; choose another"
        )
    return password


def add_user(
    store: Store,
    name: str,
    role: str,
    password: str,
    tenant: str | None = None,
    events: tuple[str, ...] = (),
    stalls: tuple[str, ...] = (),
    replace: bool = False,
) -> None:
    """Create a console user (``replace``: or set an existing one's role, scope and
    password anew); RuleViolation (one line, with the fix) for anything wrong."""
    check_identifier(name, "user name")
    if role not in ROLES:
        raise RuleViolation(f"role {role!r} is not one of {', '.join(ROLES)}")
    if role in TENANT_ROLES and not tenant:
        raise RuleViolation(f"a {role} belongs to one tenant; give --tenant T")
    if role in REGION_WIDE and tenant:
        raise RuleViolation(f"a {role} sees every tenant; leave --tenant out")
    if tenant:
        check_identifier(tenant, "tenant")
    for value in (*events, *stalls):
        check_identifier(value, "event or stall id")
    check_password(password)
    if not tables.insert_user(
        store, name, role, tenant or "", events, stalls, _hasher.hash(password), now_ms(), replace
    ):
        raise RuleViolation(
            f"user {name} already exists; choose another name (or --replace to reset them)"
        )


# -- rate limiting ------------------------------------------------------------------------
def _keys(name: str, client: str) -> dict[str, str]:
    name = name[:64]
    return {"pair": f"pair:{name}|{client}", "client": f"client:{client}", "name": f"name:{name}"}


def check_rate(store: Store, name: str, client: str, at_ms: int) -> None:
    keys = _keys(name, client)
    counts = tables.failures(store, list(keys.values()), at_ms - WINDOW_MS)
    for kind, key in keys.items():
        n, start = counts.get(key, (0, at_ms))
        if n >= LIMITS[kind]:
            raise RateLimited(max(1, (start + WINDOW_MS - at_ms) // 1000))


# -- signing in ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Session:
    """A signed-in browser or script: who, the token its cookie holds, its CSRF token."""

    scope: Scope
    token: str
    csrf: str


def _scope(name: str, role: str, tenant: str, events: str, stalls: str) -> Scope:
    import json

    return Scope(
        name,
        role,
        tenant or None,
        frozenset(json.loads(events)),
        frozenset(json.loads(stalls)),
    )


def login(store: Store, name: str, password: str, client: str) -> Session:
    """A new session for a right name and password; BadLogin or RateLimited otherwise."""
    at = now_ms()
    check_rate(store, name, client, at)
    row = tables.user_row(store, name) if len(password) <= PASSWORD_MAX else None
    good = False
    try:
        good = _hasher.verify(row[5] if row else _DUMMY_HASH, password[:PASSWORD_MAX])
    except (VerificationError, InvalidHashError):
        good = False
    if not good or row is None or row[6]:
        tables.count_failure(store, list(_keys(name, client).values()), at, WINDOW_MS)
        raise BadLogin("wrong name or password")
    if _hasher.check_needs_rehash(row[5]):
        tables.set_password_hash(store, name, _hasher.hash(password))
    tables.clear_failures(store, [_keys(name, client)["pair"]])
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    tables.insert_session(store, token_hash(token), name, csrf, at, at + SESSION_TTL_MS, client)
    return Session(_scope(name, row[1], row[2], row[3], row[4]), token, csrf)


def session(store: Store, token: str) -> Session | None:
    """The live session of a cookie's token, or None (unknown, expired, user disabled)."""
    if not token or len(token) > 128:
        return None
    row = tables.session_row(store, token_hash(token), now_ms())
    if row is None:
        return None
    user, csrf, role, tenant, events, stalls = row
    return Session(_scope(user, role, tenant, events, stalls), token, csrf)


def logout(store: Store, token: str) -> None:
    tables.delete_session(store, token_hash(token))
