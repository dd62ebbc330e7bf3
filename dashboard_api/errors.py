"""A database that is down, slow or not migrated answers 503 with a JSON detail, never a 500."""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout

from store import SchemaNotReady

log = logging.getLogger(__name__)

_RETRY_AFTER_S = "5"


def install_error_handlers(app: FastAPI, statement_timeout_s: float) -> None:
    """Answer database failures with 503 and a detail saying which one it was."""

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, psycopg.errors.QueryCanceled):
            detail = f"the database did not answer within {statement_timeout_s:g} s; try again"
        elif isinstance(exc, PoolTimeout):
            detail = "the database cannot be reached; try again"
        elif isinstance(exc, SchemaNotReady):
            detail = f"the database is not ready: {exc}"
        elif isinstance(exc, psycopg.errors.UndefinedTable):  # a table of a newer migration
            detail = "the database is not ready: a table is missing: run moldlab db upgrade"
        else:
            detail = "the database connection failed; try again"
        reason = " ".join(str(exc).split())[:300]  # one line, bounded
        log.warning(
            "%s %s answered 503: %s (%s)", request.method, request.url.path[:200], detail, reason
        )
        return JSONResponse(
            {"detail": detail}, status_code=503, headers={"Retry-After": _RETRY_AFTER_S}
        )

    # QueryCanceled (statement_timeout) and PoolTimeout are OperationalErrors too.
    app.add_exception_handler(psycopg.OperationalError, unavailable)
    app.add_exception_handler(SchemaNotReady, unavailable)
    app.add_exception_handler(psycopg.errors.UndefinedTable, unavailable)
