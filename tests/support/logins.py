"""A logged-in engineer (or admin) for tests of the API: a user and a session, written
straight to the database, and the Cookie header that carries the session."""

from __future__ import annotations

import secrets
import uuid

import psycopg

from dashboard_api.accounts import hash_password
from dashboard_api.auth import COOKIE, CSRF_HEADER, token_hash


def login_headers(database_url: str, role: str = "engineer", csrf: bool = False) -> dict[str, str]:
    """Headers of a new user of `role` with a live session (and its CSRF token if `csrf`)."""
    name = f"t-{role}-{uuid.uuid4().hex[:8]}"
    token, csrf_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO app_user (name, role, password_hash) VALUES (%s, %s, %s) RETURNING id",
            (name, role, hash_password(f"{name} password")),
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO app_session (token_hash, user_id, csrf_token, expires_at)"
            " VALUES (%s, %s, %s, now() + interval '1 hour')",
            (token_hash(token), row[0], csrf_token),
        )
    headers = {"Cookie": f"{COOKIE}={token}"}
    if csrf:
        headers[CSRF_HEADER] = csrf_token
    return headers
