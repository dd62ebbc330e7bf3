"""Logging in to the engineer workspace: the session cookie, CSRF, roles, the rate limit,
logout, and an engineer acknowledging an alert in their own name (a served API, a real
database)."""

from __future__ import annotations

import hashlib
import uuid
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest
from pdm_rows import scored_site
from psycopg import AsyncConnection

from dashboard_api.accounts import hash_password
from dashboard_api.auth import LoginLimiter
from store.users import add_user

pytestmark = pytest.mark.infra

PASSWORD = "a long enough password"


async def _user(db: AsyncConnection[Any], role: str = "engineer") -> str:
    name = f"eng-{uuid.uuid4().hex[:8]}"
    await add_user(db, name, role, hash_password(PASSWORD))  # type: ignore[arg-type]
    return name


async def _login(http: httpx.AsyncClient, name: str, password: str = PASSWORD) -> httpx.Response:
    return await http.post("/api/v1/auth/login", json={"name": name, "password": password})


def _token(response: httpx.Response) -> tuple[str, Any]:
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(response.headers["set-cookie"])
    morsel = cookie["moldlab_session"]
    return morsel.value, morsel


def _as(token: str, csrf: str | None = None) -> dict[str, str]:
    headers = {"Cookie": f"moldlab_session={token}"}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    return headers


async def test_a_login_sets_a_locked_down_cookie_and_keeps_only_its_hash(
    api_url: str, db: AsyncConnection[Any]
) -> None:
    name = await _user(db)
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
        r = await _login(http, name.upper())
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["name"], body["role"]) == (name, "engineer")
        token, morsel = _token(r)
        assert morsel["httponly"] is True
        assert morsel["secure"] is True
        assert morsel["samesite"].lower() == "strict"
        assert morsel["path"] == "/"
        assert 11 * 3600 < int(morsel["max-age"]) <= 12 * 3600
        assert len(token) >= 40
        assert body["csrf_token"] != token
        r = await http.get("/api/v1/auth/session", headers=_as(token))
        assert r.status_code == 200
        assert r.json()["csrf_token"] == body["csrf_token"]
        for headers in ({}, _as("not-a-token"), _as("x" * 5000)):
            r = await http.get("/api/v1/auth/session", headers=headers)
            assert r.status_code == 401
    cur = await db.execute(
        "SELECT s.token_hash FROM app_session s JOIN app_user u ON u.id = s.user_id"
        " WHERE u.name = %s",
        (name,),
    )
    assert await cur.fetchall() == [(hashlib.sha256(token.encode()).digest(),)]


async def test_wrong_passwords_unknown_and_disabled_users_get_the_same_401(
    api_url: str, db: AsyncConnection[Any]
) -> None:
    name, off = await _user(db), await _user(db)
    await db.execute("UPDATE app_user SET disabled_at = now() WHERE name = %s", (off,))
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
        answers = [
            await _login(http, name, "not the password at all"),
            await _login(http, "nobody-" + name),
            await _login(http, off),
            await _login(http, "Bad Name!"),
        ]
    assert [r.status_code for r in answers] == [401] * 4
    assert len({r.json()["detail"] for r in answers}) == 1
    assert all("set-cookie" not in r.headers for r in answers)


async def test_failed_logins_are_limited_per_name_and_address(
    api_url: str, db: AsyncConnection[Any]
) -> None:
    name, other = await _user(db), await _user(db)
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
        for _ in range(5):
            assert (await _login(http, name, "guessing the password")).status_code == 401
        r = await _login(http, name)  # the right password, too late
        assert r.status_code == 429
        assert 1 <= int(r.headers["retry-after"]) <= 900
        assert "too many failed logins" in r.json()["detail"]
        assert (await _login(http, other)).status_code == 200  # another name still can


def test_the_limiter_forgets_after_its_window_and_stays_bounded() -> None:
    limiter = LoginLimiter(max_failures=2, window_s=60, max_keys=100)
    limiter.failed("10.0.0.1", "ada", now=0)
    limiter.failed("10.0.0.1", "ada", now=10)
    assert limiter.retry_after("10.0.0.1", "ada", now=11) == 49
    assert limiter.retry_after("10.0.0.2", "ada", now=11) == 0
    assert limiter.retry_after("10.0.0.1", "ada", now=61) == 0
    for i in range(8):  # one address, many names: 4 x 2 failures
        limiter.failed("10.0.0.3", f"name{i}", now=100)
    assert limiter.retry_after("10.0.0.3", "fresh-name", now=101) == 59
    for i in range(10_000):
        limiter.failed(f"10.1.{i // 256}.{i % 256}", "x", now=200)
    assert len(limiter._failures) <= 100


async def test_an_engineer_acknowledges_an_alert_with_the_csrf_token(
    api_url: str, db: AsyncConnection[Any]
) -> None:
    _site, _worn, _fine, alert_id, _t0 = await scored_site(db)
    name = await _user(db)
    path = f"/api/v1/maintenance/alerts/{alert_id}/acknowledge"
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
        r = await _login(http, name)
        token, csrf = _token(r)[0], r.json()["csrf_token"]
        assert (await http.post(path)).status_code == 401
        r = await http.post(path, headers=_as(token))
        assert r.status_code == 403
        assert "X-CSRF-Token" in r.json()["detail"]
        assert (await http.post(path, headers=_as(token, csrf + "x"))).status_code == 403
        r = await http.post(path, headers=_as(token, csrf))
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["acknowledged_by"]) == ("acknowledged", name)
        r = await http.post(path, headers=_as(token, csrf))
        assert r.status_code == 409
        assert f"already acknowledged by {name}" in r.json()["detail"]
        r = await http.post("/api/v1/maintenance/alerts/999999999/acknowledge",
                            headers=_as(token, csrf))  # fmt: skip
        assert r.status_code == 404
    cur = await db.execute("SELECT acknowledged_by FROM pdm_alert WHERE id = %s", (alert_id,))
    assert await cur.fetchone() == (name,)


async def test_logout_disabling_and_expiry_end_the_session(
    api_url: str, db: AsyncConnection[Any]
) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
        sessions = []
        for _ in range(3):
            name = await _user(db)
            r = await _login(http, name)
            sessions.append((name, _token(r)[0], r.json()["csrf_token"]))
        (_n1, t1, c1), (n2, t2, _c2), (n3, t3, _c3) = sessions
        assert (await http.post("/api/v1/auth/logout", headers=_as(t1))).status_code == 403
        r = await http.post("/api/v1/auth/logout", headers=_as(t1, c1))
        assert r.status_code == 204
        cleared = _token(r)[1]
        assert cleared.value == ""
        assert int(cleared["max-age"]) == 0
        await db.execute("UPDATE app_user SET disabled_at = now() WHERE name = %s", (n2,))
        await db.execute(
            "UPDATE app_session SET expires_at = now() - interval '1 s' WHERE user_id ="
            " (SELECT id FROM app_user WHERE name = %s)",
            (n3,),
        )
        for token in (t1, t2, t3):
            assert (await http.get("/api/v1/auth/session", headers=_as(token))).status_code == 401
