"""Who is asking: the session cookie, the CSRF header, roles, and the login rate limit.

A login opens a session: a random token in an HTTP-only, SameSite=Strict cookie (Secure
unless MOLDLAB_API_COOKIE_SECURE=false), of which the database keeps only the SHA-256. Every
request that changes something must also send the session's CSRF token in X-CSRF-Token
(returned at login and by GET /api/v1/auth/session, which a page on another site cannot
read). Failed logins are limited per client address and per address and name.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from psycopg import AsyncConnection
from starlette.requests import HTTPConnection

from dashboard_api.deps import Pool
from dashboard_api.problems import Problem
from store.sessions import Session, find_session
from store.users import Role, User

COOKIE = "moldlab_session"
CSRF_HEADER = "X-CSRF-Token"
_TOKEN_MAX = 128  # a cookie longer than any token we make is not one of ours
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_RANK: dict[Role, int] = {"engineer": 1, "admin": 2}
CHALLENGE = {"WWW-Authenticate": 'Cookie realm="moldlab"'}
# The answers of a route behind a login, for its OpenAPI document.
UNAUTHORISED: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "not logged in, or the session expired"}
}
NO_CSRF: dict[int | str, dict[str, Any]] = {
    403: {"model": Problem, "description": f"missing or wrong {CSRF_HEADER} header"}
}


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class LoginLimiter:
    """Failed logins in the last `window_s`: at most `max_failures` per address and name, and
    four times that per address (one address trying many names). Bounded in memory: the
    oldest keys go first beyond `max_keys`. Per API process."""

    def __init__(self, max_failures: int, window_s: float, max_keys: int = 10_000) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._max_keys = max_keys
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def retry_after(self, address: str, name: str, now: float | None = None) -> int:
        """Seconds to wait before this address may try this name again; 0: now."""
        now = time.monotonic() if now is None else now
        waits = [
            self._wait((address, name), self.max_failures, now),
            self._wait((address, ""), 4 * self.max_failures, now),
        ]
        return max(waits)

    def failed(self, address: str, name: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for key in ((address, name), (address, "")):
            times = self._failures.pop(key, None) or deque()
            times.append(now)
            while len(times) > 4 * self.max_failures:
                times.popleft()
            self._failures[key] = times  # the newest last: eviction takes the oldest
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, address: str, name: str) -> None:
        self._failures.pop((address, name), None)

    def _wait(self, key: tuple[str, str], limit: int, now: float) -> int:
        times = self._failures.get(key)
        if not times:
            return 0
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if len(times) < limit:
            return 0
        return max(1, math.ceil(times[-limit] + self.window_s - now))


def _token(request: HTTPConnection) -> str | None:
    """The session token of the request's cookie, if it can be one of ours."""
    token = request.cookies.get(COOKIE)
    return token if token and len(token) <= _TOKEN_MAX else None


async def session_of(request: HTTPConnection, conn: AsyncConnection[Any]) -> Session | None:
    """The live session of the request's (or WebSocket's) cookie, or None (no cookie,
    expired, user disabled)."""
    token = _token(request)
    return None if token is None else await find_session(conn, token_hash(token))


async def current_session(request: Request, pool: Pool) -> Session | None:
    """session_of, as a dependency; no cookie asks nothing of the database."""
    if _token(request) is None:
        return None
    async with pool.connection() as conn:
        return await session_of(request, conn)


def require(role: Role) -> Callable[..., Coroutine[Any, Any, User]]:
    """A dependency: the logged-in user, at least `role`; for a request that changes
    something, also the session's CSRF token in X-CSRF-Token. 401 without a session, 403
    when the role or the CSRF token falls short."""

    async def user(
        request: Request, session: Annotated[Session | None, Depends(current_session)]
    ) -> User:
        if session is None:
            raise HTTPException(
                401,
                "log in first (POST /api/v1/auth/login): no session, or it expired",
                headers=CHALLENGE,
            )
        if _RANK[session.user.role] < _RANK[role]:
            raise HTTPException(403, f"this needs the {role} role; {session.user.name} is "
                                     f"{session.user.role}")  # fmt: skip
        if request.method not in _SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
                raise HTTPException(
                    403,
                    f"missing or wrong {CSRF_HEADER} header: send the csrf_token that "
                    "POST /api/v1/auth/login or GET /api/v1/auth/session returned",
                )
        return session.user

    return user


Engineer = Annotated[User, Depends(require("engineer"))]

# For a router or a route only engineers and admins may read: the check, and its answers in
# the OpenAPI document.
ENGINEER_ONLY: dict[str, Any] = {
    "dependencies": [Depends(require("engineer"))],
    "responses": UNAUTHORISED,
}
