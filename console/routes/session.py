"""Signing in and out: the sign-in page and its form, and ``/api/v1/session`` for scripts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from console import audit, auth, csrf
from console.auth import BadLogin, RateLimited, Session
from console.errors import BadInput
from console.web import (
    SESSION_COOKIE,
    client_of,
    current_session,
    page,
    signed_in,
    store,
)
from edge.store import Store

router = APIRouter()
NAV: list[tuple[str, str, str]] = []


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=request.app.state.secure_cookie,
        httponly=True,
        samesite="strict",
    )


def _safe_next(target: str | None) -> str:
    """Only a path of this console (never ``//host`` or ``https://...``: no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.get("/login", include_in_schema=False)
def login_page(
    request: Request,
    next: str | None = None,
    session: Session | None = Depends(current_session),
) -> Response:
    token = request.cookies.get(csrf.LOGIN_COOKIE) or csrf.new_token()
    response = page(
        request, session, "login.html", login_csrf=token, next=_safe_next(next), error=""
    )
    _set_cookie(request, response, csrf.LOGIN_COOKIE, token, 3600)
    return response


def _sign_in(db: Store, name: str, password: str, client: str) -> Session:
    session = auth.login(db, name, password, client)
    audit.record(db, session.scope, "session.login", session.scope.user, client=client)
    return session


@router.post("/login", include_in_schema=False)
async def login_form(
    request: Request,
    name: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
    db: Store = Depends(store),
) -> Response:
    token = request.cookies.get(csrf.LOGIN_COOKIE, "")
    try:
        session = await run_in_threadpool(_sign_in, db, name, password, client_of(request))
    except (BadLogin, RateLimited) as exc:
        status = 429 if isinstance(exc, RateLimited) else 401
        return page(
            request,
            None,
            "login.html",
            status=status,
            login_csrf=token,
            next=_safe_next(next),
            error=str(exc),
            name=name,
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    _set_cookie(request, response, SESSION_COOKIE, session.token, auth.SESSION_TTL_MS // 1000)
    return response


@router.post("/logout", include_in_schema=False)
def logout_form(
    request: Request, session: Session = Depends(signed_in), db: Store = Depends(store)
) -> Response:
    auth.logout(db, session.token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- the API ------------------------------------------------------------------------------
class Credentials(BaseModel):
    name: str = Field(max_length=64)
    password: str = Field(max_length=auth.PASSWORD_MAX)


class SessionOut(BaseModel):
    user: str
    role: str
    tenant: str | None
    events: list[str]
    stalls: list[str]
    csrf_token: str = Field(description="send it as X-CSRF-Token with every POST or DELETE")


def _session_out(session: Session) -> dict[str, Any]:
    s = session.scope
    return {
        "user": s.user,
        "role": s.role,
        "tenant": s.tenant,
        "events": sorted(s.events),
        "stalls": sorted(s.stalls),
        "csrf_token": session.csrf,
    }


@router.post(
    "/api/v1/session",
    response_model=SessionOut,
    responses={401: {"description": "wrong name or password"}, 429: {"description": "wait"}},
)
def create_session(
    credentials: Credentials, request: Request, db: Store = Depends(store)
) -> Response:
    """Sign in: sets the session cookie (Secure, HttpOnly, SameSite=Strict). A wrong name or
    password gets 401; too many failures from one place get 429."""
    if not credentials.name:
        raise BadInput("name is missing")
    session = _sign_in(db, credentials.name, credentials.password, client_of(request))
    from fastapi.responses import JSONResponse

    response = JSONResponse(_session_out(session))
    _set_cookie(request, response, SESSION_COOKIE, session.token, auth.SESSION_TTL_MS // 1000)
    return response


@router.get("/api/v1/session", response_model=SessionOut)
def read_session(session: Session = Depends(signed_in)) -> dict[str, Any]:
    """Who is signed in (and the CSRF token to send with changes)."""
    return _session_out(session)


@router.delete("/api/v1/session")
def delete_session(session: Session = Depends(signed_in), db: Store = Depends(store)) -> Response:
    """Sign out (needs the X-CSRF-Token header)."""
    from fastapi.responses import JSONResponse

    auth.logout(db, session.token)
    response = JSONResponse({"signed_out": True})
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
