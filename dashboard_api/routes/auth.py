"""Logging in and out of the engineer workspace, and who the session is."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Annotated, cast

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from dashboard_api.accounts import PASSWORD_MAX, authenticate
from dashboard_api.auth import (
    CHALLENGE,
    COOKIE,
    CSRF_HEADER,
    NO_CSRF,
    UNAUTHORISED,
    Engineer,
    LoginLimiter,
    current_session,
    token_hash,
)
from dashboard_api.deps import Settings, Writer
from dashboard_api.problems import UNAVAILABLE, Problem
from store.sessions import Session, close_session, open_session
from store.users import Role

log = logging.getLogger("moldlab.api.auth")
router = APIRouter(tags=["auth"])


class LoginBody(BaseModel):
    name: str = Field(min_length=1, max_length=64, description="the user name")
    password: str = Field(min_length=1, max_length=PASSWORD_MAX, description="the password")


class SessionInfo(BaseModel):
    name: str = Field(description="the user logged in")
    role: Role = Field(description="engineer or admin")
    csrf_token: str = Field(
        description=f"send it in the {CSRF_HEADER} header of every request that changes "
        "something (POST)"
    )
    expires_at: datetime = Field(description="when the session ends unless renewed by a login")


def _limiter(request: Request) -> LoginLimiter:
    return cast(LoginLimiter, request.state.login_limiter)


@router.post(
    "/auth/login",
    summary="Log in to the engineer workspace",
    description="Checks the name and password of a user made with `moldlab user add`, and "
    f"sets the session cookie `{COOKIE}` (HTTP-only, SameSite=Strict, Secure unless "
    "MOLDLAB_API_COOKIE_SECURE=false). Answers the session's CSRF token. After "
    "MOLDLAB_API_LOGIN_MAX_FAILURES failed logins (5) of one name from one address within "
    "MOLDLAB_API_LOGIN_WINDOW_S (900 s), or four times that from one address, it answers 429 "
    "with Retry-After.",
    responses={
        400: {"model": Problem, "description": "the body is not JSON"},
        413: {"model": Problem, "description": "the body is longer than 16 KiB"},
        401: {"model": Problem, "description": "wrong name or password, or a disabled user"},
        429: {"model": Problem, "description": "too many failed logins: see Retry-After"},
        **UNAVAILABLE,
    },
)
async def login(
    body: LoginBody,
    request: Request,
    response: Response,
    writer: Writer,
    settings: Settings,
    limiter: Annotated[LoginLimiter, Depends(_limiter)],
) -> SessionInfo:
    address = request.client.host if request.client else "unknown"
    name = body.name.strip().lower()
    wait = limiter.retry_after(address, name)
    if wait:
        raise HTTPException(
            429,
            f"too many failed logins: try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    async with writer.connection() as conn:
        user = await authenticate(conn, body.name, body.password)
        if user is None:
            limiter.failed(address, name)
            log.info("login refused: %r from %s", name[:64], address)
            raise HTTPException(401, "wrong name or password, or the user is disabled")
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        lasts = timedelta(hours=settings.api_session_hours)
        expires_at = await open_session(conn, token_hash(token), user.id, csrf, lasts)
    limiter.succeeded(address, name)
    response.set_cookie(
        COOKIE, token, max_age=int(lasts.total_seconds()), path="/", httponly=True,
        secure=settings.api_cookie_secure, samesite="strict",
    )  # fmt: skip
    log.info("login: %s (%s) from %s", user.name, user.role, address)
    return SessionInfo(name=user.name, role=user.role, csrf_token=csrf, expires_at=expires_at)


@router.get(
    "/auth/session",
    summary="Who is logged in",
    description="The session of the cookie: the user, their role and the CSRF token (for a "
    "page that was reloaded). 401 without a live session.",
    responses={**UNAUTHORISED, **UNAVAILABLE},
)
async def get_session(
    session: Annotated[Session | None, Depends(current_session)],
) -> SessionInfo:
    if session is None:
        raise HTTPException(401, "not logged in", headers=CHALLENGE)
    user = session.user
    return SessionInfo(
        name=user.name, role=user.role, csrf_token=session.csrf_token, expires_at=session.expires_at
    )


@router.post(
    "/auth/logout",
    status_code=204,
    summary="Log out",
    description=f"Ends the session and clears its cookie; needs the {CSRF_HEADER} header.",
    responses={**UNAUTHORISED, **NO_CSRF, **UNAVAILABLE},
)
async def logout(user: Engineer, request: Request, writer: Writer) -> Response:
    async with writer.connection() as conn:
        await close_session(conn, token_hash(request.cookies[COOKIE]))
    log.info("logout: %s", user.name)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
