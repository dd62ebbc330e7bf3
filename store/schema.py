"""The database schema: the Alembic migrations that `moldlab db upgrade` runs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from store.backend import Backend, database_backend

log = logging.getLogger(__name__)


def _sqlalchemy_url(database_url: str) -> str:
    """Point a postgresql:// URL at SQLAlchemy's psycopg 3 dialect."""
    url = make_url(database_url)
    return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("store") / "migrations"))
    return config


def _migrate(database_url: str, step: Callable[[Config, str], None], revision: str) -> None:
    engine = create_engine(_sqlalchemy_url(database_url))
    try:
        with engine.begin() as connection:
            config = _config()
            config.attributes["connection"] = connection
            step(config, revision)
    finally:
        engine.dispose()


def upgrade(database_url: str, revision: str = "head") -> Backend:
    """Migrate the database to `revision`; returns the storage backend the server gave."""
    _migrate(database_url, command.upgrade, revision)
    return database_backend(database_url)


def downgrade(database_url: str, revision: str) -> None:
    """Migrate the database down to `revision` ("base" removes every table)."""
    _migrate(database_url, command.downgrade, revision)


def head_revision() -> str:
    """The newest revision of the schema: where `upgrade` takes a database."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None  # the migrations are one chain
    return head
