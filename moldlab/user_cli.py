"""`moldlab user add|list|disable|enable`: the engineers and admins of the workspace."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys
from datetime import UTC
from typing import Any

from moldlab.dbargs import UsageError as _Usage
from moldlab.dbargs import add_database_option as _database
from moldlab.dbargs import database_url
from moldlab.runner import ENV_HELP

log = logging.getLogger("moldlab.user")

_ROLES = ("engineer", "admin")  # store.users.ROLES (a test checks): --help imports no driver


def add_parser(sub: Any) -> None:
    user = sub.add_parser(
        "user",
        help="manage the engineers and admins who log in to the workspace",
        description="Add, list, disable and enable the users of the engineer workspace "
        "(visitors need no account). There is no default user or password: the first admin "
        "is made with `moldlab user add NAME --role admin`. Users are disabled, never "
        "deleted, so that what they acknowledged keeps their name. " + ENV_HELP,
    )
    cmds = user.add_subparsers(dest="user_command", required=True, metavar="USER_COMMAND")
    add = cmds.add_parser(
        "add",
        help="add a user; asks for the password twice",
        description="Add a user. The password is asked twice on the terminal (never an "
        "option: it would land in the shell's history and the process list), or read as one "
        "line from standard input with --password-stdin. Passwords: at least 12 characters, "
        "not containing the name; stored as an argon2id hash only.",
    )
    add.add_argument("name", metavar="NAME", help="lowercase letters, digits, '.', '_', '-'")
    add.add_argument("--role", choices=_ROLES, default="engineer", help="default: engineer")
    add.add_argument(
        "--password-stdin", action="store_true",
        help="read the password as one line from standard input (for scripts)",
    )  # fmt: skip
    _database(add)
    listing = cmds.add_parser("list", help="list the users, their roles and last logins")
    listing.add_argument("--json", action="store_true", help="print JSON")
    _database(listing)
    for verb, text in (("disable", "disable a user: no more logins"), ("enable", "enable again")):
        cmd = cmds.add_parser(verb, help=text, description=text[0].upper() + text[1:] + ".")
        cmd.add_argument("name", metavar="NAME")
        _database(cmd)


def run(args: argparse.Namespace) -> int:
    """Run `moldlab user ...`; returns the exit code."""
    import psycopg

    from dashboard_api.accounts import AccountError
    from store import SchemaNotReady
    from store.users import UserError

    def fail(message: str, code: int) -> int:
        print(f"moldlab user {args.user_command}: {message}", file=sys.stderr)
        return code

    try:
        url = database_url(args.database_url)
        return asyncio.run(_run(args, url))
    except (_Usage, AccountError) as exc:
        return fail(str(exc), 2)
    except UserError as exc:
        return fail(str(exc), 1)
    except (SchemaNotReady, psycopg.errors.UndefinedTable):
        return fail("the database has no users table: run `moldlab db upgrade` first", 1)
    except psycopg.OperationalError as exc:
        return fail(f"cannot reach the database: {' '.join(str(exc).split())[:300]}", 1)


async def _run(args: argparse.Namespace, url: str) -> int:
    import psycopg

    from dashboard_api.accounts import check_name, check_password, hash_password
    from store.users import add_user, list_users, set_disabled

    command = args.user_command
    name = check_name(args.name) if command != "list" else ""
    password_hash = ""
    if command == "add":
        password = _read_password(args.password_stdin)
        check_password(password, name)
        password_hash = hash_password(password)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        if command == "add":
            user = await add_user(conn, name, args.role, password_hash)
            log.info("user %s added as %s", user.name, user.role)
            print(f"user {user.name} added as {user.role}")
        elif command == "list":
            _print_users(await list_users(conn), args.json)
        else:
            user = await set_disabled(conn, name, command == "disable")
            log.info("user %s %sd", user.name, command)
            print(f"user {user.name} {command}d")
    return 0


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        try:
            line = sys.stdin.readline()
        except UnicodeDecodeError:
            raise _Usage("the password on standard input is not valid UTF-8") from None
        return line[:-1] if line.endswith("\n") else line
    if not sys.stdin.isatty():
        raise _Usage("no terminal to ask the password on: give --password-stdin")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise _Usage("the two passwords differ; nothing was added")
    return first


def _print_users(users: list[Any], as_json: bool) -> None:
    def iso(t: Any) -> str | None:
        return t.isoformat() if t is not None else None

    if as_json:
        print(json.dumps([
            {"name": u.name, "role": u.role, "active": u.active,
             "created_at": iso(u.created_at), "disabled_at": iso(u.disabled_at),
             "last_login_at": iso(u.last_login_at)}
            for u in users
        ]))  # fmt: skip
        return
    if not users:
        print("no users: add the first admin with `moldlab user add NAME --role admin`")
        return
    for u in users:
        seen = f"{u.last_login_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if u.last_login_at else ""
        status = "active" if u.active else f"disabled {u.disabled_at.astimezone(UTC):%Y-%m-%d}"
        print(f"{u.name:<24} {u.role:<9} {status:<20} last login {seen or 'never'}")
