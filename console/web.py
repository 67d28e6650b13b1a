"""The web plumbing every route shares: the store pool, the signed-in session, the CSRF
guard, rendering, and one answer for each kind of error.

Routes are plain FastAPI functions. They take ``store`` (:func:`store`), the caller's
:class:`console.auth.Session` (:func:`signed_in`) and return either a page
(:func:`page`) or a dict (JSON). Errors are exceptions; the handlers installed by
:func:`install_error_handlers` answer ``/api/...`` with ``{"error": message}`` and pages
with the same message in HTML, each with its status (400, 401, 403, 404, 409, 413, 422, 429, 503),
so no input reaches a 500.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.exceptions import HTTPException as StarletteHTTPException

from appliance.errors import TillError
from appliance.money import format_minor
from console import csrf
from console.auth import BadLogin, RateLimited, Session
from console.auth import session as find_session
from console.errors import BadInput, BadRequest, Conflict, Missing, NeedLogin, TooLarge, Unavailable
from console.scope import OutOfScope
from edge.store import Store, is_transient

log = logging.getLogger("tillbox.console")

SESSION_COOKIE = "tillbox_session"
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))


# -- errors -------------------------------------------------------------------------------
def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def error_response(request: Request, status: int, message: str, **headers: str) -> Response:
    if _is_api(request):
        return JSONResponse({"error": message}, status_code=status, headers=headers or None)
    if status == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    session = getattr(request.state, "session", None)
    return templates.TemplateResponse(
        request,
        "error.html",
        {**base_context(request, session), "status": status, "message": message},
        status_code=status,
        headers=headers or None,
    )


def _validation_message(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "the request is not valid"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    return f"{where or 'request'}: {first.get('msg', 'not valid')}"


def install_error_handlers(app: Any) -> None:
    def handler(status: int, message: Any = None) -> Any:
        async def handle(request: Request, exc: Exception) -> Response:
            return error_response(request, status, message or str(exc) or "refused")

        return handle

    app.add_exception_handler(BadInput, handler(422))
    app.add_exception_handler(BadRequest, handler(400))
    app.add_exception_handler(Conflict, handler(409))
    app.add_exception_handler(Unavailable, handler(503))
    app.add_exception_handler(Missing, handler(404))
    app.add_exception_handler(TooLarge, handler(413))
    app.add_exception_handler(OutOfScope, handler(403))
    app.add_exception_handler(
        csrf.CsrfRefused,
        handler(
            403,
            "this form was not sent by a console page you opened (its CSRF token is missing "
            "or old); reload the page and send it again",
        ),
    )
    app.add_exception_handler(BadLogin, handler(401))
    app.add_exception_handler(NeedLogin, handler(401, "sign in first (POST /api/v1/session)"))

    async def rate_limited(request: Request, exc: RateLimited) -> Response:
        return error_response(request, 429, str(exc), **{"Retry-After": str(exc.retry_after_s)})

    app.add_exception_handler(RateLimited, rate_limited)

    async def till_error(request: Request, exc: TillError) -> Response:
        # the edge's and core's rules (a bad SKU, a key that is enrolled elsewhere) speak
        # one line with the fix: that is a refusal of the input, not a server fault
        return error_response(request, 422, str(exc))

    app.add_exception_handler(TillError, till_error)

    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request, 422, _validation_message(exc))

    app.add_exception_handler(RequestValidationError, invalid)

    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = {404: "no such page", 405: "that method is not allowed here"}.get(
            exc.status_code, str(exc.detail)
        )
        return error_response(request, exc.status_code, message)

    app.add_exception_handler(StarletteHTTPException, http_error)

    async def unexpected(request: Request, exc: Exception) -> Response:
        if is_transient(exc):
            return error_response(
                request, 503, "the region's database is unavailable right now; try again soon"
            )
        log.exception("console error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "internal error; it was logged for the admin")

    app.add_exception_handler(Exception, unexpected)


# -- the store ----------------------------------------------------------------------------
class StorePool:
    """Connections to the edge database, one per request at a time (a Store is not
    thread-safe, and FastAPI runs routes in a thread pool)."""

    def __init__(self, url: str, keep: int = 8) -> None:
        self.url = url
        self.keep = keep
        self._free: queue.LifoQueue[Store] = queue.LifoQueue()

    @contextmanager
    def store(self) -> Iterator[Store]:
        try:
            s = self._free.get_nowait()
        except queue.Empty:
            s = Store.open(self.url)
        try:
            yield s
        except BaseException:
            s.close()  # a connection that saw an error may be mid-transaction: not reused
            raise
        if self._free.qsize() < self.keep:
            self._free.put(s)
        else:
            s.close()

    def close(self) -> None:
        while True:
            try:
                self._free.get_nowait().close()
            except queue.Empty:
                return


def store(request: Request) -> Iterator[Store]:
    """FastAPI dependency: a store for this request."""
    with request.app.state.pool.store() as s:
        yield s


# -- the session and the CSRF guard -------------------------------------------------------
def current_session(request: Request, db: Store = Depends(store)) -> Session | None:
    """The caller's session from the cookie, or None; kept on request.state for errors."""
    if not hasattr(request.state, "session"):
        request.state.session = find_session(db, request.cookies.get(SESSION_COOKIE, ""))
    return request.state.session


def signed_in(session: Session | None = Depends(current_session)) -> Session:
    if session is None:
        raise NeedLogin()
    return session


# Requests that may change state without a session: signing in (their own CSRF rules).
LOGIN_PATHS = frozenset({"/login", "/api/v1/session"})


async def guard(request: Request, session: Session | None = Depends(current_session)) -> None:
    """App-wide dependency: every POST/PUT/PATCH/DELETE must carry its CSRF token."""
    if request.method in csrf.SAFE_METHODS:
        return
    path = request.url.path
    if path == "/api/v1/session" and request.method == "POST":
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise BadInput('send the sign-in as application/json: {"name", "password"}')
        return
    given = request.headers.get(csrf.HEADER)
    if given is None and not _is_api(request):
        given = await form_field(request, csrf.FORM_FIELD)
    if path == "/login":
        if not csrf.same(given, request.cookies.get(csrf.LOGIN_COOKIE)):
            raise csrf.CsrfRefused()
        return
    if session is None:
        raise NeedLogin()
    if not csrf.same(given, session.csrf):
        raise csrf.CsrfRefused()


MAX_FORM_FIELDS = 50


async def form(request: Request) -> Any:
    """The request's form, parsed once (the CSRF guard and the route share it: Starlette
    keeps the first parse); the body itself is bounded by :class:`BodyLimit`."""
    try:
        return await request.form(max_files=1, max_fields=MAX_FORM_FIELDS)
    except StarletteHTTPException as exc:
        raise BadInput(f"the form could not be read ({exc.detail}); send it again") from None


class BodyLimit:
    """ASGI middleware: no request body larger than ``limit`` bytes is read (a declared
    Content-Length over it, or a chunked body that grows past it, gets 413 at once)."""

    def __init__(self, app: Any, limit: int, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        # paths that take a bigger file (an enrollment export), by exact path
        self.larger = dict(larger or {})

    def _limit(self, scope: dict) -> int:
        return self.larger.get(scope.get("path", ""), self.limit)

    async def _refuse(self, scope: dict, send: Any) -> None:
        api = scope.get("path", "").startswith("/api/")
        message = f"the request is larger than {self._limit(scope) >> 20} MiB; send a smaller file"
        if api:
            import json

            body = json.dumps({"error": message}).encode()
            kind = b"application/json"
        else:
            body = f"<!doctype html><title>413</title><p>{message}</p>".encode()
            kind = b"text/html; charset=utf-8"
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        length = dict(scope.get("headers", ())).get(b"content-length", b"")
        if length and (not length.isdigit() or int(length) > limit):
            await self._refuse(scope, send)
            return
        seen = 0
        over = False
        refused = False

        async def limited() -> dict:
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: dict) -> None:
            nonlocal refused
            if not over:
                await send(message)
            elif not refused and message["type"] == "http.response.start":
                refused = True
                await self._refuse(scope, send)

        try:
            await self.app(scope, limited, guarded)
        except Exception:
            if not over:
                raise
        if over and not refused:
            await self._refuse(scope, send)


async def form_field(request: Request, name: str) -> str | None:
    kind = request.headers.get("content-type", "")
    if not kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return None
    value = (await form(request)).get(name)
    return value if isinstance(value, str) else None


# -- rendering ----------------------------------------------------------------------------
# Filters take what a till's event holds; a value of the wrong type shows as empty (or
# "never"), it never fails the page.
def _when(ms: int | None) -> str:
    if type(ms) is not int:
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _money(minor: int | None, currency: str = "EUR") -> str:
    if type(minor) is not int:
        return ""
    return format_minor(minor, currency if isinstance(currency, str) and currency else "EUR")


def _duration(seconds: float | None) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "unknown"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


templates.env.filters["when"] = _when
templates.env.filters["money"] = _money
templates.env.filters["duration"] = _duration


def base_context(request: Request, session: Session | None) -> dict[str, Any]:
    nav = []
    if session is not None:
        for area, label, path in request.app.state.nav:
            if session.scope.may(area):
                nav.append({"label": label, "path": path, "here": request.url.path == path})
    return {
        "session": session,
        "scope": session.scope if session else None,
        "csrf_token": session.csrf if session else "",
        "nav": nav,
    }


def page(
    request: Request,
    session: Session | None,
    template: str,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        template,
        {**base_context(request, session), **context},
        status_code=status,
    )


def csrf_input(session: Session) -> Markup:
    return Markup('<input type="hidden" name="csrf" value="{}">').format(session.csrf)


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"
