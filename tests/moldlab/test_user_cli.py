"""`moldlab user add|list|disable|enable` and the login check behind the workspace.

Against a real PostgreSQL server, on a database of this module's own (the last-admin rule
counts every admin in it).
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from argon2 import PasswordHasher
from databases import migrated_database

from dashboard_api.accounts import authenticate
from moldlab import user_cli
from moldlab.cli import main
from moldlab.servers import create_database, drop_database
from store.users import ROLES

pytestmark = pytest.mark.infra

GOOD = "correct horse battery"


@pytest.fixture(scope="module")
def users_url(database_server_url: str) -> Iterator[str]:
    with migrated_database(database_server_url, prefix="moldlab_users") as url:
        yield url


def _name() -> str:
    return f"u{uuid.uuid4().hex[:8]}"


def _user(
    url: str, *args: str, password: str | bytes = GOOD, monkeypatch: pytest.MonkeyPatch
) -> int:
    """`moldlab user ARGS --password-stdin` with `password` on standard input."""
    raw = password if isinstance(password, bytes) else password.encode()
    stdin = io.TextIOWrapper(io.BytesIO(raw + b"\n"), encoding="utf-8")
    monkeypatch.setattr("sys.stdin", stdin)
    return main(["user", *args, "--password-stdin", "--database-url", url])


def _cli(url: str, *args: str) -> int:
    return main(["user", *args, "--database-url", url])


def _row(url: str, name: str) -> tuple[Any, ...] | None:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT role, password_hash, disabled_at, last_login_at FROM app_user WHERE name = %s",
            (name,),
        ).fetchone()


def _login(url: str, name: str, password: str) -> Any:
    async def go() -> Any:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            return await authenticate(conn, name, password)

    return asyncio.run(go())


def test_roles_in_help_are_the_tables() -> None:
    assert user_cli._ROLES == ROLES


def test_add_list_and_log_in(
    users_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = _name()
    assert _user(users_url, "add", name.upper(), "--role", "admin", monkeypatch=monkeypatch) == 0
    assert capsys.readouterr().out.strip() == f"user {name} added as admin"
    row = _row(users_url, name)  # stored lowercase: ADA and ada are one user
    assert row is not None
    role, password_hash, disabled_at, last_login_at = row
    assert (role, disabled_at, last_login_at) == ("admin", None, None)
    assert password_hash.startswith("$argon2id$")
    assert GOOD not in password_hash
    assert PasswordHasher().verify(password_hash, GOOD)

    assert _cli(users_url, "list", "--json") == 0
    listed = {u["name"]: u for u in json.loads(capsys.readouterr().out)}
    assert listed[name]["role"] == "admin"
    assert listed[name]["active"] is True
    assert listed[name]["last_login_at"] is None
    assert "password" not in json.dumps(listed[name])

    assert _login(users_url, name, "wrong password here") is None
    assert _login(users_url, "nobody-" + name, GOOD) is None
    user = _login(users_url, name.upper() + " ", GOOD)
    assert (user.name, user.role) == (name, "admin")
    row = _row(users_url, name)
    assert row is not None
    assert row[3] is not None
    assert _cli(users_url, "list") == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith(name))
    assert "admin" in line
    assert "active" in line
    assert "never" not in line


def test_a_name_is_taken_once_whatever_its_case(
    users_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = _name()
    assert _user(users_url, "add", name, monkeypatch=monkeypatch) == 0
    capsys.readouterr()
    assert _user(users_url, "add", name.upper(), monkeypatch=monkeypatch) == 1
    assert capsys.readouterr().err.strip() == (
        f"moldlab user add: a user named {name} exists already"
    )


@pytest.mark.parametrize("bad", ["", "_lead", ".hidden", "a b", "x" * 65, "ümlaut", "a/b", "a\x00"])
def test_bad_names_are_refused_with_the_rule(
    users_url: str, bad: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _user(users_url, "add", bad, monkeypatch=monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("moldlab user add: a user name is 1-64 characters")
    assert "\n" not in err


@pytest.mark.parametrize(
    ("password", "says"),
    [
        ("short", "at least 12 characters"),
        ("x" * 1025, "at most 1024 characters"),
        ("tab\tin the middle", "no control characters"),
        (b"\xff\xfe not utf-8 at all", "not valid UTF-8"),
        ("{name} and more", "must not contain the user name"),
    ],
)
def test_bad_passwords_are_refused_and_nothing_is_added(
    users_url: str,
    password: str | bytes,
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = _name()
    if isinstance(password, str):
        password = password.format(name=name)
    assert _user(users_url, "add", name, password=password, monkeypatch=monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("moldlab user add: "), err
    assert says in err, err
    assert _row(users_url, name) is None


def test_without_a_terminal_the_password_must_come_on_stdin(
    users_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(GOOD + "\n"))
    name = _name()
    assert _cli(users_url, "add", name) == 2
    assert "give --password-stdin" in capsys.readouterr().err
    assert _row(users_url, name) is None


def test_two_different_passwords_on_the_terminal_add_nothing(
    users_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = iter([GOOD, GOOD + "!"])
    monkeypatch.setattr("sys.stdin", Tty())
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    name = _name()
    assert _cli(users_url, "add", name) == 2
    assert "the two passwords differ; nothing was added" in capsys.readouterr().err
    assert _row(users_url, name) is None
    answers = iter([GOOD, GOOD])
    assert _cli(users_url, "add", name) == 0
    assert _row(users_url, name) is not None


def test_a_disabled_user_cannot_log_in_until_enabled(
    users_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = _name()
    assert _user(users_url, "add", name, monkeypatch=monkeypatch) == 0
    assert _login(users_url, name, GOOD) is not None
    assert _cli(users_url, "disable", name) == 0
    assert f"user {name} disabled" in capsys.readouterr().out
    assert _login(users_url, name, GOOD) is None
    assert _cli(users_url, "list", "--json") == 0
    listed = {u["name"]: u for u in json.loads(capsys.readouterr().out)}
    assert listed[name]["active"] is False
    assert listed[name]["disabled_at"]
    assert _cli(users_url, "enable", name) == 0
    assert _login(users_url, name, GOOD) is not None
    assert _cli(users_url, "disable", "nobody-" + name) == 1
    assert f"no user named nobody-{name}" in capsys.readouterr().err


def test_the_last_active_admin_cannot_be_disabled(
    database_server_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with migrated_database(database_server_url, prefix="moldlab_admins") as url:
        assert _user(url, "add", "root-admin", "--role", "admin", monkeypatch=monkeypatch) == 0
        assert _user(url, "add", "second", "--role", "admin", monkeypatch=monkeypatch) == 0
        assert _cli(url, "disable", "second") == 0
        capsys.readouterr()
        assert _cli(url, "disable", "root-admin") == 1
        assert "root-admin is the last active admin" in capsys.readouterr().err
        assert _login(url, "root-admin", GOOD) is not None
        assert _cli(url, "enable", "second") == 0
        assert _cli(url, "disable", "root-admin") == 0


def test_a_hash_with_older_settings_is_renewed_at_the_next_login(
    users_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _name()
    assert _user(users_url, "add", name, monkeypatch=monkeypatch) == 0
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(GOOD)
    with psycopg.connect(users_url) as conn:
        conn.execute("UPDATE app_user SET password_hash = %s WHERE name = %s", (weak, name))
    assert _login(users_url, name, GOOD) is not None
    row = _row(users_url, name)
    assert row is not None
    assert row[1] != weak
    assert "m=65536,t=3,p=4" in row[1]


def test_a_database_without_the_table_or_unreachable_is_one_line(
    database_server_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"moldlab_nousers_{uuid.uuid4().hex[:8]}"
    url = create_database(database_server_url, name)
    try:
        assert _cli(url, "list") == 1
        assert capsys.readouterr().err.strip() == (
            "moldlab user list: the database has no users table: run `moldlab db upgrade` first"
        )
    finally:
        drop_database(database_server_url, name)
    assert _cli("postgresql://nobody@127.0.0.1:1/none", "list") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("moldlab user list: cannot reach the database")
    assert "\n" not in err
    assert _cli("not a url", "list") == 2
    assert "is not valid" in capsys.readouterr().err


def test_no_users_says_how_to_add_the_first_admin(
    database_server_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with migrated_database(database_server_url, prefix="moldlab_nobody") as url:
        assert _cli(url, "list") == 0
        assert "moldlab user add NAME --role admin" in capsys.readouterr().out
