"""Security headers on every answer: each route of the OpenAPI document, the visitor page and
its files, errors; the OpenAPI page's own policy; login answers never cached."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from dashboard_api import ApiSettings, create_app
from dashboard_api.security import CSP, DOCS_CSP

pytestmark = pytest.mark.infra


def _paths() -> list[tuple[str, str]]:
    spec = create_app(ApiSettings(database_url="postgresql://unused@127.0.0.1:1/none")).openapi()
    routes = []
    for path, ops in spec["paths"].items():
        filled = re.sub(r"\{[a-z_]+\}", "x1", path)  # any value: the answer may be 4xx
        routes += [(method.upper(), filled) for method in ops]
    return routes


def _check(r: httpx.Response, csp: str = CSP) -> None:
    where = f"{r.request.method} {r.request.url.path} -> {r.status_code}"
    assert r.headers["content-security-policy"] == csp, where
    assert r.headers["x-content-type-options"] == "nosniff", where
    assert r.headers["x-frame-options"] == "DENY", where
    assert r.headers["referrer-policy"] == "no-referrer", where
    assert "camera=()" in r.headers["permissions-policy"], where


def test_the_policy_has_no_inline_script_and_no_framing() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CSP.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in CSP
    assert "http" not in CSP  # nothing from elsewhere


async def test_every_answer_carries_the_headers(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
        answers = [await http.request(method, path) for method, path in _paths()]
        answers += [
            await http.get("/"),
            await http.get("/login"),
            await http.get("/engineer"),
            await http.get("/static/app.js"),
            await http.get("/static/style.css"),
            await http.get("/static/nothing-here.js"),
            await http.get("/no/such/page"),
            await http.get("/api/v1/machines", params={"limit": 0}),
            await http.get("/openapi.json"),
        ]
        for r in answers:
            _check(r)
        assert {r.status_code for r in answers} >= {200, 401, 404, 422}
        session = await http.get("/api/v1/auth/session")
        assert session.headers["cache-control"] == "no-store"
        docs = await http.get("/docs")
        _check(docs, DOCS_CSP)
    kiosk, login, engineer = answers[-9:-6]
    assert '<script src="/static/kiosk.js"' in kiosk.text
    assert engineer.status_code == 303  # no session: to the login page first
    assert engineer.headers["location"] == "/login?next=/engineer"
    for page in (kiosk, login, docs):
        assert not re.search(r"<script(?![^>]*\bsrc=)", page.text), "an inline script"
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", page.text), "inline style or handler"
        assert "http" not in page.text.replace("http-equiv", ""), "a file from elsewhere"


async def test_a_body_must_be_short_and_say_its_length(api_url: str) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "ada", '
        yield b'"password": "x"}'

    async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
        huge = await http.post(
            "/api/v1/auth/login", content=b'{"name": "' + b"a" * 10_000_000 + b'"}',
            headers={"content-type": "application/json"},
        )  # fmt: skip
        chunked = await http.post(
            "/api/v1/auth/login", content=chunks(), headers={"content-type": "application/json"}
        )
        small = await http.post("/api/v1/auth/login", json={"name": "ada", "password": "x"})
    assert huge.status_code == 413
    assert huge.json() == {"detail": "the body is longer than 16384 bytes"}
    assert chunked.status_code == 411
    assert small.status_code == 401
    for r in (huge, chunked, small):
        _check(r)
