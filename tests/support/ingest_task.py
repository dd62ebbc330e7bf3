"""Ingest running in the test's own event loop, from the moment it has subscribed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from ingest import IngestSettings, run_ingest


@contextlib.asynccontextmanager
async def running_ingest(settings: IngestSettings) -> AsyncIterator[None]:
    """Run ingest for `settings` until the block ends; the block starts once it subscribed."""
    subscribed = asyncio.Event()

    class _Subscribed(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("subscribed to"):
                subscribed.set()

    handler, logger = _Subscribed(), logging.getLogger("ingest.service")
    level = logger.level
    logger.setLevel(logging.INFO)  # "subscribed to" is an INFO line
    logger.addHandler(handler)
    stop = asyncio.Event()
    task = asyncio.create_task(run_ingest(settings, stop))
    try:
        await asyncio.wait_for(subscribed.wait(), 20)
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        stop.set()
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def site_ingest(database_url: str, mqtt_url: str, site: str) -> AsyncIterator[None]:
    """Ingest of `site` only (its own client id, metrics on a free port), as `running_ingest`."""
    settings = IngestSettings(
        database_url=database_url, mqtt_url=mqtt_url, ingest_site=site,
        ingest_client_id=f"ingest-{site}", ingest_metrics_port=0,
    )  # fmt: skip
    async with running_ingest(settings):
        yield
