"""The database URL of a command line (`--database-url` or MOLDLAB_DATABASE_URL), checked
before anything connects: one clear line when it is missing or malformed, never a password."""

from __future__ import annotations

import argparse
import os


class UsageError(Exception):
    """A command line or setting that cannot work (exit 2); the text says why."""


def add_database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="postgresql://... (MOLDLAB_DATABASE_URL)")


def database_url(given: str | None) -> str:
    """`given`, else MOLDLAB_DATABASE_URL, parsed as connect() would; UsageError if it is
    missing or malformed (the message shows the parser's complaint, not the URL if it may
    hold a password)."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    url = given or os.environ.get("MOLDLAB_DATABASE_URL")
    if not url:
        raise UsageError("no database: give --database-url or set MOLDLAB_DATABASE_URL")
    try:
        conninfo_to_dict(url)  # the same parse as connect(), without its traceback
    except psycopg.ProgrammingError as exc:
        hidden = "@" in url or "password" in url.lower()  # do not print a password
        problem = str(exc).strip().replace(url, "<the URL>") if hidden else str(exc).strip()
        raise UsageError(
            f"the database URL (--database-url or MOLDLAB_DATABASE_URL) is not valid: {problem}; "
            "give postgresql://USER@HOST:PORT/DATABASE"
        ) from None
    from contracts.secrets import weak_password

    if (why := weak_password(url)) is not None:
        raise UsageError(
            f"{why}: the database on another host needs a strong password "
            "(--database-url or MOLDLAB_DATABASE_URL)"
        )
    return url
