"""Prometheus metrics of the plant-server services (ingest, API, scorer): served on a port of
their own, and read from callbacks where a service already counts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reading:
    """One metric read from a callback when scraped: a counter (`_total`) or a gauge."""

    name: str
    documentation: str
    value: Callable[[], float]
    counter: bool = False


class Callbacks(Collector):
    """Metrics whose values come from callbacks at scrape time."""

    def __init__(self, readings: Sequence[Reading]) -> None:
        self._readings = list(readings)

    def collect(self) -> Iterator[Metric]:
        for r in self._readings:
            family = CounterMetricFamily if r.counter else GaugeMetricFamily
            yield family(r.name, r.documentation, value=float(r.value()))


@contextlib.asynccontextmanager
async def serve_registry(
    registry: CollectorRegistry, host: str, port: int
) -> AsyncIterator[tuple[str, int] | None]:
    """Serve `registry` at http://host:port/metrics while inside; yields the bound address.

    Port 0 serves nothing (yields None). A port that is taken is logged as an error and the
    service goes on without its metrics: its work matters more than its gauges.
    """
    if port == 0:
        yield None
        return
    try:
        # prometheus_client's threaded server: a scrape renders in its own thread, so a slow
        # scraper never holds up the event loop.
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.error("cannot serve metrics on %s:%d (%s); running without them", host, port, exc)
        yield None
        return
    bound = server.server_address
    address = (str(bound[0]), int(bound[1]))
    log.info("metrics at http://%s:%d/metrics", host, address[1])
    try:
        yield address
    finally:
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        thread.join()
