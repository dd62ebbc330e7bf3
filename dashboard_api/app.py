"""The FastAPI app factory: REST, the live WebSockets, the visitor kiosk and the engineer
workspace's pages."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from importlib.metadata import version
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from dashboard_api import assets
from dashboard_api.auth import LoginLimiter, session_of
from dashboard_api.deps import StorageBackend
from dashboard_api.errors import install_error_handlers
from dashboard_api.kiosk import KioskFeed
from dashboard_api.live import LiveHub
from dashboard_api.metrics import ApiMetrics, CountRequests
from dashboard_api.rollup import PerformanceRollup
from dashboard_api.routes import auth, health, kiosk, live, machines, maintenance, performance, spc
from dashboard_api.security import SecurityHeaders
from dashboard_api.settings import ApiSettings
from store.metrics import Reading, serve_registry

_STATIC = files("dashboard_api") / "static"
log = logging.getLogger("moldlab.api")


def create_app(settings: ApiSettings) -> FastAPI:
    """A new app bound to `settings`; its pool and live hub live in the lifespan."""
    timeout_ms = round(settings.api_statement_timeout_s * 1000)

    async def configure(conn: AsyncConnection) -> None:
        # Every query of the API ends within the timeout, whatever the database holds.
        await conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{timeout_ms}",))
        await conn.commit()

    limiter = LoginLimiter(settings.api_login_max_failures, settings.api_login_window_s)
    metrics = ApiMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async def opened(url: str, max_size: int) -> AsyncConnectionPool:
            pool = AsyncConnectionPool(
                url, min_size=1, max_size=max_size, open=False,
                timeout=settings.api_statement_timeout_s, configure=configure,
                # A connection a database restart killed is found and replaced before a
                # request gets it (one round trip each time): else the first requests after
                # the restart answered 503, or 500 (AdminShutdown).
                check=AsyncConnectionPool.check_connection,
            )  # fmt: skip
            # Not waiting: the API starts (and /health says why) while the database is down.
            await pool.open(wait=False)
            return pool

        pool = await opened(settings.database_url, 8)
        writer = pool  # the workspace's own writes: logins, sessions, acknowledgements
        if settings.api_writer_database_url is not None:
            writer = await opened(settings.api_writer_database_url, 2)
        hub = LiveHub(
            pool, settings.live_interval_s,
            max_machines=settings.live_max_machines,
            max_signals=settings.api_max_signals_per_machine,
        )  # fmt: skip
        poller = asyncio.create_task(hub.run(), name="live-hub")
        feed = KioskFeed(
            pool, settings.kiosk_refresh_s, settings.performance(),
            max_machines=settings.live_max_machines,
        )  # fmt: skip
        kiosk_task = asyncio.create_task(feed.run(), name="kiosk-feed")
        rollup = PerformanceRollup.start(
            settings.writer_database_url, settings.api_performance_refresh_s,
            settings.micro_stop_s,
        )  # fmt: skip
        metrics.read([
            Reading("moldlab_api_kiosk_clients", "kiosk sockets open", lambda: feed.watchers),
            Reading("moldlab_api_live_clients", "engineers' live sockets open", hub.clients),
            Reading("moldlab_api_rollup_passes", "performance rollup passes tried",
                    lambda: rollup.passes, counter=True),
            Reading("moldlab_api_rollup_failures", "performance rollup passes that failed",
                    lambda: rollup.failures, counter=True),
            Reading("moldlab_api_database_connections", "connections of the reading pool",
                    lambda: pool.get_stats().get("pool_size", 0)),
        ])  # fmt: skip
        # What start-up allocated lives as long as the process: full garbage collections
        # need not walk it again (they cost 45 ms a request in `moldlab bench analytics`).
        gc.freeze()
        serving = serve_registry(
            metrics.registry, settings.api_metrics_host, settings.api_metrics_port
        )
        try:
            async with serving:
                yield {
                    "pool": pool, "writer": writer, "hub": hub, "storage": StorageBackend(),
                    "settings": settings,
                    "login_limiter": limiter, "kiosk": feed,
                }  # fmt: skip
        finally:
            for task in (poller, kiosk_task):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await rollup.stop()
            if writer is not pool:
                await writer.close()
            await pool.close()

    app = FastAPI(
        docs_url=None,  # served below from moldlab's own files, never a CDN
        redoc_url=None,
        title="moldlab",
        version=version("moldlab"),
        summary="Live telemetry and production performance of an injection-moulding floor.",
        description=(
            "Live updates: WebSocket `/api/v1/live` sends JSON text frames "
            '`{"type": "update", "machines": [...]}` holding, per machine, only the fields and '
            "signals that changed since the last frame (shaped as in `GET /api/v1/machines`), "
            "each with its `place` (site/area/line/machine), which identifies the machine, "
            'and `{"type": "ping"}` every 15 s when nothing changed. It follows the first '
            "`MOLDLAB_LIVE_MAX_MACHINES` machines by place (default 200), each with at most "
            "`MOLDLAB_API_MAX_SIGNALS_PER_MACHINE` signals (default 256, the first by name). "
            "When the database is down or a query takes longer than "
            "`MOLDLAB_API_STATEMENT_TIMEOUT_S` (default 5 s), a request answers 503 with a "
            "`detail`. The visitor kiosk is `/` (its API: `GET /api/v1/kiosk` and WebSocket "
            "`/api/v1/kiosk/live`, public); the engineer workspace is `/engineer`, after a "
            "login at `/login`."
        ),
        lifespan=lifespan,
    )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(CountRequests, metrics=metrics)
    install_error_handlers(app, settings.api_statement_timeout_s)
    app.include_router(health.router, prefix="/api/v1")
    app.include_router(machines.router, prefix="/api/v1")
    app.include_router(spc.router, prefix="/api/v1")
    app.include_router(performance.router, prefix="/api/v1")
    app.include_router(maintenance.router, prefix="/api/v1")
    app.include_router(live.router, prefix="/api/v1")
    app.include_router(kiosk.router, prefix="/api/v1")
    app.include_router(auth.router, prefix="/api/v1")
    app.mount("/static", StaticFiles(directory=str(_STATIC)), name="static")

    missing = assets.missing()
    if missing:
        log.warning(
            "the pages' chart and /docs files are not installed (%s): run `moldlab assets`",
            ", ".join(missing),
        )

    def page(name: str) -> FileResponse:
        return FileResponse(str(_STATIC / name), headers={"Cache-Control": "no-cache"})

    @app.get("/", include_in_schema=False)
    async def kiosk_page() -> FileResponse:
        return page("kiosk.html")

    @app.get("/login", include_in_schema=False)
    async def login_page() -> FileResponse:
        return page("login.html")

    @app.get("/docs", include_in_schema=False)
    async def docs_page() -> FileResponse:
        return page("docs.html")

    workspace = {"": "engineer.html", "/performance": "performance.html",
                 "/machine": "machine.html", "/maintenance": "maintenance.html"}  # fmt: skip

    async def workspace_page(request: Request) -> Response:
        """The workspace's pages need a session: without one, the login page first."""
        async with request.state.pool.connection() as conn:
            session = await session_of(request, conn)
        if session is None:
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        return page(workspace[request.url.path.removeprefix("/engineer")])

    for suffix in workspace:
        app.add_api_route(
            f"/engineer{suffix}", workspace_page, include_in_schema=False, response_model=None
        )

    return app
